/* SPDX-License-Identifier: MIT */
/* The option table: names, types and bounds of every key, and the checks
 * every object's setters share. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "ctx_internal.h"

typedef struct option_row {
    sdflow_option key;
    const char *name;
    sdflow_option_type type;
    double lo, hi;
} option_row;

#define U64MAX 18446744073709551615.0
#define BIG 1e300

static const option_row table[] = {
#define OPT(key, name, type, lo, hi) { key, name, SDFLOW_TYPE_##type, lo, hi },
#include "options.def"
#undef OPT
};

static const option_row *find(sdflow_option key)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].key == key)
            return &table[i];
    return NULL;
}

sdflow_option_type sdflow__option_info(sdflow_option key, double *lo, double *hi)
{
    const option_row *r = find(key);
    if (!r)
        return SDFLOW_TYPE_NONE;
    if (lo)
        *lo = r->lo;
    if (hi)
        *hi = r->hi;
    return r->type;
}

sdflow_option_type sdflow_option_get_type(sdflow_option key)
{
    return sdflow__option_info(key, NULL, NULL);
}

sdflow_status sdflow_option_bounds(sdflow_option key, double *lo, double *hi)
{
    if (!lo || !hi)
        return SDFLOW_E_INVALID;
    return sdflow__option_info(key, lo, hi) == SDFLOW_TYPE_NONE ? SDFLOW_E_UNSUPPORTED : SDFLOW_OK;
}

const char *sdflow_option_name(sdflow_option key)
{
    const option_row *r = find(key);
    return r ? r->name : NULL;
}

sdflow_status sdflow_option_from_name(const char *name, sdflow_option *out)
{
    if (!name || !out)
        return SDFLOW_E_INVALID;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) {
            *out = table[i].key;
            return SDFLOW_OK;
        }
    return SDFLOW_E_UNSUPPORTED;
}

static const char *type_name(sdflow_option_type t)
{
    return t == SDFLOW_TYPE_INT ? "int" : t == SDFLOW_TYPE_DOUBLE ? "double" : "u64";
}

sdflow_status sdflow__check_option_value(sdflow_ctx *ctx, sdflow_option key, sdflow_option_type type,
                                         double value)
{
    const option_row *r = find(key);
    if (!r)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "unknown option key %d", (int)key);
    if (r->type != type)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "option %s is of type %s, not %s", r->name,
                            type_name(r->type), type_name(type));
    if (isnan(value) || value < r->lo || value > r->hi)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "option %s = %g is outside [%g, %g]", r->name, value, r->lo,
                            r->hi);
    return SDFLOW_OK;
}

/* "a pf_ode sampler", "an mlp model", "a process": the object in messages. */
static void describe(const sdflow__opt_store *store, const char *kind, char *buf, size_t size)
{
    const char *first = kind ? kind : store->noun;
    const char *art = strchr("aeiouAEIOU", first[0]) ? "an" : "a";
    if (kind)
        snprintf(buf, size, "%s %s %s", art, kind, store->noun);
    else
        snprintf(buf, size, "%s %s", art, store->noun);
}

static const sdflow__opt_slot *find_slot(const sdflow__opt_store *store, unsigned kind_bit, sdflow_option key)
{
    for (size_t i = 0; i < store->nslots; i++)
        if (store->slots[i].key == key && (store->slots[i].kinds & kind_bit))
            return &store->slots[i];
    return NULL;
}

static size_t type_size(sdflow_option_type type)
{
    return type == SDFLOW_TYPE_INT ? sizeof(long) : type == SDFLOW_TYPE_DOUBLE ? sizeof(double) : sizeof(uint64_t);
}

/* The row of key for kind_bit and of the given type, in b's store or else
 * its kind store (*obj: the struct that row's offset is into, *where: the
 * store holding it), or a message naming the key and the object. */
static sdflow_status lookup(const sdflow__opt_bind *b, sdflow_option key, sdflow_option_type type,
                            const sdflow__opt_slot **slot, const sdflow__opt_store **where, char **obj)
{
    char name_buf[96];
    *where = b->store;
    *obj = b->obj;
    *slot = find_slot(b->store, b->kind_bit, key);
    if (!*slot && b->kind_store) {
        *where = b->kind_store;
        *obj = b->kind_obj;
        *slot = find_slot(b->kind_store, b->kind_bit, key);
    }
    if (!*slot) {
        const char *name = sdflow_option_name(key);
        describe(b->store, b->kind, name_buf, sizeof name_buf);
        return sdflow__fail(b->ctx, SDFLOW_E_UNSUPPORTED, "%s has no %s option %d (%s): the key does not apply to %s",
                            name_buf, type_name(type), (int)key, name ? name : "unknown key", name_buf);
    }
    sdflow_option_type t = sdflow_option_get_type(key);
    if (t != type)
        return sdflow__fail(b->ctx, SDFLOW_E_INVALID, "option %s is of type %s, not %s", sdflow_option_name(key),
                            type_name(t), type_name(type));
    return SDFLOW_OK;
}

static void write_value(void *field, sdflow_option_type type, double v)
{
    if (type == SDFLOW_TYPE_INT)
        *(long *)field = (long)v;
    else if (type == SDFLOW_TYPE_DOUBLE)
        *(double *)field = v;
    else
        *(uint64_t *)field = (uint64_t)v;
}

void sdflow__opt_defaults(const sdflow__opt_store *store, unsigned kind_bit, void *obj)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < store->nslots; i++)
            if (pass == 0 || (store->slots[i].kinds & kind_bit))
                write_value((char *)obj + store->slots[i].offset, sdflow_option_get_type(store->slots[i].key),
                            store->slots[i].def);
}

sdflow_status sdflow__opt_set(const sdflow__opt_bind *b, sdflow_option key, sdflow_option_type type,
                              const void *value)
{
    if (!b->owner)
        return SDFLOW_E_INVALID;
    const sdflow__opt_slot *slot;
    const sdflow__opt_store *where;
    char *obj;
    sdflow_status st = lookup(b, key, type, &slot, &where, &obj);
    if (st)
        return st;
    double v = type == SDFLOW_TYPE_INT      ? (double)*(const long *)value
               : type == SDFLOW_TYPE_DOUBLE ? *(const double *)value
                                            : (double)*(const uint64_t *)value;
    if ((st = sdflow__check_option_value(b->ctx, key, type, v)))
        return st;
    char *field = obj + slot->offset, old[8]; /* long, double or uint64_t */
    size_t size = type_size(type);
    memcpy(old, field, size);
    memcpy(field, value, size);
    if (where->check && (st = where->check(b->ctx, b->owner, obj, key, memcmp(old, field, size) != 0)))
        memcpy(field, old, size);
    return st;
}

sdflow_status sdflow__opt_get(const sdflow__opt_bind *b, sdflow_option key, sdflow_option_type type, void *value)
{
    if (!b->owner || !value)
        return SDFLOW_E_INVALID;
    const sdflow__opt_slot *slot;
    const sdflow__opt_store *where;
    char *obj;
    sdflow_status st = lookup(b, key, type, &slot, &where, &obj);
    if (st)
        return st;
    memcpy(value, obj + slot->offset, type_size(type));
    if (where->resolve)
        where->resolve(b->owner, key, value);
    return SDFLOW_OK;
}
