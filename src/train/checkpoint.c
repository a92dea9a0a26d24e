/* SPDX-License-Identifier: MIT */
/* Trainer checkpoints (trainer.h; docs/model-files.md, "Trainer
 * checkpoints"): a model file of the bound MLP and process plus the
 * optimizer state, written and read through the io layer's model-file
 * code (model_file.h), so a checkpoint passes the same hostile reader as a
 * model file and the model part is rebuilt by the same checks.
 *
 * Why this is all the state: the step of a trainer is a pure function of
 * (weights, moments, EMA, update count, step count, fit horizon, options,
 * ctx seed, data): every random draw of step k is keyed by (seed, stream,
 * k, row) (trainer_internal.h), the EMA warm-up and the learning rate are
 * functions of the counts, and the running loss is one double. So storing
 * those, exactly (F64 tensors, doubles with 17 digits), and refusing a
 * trainer that differs in any of the others makes a resume bit-identical.
 *
 * Restores parse and check everything into temporaries first (malformed:
 * SDFLOW_E_FORMAT; well formed but another configuration:
 * SDFLOW_E_INVALID) and change the trainer only when nothing can fail any
 * more, so a failed restore leaves it as it was. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "model_file.h"
#include "trainer_internal.h"

#define PREFIX "sdflow.train."
#define OPT_PREFIX PREFIX "opt."
#define MAX_OPTS 64  /* option keys per loss kind (the table has ~30) */
#define MAX_KV (MAX_OPTS + 24)
#define KEY_LEN 80
#define VAL_LEN 48
#define HASH_ZERO "0000000000000000"
#define COUNT_MAX (1L << 62)

/* The statistics kept as metadata, in this order. */
static const char *const stat_names[] = { "loss", "dsm_loss", "penalty", "running", "grad_norm", "lr" };
#define NSTATS (sizeof stat_names / sizeof stat_names[0])

static double *stat_field(sdflow_trainer *t, size_t i)
{
    double *f[NSTATS] = { &t->last_loss, &t->dsm_loss, &t->penalty, &t->running, &t->grad_norm, &t->cur_lr };
    return f[i];
}

/* FNV-1a, 64 bits: the data fingerprint and the checksum of the tensor
 * bytes (catches a corrupted file, not a forged one). */
static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* Over the little-endian bytes of the doubles, whatever the host's order. */
static uint64_t hash_doubles(const double *x, size_t n)
{
    uint64_t h = FNV_INIT;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        unsigned char b[8];
        memcpy(&u, &x[i], sizeof u);
        for (int k = 0; k < 8; k++)
            b[k] = (unsigned char)(u >> (8 * k));
        h = fnv1a(h, b, 8);
    }
    return h;
}

static int parse_hex64(const char *s, uint64_t *out)
{
    if (strlen(s) != 16)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

/* ---- option values ------------------------------------------------------- */

typedef struct optval {
    sdflow_option key;
    sdflow_option_type type;
    long i;
    double d;
    uint64_t u;
} optval;

/* The option table outgrew this file's arrays (a new option range): an
 * error rather than a checkpoint that silently drops options. */
static sdflow_status check_option_count(const sdflow_trainer *t)
{
    size_t n = sdflow__trainer_option_keys(t, NULL, 0);
    if (n > MAX_OPTS)
        return sdflow__fail(t->ctx, SDFLOW_E_STATE, "internal: %zu trainer options, checkpoint.c keeps at most %d", n,
                            MAX_OPTS);
    return SDFLOW_OK;
}

/* SDFLOW_TRAIN_RANK is not part of a checkpoint: every rank of a run
 * restores the same file. check_option_count() has passed. */
static size_t saved_keys(const sdflow_trainer *t, sdflow_option *keys)
{
    sdflow_option all[MAX_OPTS];
    size_t n = sdflow__trainer_option_keys(t, all, MAX_OPTS), k = 0;
    if (n > MAX_OPTS)
        n = MAX_OPTS;
    for (size_t i = 0; i < n; i++)
        if (all[i] != SDFLOW_TRAIN_RANK)
            keys[k++] = all[i];
    return k;
}

/* The option's value as set (T_EPS: the field, not the resolved default). */
static void get_opt(const sdflow_trainer *t, sdflow_option key, optval *v)
{
    v->key = key;
    v->type = sdflow_option_get_type(key);
    v->i = 0;
    v->d = 0;
    v->u = 0;
    if (key == SDFLOW_TRAIN_T_EPS)
        v->d = t->t_eps;
    else if (v->type == SDFLOW_TYPE_INT)
        sdflow_trainer_get_int(t, key, &v->i);
    else if (v->type == SDFLOW_TYPE_DOUBLE)
        sdflow_trainer_get_double(t, key, &v->d);
    else
        sdflow_trainer_get_u64(t, key, &v->u);
}

static int same_opt(const optval *a, const optval *b)
{
    if (a->type == SDFLOW_TYPE_INT)
        return a->i == b->i;
    if (a->type == SDFLOW_TYPE_DOUBLE)
        return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    return a->u == b->u;
}

static void fmt_opt(char *buf, size_t n, const optval *v)
{
    if (v->type == SDFLOW_TYPE_INT)
        snprintf(buf, n, "%ld", v->i);
    else if (v->type == SDFLOW_TYPE_DOUBLE)
        sdflow__fmt_double(buf, n, v->d);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v->u);
}

/* ---- the trainable tensors -------------------------------------------------
 * The flat parameter vector is every model tensor in order except the
 * buffer time_embed.freqs when the frequencies are not learned
 * (sdflow_model_param_count); moments and EMA are cut the same way. */

static int trainable(sdflow_model *m, const char *name)
{
    long learn = 0;
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, &learn);
    return learn || strcmp(name, "time_embed.freqs") != 0;
}

/* ---- save ----------------------------------------------------------------- */

typedef struct kvbuf {
    char key[MAX_KV][KEY_LEN], val[MAX_KV][VAL_LEN];
    const char *kv[2 * MAX_KV];
    size_t n;
} kvbuf;

static void kv_add(kvbuf *b, const char *k1, const char *k2, const char *val)
{
    if (b->n >= MAX_KV) /* MAX_KV = MAX_OPTS + the fixed keys: cannot happen */
        return;
    snprintf(b->key[b->n], KEY_LEN, "%s%s", k1, k2);
    snprintf(b->val[b->n], VAL_LEN, "%s", val);
    b->kv[2 * b->n] = b->key[b->n];
    b->kv[2 * b->n + 1] = b->val[b->n];
    b->n++;
}

static const char *const part_prefix[3] = { "adam.m.", "adam.v.", "ema." };

static sdflow_status save_to(sdflow_trainer *t, void *buf, size_t cap, size_t *size)
{
    sdflow_ctx *ctx = t->ctx;
    sdflow_status st = sdflow__check_ptr(ctx, size, "size");
    if (st)
        return st;
    if (!t->model)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no model bound (sdflow_trainer_set_model)");
    if ((st = check_option_count(t)) || (st = sdflow__trainer_ensure_state(t)))
        return st;
    sdflow_model *m = t->model;
    size_t ntens, np = t->nparam;
    if ((st = sdflow_model_param_tensors(m, &ntens)))
        return st;
    sdflow__st_out *xt = sdflow__calloc_array(ctx, 3 * ntens + 1, sizeof *xt, "checkpoint tensors");
    char *names = xt ? sdflow__alloc_array(ctx, 3 * ntens + 1, SDFLOW__ST_MAX_NAME + 1, "checkpoint names") : NULL;
    kvbuf *b = names ? sdflow__calloc_array(ctx, 1, sizeof *b, "checkpoint metadata") : NULL;
    if (!b) {
        sdflow__free(ctx, names);
        sdflow__free(ctx, xt);
        return SDFLOW_E_NOMEM;
    }
    /* the moments and the EMA cut into the model's trainable tensors */
    size_t nx = 0, off = 0;
    for (size_t i = 0; i < ntens && !st; i++) {
        const char *name;
        size_t r, c;
        if ((st = sdflow_model_param_info(m, i, &name, &r, &c)) || !trainable(m, name))
            continue;
        size_t cnt = c ? r * c : r;
        if (off + cnt > np) {
            st = sdflow__fail(ctx, SDFLOW_E_STATE, "internal: the model's tensors exceed its %zu parameters", np);
            break;
        }
        const double *src[3] = { t->opt.m, t->opt.v, sdflow__ema_current(&t->opt, t->theta) };
        for (int k = 0; k < 3; k++) {
            char *nm = names + nx * (SDFLOW__ST_MAX_NAME + 1);
            snprintf(nm, SDFLOW__ST_MAX_NAME + 1, "%s%s", part_prefix[k], name);
            xt[nx] = (sdflow__st_out){ .name = nm, .ndim = c ? 2 : 1, .shape = { r, c }, .data = src[k] + off };
            nx++;
        }
        off += cnt;
    }
    if (!st && off != np)
        st = sdflow__fail(ctx, SDFLOW_E_STATE, "internal: the model's tensors hold %zu of its %zu parameters", off,
                          np);
    char num[VAL_LEN];
    if (!st) {
        kv_add(b, "sdflow.", "checkpoint", "1");
        kv_add(b, PREFIX, "loss", sdflow_trainer_kind_name(t->kind));
        snprintf(num, sizeof num, "%llu", (unsigned long long)ctx->seed);
        kv_add(b, PREFIX, "seed", num);
        snprintf(num, sizeof num, "%ld", t->step);
        kv_add(b, PREFIX, "step", num);
        snprintf(num, sizeof num, "%ld", t->opt.t);
        kv_add(b, PREFIX, "adam_t", num);
        snprintf(num, sizeof num, "%ld", t->fit_end);
        kv_add(b, PREFIX, "fit_end", num);
        snprintf(num, sizeof num, "%zu", np);
        kv_add(b, PREFIX, "nparam", num);
        for (size_t i = 0; i < NSTATS; i++) {
            sdflow__fmt_double(num, sizeof num, *stat_field(t, i));
            kv_add(b, PREFIX "stat.", stat_names[i], num);
        }
        if (t->have_val) {
            sdflow__fmt_double(num, sizeof num, t->val_loss);
            kv_add(b, PREFIX "stat.", "val_loss", num);
        }
        if (t->data)
            snprintf(num, sizeof num, "%zu:%016llx", t->n, (unsigned long long)hash_doubles(t->data, t->n * t->d));
        else
            snprintf(num, sizeof num, "%s", t->batch_fn ? "callback" : "none");
        kv_add(b, PREFIX, "data", num);
        sdflow_option keys[MAX_OPTS];
        size_t nk = saved_keys(t, keys);
        for (size_t i = 0; i < nk; i++) {
            optval v;
            get_opt(t, keys[i], &v);
            fmt_opt(num, sizeof num, &v);
            kv_add(b, OPT_PREFIX, sdflow_option_name(keys[i]), num);
        }
        kv_add(b, PREFIX, "checksum", HASH_ZERO); /* last: patched below */
    }
    sdflow__file_extra x = { .t = xt, .nt = nx, .kv = b->kv, .nkv = b->n, .force_f64 = 1 };
    if (!st)
        st = sdflow__model_save_ex(m, t->proc, &x, NULL, 0, size);
    if (!st && buf) {
        if (cap < *size)
            st = sdflow__fail(ctx, SDFLOW_E_INVALID, "buffer of %zu bytes is too small: the checkpoint needs %zu",
                              cap, *size);
        /* the checksum covers the file with its own digits as zeros (they
         * have a fixed width, so the layout does not move): write, hash, write again */
        else if (!(st = sdflow__model_save_ex(m, t->proc, &x, buf, cap, size))) {
            uint64_t h = fnv1a(FNV_INIT, buf, *size);
            snprintf(b->val[b->n - 1], VAL_LEN, "%016llx", (unsigned long long)h);
            st = sdflow__model_save_ex(m, t->proc, &x, buf, cap, size);
        }
    }
    sdflow__free(ctx, b);
    sdflow__free(ctx, names);
    sdflow__free(ctx, xt);
    return st;
}

sdflow_status sdflow_trainer_checkpoint_save_buffer(sdflow_trainer *t, void *buf, size_t cap, size_t *size)
{
    if (!t)
        return SDFLOW_E_INVALID;
    return save_to(t, buf, cap, size);
}

sdflow_status sdflow_trainer_checkpoint_save(sdflow_trainer *t, const char *path)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = t->ctx;
    size_t size;
    sdflow_status st = sdflow__check_ptr(ctx, path, "path");
    if (st || (st = save_to(t, NULL, 0, &size)))
        return st;
    unsigned char *buf = sdflow__alloc_array(ctx, size, 1, "checkpoint buffer");
    if (!buf)
        return SDFLOW_E_NOMEM;
    if (!(st = save_to(t, buf, size, &size)))
        st = sdflow__file_write(ctx, path, buf, size);
    sdflow__free(ctx, buf);
    return st;
}

/* ---- load ------------------------------------------------------------------ */

enum { DATA_NONE = 0, DATA_CALLBACK = 1, DATA_ARRAY = 2 };

/* What the hooks read: every field checked for form and consistency. */
typedef struct ckpt {
    sdflow_ctx *ctx;
    sdflow_trainer *ref; /* a fresh trainer of the file's kind holding the file's options */
    uint64_t seed;
    long step, adam_t, fit_end;
    size_t nparam;
    double stats[NSTATS], val_loss;
    int have_val, data_kind;
    size_t data_rows;
    uint64_t data_hash;
    double *state; /* 3 nparam: m, v, ema */
} ckpt;

static sdflow_status bad(sdflow_ctx *ctx, size_t at, const char *key, const char *why, const char *val)
{
    return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: %s: \"%.60s\" %s", at, key, val, why);
}

static sdflow_status need(sdflow_ctx *ctx, sdflow__st_file *f, const char *key, const char **val, size_t *at)
{
    *val = sdflow__st_meta_take(f, key, at);
    if (!*val)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: metadata key %s is missing", key);
    return SDFLOW_OK;
}

/* Right after the container was parsed: a checkpoint at all, F64 only,
 * and the checksum (FNV-1a of the whole file, catching corruption of the
 * header's numbers as well as of the tensors; not a defence against a
 * forger, who is held off by the checks that follow). */
static sdflow_status ck_check(void *user, sdflow__st_file *f)
{
    ckpt *c = user;
    const char *v;
    size_t at;
    sdflow_status st = SDFLOW_OK;
    v = sdflow__st_meta_take(f, "sdflow.checkpoint", &at);
    if (!v)
        return sdflow__fail(c->ctx, SDFLOW_E_FORMAT,
                            "byte 8: not a trainer checkpoint (metadata key sdflow.checkpoint is missing)");
    if (strcmp(v, "1"))
        return bad(c->ctx, at, "sdflow.checkpoint", "is not a checkpoint version this library reads (1)", v);
    for (size_t i = 0; i < f->nt; i++)
        if (f->t[i].dtype != SDFLOW__ST_F64)
            return sdflow__fail(c->ctx, SDFLOW_E_FORMAT, "byte %zu: tensor %s: a checkpoint holds F64 tensors only",
                                f->t[i].at, f->t[i].name);
    uint64_t want;
    if ((st = need(c->ctx, f, PREFIX "checksum", &v, &at)))
        return st;
    if (!parse_hex64(v, &want))
        return bad(c->ctx, at, PREFIX "checksum", "is not 16 lowercase hex digits", v);
    /* the checksum covers the whole file with its own 16 digits read as
     * zeros: find them literally (a value written with escapes is refused) */
    const unsigned char *raw = f->data - f->data_at;
    size_t pos = 0;
    for (size_t i = at + 1; i + 18 <= f->data_at; i++)
        if (raw[i] == '"' && !memcmp(raw + i + 1, v, 16) && raw[i + 17] == '"') {
            pos = i + 1;
            break;
        }
    if (!pos)
        return bad(c->ctx, at, PREFIX "checksum", "is not written literally", v);
    uint64_t got = fnv1a(FNV_INIT, raw, pos);
    got = fnv1a(got, (const unsigned char *)HASH_ZERO, 16);
    got = fnv1a(got, raw + pos + 16, f->data_at + f->data_size - pos - 16);
    if (got != want)
        return sdflow__fail(c->ctx, SDFLOW_E_FORMAT,
                            "byte %zu: the file has checksum %016llx, its header says %s (corrupted file)", at,
                            (unsigned long long)got, v);
    return SDFLOW_OK;
}

static sdflow_status take_count(ckpt *c, sdflow__st_file *f, const char *name, long lo, long hi, long *out)
{
    char key[KEY_LEN];
    const char *v;
    size_t at;
    snprintf(key, sizeof key, PREFIX "%s", name);
    sdflow_status st = need(c->ctx, f, key, &v, &at);
    if (!st && !sdflow__parse_long(v, lo, hi, out)) {
        char why[96];
        snprintf(why, sizeof why, "is not an integer in [%ld, %ld]", lo, hi);
        st = bad(c->ctx, at, key, why, v);
    }
    return st;
}

static sdflow_status take_options(ckpt *c, sdflow__st_file *f)
{
    sdflow_ctx *ctx = c->ctx;
    sdflow_option keys[MAX_OPTS];
    size_t nk = saved_keys(c->ref, keys);
    sdflow_status st = SDFLOW_OK;
    /* options are checked against each other only at a step (lr_min <= lr,
     * rank < world size), so one pass sets them all; a missing key keeps
     * the fresh trainer's default (a file of an older library) */
    for (size_t i = 0; i < nk && !st; i++) {
        char key[KEY_LEN];
        size_t at;
        snprintf(key, sizeof key, OPT_PREFIX "%s", sdflow_option_name(keys[i]));
        const char *v = sdflow__st_meta_take(f, key, &at);
        if (!v)
            continue;
        sdflow_option_type type = sdflow_option_get_type(keys[i]);
        if (type == SDFLOW_TYPE_INT) {
            long x;
            if (!sdflow__parse_long(v, -COUNT_MAX, COUNT_MAX, &x))
                return bad(ctx, at, key, "is not an integer", v);
            st = sdflow_trainer_set_int(c->ref, keys[i], x);
        } else if (type == SDFLOW_TYPE_DOUBLE) {
            double x;
            if (!sdflow__parse_double(v, &x))
                return bad(ctx, at, key, "is not a finite decimal number", v);
            st = sdflow_trainer_set_double(c->ref, keys[i], x);
        } else {
            uint64_t x;
            if (!sdflow__parse_u64(v, &x))
                return bad(ctx, at, key, "is not an unsigned 64-bit integer", v);
            st = sdflow_trainer_set_u64(c->ref, keys[i], x);
        }
        if (st && st != SDFLOW_E_NOMEM) {
            char msg[SDFLOW__ERRMAX];
            snprintf(msg, sizeof msg, "%s", sdflow_ctx_last_error(ctx));
            st = sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: %s: %s", at, key, msg);
        }
    }
    return st;
}

/* Once the model and process are rebuilt: the trainer state. */
static sdflow_status ck_take(void *user, sdflow__st_file *f, sdflow_model *m, const sdflow_process *p)
{
    ckpt *c = user;
    sdflow_ctx *ctx = c->ctx;
    const char *v;
    size_t at;
    (void)p;
    sdflow_status st = need(ctx, f, PREFIX "loss", &v, &at);
    if (st)
        return st;
    sdflow_loss_kind kind;
    if (sdflow_trainer_kind_from_name(v, &kind))
        return bad(ctx, at, PREFIX "loss", "is not a loss kind of this library", v);
    if (m->kind != SDFLOW_MODEL_MLP)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: a checkpoint holds an MLP, not a %s model",
                            sdflow_model_kind_name(m->kind));
    if ((st = sdflow_trainer_create(ctx, kind, &c->ref)) || (st = check_option_count(c->ref)) ||
        (st = take_options(c, f)))
        return st;
    if ((st = need(ctx, f, PREFIX "seed", &v, &at)))
        return st;
    if (!sdflow__parse_u64(v, &c->seed))
        return bad(ctx, at, PREFIX "seed", "is not an unsigned 64-bit integer", v);
    long np;
    if ((st = take_count(c, f, "step", 0, COUNT_MAX, &c->step)) ||
        (st = take_count(c, f, "adam_t", 0, c->step, &c->adam_t)) ||
        (st = take_count(c, f, "fit_end", 0, COUNT_MAX, &c->fit_end)) ||
        (st = take_count(c, f, "nparam", 1, COUNT_MAX, &np)))
        return st;
    if (c->fit_end && c->fit_end < c->step)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: fit_end %ld lies before step %ld", c->fit_end, c->step);
    size_t have;
    if ((st = sdflow_model_param_count(m, &have)))
        return st;
    if ((size_t)np != have)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: nparam %ld differs from the model's %zu parameters", np,
                            have);
    c->nparam = have;
    for (size_t i = 0; i <= NSTATS; i++) {
        char key[KEY_LEN];
        snprintf(key, sizeof key, PREFIX "stat.%s", i < NSTATS ? stat_names[i] : "val_loss");
        v = sdflow__st_meta_take(f, key, &at);
        if (!v && i == NSTATS)
            break;
        if (!v)
            return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: metadata key %s is missing", key);
        double *dst = i < NSTATS ? &c->stats[i] : &c->val_loss;
        if (!sdflow__parse_double(v, dst))
            return bad(ctx, at, key, "is not a finite decimal number", v);
        c->have_val = i == NSTATS;
    }
    if ((st = need(ctx, f, PREFIX "data", &v, &at)))
        return st;
    if (!strcmp(v, "none")) {
        c->data_kind = DATA_NONE;
    } else if (!strcmp(v, "callback")) {
        c->data_kind = DATA_CALLBACK;
    } else {
        const char *colon = strchr(v, ':');
        char rows[24];
        long nr;
        size_t len = colon ? (size_t)(colon - v) : 0;
        if (!colon || len == 0 || len >= sizeof rows)
            return bad(ctx, at, PREFIX "data", "is not none, callback or ROWS:HASH", v);
        memcpy(rows, v, len);
        rows[len] = 0;
        if (!sdflow__parse_long(rows, 1, COUNT_MAX, &nr) || !parse_hex64(colon + 1, &c->data_hash))
            return bad(ctx, at, PREFIX "data", "is not none, callback or ROWS:HASH", v);
        c->data_kind = DATA_ARRAY;
        c->data_rows = (size_t)nr;
    }
    /* the moments and the EMA; the nparam check above bounds the allocation by the file's model tensors */
    c->state = sdflow__alloc_array(ctx, c->nparam, 3 * sizeof(double), "checkpoint state");
    if (!c->state)
        return SDFLOW_E_NOMEM;
    size_t ntens, off = 0;
    if ((st = sdflow_model_param_tensors(m, &ntens)))
        return st;
    for (size_t i = 0; i < ntens; i++) {
        const char *name;
        size_t r, cc;
        sdflow_model_param_info(m, i, &name, &r, &cc);
        if (!trainable(m, name))
            continue;
        size_t cnt = cc ? r * cc : r;
        if (off + cnt > c->nparam)
            return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: internal: tensors exceed the parameter count");
        for (int k = 0; k < 3; k++) {
            char tn[SDFLOW__ST_MAX_NAME + 1];
            snprintf(tn, sizeof tn, "%s%s", part_prefix[k], name);
            sdflow__st_tensor *x = sdflow__st_take(f, tn);
            if (!x)
                return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: tensor %s is missing", tn);
            if (x->ndim != (cc ? 2u : 1u) || x->shape[0] != r || (cc && x->shape[1] != cc))
                return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: tensor %s: the shape must be that of %s",
                                    x->at, tn, name);
            double *dst = c->state + (size_t)k * c->nparam + off;
            sdflow__st_read(f, x, dst);
            for (size_t j = 0; j < cnt; j++)
                if (!isfinite(dst[j]) || (k == 1 && !(dst[j] >= 0)))
                    return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: tensor %s[%zu] = %g is not %s", x->at, tn,
                                        j, dst[j], k == 1 ? "finite and >= 0" : "finite");
        }
        off += cnt;
    }
    if (off != c->nparam)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 8: the tensors hold %zu of %zu parameters", off, c->nparam);
    return SDFLOW_OK;
}

static void ck_free(ckpt *c)
{
    sdflow_trainer_free(c->ref);
    sdflow__free(c->ctx, c->state);
    c->ref = NULL;
    c->state = NULL;
}

static sdflow_status parse(sdflow_ctx *ctx, const void *buf, size_t size, ckpt *c, sdflow_model **m,
                           sdflow_process **p)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    sdflow__file_extra x = { .check = ck_check, .take = ck_take, .user = c };
    sdflow_status st = sdflow__model_load_ex(ctx, buf, size, &x, m, p);
    if (st)
        ck_free(c);
    return st;
}

/* ---- comparison with the restoring trainer ----------------------------------- */

static sdflow_status mismatch(sdflow_ctx *ctx, const char *what, const char *file, const char *mine)
{
    return sdflow__fail(ctx, SDFLOW_E_INVALID, "checkpoint mismatch: %s is %s in the checkpoint, %s in the trainer",
                        what, file, mine);
}

static sdflow_status compare_model(sdflow_ctx *ctx, sdflow_model *a, sdflow_model *b)
{
    char x[VAL_LEN], y[VAL_LEN];
    if (sdflow_model_dim(a) != sdflow_model_dim(b)) {
        snprintf(x, sizeof x, "%zu", sdflow_model_dim(a));
        snprintf(y, sizeof y, "%zu", sdflow_model_dim(b));
        return mismatch(ctx, "the model dimension", x, y);
    }
    size_t nk;
    const sdflow_option *keys = sdflow__file_model_keys(SDFLOW_MODEL_MLP, &nk);
    for (size_t i = 0; i < nk; i++) {
        char what[KEY_LEN];
        snprintf(what, sizeof what, "model option %s", sdflow_option_name(keys[i]));
        if (sdflow_option_get_type(keys[i]) == SDFLOW_TYPE_DOUBLE) {
            double u = 0, w = 0;
            sdflow_model_get_double(a, keys[i], &u);
            sdflow_model_get_double(b, keys[i], &w);
            if (memcmp(&u, &w, sizeof u)) {
                sdflow__fmt_double(x, sizeof x, u);
                sdflow__fmt_double(y, sizeof y, w);
                return mismatch(ctx, what, x, y);
            }
        } else {
            long u = 0, w = 0;
            sdflow_model_get_int(a, keys[i], &u);
            sdflow_model_get_int(b, keys[i], &w);
            if (u != w) {
                snprintf(x, sizeof x, "%ld", u);
                snprintf(y, sizeof y, "%ld", w);
                return mismatch(ctx, what, x, y);
            }
        }
    }
    size_t na, nb;
    sdflow_status st;
    if ((st = sdflow_model_param_count(a, &na)) || (st = sdflow_model_param_count(b, &nb)))
        return st;
    if (na != nb) {
        snprintf(x, sizeof x, "%zu", na);
        snprintf(y, sizeof y, "%zu", nb);
        return mismatch(ctx, "the parameter count", x, y);
    }
    return SDFLOW_OK;
}

static sdflow_status compare_process(sdflow_ctx *ctx, const sdflow_process *a, const sdflow_process *b)
{
    if (!a || !b) {
        if (a == b)
            return SDFLOW_OK;
        return mismatch(ctx, "the process", a ? sdflow_process_kind_name(a->kind) : "none",
                        b ? sdflow_process_kind_name(b->kind) : "none");
    }
    if (a->kind != b->kind)
        return mismatch(ctx, "the process kind", sdflow_process_kind_name(a->kind), sdflow_process_kind_name(b->kind));
    size_t nk;
    const sdflow_option *keys = sdflow__file_process_keys(&nk);
    char what[KEY_LEN], x[VAL_LEN], y[VAL_LEN];
    for (size_t i = 0; i < nk; i++) {
        snprintf(what, sizeof what, "process option %s", sdflow_option_name(keys[i]));
        if (sdflow_option_get_type(keys[i]) == SDFLOW_TYPE_INT) {
            long u = 0, w = 0;
            sdflow_process_get_int(a, keys[i], &u);
            sdflow_process_get_int(b, keys[i], &w);
            if (u != w) {
                snprintf(x, sizeof x, "%ld", u);
                snprintf(y, sizeof y, "%ld", w);
                return mismatch(ctx, what, x, y);
            }
        } else {
            double u = 0, w = 0;
            sdflow_process_get_double(a, keys[i], &u);
            sdflow_process_get_double(b, keys[i], &w);
            if (memcmp(&u, &w, sizeof u)) {
                sdflow__fmt_double(x, sizeof x, u);
                sdflow__fmt_double(y, sizeof y, w);
                return mismatch(ctx, what, x, y);
            }
        }
    }
    return SDFLOW_OK;
}

static sdflow_status compare_trainer(const ckpt *c, sdflow_trainer *t)
{
    sdflow_ctx *ctx = t->ctx;
    char x[VAL_LEN], y[VAL_LEN];
    if (c->ref->kind != t->kind)
        return mismatch(ctx, "the loss kind", sdflow_trainer_kind_name(c->ref->kind), sdflow_trainer_kind_name(t->kind));
    if (c->seed != ctx->seed) {
        snprintf(x, sizeof x, "%llu", (unsigned long long)c->seed);
        snprintf(y, sizeof y, "%llu", (unsigned long long)ctx->seed);
        return mismatch(ctx, "SDFLOW_CTX_SEED", x, y);
    }
    sdflow_option keys[MAX_OPTS];
    size_t nk = saved_keys(t, keys);
    for (size_t i = 0; i < nk; i++) {
        optval a, b;
        get_opt(c->ref, keys[i], &a);
        get_opt(t, keys[i], &b);
        if (!same_opt(&a, &b)) {
            char what[KEY_LEN];
            snprintf(what, sizeof what, "option %s", sdflow_option_name(keys[i]));
            fmt_opt(x, sizeof x, &a);
            fmt_opt(y, sizeof y, &b);
            return mismatch(ctx, what, x, y);
        }
    }
    if (t->data || t->batch_fn) { /* data bound: it must be the saver's */
        int mine = t->data ? DATA_ARRAY : DATA_CALLBACK;
        static const char *const dk[] = { "none", "a batch callback", "a data array" };
        if (c->data_kind != mine)
            return mismatch(ctx, "the data", dk[c->data_kind], dk[mine]);
        if (mine == DATA_ARRAY) {
            uint64_t h = hash_doubles(t->data, t->n * t->d);
            if (c->data_rows != t->n || c->data_hash != h) {
                snprintf(x, sizeof x, "%zu rows, hash %016llx", c->data_rows, (unsigned long long)c->data_hash);
                snprintf(y, sizeof y, "%zu rows, hash %016llx", t->n, (unsigned long long)h);
                return mismatch(ctx, "the data array", x, y);
            }
        }
    }
    return SDFLOW_OK;
}

/* Installs the checked state: after the allocations, nothing fails. */
static sdflow_status commit(ckpt *c, sdflow_trainer *t, sdflow_model *file_model)
{
    sdflow_ctx *ctx = t->ctx;
    size_t np = c->nparam;
    double *theta = sdflow__alloc_array(ctx, np, sizeof(double), "checkpoint parameters");
    if (!theta)
        return SDFLOW_E_NOMEM;
    sdflow_status st = sdflow_model_get_params(file_model, np, theta);
    if (!st)
        st = sdflow__trainer_ensure_state(t);
    if (!st && t->nparam != np)
        st = sdflow__fail(ctx, SDFLOW_E_STATE, "internal: trainer state of %zu parameters, checkpoint %zu",
                          t->nparam, np);
    /* the bound model's weights last of what can fail: a refusal leaves it as it was */
    if (!st && t->model != file_model)
        st = sdflow_model_set_params(t->model, np, theta);
    if (!st) {
        memcpy(t->opt.m, c->state, np * sizeof(double));
        memcpy(t->opt.v, c->state + np, np * sizeof(double));
        memcpy(t->opt.ema, c->state + 2 * np, np * sizeof(double));
        t->opt.ema_pending = 0; /* the file's EMA has every update */
        memcpy(t->theta, theta, np * sizeof(double));
        t->opt.t = c->adam_t;
        t->step = c->step;
        t->fit_end = c->fit_end;
        for (size_t i = 0; i < NSTATS; i++)
            *stat_field(t, i) = c->stats[i];
        t->val_loss = c->val_loss;
        t->have_val = c->have_val;
    }
    sdflow__free(ctx, theta);
    return st;
}

sdflow_status sdflow_trainer_checkpoint_restore_buffer(sdflow_trainer *t, const void *buf, size_t size)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = t->ctx;
    if (!buf && size)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "buf is NULL");
    if (!t->model)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no model bound (sdflow_trainer_set_model)");
    ckpt c;
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    sdflow_status st = parse(ctx, buf, size, &c, &m, &p);
    if (st)
        return st;
    if (!(st = compare_model(ctx, m, t->model)) && !(st = compare_process(ctx, p, t->proc)) &&
        !(st = compare_trainer(&c, t)))
        st = commit(&c, t, m);
    ck_free(&c);
    sdflow_model_free(m);
    sdflow_process_free(p);
    return st;
}

sdflow_status sdflow_trainer_checkpoint_restore(sdflow_trainer *t, const char *path)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_ptr(t->ctx, path, "path");
    if (st)
        return st;
    if (!t->model) /* before reading the file */
        return sdflow__fail(t->ctx, SDFLOW_E_STATE, "no model bound (sdflow_trainer_set_model)");
    unsigned char *buf;
    size_t size;
    if ((st = sdflow__file_read(t->ctx, path, &buf, &size)))
        return st;
    st = sdflow_trainer_checkpoint_restore_buffer(t, buf, size);
    sdflow__free(t->ctx, buf);
    return st;
}

/* The loaders' common start: clear the outputs, then check them (before any
 * file is read). */
static sdflow_status load_outputs(sdflow_ctx *ctx, sdflow_trainer **trainer, sdflow_model **model,
                                  sdflow_process **process)
{
    if (trainer)
        *trainer = NULL;
    if (model)
        *model = NULL;
    if (process)
        *process = NULL;
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, trainer, "trainer")) || (st = sdflow__check_ptr(ctx, model, "model")) ||
        (st = sdflow__check_ptr(ctx, process, "process")))
        return st;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_checkpoint_load_buffer(sdflow_ctx *ctx, const void *buf, size_t size,
                                                    sdflow_trainer **trainer, sdflow_model **model,
                                                    sdflow_process **process)
{
    sdflow_status st = load_outputs(ctx, trainer, model, process);
    if (st)
        return st;
    if (!buf && size)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "buf is NULL");
    ckpt c;
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    if ((st = parse(ctx, buf, size, &c, &m, &p)))
        return st;
    if (c.seed != ctx->seed)
        st = sdflow__fail(ctx, SDFLOW_E_INVALID,
                          "the checkpoint was written with SDFLOW_CTX_SEED = %llu, the ctx has %llu: set the seed "
                          "first (every batch is keyed by it)",
                          (unsigned long long)c.seed, (unsigned long long)ctx->seed);
    sdflow_trainer *t = c.ref;
    if (!st && !(st = sdflow_trainer_set_model(t, m)) && !(st = sdflow_trainer_set_process(t, p)))
        st = commit(&c, t, m);
    if (st) {
        ck_free(&c);
        sdflow_model_free(m);
        sdflow_process_free(p);
        return st;
    }
    c.ref = NULL; /* handed over */
    ck_free(&c);
    *trainer = t;
    *model = m;
    *process = p;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_checkpoint_load(sdflow_ctx *ctx, const char *path, sdflow_trainer **trainer,
                                             sdflow_model **model, sdflow_process **process)
{
    sdflow_status st = load_outputs(ctx, trainer, model, process);
    if (st || (st = sdflow__check_ptr(ctx, path, "path")))
        return st;
    unsigned char *buf;
    size_t size;
    if ((st = sdflow__file_read(ctx, path, &buf, &size)))
        return st;
    st = sdflow_trainer_checkpoint_load_buffer(ctx, buf, size, trainer, model, process);
    sdflow__free(ctx, buf);
    return st;
}
