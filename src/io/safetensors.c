/* SPDX-License-Identifier: MIT */
/* The safetensors container: a reader that treats its input as hostile and
 * a writer (safetensors.h). Byte order is explicit (little endian on every
 * host); no tensor byte is read before the whole header has been checked. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"
#include "safetensors.h"

/* root object, tensor entry objects, shape and data_offsets arrays */
#define MAX_DEPTH 3
/* root + metadata (key, object, 2 per entry) + per tensor (key, object, 3
 * keys, dtype, shape array, dims, offsets array, 2 offsets) */
#define MAX_TOKENS (3 + 2 * SDFLOW__ST_MAX_META + SDFLOW__ST_MAX_TENSORS * (10 + SDFLOW__ST_MAX_DIM))

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static size_t elem_size(int dtype) { return dtype == SDFLOW__ST_F64 ? 8 : 4; }

static int cmp_begin(const void *a, const void *b)
{
    const sdflow__st_tensor *x = a, *y = b;
    /* ties (zero-size tensors at one offset) by end, so a sized one follows */
    return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1) : (x->end > y->end) - (x->end < y->end);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const sdflow__st_tensor *)a)->name, ((const sdflow__st_tensor *)b)->name);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const sdflow__st_meta *)a)->key, ((const sdflow__st_meta *)b)->key);
}

typedef struct reader {
    sdflow_ctx *ctx;
    const char *h; /* header text */
    size_t base;   /* file offset of h */
    sdflow__json j;
} reader;

static sdflow_status bad(reader *r, size_t text_at, const char *fmt, const char *arg)
{
    char why[160];
    snprintf(why, sizeof why, fmt, arg);
    return sdflow__fail(r->ctx, SDFLOW_E_FORMAT, "byte %zu: %s", r->base + text_at, why);
}

/* A decoded name or value into the arena (cap bytes of text checked). */
static sdflow_status take_string(reader *r, const sdflow__json_tok *t, size_t cap, const char *what, char **arena,
                                 char **out)
{
    if (t->type != SDFLOW__JSON_STRING)
        return bad(r, t->start, "%s is not a string", what);
    if (t->size > cap) {
        char why[96];
        snprintf(why, sizeof why, "%s of %zu bytes is longer than %zu", what, t->size, cap);
        return bad(r, t->start, "%s", why);
    }
    sdflow__json_string(r->h, t, *arena);
    *out = *arena;
    *arena += t->size + 1;
    return SDFLOW_OK;
}

/* An array of at most maxn integers, each <= SIZE_MAX, into v. */
static sdflow_status take_ints(reader *r, size_t ti, size_t maxn, const char *what, size_t *v, size_t *n)
{
    const sdflow__json_tok *a = &r->j.tok[ti];
    if (a->type != SDFLOW__JSON_ARRAY)
        return bad(r, a->start, "%s is not an array", what);
    if (a->size > maxn) {
        char why[96];
        snprintf(why, sizeof why, "%s has %zu entries, more than %zu", what, a->size, maxn);
        return bad(r, a->start, "%s", why);
    }
    size_t k = 0;
    for (size_t i = ti + 1; i < a->next; i = r->j.tok[i].next, k++) {
        const sdflow__json_tok *e = &r->j.tok[i];
        if (e->type != SDFLOW__JSON_NUMBER)
            return bad(r, e->start, "%s entries must be integers", what);
        if (e->num > SIZE_MAX)
            return bad(r, e->start, "%s entry does not fit size_t", what);
        v[k] = (size_t)e->num;
    }
    *n = k;
    return SDFLOW_OK;
}

/* One tensor entry: value token index vi, an object of exactly dtype,
 * shape, data_offsets. Checks the shape product and byte size against
 * the data section and the offsets' range and alignment. */
static sdflow_status take_tensor(reader *r, size_t vi, size_t data_size, sdflow__st_tensor *t)
{
    const sdflow__json_tok *o = &r->j.tok[vi];
    sdflow_status st;
    if (o->type != SDFLOW__JSON_OBJECT)
        return bad(r, o->start, "tensor %s: entry is not an object", t->name);
    int have[3] = { 0, 0, 0 };
    size_t off[2], noff = 0;
    for (size_t k = vi + 1; k < o->next;) {
        const sdflow__json_tok *key = &r->j.tok[k];
        size_t v = k + 1;
        const sdflow__json_tok *val = &r->j.tok[v];
        int w = sdflow__json_string_is(r->h, key, "dtype")          ? 0
                : sdflow__json_string_is(r->h, key, "shape")        ? 1
                : sdflow__json_string_is(r->h, key, "data_offsets") ? 2
                                                                    : -1;
        if (w < 0)
            return bad(r, key->start, "tensor %s: unknown field (only dtype, shape, data_offsets)", t->name);
        if (have[w]++)
            return bad(r, key->start, "tensor %s: field given twice", t->name);
        if (w == 0) {
            if (sdflow__json_string_is(r->h, val, "F64"))
                t->dtype = SDFLOW__ST_F64;
            else if (sdflow__json_string_is(r->h, val, "F32"))
                t->dtype = SDFLOW__ST_F32;
            else
                return bad(r, val->start, "tensor %s: dtype must be \"F64\" or \"F32\"", t->name);
        } else if (w == 1) {
            if ((st = take_ints(r, v, SDFLOW__ST_MAX_DIM, "shape", t->shape, &t->ndim)))
                return st;
        } else if ((st = take_ints(r, v, 2, "data_offsets", off, &noff))) {
            return st;
        }
        k = val->next;
    }
    if (!have[0] || !have[1] || !have[2])
        return bad(r, o->start, "tensor %s: needs dtype, shape and data_offsets", t->name);
    if (noff != 2)
        return bad(r, o->start, "tensor %s: data_offsets needs two entries [begin, end]", t->name);
    size_t count = 1, es = elem_size(t->dtype);
    for (size_t i = 0; i < t->ndim; i++) {
        if (t->shape[i] && count > SIZE_MAX / t->shape[i])
            return bad(r, o->start, "tensor %s: shape product overflows size_t", t->name);
        count *= t->shape[i];
    }
    if (count > SIZE_MAX / es)
        return bad(r, o->start, "tensor %s: byte size overflows size_t", t->name);
    t->count = count;
    t->begin = off[0];
    t->end = off[1];
    if (t->begin > t->end)
        return bad(r, o->start, "tensor %s: data_offsets end before they begin", t->name);
    if (t->end > data_size)
        return bad(r, o->start, "tensor %s: data_offsets run past the end of the data", t->name);
    if (t->end - t->begin != count * es)
        return bad(r, o->start, "tensor %s: data_offsets length differs from the shape's byte size", t->name);
    if (t->begin % es)
        return bad(r, o->start, "tensor %s: data_offsets begin is not aligned to the element size", t->name);
    return SDFLOW_OK;
}

static sdflow_status parse_members(reader *r, sdflow__st_file *f, char **arena_out)
{
    const sdflow__json_tok *root = &r->j.tok[0];
    sdflow_status st;
    size_t text = 0, meta_obj = 0, nmeta_obj = 0;
    /* first walk: counts and the string arena's size */
    for (size_t k = 1; k < root->next;) {
        const sdflow__json_tok *key = &r->j.tok[k], *val = &r->j.tok[k + 1];
        if (key->size > SDFLOW__ST_MAX_NAME)
            return bad(r, key->start, "%s longer than 255 bytes", "tensor name or metadata key");
        if (sdflow__json_string_is(r->h, key, "__metadata__")) {
            if (nmeta_obj++)
                return bad(r, key->start, "%s given twice", "__metadata__");
            if (val->type != SDFLOW__JSON_OBJECT)
                return bad(r, val->start, "%s is not an object", "__metadata__");
            meta_obj = k + 1;
            for (size_t m = k + 2; m < val->next; m = r->j.tok[m + 1].next) {
                const sdflow__json_tok *mk = &r->j.tok[m], *mv = &r->j.tok[m + 1];
                if (mk->size > SDFLOW__ST_MAX_NAME)
                    return bad(r, mk->start, "%s longer than 255 bytes", "metadata key");
                if (mv->type != SDFLOW__JSON_STRING)
                    return bad(r, mv->start, "%s", "metadata values must be strings");
                text += mk->size + 1 + mv->size + 1;
                f->nmeta++;
            }
            if (f->nmeta > SDFLOW__ST_MAX_META)
                return bad(r, val->start, "more than %s metadata entries", "256");
        } else {
            text += key->size + 1;
            f->nt++;
        }
        k = val->next;
    }
    if (f->nt > SDFLOW__ST_MAX_TENSORS)
        return bad(r, 0, "more than %s tensors", "4096");
    char *arena = sdflow__alloc_array(r->ctx, text + 1, 1, "file names");
    f->t = arena ? sdflow__calloc_array(r->ctx, f->nt + 1, sizeof *f->t, "file tensors") : NULL;
    f->meta = f->t ? sdflow__calloc_array(r->ctx, f->nmeta + 1, sizeof *f->meta, "file metadata") : NULL;
    *arena_out = arena;
    if (!f->meta)
        return SDFLOW_E_NOMEM;
    /* second walk: decode and check each entry */
    size_t it = 0;
    for (size_t k = 1; k < root->next;) {
        const sdflow__json_tok *key = &r->j.tok[k], *val = &r->j.tok[k + 1];
        if (k + 1 != meta_obj) {
            sdflow__st_tensor *t = &f->t[it++];
            t->at = r->base + key->start - 1;
            if ((st = take_string(r, key, SDFLOW__ST_MAX_NAME, "tensor name", &arena, &t->name)) ||
                (st = take_tensor(r, k + 1, f->data_size, t)))
                return st;
        }
        k = val->next;
    }
    if (meta_obj) {
        const sdflow__json_tok *val = &r->j.tok[meta_obj];
        size_t im = 0;
        for (size_t m = meta_obj + 1; m < val->next; m = r->j.tok[m + 1].next) {
            sdflow__st_meta *e = &f->meta[im++];
            e->at = r->base + r->j.tok[m].start - 1;
            if ((st = take_string(r, &r->j.tok[m], SDFLOW__ST_MAX_NAME, "metadata key", &arena, &e->key)) ||
                (st = take_string(r, &r->j.tok[m + 1], SDFLOW__ST_MAX_VALUE, "metadata value", &arena, &e->value)))
                return st;
        }
    }
    /* the data section: sorted by offset the tensors must tile it exactly */
    qsort(f->t, f->nt, sizeof *f->t, cmp_begin);
    size_t pos = 0;
    for (size_t i = 0; i < f->nt; i++) {
        if (f->t[i].begin != pos)
            return sdflow__fail(r->ctx, SDFLOW_E_FORMAT, "byte %zu: tensor %s: data_offsets begin at %zu, not at %zu "
                                "(tensors must cover the data without gap or overlap)", f->t[i].at, f->t[i].name,
                                f->t[i].begin, pos);
        pos = f->t[i].end;
    }
    if (pos != f->data_size)
        return sdflow__fail(r->ctx, SDFLOW_E_FORMAT, "byte %zu: the tensors cover %zu of the %zu data bytes",
                            f->data_at + pos, pos, f->data_size);
    qsort(f->t, f->nt, sizeof *f->t, cmp_name);
    for (size_t i = 1; i < f->nt; i++)
        if (!strcmp(f->t[i].name, f->t[i - 1].name))
            return sdflow__fail(r->ctx, SDFLOW_E_FORMAT, "byte %zu: tensor %s given twice", f->t[i].at, f->t[i].name);
    qsort(f->meta, f->nmeta, sizeof *f->meta, cmp_key);
    for (size_t i = 1; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, f->meta[i - 1].key))
            return sdflow__fail(r->ctx, SDFLOW_E_FORMAT, "byte %zu: metadata key %s given twice", f->meta[i].at,
                                f->meta[i].key);
    return SDFLOW_OK;
}

sdflow_status sdflow__st_parse(sdflow_ctx *ctx, const void *buf, size_t size, sdflow__st_file *f)
{
    memset(f, 0, sizeof *f);
    const unsigned char *b = buf;
    if (size < 8)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: a file of %zu bytes is shorter than the 8-byte header "
                            "length", size);
    uint64_t n = le64(b);
    if (n < 2)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: header length %" PRIu64 " is too small", n);
    if (n > SDFLOW__ST_MAX_HEADER)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: header length %" PRIu64 " is above the cap of %zu bytes", n,
                            SDFLOW__ST_MAX_HEADER);
    if (n > size - 8)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: header length %" PRIu64 " runs past the end of the %zu-byte "
                            "file", n, size);
    if (b[8] != '{')
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: the header does not start with '{'");
    reader r = { .ctx = ctx, .h = (const char *)b + 8, .base = 8 };
    sdflow_status st = sdflow__json_parse(ctx, r.h, (size_t)n, 8, MAX_DEPTH, MAX_TOKENS, &r.j);
    if (st)
        return st;
    f->data = b + 8 + n;
    f->data_at = 8 + (size_t)n;
    f->data_size = size - 8 - (size_t)n;
    char *arena = NULL;
    st = parse_members(&r, f, &arena);
    sdflow__json_free(ctx, &r.j);
    if (st) {
        sdflow__free(ctx, arena);
        sdflow__free(ctx, f->t);
        sdflow__free(ctx, f->meta);
        memset(f, 0, sizeof *f);
        return st;
    }
    /* the arena is the block the first name starts (kept with the tensors) */
    f->t[f->nt].name = arena;
    return SDFLOW_OK;
}

void sdflow__st_free(sdflow_ctx *ctx, sdflow__st_file *f)
{
    if (f->t)
        sdflow__free(ctx, f->t[f->nt].name);
    sdflow__free(ctx, f->t);
    sdflow__free(ctx, f->meta);
    memset(f, 0, sizeof *f);
}

sdflow__st_tensor *sdflow__st_take(sdflow__st_file *f, const char *name)
{
    sdflow__st_tensor key = { .name = (char *)name };
    sdflow__st_tensor *t = f->nt ? bsearch(&key, f->t, f->nt, sizeof *f->t, cmp_name) : NULL;
    if (t)
        t->used = 1;
    return t;
}

const char *sdflow__st_meta_take(sdflow__st_file *f, const char *key, size_t *at)
{
    sdflow__st_meta k = { .key = (char *)key };
    sdflow__st_meta *e = f->nmeta ? bsearch(&k, f->meta, f->nmeta, sizeof *f->meta, cmp_key) : NULL;
    if (!e)
        return NULL;
    e->used = 1;
    if (at)
        *at = e->at;
    return e->value;
}

void sdflow__st_read(const sdflow__st_file *f, const sdflow__st_tensor *t, double *out)
{
    const unsigned char *p = f->data + t->begin;
    for (size_t i = 0; i < t->count; i++) {
        if (t->dtype == SDFLOW__ST_F64) {
            uint64_t u = le64(p + 8 * i);
            memcpy(&out[i], &u, sizeof u);
        } else {
            uint32_t u = le32(p + 4 * i);
            float x;
            memcpy(&x, &u, sizeof x);
            out[i] = (double)x;
        }
    }
}

/* ---- writer ------------------------------------------------------------ */

typedef struct sink {
    unsigned char *buf; /* NULL: count only */
    size_t cap, pos;
} sink;

static void put(sink *s, const void *p, size_t n)
{
    if (s->buf && s->pos <= s->cap && n <= s->cap - s->pos)
        memcpy(s->buf + s->pos, p, n);
    s->pos += n;
}

static void puts_(sink *s, const char *str) { put(s, str, strlen(str)); }

static void put_json_string(sink *s, const char *str)
{
    put(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\', esc[1] = (char)*c;
            put(s, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            put(s, esc, 6);
        } else {
            put(s, c, 1);
        }
    }
    put(s, "\"", 1);
}

static void put_header(sink *s, const sdflow__st_out *t, size_t nt, const char *const *kv, size_t nkv, int dtype)
{
    char num[48];
    size_t off = 0, es = elem_size(dtype);
    puts_(s, "{");
    if (nkv) {
        puts_(s, "\"__metadata__\":{");
        for (size_t i = 0; i < nkv; i++) {
            if (i)
                puts_(s, ",");
            put_json_string(s, kv[2 * i]);
            puts_(s, ":");
            put_json_string(s, kv[2 * i + 1]);
        }
        puts_(s, "}");
    }
    for (size_t i = 0; i < nt; i++) {
        if (nkv || i)
            puts_(s, ",");
        put_json_string(s, t[i].name);
        puts_(s, dtype == SDFLOW__ST_F64 ? ":{\"dtype\":\"F64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        size_t count = 1;
        for (size_t k = 0; k < t[i].ndim; k++) {
            snprintf(num, sizeof num, k ? ",%zu" : "%zu", t[i].shape[k]);
            puts_(s, num);
            count *= t[i].shape[k];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + count * es);
        puts_(s, num);
        off += count * es;
    }
    puts_(s, "}");
}

sdflow_status sdflow__st_write(sdflow_ctx *ctx, const sdflow__st_out *t, size_t nt, const char *const *kv,
                               size_t nkv, int dtype, unsigned char *buf, size_t cap, size_t *size)
{
    size_t es = elem_size(dtype), data = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t count = 1;
        for (size_t k = 0; k < t[i].ndim; k++) {
            if (t[i].shape[k] && count > SIZE_MAX / 16 / t[i].shape[k])
                return sdflow__fail(ctx, SDFLOW_E_INVALID, "tensor %s is too large to write", t[i].name);
            count *= t[i].shape[k];
        }
        if (data > SIZE_MAX / 2 - count * es)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "the tensors are too large to write");
        data += count * es;
        if (dtype == SDFLOW__ST_F32)
            for (size_t j = 0; j < count; j++)
                if (!isfinite((float)t[i].data[j]))
                    return sdflow__fail(ctx, SDFLOW_E_INVALID, "tensor %s[%zu] = %g does not fit in F32", t[i].name,
                                        j, t[i].data[j]);
    }
    sink hs = { 0 };
    put_header(&hs, t, nt, kv, nkv, dtype);
    size_t n = hs.pos + (8 - (8 + hs.pos) % 8) % 8; /* padded: the data starts 8-byte aligned */
    if (n > SDFLOW__ST_MAX_HEADER)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "header of %zu bytes is above the cap of %zu", n,
                            SDFLOW__ST_MAX_HEADER);
    *size = 8 + n + data;
    if (!buf)
        return SDFLOW_OK;
    if (cap < *size)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "buffer of %zu bytes is too small: the file needs %zu", cap, *size);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    sink s = { .buf = buf + 8, .cap = n };
    put_header(&s, t, nt, kv, nkv, dtype);
    memset(buf + 8 + s.pos, ' ', n - s.pos);
    unsigned char *p = buf + 8 + n;
    for (size_t i = 0; i < nt; i++) {
        size_t count = 1;
        for (size_t k = 0; k < t[i].ndim; k++)
            count *= t[i].shape[k];
        for (size_t j = 0; j < count; j++) {
            if (dtype == SDFLOW__ST_F64) {
                uint64_t u;
                memcpy(&u, &t[i].data[j], sizeof u);
                for (int b = 0; b < 8; b++)
                    *p++ = (unsigned char)(u >> (8 * b));
            } else {
                float x = (float)t[i].data[j];
                uint32_t u;
                memcpy(&u, &x, sizeof u);
                for (int b = 0; b < 4; b++)
                    *p++ = (unsigned char)(u >> (8 * b));
            }
        }
    }
    return SDFLOW_OK;
}
