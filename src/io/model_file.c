/* SPDX-License-Identifier: MIT */
/* Model files (io.h, docs/model-files.md): a model and optionally its
 * process as a safetensors container. One table row per model kind says
 * which tensors and which int options make up its state; the generic code
 * writes and checks the metadata (format version, kind, dimension, output
 * kind, options, process). Loading rebuilds the model through the public
 * constructors, so a file passes exactly the checks a caller's data passes
 * (SPD covariances, weights summing to 1, finite values, option bounds);
 * their refusals become SDFLOW_E_FORMAT naming the tensor or key. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_internal.h"
#include "mlp_net.h"
#include "model_file.h"

#define PREFIX "sdflow."
#define MAX_KV 32

/* ---- numbers in metadata strings ----------------------------------------
 * Doubles are written with 17 significant digits (they read back exactly)
 * in the C locale whatever the host program's LC_NUMERIC. */

static void fmt_double(char *buf, size_t n, double v)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    snprintf(buf, n, "%.17g", v);
    if (c) {
        uselocale(old);
        freelocale(c);
    } else { /* no C locale object: the radix of the host's locale, mapped back */
        for (char *s = buf; *s; s++)
            if (*s == ',')
                *s = '.';
    }
}

/* A JSON-style decimal number (-?int frac? exp?) of at most 40 characters,
 * finite as a double. */
static int parse_double(const char *s, double *out)
{
    size_t i = 0, n = strlen(s);
    if (n == 0 || n > 40)
        return 0;
    if (s[i] == '-')
        i++;
    size_t d0 = i;
    while (s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d0 || (s[d0] == '0' && i > d0 + 1))
        return 0;
    if (s[i] == '.') {
        size_t f0 = ++i;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f0)
            return 0;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        size_t e0 = i;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == e0)
            return 0;
    }
    if (i != n)
        return 0;
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c)
        return 0;
    locale_t old = uselocale(c);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    uselocale(old);
    freelocale(c);
    if (end != s + n || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* A decimal integer without '+', spaces or leading zeros, within [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    size_t i = 0, n = strlen(s);
    int neg = s[0] == '-';
    i = (size_t)neg;
    if (n == i || n - i > 18 || (s[i] == '0' && n > i + 1) || (neg && s[i] == '0'))
        return 0;
    long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    v = neg ? -v : v;
    if (v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* ---- load context ---------------------------------------------------- */

typedef struct loader {
    sdflow_ctx *ctx;
    sdflow__st_file f;
    size_t d;
    double *buf[4]; /* tensors read as doubles, freed at the end */
    size_t nbuf;
} loader;

static sdflow_status fmt_err(sdflow_ctx *ctx, size_t at, const char *fmt, const char *a, const char *b)
{
    char why[200];
    snprintf(why, sizeof why, fmt, a, b);
    return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: %s", at, why);
}

/* A refusal of a constructor or setter (SDFLOW_E_INVALID and the like)
 * becomes SDFLOW_E_FORMAT naming what in the file it concerns; running
 * out of memory stays SDFLOW_E_NOMEM. */
static sdflow_status as_format(sdflow_ctx *ctx, sdflow_status st, size_t at, const char *what)
{
    if (st == SDFLOW_OK || st == SDFLOW_E_NOMEM)
        return st;
    char msg[SDFLOW__ERRMAX];
    snprintf(msg, sizeof msg, "%s", sdflow_ctx_last_error(ctx));
    return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte %zu: %s: %s", at, what, msg);
}

static const char *meta(loader *L, const char *key, size_t *at)
{
    return sdflow__st_meta_take(&L->f, key, at);
}

static sdflow_status need_meta(loader *L, const char *key, const char **val, size_t *at)
{
    *val = meta(L, key, at);
    if (!*val)
        return sdflow__fail(L->ctx, SDFLOW_E_FORMAT, "byte 8: metadata key %s is missing", key);
    return SDFLOW_OK;
}

/* Tensor name with ndim dimensions; want[i] = 0 takes any size >= 1 there
 * (reported in got). Its values are read into *out (freed by the loader). */
static sdflow_status need_tensor(loader *L, const char *name, size_t ndim, const size_t *want, size_t *got,
                                 double **out)
{
    sdflow__st_tensor *t = sdflow__st_take(&L->f, name);
    if (!t)
        return sdflow__fail(L->ctx, SDFLOW_E_FORMAT, "byte 8: tensor %s is missing", name);
    int ok = t->ndim == ndim;
    for (size_t i = 0; ok && i < ndim; i++) {
        ok = want[i] ? t->shape[i] == want[i] : t->shape[i] >= 1;
        if (got)
            got[i] = t->shape[i];
    }
    if (!ok) {
        char shape[128] = "", part[32];
        for (size_t i = 0; i < ndim; i++) {
            if (want[i])
                snprintf(part, sizeof part, i ? ", %zu" : "%zu", want[i]);
            else
                snprintf(part, sizeof part, i ? ", n" : "n");
            strncat(shape, part, sizeof shape - strlen(shape) - 1);
        }
        return fmt_err(L->ctx, t->at, "tensor %s: the shape must be [%s]", name, shape);
    }
    if (L->nbuf >= sizeof L->buf / sizeof L->buf[0])
        return sdflow__fail(L->ctx, SDFLOW_E_FORMAT, "internal: too many tensors held");
    double *v = sdflow__alloc_array(L->ctx, t->count, sizeof(double), name);
    if (!v)
        return SDFLOW_E_NOMEM;
    L->buf[L->nbuf++] = v;
    sdflow__st_read(&L->f, t, v);
    *out = v;
    return SDFLOW_OK;
}

static size_t tensor_at(loader *L, const char *name)
{
    sdflow__st_tensor *t = sdflow__st_take(&L->f, name);
    return t ? t->at : 8;
}

/* ---- the kinds ------------------------------------------------------- */

typedef struct kind_io {
    sdflow_model_kind kind;
    const sdflow_option *keys; /* options kept as metadata (int or double) */
    size_t nkeys;
    /* Number of tensors of m (the save array's size). */
    sdflow_status (*count)(sdflow_model *m, size_t *n);
    /* Fills t[0..n); may allocate one scratch block (*scratch, freed by the caller). */
    sdflow_status (*save)(sdflow_model *m, sdflow__st_out *t, double **scratch);
    /* Builds the model from the tensors; options are applied afterwards. */
    sdflow_status (*create)(loader *L, sdflow_model **out);
    /* NULL, or the state set after the options (MLP parameters). */
    sdflow_status (*finish)(loader *L, sdflow_model *m);
} kind_io;

static sdflow_status two_tensors(sdflow_model *m, size_t *n)
{
    (void)m;
    *n = 2;
    return SDFLOW_OK;
}

static sdflow_status three_tensors(sdflow_model *m, size_t *n)
{
    (void)m;
    *n = 3;
    return SDFLOW_OK;
}

static sdflow__st_out out1(const char *name, const double *data, size_t a)
{
    return (sdflow__st_out){ .name = name, .ndim = 1, .shape = { a }, .data = data };
}

static sdflow__st_out out2(const char *name, const double *data, size_t a, size_t b)
{
    return (sdflow__st_out){ .name = name, .ndim = 2, .shape = { a, b }, .data = data };
}

/* gaussian: mean (d), cov (d x d) */
static sdflow_status gaussian_save(sdflow_model *m, sdflow__st_out *t, double **scratch)
{
    size_t k, d = m->d;
    const double *w, *mu, *cov;
    (void)scratch;
    sdflow__gmm_source(m, &k, &w, &mu, &cov);
    t[0] = out1("mean", mu, d);
    t[1] = out2("cov", cov, d, d);
    return SDFLOW_OK;
}

static sdflow_status gaussian_create(loader *L, sdflow_model **out)
{
    size_t d = L->d, s1[1] = { d }, s2[2] = { d, d };
    double *mu, *cov;
    sdflow_status st;
    if ((st = need_tensor(L, "mean", 1, s1, NULL, &mu)) || (st = need_tensor(L, "cov", 2, s2, NULL, &cov)))
        return st;
    return as_format(L->ctx, sdflow_model_create_gaussian(L->ctx, d, mu, cov, out), tensor_at(L, "cov"),
                     "tensors mean, cov");
}

/* gmm: weights (k), means (k x d), covs (k x d x d) */
static sdflow_status gmm_save(sdflow_model *m, sdflow__st_out *t, double **scratch)
{
    size_t k, d = m->d;
    const double *w, *mu, *cov;
    (void)scratch;
    sdflow__gmm_source(m, &k, &w, &mu, &cov);
    t[0] = out1("weights", w, k);
    t[1] = out2("means", mu, k, d);
    t[2] = (sdflow__st_out){ .name = "covs", .ndim = 3, .shape = { k, d, d }, .data = cov };
    return SDFLOW_OK;
}

static sdflow_status gmm_create(loader *L, sdflow_model **out)
{
    size_t d = L->d, k = 0, s1[1] = { 0 };
    double *w, *mu, *cov;
    sdflow_status st = need_tensor(L, "weights", 1, s1, &k, &w);
    size_t s2[2] = { k, d }, s3[3] = { k, d, d };
    if (st || (st = need_tensor(L, "means", 2, s2, NULL, &mu)) || (st = need_tensor(L, "covs", 3, s3, NULL, &cov)))
        return st;
    /* F32 weights cannot sum to 1 within the constructor's 1e-12: rounded
     * weights within float precision of 1 are renormalized in double */
    if (sdflow__st_take(&L->f, "weights")->dtype == SDFLOW__ST_F32) {
        double sum = 0;
        for (size_t i = 0; i < k; i++)
            sum += w[i];
        if (fabs(sum - 1.0) <= 1e-6 * (double)k)
            for (size_t i = 0; i < k; i++)
                w[i] /= sum;
    }
    return as_format(L->ctx, sdflow_model_create_gmm(L->ctx, k, d, w, mu, cov, out), tensor_at(L, "covs"),
                     "tensors weights, means, covs");
}

/* kernel: centre (d) and samples_centred (m x d), the model's own frame
 * (bit-exact); a file with samples (m x d, data coordinates) instead is
 * centred on load like sdflow_model_create_kernel. */
static sdflow_status kernel_save(sdflow_model *m, sdflow__st_out *t, double **scratch)
{
    const sdflow__kref *r = sdflow__kernel_ref(m);
    double *y = sdflow__alloc_array(m->ctx, r->m, r->d * sizeof(double), "kernel rows");
    if (!y)
        return SDFLOW_E_NOMEM;
    for (size_t j = 0; j < r->m; j++)
        for (size_t k = 0; k < r->d; k++)
            y[j * r->d + k] = sdflow__kref_at(r, j, k);
    *scratch = y;
    t[0] = out1("centre", r->c, r->d);
    t[1] = out2("samples_centred", y, r->m, r->d);
    return SDFLOW_OK;
}

static sdflow_status kernel_create(loader *L, sdflow_model **out)
{
    size_t d = L->d, sz[2] = { 0, d }, got[2], s1[1] = { d };
    double *y, *c;
    sdflow_status st;
    if (sdflow__st_take(&L->f, "samples")) {
        if ((st = need_tensor(L, "samples", 2, sz, got, &y)))
            return st;
        return as_format(L->ctx, sdflow_model_create_kernel(L->ctx, got[0], d, y, out), tensor_at(L, "samples"),
                         "tensor samples");
    }
    if ((st = need_tensor(L, "centre", 1, s1, NULL, &c)) || (st = need_tensor(L, "samples_centred", 2, sz, got, &y)))
        return st;
    return as_format(L->ctx, sdflow__model_create_kernel_centred(L->ctx, got[0], d, c, y, out),
                     tensor_at(L, "samples_centred"), "tensors centre, samples_centred");
}

/* mlp: the named tensors of sdflow_model_param_info (docs/mlp.md) */
static sdflow_status mlp_count(sdflow_model *m, size_t *n) { return sdflow_model_param_tensors(m, n); }

static sdflow_status mlp_save(sdflow_model *m, sdflow__st_out *t, double **scratch)
{
    size_t n, total = 0;
    sdflow_status st = sdflow_model_param_tensors(m, &n);
    for (size_t i = 0; i < n && !st; i++) {
        size_t r, c;
        st = sdflow_model_param_info(m, i, &t[i].name, &r, &c);
        total += c ? r * c : r;
    }
    double *v = st ? NULL : sdflow__alloc_array(m->ctx, total, sizeof(double), "MLP tensors");
    if (!st && !v)
        return SDFLOW_E_NOMEM;
    *scratch = v;
    for (size_t i = 0, off = 0; i < n && !st; i++) {
        size_t r, c;
        sdflow_model_param_info(m, i, NULL, &r, &c);
        t[i].ndim = c ? 2 : 1;
        t[i].shape[0] = r;
        t[i].shape[1] = c;
        t[i].data = v + off;
        st = sdflow_model_get_param(m, t[i].name, c ? r * c : r, v + off);
        off += c ? r * c : r;
    }
    return st;
}

static sdflow_status mlp_create(loader *L, sdflow_model **out)
{
    return as_format(L->ctx, sdflow_model_create_mlp(L->ctx, L->d, out), 8, "metadata sdflow.dim");
}

static sdflow_status mlp_finish(loader *L, sdflow_model *m)
{
    /* the values the options imply, before the network is allocated: a
     * hostile file cannot make the loader allocate more than its tensors
     * hold (the layout is the network's own, src/nn/mlp_net.c) */
    long depth, width, freqs, output, act, residual, learn;
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_DEPTH, &depth);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_WIDTH, &width);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_FREQS, &freqs);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_OUTPUT, &output);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_ACTIVATION, &act);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_RESIDUAL, &residual);
    sdflow_model_get_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, &learn);
    sdflow__mlp net = { .d = L->d, .depth = (size_t)depth, .width = (size_t)width, .nfreq = (size_t)freqs,
                        .act = (int)act, .residual = (int)residual, .learn_freqs = learn && freqs > 0,
                        .energy = output == SDFLOW_MLP_ENERGY };
    net.d_out = net.energy ? 1 : L->d;
    sdflow__mlp_layout(&net);
    double need = (double)net.nparam + (net.learn_freqs ? 0.0 : (double)net.nfreq), have = 0;
    for (size_t i = 0; i < L->f.nt; i++)
        have += (double)L->f.t[i].count;
    if (need > have) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.0f", need);
        snprintf(b, sizeof b, "%.0f", have);
        return fmt_err(L->ctx, 8, "the MLP options need %s values, the file's tensors hold %s", a, b);
    }
    size_t n;
    sdflow_status st = as_format(L->ctx, sdflow_model_param_tensors(m, &n), 8, "MLP architecture");
    for (size_t i = 0; i < n && !st; i++) {
        const char *name;
        size_t r, c;
        sdflow_model_param_info(m, i, &name, &r, &c);
        size_t want[2] = { r, c };
        double *v;
        if ((st = need_tensor(L, name, c ? 2 : 1, want, NULL, &v)))
            return st;
        st = as_format(L->ctx, sdflow_model_set_param(m, name, c ? r * c : r, v), tensor_at(L, name), name);
        sdflow__free(L->ctx, v); /* one tensor at a time */
        L->nbuf--;
    }
    return st;
}

static const sdflow_option kernel_keys[] = { SDFLOW_OPT_BLOCK_Q, SDFLOW_OPT_BLOCK_Y };
static const sdflow_option mlp_keys[] = { SDFLOW_OPT_MLP_DEPTH, SDFLOW_OPT_MLP_WIDTH, SDFLOW_OPT_MLP_ACTIVATION,
                                          SDFLOW_OPT_MLP_FREQS, SDFLOW_OPT_MLP_RESIDUAL, SDFLOW_OPT_MLP_OUTPUT,
                                          SDFLOW_OPT_MLP_TIME_INPUT, SDFLOW_OPT_MLP_LEARN_FREQS,
                                          SDFLOW_OPT_MLP_FREQ_SCALE };

static const kind_io kinds[] = {
    { SDFLOW_MODEL_GAUSSIAN, NULL, 0, two_tensors, gaussian_save, gaussian_create, NULL },
    { SDFLOW_MODEL_GMM, NULL, 0, three_tensors, gmm_save, gmm_create, NULL },
    { SDFLOW_MODEL_KERNEL, kernel_keys, 2, two_tensors, kernel_save, kernel_create, NULL },
    { SDFLOW_MODEL_MLP, mlp_keys, sizeof mlp_keys / sizeof mlp_keys[0], mlp_count, mlp_save, mlp_create, mlp_finish },
};

static const kind_io *kind_row(sdflow_model_kind kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

/* Output kinds by name; "energy" is SDFLOW_MLP_ENERGY. */
static const char *const output_names[] = { "score", "eps", "x0", "velocity", "v", "energy" };

static const char *output_of(sdflow_model *m)
{
    long out = m->native;
    if (m->kind == SDFLOW_MODEL_MLP)
        sdflow_model_get_int(m, SDFLOW_OPT_MLP_OUTPUT, &out);
    return out >= 0 && out <= SDFLOW_MLP_ENERGY ? output_names[out] : "unknown";
}

/* The process options a file keeps, in this order. */
static const sdflow_option proc_keys[] = { SDFLOW_PROC_BETA_MIN, SDFLOW_PROC_BETA_MAX, SDFLOW_PROC_SIGMA_MIN,
                                           SDFLOW_PROC_SIGMA_MAX, SDFLOW_PROC_COSINE_S, SDFLOW_PROC_T_MAX,
                                           SDFLOW_PROC_T_EPS, SDFLOW_PROC_VE_EXACT_STD, SDFLOW_PROC_INTERP_EPS };
#define NPROC (sizeof proc_keys / sizeof proc_keys[0])

/* ---- save -------------------------------------------------------------- */

typedef struct kvbuf {
    char key[MAX_KV][64], val[MAX_KV][48];
    const char *kv[2 * MAX_KV];
    size_t n;
} kvbuf;

static void kv_add(kvbuf *b, const char *k1, const char *k2, const char *val)
{
    snprintf(b->key[b->n], sizeof b->key[b->n], "%s%s", k1, k2);
    snprintf(b->val[b->n], sizeof b->val[b->n], "%s", val);
    b->kv[2 * b->n] = b->key[b->n];
    b->kv[2 * b->n + 1] = b->val[b->n];
    b->n++;
}

static sdflow_status save_to(sdflow_model *m, const sdflow_process *p, const sdflow__file_extra *x, void *buf,
                             size_t cap, size_t *size)
{
    sdflow_ctx *ctx = m->ctx;
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, size, "size")) || (p && (st = sdflow__check_same_ctx(ctx, p->ctx, "process"))))
        return st;
    const kind_io *row = kind_row(m->kind);
    if (!row)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "a %s model has no state to save",
                            sdflow_model_kind_name(m->kind));
    size_t nt, nx = x ? x->nt : 0;
    if ((st = row->count(m, &nt)))
        return st;
    sdflow__st_out *t = sdflow__calloc_array(ctx, nt + nx, sizeof *t, "file tensors");
    kvbuf *b = t ? sdflow__calloc_array(ctx, 1, sizeof *b, "file metadata") : NULL;
    double *scratch = NULL;
    if (!b) {
        sdflow__free(ctx, t);
        return SDFLOW_E_NOMEM;
    }
    char num[48];
    if (!(st = row->save(m, t, &scratch))) {
        snprintf(num, sizeof num, "%d", SDFLOW_FILE_FORMAT_VERSION);
        kv_add(b, PREFIX, "format_version", num);
        kv_add(b, PREFIX, "library_version", sdflow_version_string());
        kv_add(b, PREFIX, "model", sdflow_model_kind_name(m->kind));
        snprintf(num, sizeof num, "%zu", m->d);
        kv_add(b, PREFIX, "dim", num);
        kv_add(b, PREFIX, "output", output_of(m));
        for (size_t i = 0; i < row->nkeys && !st; i++) {
            if (sdflow_option_get_type(row->keys[i]) == SDFLOW_TYPE_DOUBLE) {
                double v;
                st = sdflow_model_get_double(m, row->keys[i], &v);
                fmt_double(num, sizeof num, v);
            } else {
                long v;
                st = sdflow_model_get_int(m, row->keys[i], &v);
                snprintf(num, sizeof num, "%ld", v);
            }
            kv_add(b, PREFIX "model.", sdflow_option_name(row->keys[i]), num);
        }
        if (p && !st) {
            kv_add(b, PREFIX, "process", sdflow_process_kind_name(p->kind));
            for (size_t i = 0; i < NPROC && !st; i++) {
                if (sdflow_option_get_type(proc_keys[i]) == SDFLOW_TYPE_INT) {
                    long v;
                    st = sdflow_process_get_int(p, proc_keys[i], &v);
                    snprintf(num, sizeof num, "%ld", v);
                } else {
                    double v;
                    st = sdflow_process_get_double(p, proc_keys[i], &v);
                    fmt_double(num, sizeof num, v);
                }
                kv_add(b, PREFIX "process.", sdflow_option_name(proc_keys[i]), num);
            }
        }
    }
    const char **kv = NULL;
    size_t nkv = b->n + (x ? x->nkv : 0);
    if (!st && x) { /* the model's pairs, then the extra ones */
        if (nx)
            memcpy(t + nt, x->t, nx * sizeof *t);
        kv = sdflow__alloc_array(ctx, 2 * nkv, sizeof *kv, "file metadata");
        if (!kv)
            st = SDFLOW_E_NOMEM;
        else {
            memcpy(kv, b->kv, 2 * b->n * sizeof *kv);
            if (x->nkv)
                memcpy(kv + 2 * b->n, x->kv, 2 * x->nkv * sizeof *kv);
        }
    }
    int dtype = ctx->file_dtype == SDFLOW_DTYPE_F32 && !(x && x->force_f64) ? SDFLOW__ST_F32 : SDFLOW__ST_F64;
    if (!st)
        st = sdflow__st_write(ctx, t, nt + nx, kv ? kv : b->kv, nkv, dtype, buf, cap, size);
    sdflow__free(ctx, kv);
    sdflow__free(ctx, scratch);
    sdflow__free(ctx, b);
    sdflow__free(ctx, t);
    return st;
}

sdflow_status sdflow_model_save_buffer(sdflow_model *m, const sdflow_process *p, void *buf, size_t cap,
                                       size_t *size)
{
    if (!m)
        return SDFLOW_E_INVALID;
    return save_to(m, p, NULL, buf, cap, size);
}

sdflow_status sdflow__model_save_ex(sdflow_model *m, const sdflow_process *p, const sdflow__file_extra *x,
                                    void *buf, size_t cap, size_t *size)
{
    return save_to(m, p, x, buf, cap, size);
}

sdflow_status sdflow__file_write(sdflow_ctx *ctx, const char *path, const void *buf, size_t size)
{
    /* written to PATH.tmp and renamed: an interrupted save never leaves a
     * truncated file under the final name */
    size_t plen = strlen(path);
    char *tmp = sdflow__alloc_array(ctx, plen + 5, 1, "file name");
    if (!tmp)
        return SDFLOW_E_NOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    sdflow_status st = SDFLOW_OK;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = sdflow__fail(ctx, SDFLOW_E_IO, "cannot open %s for writing: %s", tmp, strerror(errno));
    } else {
        int ok = fwrite(buf, 1, size, fp) == size;
        ok &= fclose(fp) == 0;
        if (!ok || rename(tmp, path) != 0) {
            st = sdflow__fail(ctx, SDFLOW_E_IO, "writing %s failed: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    sdflow__free(ctx, tmp);
    return st;
}

sdflow_status sdflow_model_save(sdflow_model *m, const sdflow_process *p, const char *path)
{
    if (!m)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = m->ctx;
    size_t size;
    sdflow_status st = sdflow__check_ptr(ctx, path, "path");
    if (st || (st = save_to(m, p, NULL, NULL, 0, &size)))
        return st;
    unsigned char *buf = sdflow__alloc_array(ctx, size, 1, "file buffer");
    if (!buf)
        return SDFLOW_E_NOMEM;
    if (!(st = save_to(m, p, NULL, buf, size, &size)))
        st = sdflow__file_write(ctx, path, buf, size);
    sdflow__free(ctx, buf);
    return st;
}

/* ---- load -------------------------------------------------------------- */

static sdflow_status load_process(loader *L, sdflow_process **out)
{
    size_t at;
    const char *kind_name = meta(L, PREFIX "process", &at);
    *out = NULL;
    if (!kind_name)
        return SDFLOW_OK;
    sdflow_process_kind kind;
    if (sdflow_process_kind_from_name(kind_name, &kind))
        return fmt_err(L->ctx, at, "unknown process kind \"%s\"%s", kind_name, "");
    sdflow_status st = sdflow_process_create(L->ctx, kind, out);
    if (st)
        return st;
    const char *val[NPROC];
    size_t vat[NPROC];
    int done[NPROC] = { 0 };
    size_t left = NPROC;
    for (size_t i = 0; i < NPROC && !st; i++) {
        char key[64];
        snprintf(key, sizeof key, PREFIX "process.%s", sdflow_option_name(proc_keys[i]));
        /* interp_eps came with the interpolant kinds: files written before lack it (default 0) */
        if (proc_keys[i] == SDFLOW_PROC_INTERP_EPS) {
            if (!(val[i] = meta(L, key, &vat[i]))) {
                done[i] = 1;
                left--;
            }
            continue;
        }
        st = need_meta(L, key, &val[i], &vat[i]);
    }
    /* options are checked against each other (sigma_min < sigma_max, ...):
     * set in passes until a pass changes nothing */
    for (size_t pass = 0; left && !st && pass < NPROC; pass++) {
        size_t failed = NPROC;
        for (size_t i = 0; i < NPROC; i++) {
            if (done[i])
                continue;
            sdflow_status s;
            if (sdflow_option_get_type(proc_keys[i]) == SDFLOW_TYPE_INT) {
                long v;
                if (!parse_long(val[i], 0, 1, &v))
                    return fmt_err(L->ctx, vat[i], "process option %s: \"%s\" is not 0 or 1",
                                   sdflow_option_name(proc_keys[i]), val[i]);
                s = sdflow_process_set_int(*out, proc_keys[i], v);
            } else {
                double v;
                if (!parse_double(val[i], &v))
                    return fmt_err(L->ctx, vat[i], "process option %s: \"%s\" is not a finite decimal number",
                                   sdflow_option_name(proc_keys[i]), val[i]);
                s = sdflow_process_set_double(*out, proc_keys[i], v);
            }
            if (s == SDFLOW_OK) {
                done[i] = 1;
                left--;
            } else {
                failed = i;
            }
        }
        if (left && pass == NPROC - 1)
            st = as_format(L->ctx, SDFLOW_E_INVALID, vat[failed], "process options");
    }
    return st;
}

static sdflow_status load_all(loader *L, const void *buf, size_t size, const sdflow__file_extra *x,
                              sdflow_model **model, sdflow_process **process)
{
    sdflow_ctx *ctx = L->ctx;
    if (size > ctx->file_max_bytes)
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: %zu bytes are more than SDFLOW_CTX_FILE_MAX_BYTES = %llu",
                            size, (unsigned long long)ctx->file_max_bytes);
    sdflow_status st = sdflow__st_parse(ctx, buf, size, &L->f);
    if (st || (x && x->check && (st = x->check(x->user, &L->f))))
        return st;
    const char *v;
    size_t at;
    long version, dim;
    if ((st = need_meta(L, PREFIX "format_version", &v, &at)))
        return st;
    if (!parse_long(v, 0, 1L << 30, &version) || version < 1)
        return fmt_err(ctx, at, "format version \"%s\" is not an integer >= 1%s", v, "");
    if (version > SDFLOW_FILE_FORMAT_VERSION) {
        char mine[16];
        snprintf(mine, sizeof mine, "%d", SDFLOW_FILE_FORMAT_VERSION);
        return fmt_err(ctx, at, "the file has format version %s; this library reads versions up to %s", v, mine);
    }
    meta(L, PREFIX "library_version", NULL); /* informational */
    if ((st = need_meta(L, PREFIX "model", &v, &at)))
        return st;
    sdflow_model_kind kind;
    const kind_io *row = sdflow_model_kind_from_name(v, &kind) ? NULL : kind_row(kind);
    if (!row)
        return fmt_err(ctx, at, "unknown model kind \"%s\"%s", v, "");
    if ((st = need_meta(L, PREFIX "dim", &v, &at)))
        return st;
    if (!parse_long(v, 1, 1L << 30, &dim))
        return fmt_err(ctx, at, "dimension \"%s\" is not an integer in [1, 2^30]%s", v, "");
    L->d = (size_t)dim;
    if ((st = row->create(L, model)))
        return st;
    for (size_t i = 0; i < row->nkeys; i++) {
        char key[64];
        long val;
        snprintf(key, sizeof key, PREFIX "model.%s", sdflow_option_name(row->keys[i]));
        if ((st = need_meta(L, key, &v, &at)))
            return st;
        if (sdflow_option_get_type(row->keys[i]) == SDFLOW_TYPE_DOUBLE) {
            double dv;
            if (!parse_double(v, &dv))
                return fmt_err(ctx, at, "%s: \"%s\" is not a finite decimal number", key, v);
            st = sdflow_model_set_double(*model, row->keys[i], dv);
        } else {
            if (!parse_long(v, -(1L << 40), 1L << 40, &val))
                return fmt_err(ctx, at, "%s: \"%s\" is not an integer", key, v);
            st = sdflow_model_set_int(*model, row->keys[i], val);
        }
        if ((st = as_format(ctx, st, at, key)))
            return st;
    }
    if (row->finish && (st = row->finish(L, *model)))
        return st;
    if ((st = need_meta(L, PREFIX "output", &v, &at)))
        return st;
    if (strcmp(v, output_of(*model)))
        return fmt_err(ctx, at, "output kind \"%s\" differs from the model's \"%s\"", v, output_of(*model));
    if ((st = load_process(L, process)))
        return st;
    if (x && x->take && (st = x->take(x->user, &L->f, *model, *process)))
        return st;
    for (size_t i = 0; i < L->f.nt; i++)
        if (!L->f.t[i].used)
            return fmt_err(ctx, L->f.t[i].at, "tensor %s is not part of a %s model", L->f.t[i].name,
                           sdflow_model_kind_name(kind));
    for (size_t i = 0; i < L->f.nmeta; i++)
        if (!L->f.meta[i].used && !strncmp(L->f.meta[i].key, PREFIX, strlen(PREFIX)))
            return fmt_err(ctx, L->f.meta[i].at, "unknown metadata key %s for format version %s", L->f.meta[i].key,
                           "1");
    return SDFLOW_OK;
}

static sdflow_status load_buffer(sdflow_ctx *ctx, const void *buf, size_t size, const sdflow__file_extra *x,
                                 sdflow_model **model, sdflow_process **process)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    if (process)
        *process = NULL;
    sdflow_status st = sdflow__check_ptr(ctx, model, "model");
    if (st)
        return st;
    *model = NULL;
    if (!buf && size)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "buf is NULL");
    loader L = { .ctx = ctx };
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    static const unsigned char empty[1] = { 0 };
    st = load_all(&L, buf ? buf : empty, size, x, &m, &p);
    for (size_t i = 0; i < L.nbuf; i++)
        sdflow__free(ctx, L.buf[i]);
    sdflow__st_free(ctx, &L.f);
    if (st) {
        sdflow_model_free(m);
        sdflow_process_free(p);
        return st;
    }
    *model = m;
    if (process)
        *process = p;
    else
        sdflow_process_free(p);
    return SDFLOW_OK;
}

sdflow_status sdflow_model_load_buffer(sdflow_ctx *ctx, const void *buf, size_t size, sdflow_model **model,
                                       sdflow_process **process)
{
    return load_buffer(ctx, buf, size, NULL, model, process);
}

sdflow_status sdflow__model_load_ex(sdflow_ctx *ctx, const void *buf, size_t size, const sdflow__file_extra *x,
                                    sdflow_model **model, sdflow_process **process)
{
    return load_buffer(ctx, buf, size, x, model, process);
}

sdflow_status sdflow__file_read(sdflow_ctx *ctx, const char *path, unsigned char **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sdflow__fail(ctx, SDFLOW_E_IO, "cannot open %s: %s", path, strerror(errno));
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return sdflow__fail(ctx, SDFLOW_E_IO, "cannot determine the size of %s", path);
    }
    /* the cap before the allocation: a huge file costs nothing */
    if ((unsigned long long)len > ctx->file_max_bytes) {
        fclose(fp);
        return sdflow__fail(ctx, SDFLOW_E_FORMAT, "byte 0: %s has %ld bytes, more than SDFLOW_CTX_FILE_MAX_BYTES = %llu",
                            path, len, (unsigned long long)ctx->file_max_bytes);
    }
    size_t size = (size_t)len;
    unsigned char *buf = sdflow__alloc_array(ctx, size ? size : 1, 1, "file buffer");
    if (!buf) {
        fclose(fp);
        return SDFLOW_E_NOMEM;
    }
    size_t got = fread(buf, 1, size, fp);
    int err = ferror(fp);
    fclose(fp);
    if (got != size || err) {
        sdflow__free(ctx, buf);
        return sdflow__fail(ctx, SDFLOW_E_IO, "reading %s failed after %zu of %zu bytes", path, got, size);
    }
    *out = buf;
    *out_size = size;
    return SDFLOW_OK;
}

sdflow_status sdflow_model_load(sdflow_ctx *ctx, const char *path, sdflow_model **model, sdflow_process **process)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    if (process)
        *process = NULL;
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, model, "model")))
        return st;
    *model = NULL;
    if ((st = sdflow__check_ptr(ctx, path, "path")))
        return st;
    unsigned char *buf;
    size_t size;
    if ((st = sdflow__file_read(ctx, path, &buf, &size)))
        return st;
    st = sdflow_model_load_buffer(ctx, buf, size, model, process);
    sdflow__free(ctx, buf);
    return st;
}

/* ---- shared with the trainer checkpoints (model_file.h) ------------------ */

void sdflow__fmt_double(char *buf, size_t n, double v)
{
    fmt_double(buf, n, v);
}

int sdflow__parse_double(const char *s, double *out)
{
    return parse_double(s, out);
}

int sdflow__parse_long(const char *s, long lo, long hi, long *out)
{
    return parse_long(s, lo, hi, out);
}

int sdflow__parse_u64(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return 0;
        v = v * 10 + dgt;
    }
    *out = v;
    return 1;
}

const sdflow_option *sdflow__file_model_keys(sdflow_model_kind kind, size_t *n)
{
    const kind_io *row = kind_row(kind);
    *n = row ? row->nkeys : 0;
    return row ? row->keys : NULL;
}

const sdflow_option *sdflow__file_process_keys(size_t *n)
{
    *n = NPROC;
    return proc_keys;
}
