/* SPDX-License-Identifier: MIT */
/* Allocation-failure torture of every public entry point (issue 9, item 9).
 * Each scenario below is a fixed sequence of public calls; tt_torture()
 * (testutil.h, which describes every check) runs it clean, then fails each
 * of its N allocation events in turn (alone, then with every later one of
 * that call), requires SDFLOW_E_NOMEM with a message, no leak, no
 * half-built object and no changed option from the failing call, retries
 * that call and requires every later output to equal the clean run bit for
 * bit.
 *
 * A new entry point is one scenario function plus one row of `scenarios`
 * (at the end of the file). Sizes are tiny (n <= 12 points, a handful of
 * steps): a scenario costs 2N x its own run time, and N is 1..220. Rows
 * marked TT_HEAVY (the threaded runs: 64 rows, OpenMP teams) are left out of
 * the valgrind subset (suite "torture"); suite "torture_heavy" runs them. */
#include <math.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"

/* ---- shared fixtures ---------------------------------------------------------- */

/* Deterministic pseudo-data: x[i] = a sin(b i + c). */
static void fill(double *x, size_t n, double a, double b, double c)
{
    for (size_t i = 0; i < n; i++)
        x[i] = a * sin(b * (double)i + c);
}

/* Rows of a scenario: small, or 64 when it runs threaded (libsdflow starts
 * threads only from 64 rows, sdflow__threads_for). */
static size_t rows(const tt_state *h, size_t n) { return h->threads > 1 && n < 64 ? 64 : n; }

static double *dbuf(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert(p);
    return p;
}

/* State probes (testutil.h tt_probe): every option key the library knows,
 * read back with the object's typed getters (status and value), so a
 * failing call that changed any option is seen. Keys are found by
 * sdflow_option_get_type over the key range the headers use. */
typedef struct probe_out {
    unsigned char *buf;
    size_t len, cap;
} probe_out;
static void probe_put(probe_out *o, const void *p, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->buf + o->len, p, n);
    o->len += n;
}
#define PROBE_KEYS_MAX 1000
#define PROBE_FN(name, T, gi, gd, gu)                                                                              \
    static size_t name(const void *obj, unsigned char *buf, size_t cap)                                            \
    {                                                                                                              \
        const T *x = obj;                                                                                          \
        probe_out o = { buf, 0, cap };                                                                             \
        static int keys[PROBE_KEYS_MAX], nkeys = -1;                                                              \
        if (nkeys < 0) { /* the keys, found once */                                                                \
            nkeys = 0;                                                                                             \
            for (int k = 0; k < PROBE_KEYS_MAX; k++)                                                               \
                if (sdflow_option_get_type((sdflow_option)k) != SDFLOW_TYPE_NONE)                                  \
                    keys[nkeys++] = k;                                                                             \
        }                                                                                                          \
        for (int i = 0; i < nkeys; i++) {                                                                          \
            int k = keys[i];                                                                                       \
            sdflow_option key = (sdflow_option)k;                                                                  \
            sdflow_option_type ty = sdflow_option_get_type(key);                                                   \
            long iv = 0;                                                                                           \
            double dv = 0;                                                                                         \
            uint64_t uv = 0;                                                                                       \
            sdflow_status st = ty == SDFLOW_TYPE_INT      ? gi(x, key, &iv)                                        \
                               : ty == SDFLOW_TYPE_DOUBLE ? gd(x, key, &dv)                                        \
                               : ty == SDFLOW_TYPE_U64    ? gu(x, key, &uv)                                        \
                                                          : SDFLOW_OK;                                             \
            if (ty == SDFLOW_TYPE_NONE)                                                                            \
                continue;                                                                                          \
            probe_put(&o, &k, sizeof k);                                                                           \
            probe_put(&o, &st, sizeof st);                                                                         \
            probe_put(&o, &iv, sizeof iv);                                                                         \
            probe_put(&o, &dv, sizeof dv);                                                                         \
            probe_put(&o, &uv, sizeof uv);                                                                         \
        }                                                                                                          \
        ck_assert(o.len <= cap);                                                                                   \
        return o.len;                                                                                              \
    }
PROBE_FN(probe_sampler, sdflow_sampler, sdflow_sampler_get_int, sdflow_sampler_get_double, sdflow_sampler_get_u64)
PROBE_FN(probe_density, sdflow_density, sdflow_density_get_int, sdflow_density_get_double, sdflow_density_get_u64)
PROBE_FN(probe_model, sdflow_model, sdflow_model_get_int, sdflow_model_get_double, sdflow_model_get_u64)

static sdflow_process *tt_vp(tt_state *h, sdflow_ctx *ctx)
{
    sdflow_process *p = NULL;
    TT_NEW(h, p, sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p));
    return p;
}

/* the 2-D, 4-component GMM of testutil.h, through the harness */
static sdflow_model *tt_gmm(tt_state *h, sdflow_ctx *ctx)
{
    static const double w[TU_GK] = TU_GMM4_W, mu[TU_GK][2] = TU_GMM4_MU, cov[TU_GK][4] = TU_GMM4_COV;
    sdflow_model *m = NULL;
    TT_NEW(h, m, sdflow_model_create_gmm(ctx, TU_GK, 2, w, &mu[0][0], &cov[0][0], &m));
    return m;
}

/* Outputs of every evaluation form of model m at n points of dimension d. */
static void eval_all(tt_state *h, sdflow_model *m, const sdflow_process *p, size_t n, size_t d, int has_logpdf)
{
    double *x = dbuf(n * d), *t = dbuf(n), *out = dbuf(n * d * d + n * d);
    fill(x, n * d, 0.8, 0.7, 0.3);
    for (size_t i = 0; i < n; i++)
        t[i] = 0.2 + 0.05 * (double)(i % 12);
    for (int kind = SDFLOW_OUT_SCORE; kind <= SDFLOW_OUT_V; kind++) {
        TT(h, sdflow_model_eval(m, p, n, x, t, (sdflow_output)kind, out));
        tt_rec(h, out, n * d * sizeof *out);
    }
    TT(h, sdflow_model_score(m, p, n, x, t, out));
    tt_rec(h, out, n * d * sizeof *out);
    TT(h, sdflow_model_jacobian(m, p, n, x, t, out));
    tt_rec(h, out, n * d * d * sizeof *out);
    TT(h, sdflow_model_divergence(m, p, n, x, t, out));
    tt_rec(h, out, n * sizeof *out);
    if (has_logpdf) {
        TT(h, sdflow_model_logpdf(m, p, n, x, t, out));
        tt_rec(h, out, n * sizeof *out);
    }
    free(x), free(t), free(out);
}

/* ---- context and process ------------------------------------------------------ */

static int quiet_progress(void *u, long done, long total)
{
    (void)u, (void)done, (void)total;
    return 0;
}
static void quiet_log(int level, const char *msg, void *u) { (void)level, (void)msg, (void)u; }

static void sc_ctx(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 3);
    double z[12];
    long v;
    TT(h, sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 1));
    TT(h, sdflow_ctx_set_int(ctx, SDFLOW_CTX_LOG_LEVEL, SDFLOW_LOG_DEBUG));
    TT(h, sdflow_ctx_set_log(ctx, quiet_log, NULL));
    TT(h, sdflow_ctx_set_progress(ctx, quiet_progress, NULL));
    TT(h, sdflow_ctx_get_int(ctx, SDFLOW_CTX_THREADS, &v));
    TT(h, sdflow_rng_normal(ctx, 1, 0, 3, 2, z));
    tt_rec(h, z, 6 * sizeof *z);
    TT(h, sdflow_rng_uniform(ctx, 1, 5, 3, 2, z));
    tt_rec(h, z, 6 * sizeof *z);
    sdflow_ctx_free(ctx);
}

static void sc_process(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 4);
    for (int kind = SDFLOW_PROCESS_VP; kind <= SDFLOW_PROCESS_VE; kind++) {
        sdflow_process *p = NULL;
        TT_NEW(h, p, sdflow_process_create(ctx, (sdflow_process_kind)kind, &p));
        if (kind == SDFLOW_PROCESS_VE)
            TT(h, sdflow_process_set_double(p, SDFLOW_PROC_SIGMA_MAX, 10));
        else if (kind != SDFLOW_PROCESS_VP_COSINE)
            TT(h, sdflow_process_set_double(p, SDFLOW_PROC_BETA_MAX, 15));
        double te, tm, t[3] = { 0.1, 0.5, 0.9 }, x[6], c[12], y[6], e[6], lp[3];
        fill(x, 6, 1, 0.9, 0.1);
        TT(h, sdflow_process_time_range(p, &te, &tm));
        TT(h, sdflow_process_coefficients(p, 3, t, c, c + 3, c + 6, c + 9));
        tt_rec(h, c, sizeof c);
        TT(h, sdflow_process_prior_sample(p, 2, 0, 3, 2, y));
        tt_rec(h, y, sizeof y);
        TT(h, sdflow_process_prior_logpdf(p, 3, 2, y, lp));
        tt_rec(h, lp, sizeof lp);
        TT(h, sdflow_process_perturb(p, 3, 0, 3, 2, x, t, y, e));
        tt_rec(h, y, sizeof y);
        tt_rec(h, e, sizeof e);
        TT(h, sdflow_process_simulate(p, 4, 0, 3, 2, x, 0.2, 0.6, 4, y));
        tt_rec(h, y, sizeof y);
        TT(h, sdflow_process_convert(p, 3, 2, x, t, SDFLOW_OUT_EPS, e, SDFLOW_OUT_X0, y));
        tt_rec(h, y, sizeof y);
        sdflow_process_free(p);
    }
    sdflow_ctx_free(ctx);
}

/* ---- models ------------------------------------------------------------------- */

static void sc_gaussian(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 5);
    sdflow_process *p = tt_vp(h, ctx);
    double mean[3] = { 0.5, -1, 0.2 }, cov[9] = { 1, 0.3, 0, 0.3, 0.8, 0.1, 0, 0.1, 0.5 }, s[12];
    sdflow_model *m = NULL;
    TT_NEW(h, m, sdflow_model_create_gaussian(ctx, 3, mean, cov, &m));
    eval_all(h, m, p, 4, 3, 1);
    eval_all(h, m, NULL, 4, 3, 1);
    TT(h, sdflow_model_sample(m, 7, 0, 4, s));
    tt_rec(h, s, sizeof s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

static void sc_gmm(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 6);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = tt_gmm(h, ctx);
    size_t n = rows(h, 5);
    double *s = dbuf(n * 2);
    eval_all(h, m, p, n, 2, 1);
    eval_all(h, m, NULL, n, 2, 1);
    TT(h, sdflow_model_sample(m, 7, 3, n, s));
    tt_rec(h, s, n * 2 * sizeof *s);
    free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

/* Kernel model of d = 2 (scalar path) or d = 12 (GEMM path, docs/performance
 * says from d = 12): every evaluation form, the shard API on two halves of
 * the set (partial, merge, finalize), small blocks so several blocks run. */
static void kernel_scenario(tt_state *h, size_t d)
{
    enum { M = 24 };
    size_t N = rows(h, 6);
    sdflow_ctx *ctx = tt_ctx(h, 7);
    sdflow_process *p = tt_vp(h, ctx);
    double *y = dbuf(M * d), *x = dbuf(N * d), *t = dbuf(N), *mx = dbuf(N), *s = dbuf(N), *v = dbuf(N * d),
           *mx2 = dbuf(N), *s2 = dbuf(N), *v2 = dbuf(N * d), *out = dbuf(N * (2 * d + 1));
    fill(y, M * d, 1.2, 1.3, 0.0);
    fill(x, N * d, 0.9, 0.4, 0.5);
    for (size_t i = 0; i < N; i++)
        t[i] = 0.3 + 0.1 * (double)(i % 6);
    sdflow_model *km = NULL, *half[2] = { NULL, NULL };
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, M, d, y, &km));
    tt_probe(h, probe_model, km);
    TT(h, sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Q, 4));
    TT(h, sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Y, 8));
    long bq;
    TT(h, sdflow_model_get_int(km, SDFLOW_OPT_BLOCK_Q, &bq));
    eval_all(h, km, p, N, d, 1);
    eval_all(h, km, NULL, N, d, 1);
    for (int k = 0; k < 2; k++)
        TT_NEW(h, half[k], sdflow_model_create_kernel(ctx, M / 2, d, y + (size_t)k * (M / 2) * d, &half[k]));
    TT(h, sdflow_model_kernel_partial(half[0], p, N, x, t, mx, s, v));
    TT(h, sdflow_model_kernel_partial(half[1], p, N, x, t, mx2, s2, v2));
    tt_rec(h, mx2, N * sizeof *mx2);
    tt_rec(h, v2, N * d * sizeof *v2);
    TT(h, sdflow_kernel_merge(ctx, N, d, mx, s, v, mx2, s2, v2));
    tt_rec(h, s, N * sizeof *s);
    TT(h, sdflow_kernel_finalize(ctx, p, N, d, M, x, t, mx, s, v, out, out + N * d, out + 2 * N * d));
    tt_rec(h, out, N * (2 * d + 1) * sizeof *out);
    TT(h, sdflow_kernel_exp(N, t, out));
    tt_rec(h, out, N * sizeof *out);
    tt_probe(h, NULL, NULL);
    for (int k = 0; k < 2; k++)
        sdflow_model_free(half[k]);
    sdflow_model_free(km);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(y), free(x), free(t), free(mx), free(s), free(v), free(mx2), free(s2), free(v2), free(out);
}
static void sc_kernel_d2(tt_state *h) { kernel_scenario(h, 2); }
static void sc_kernel_gemm(tt_state *h) { kernel_scenario(h, 12); }

/* The kernel workspace grows on demand (sdflow__realloc): small then large
 * batches, so a failed growth must keep the old workspace and the model. */
static void sc_kernel_grow(tt_state *h)
{
    enum { M = 30, D = 2 };
    sdflow_ctx *ctx = tt_ctx(h, 8);
    double y[M * D], x[12 * D], t[12], out[12 * D];
    fill(y, sizeof y / sizeof y[0], 1, 2.1, 0.2);
    fill(x, sizeof x / sizeof x[0], 1, 0.3, 0.0);
    for (int i = 0; i < 12; i++)
        t[i] = 0.4;
    sdflow_model *km = NULL;
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, M, D, y, &km));
    tt_probe(h, probe_model, km);
    for (size_t n = 1; n <= 12; n += 5) { /* 1, 6, 11 rows: the workspace grows twice */
        TT(h, sdflow_model_score(km, NULL, n, x, t, out));
        tt_rec(h, out, n * D * sizeof *out);
        TT(h, sdflow_model_divergence(km, NULL, n, x, t, out));
        tt_rec(h, out, n * sizeof *out);
    }
    tt_probe(h, NULL, NULL);
    sdflow_model_free(km);
    sdflow_ctx_free(ctx);
}

/* callback model: score of N(0, I) under the process, with its Jacobian as JVP */
static int cb_score(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)t, (void)u;
    for (size_t i = 0; i < n * d; i++)
        out[i] = -x[i];
    return 0;
}
static int cb_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *u)
{
    (void)x, (void)t, (void)u;
    for (size_t i = 0; i < n * d; i++)
        jv[i] = -v[i];
    return 0;
}

static void sc_callback(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 9);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = NULL, *m2 = NULL;
    TT_NEW(h, m, sdflow_model_create_callback(ctx, 3, SDFLOW_OUT_SCORE, cb_score, NULL, &m));
    TT(h, sdflow_model_set_callback_jvp(m, cb_jvp, NULL));
    eval_all(h, m, p, 4, 3, 0);
    eval_all(h, m, NULL, 4, 3, 0);
    /* without a JVP: eval only (the Jacobian needs the JVP) */
    TT_NEW(h, m2, sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_EPS, cb_score, NULL, &m2));
    double x[6], t[3] = { 0.3, 0.5, 0.7 }, o[6];
    fill(x, 6, 1, 1, 0);
    TT(h, sdflow_model_eval(m2, p, 3, x, t, SDFLOW_OUT_X0, o));
    tt_rec(h, o, sizeof o);
    sdflow_model_free(m2);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

/* MLP: options, lazy parameter creation, parameter access, every evaluation
 * form, first- and second-order parameter gradients; an energy MLP too. */
static void mlp_scenario(tt_state *h, int energy)
{
    enum { D = 2 };
    size_t N = rows(h, 3);
    sdflow_ctx *ctx = tt_ctx(h, 10);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = NULL;
    TT_NEW(h, m, sdflow_model_create_mlp(ctx, D, &m));
    tt_probe(h, probe_model, m);
    TT(h, sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 6));
    TT(h, sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 3));
    TT(h, sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 2));
    TT(h, sdflow_model_set_int(m, SDFLOW_OPT_MLP_RESIDUAL, 1)); /* an input layer and one block (depth 1 + 2B) */
    if (energy)
        TT(h, sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY));
    size_t np = 0, nt = 0, rows, cols;
    const char *name;
    TT(h, sdflow_model_param_count(m, &np));
    TT(h, sdflow_model_param_tensors(m, &nt));
    ck_assert(np <= 400);
    double theta[400], g[400], *gx = dbuf(N * D), *x = dbuf(N * D), *t = dbuf(N), *w = dbuf(N * D),
           *o = dbuf(N * D);
    TT(h, sdflow_model_param_info(m, 0, &name, &rows, &cols));
    TT(h, sdflow_model_get_params(m, np, theta));
    tt_rec(h, theta, np * sizeof *theta);
    for (size_t i = 0; i < np; i++)
        theta[i] *= 1.5;
    TT(h, sdflow_model_set_params(m, np, theta));
    TT(h, sdflow_model_get_param(m, name, rows * (cols ? cols : 1), g));
    TT(h, sdflow_model_set_param(m, name, rows * (cols ? cols : 1), g));
    eval_all(h, m, p, N, D, 0);
    fill(x, N * D, 0.7, 1.1, 0.2);
    fill(w, N * D, 1, 0.5, 1.0);
    for (size_t i = 0; i < N; i++)
        t[i] = 0.25 * (double)(i % 3 + 1);
    TT(h, sdflow_model_param_grad(m, p, N, x, t, w, g, gx));
    tt_rec(h, g, np * sizeof *g);
    tt_rec(h, gx, N * D * sizeof *gx);
    if (!energy) {
        TT(h, sdflow_model_param_grad_jac(m, NULL, N, x, t, w, x, g));
        tt_rec(h, g, np * sizeof *g);
    }
    TT(h, sdflow_model_eval(m, NULL, N, x, t, SDFLOW_OUT_EPS, o));
    tt_rec(h, o, N * D * sizeof *o);
    tt_probe(h, NULL, NULL);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(gx), free(x), free(t), free(w), free(o);
}
static void sc_mlp(tt_state *h) { mlp_scenario(h, 0); }
static void sc_mlp_energy(tt_state *h) { mlp_scenario(h, 1); }

/* ---- samplers ----------------------------------------------------------------- */

/* One diffusion sampler of `kind` on the 2-D GMM under VP: an option set
 * `opt` (key/value pairs, terminated by key 0), a run from the prior, a run
 * from given x_init, the statistics; PF-ODE also transports both ways. */
typedef struct sopt {
    sdflow_option key;
    double value;
    int is_double;
} sopt;

static void diffusion_scenario(tt_state *h, sdflow_sampler_kind kind, const sopt *opt, int custom_grid)
{
    enum { D = 2 };
    size_t N = rows(h, 6);
    sdflow_ctx *ctx = tt_ctx(h, 11);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = tt_gmm(h, ctx);
    sdflow_sampler *s = NULL;
    double *x0 = dbuf(N * D), *x = dbuf(N * D), *y = dbuf(N * D), stat;
    size_t bytes = N * D * sizeof *x;
    uint64_t u;
    fill(x0, N * D, 1, 0.6, 0.9);
    TT_NEW(h, s, sdflow_sampler_create(ctx, kind, &s));
    tt_probe(h, probe_sampler, s);
    TT(h, sdflow_sampler_set_process(s, p));
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 4));
    TT(h, sdflow_sampler_set_u64(s, SDFLOW_OPT_STREAM, 77));
    TT(h, sdflow_sampler_get_u64(s, SDFLOW_OPT_FIRST_INDEX, &u));
    TT(h, sdflow_sampler_get_double(s, SDFLOW_OPT_T_MIN, &stat));
    for (; opt && opt->key; opt++) {
        if (opt->is_double)
            TT(h, sdflow_sampler_set_double(s, opt->key, opt->value));
        else
            TT(h, sdflow_sampler_set_int(s, opt->key, (long)opt->value));
    }
    if (custom_grid) { /* the second grid replaces the first: a failed copy must keep the old one */
        static const double grid0[3] = { 1.0, 0.5, 0.01 }, grid[5] = { 1.0, 0.6, 0.3, 0.1, 0.01 };
        TT(h, sdflow_sampler_set_time_grid(s, 3, grid0));
        TT(h, sdflow_sampler_set_time_grid(s, 5, grid));
    }
    TT(h, sdflow_sampler_run(s, N, NULL, x));
    tt_rec(h, x, bytes);
    tt_guard(h, x0, bytes); /* a const input, even on failure */
    TT(h, sdflow_sampler_run(s, N, x0, y));
    tt_rec(h, y, bytes);
    for (int k = SDFLOW_STAT_NFE; k <= SDFLOW_STAT_STEPS_REJECTED; k++) {
        TT(h, sdflow_sampler_get_stat(s, (sdflow_stat)k, &stat));
        tt_rec(h, &stat, sizeof stat);
    }
    if (kind == SDFLOW_SAMPLER_PF_ODE && !custom_grid) { /* transport uses the grid kind, not custom times */
        tt_guard(h, x0, bytes);
        TT(h, sdflow_sampler_transport(s, N, 0.9, 0.05, x0, y));
        tt_rec(h, y, bytes);
        TT(h, sdflow_sampler_transport(s, N, 0.05, 0.9, y, x));
        tt_rec(h, x, bytes);
    }
    tt_probe(h, NULL, NULL);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(x0), free(x), free(y);
}

#define SO_I(k, v) { (k), (v), 0 }
#define SO_D(k, v) { (k), (v), 1 }
static void sc_sde(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_QUADRATIC), SO_I(SDFLOW_OPT_DENOISE, 1), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_REVERSE_SDE, o, 0);
}
static void sc_pc(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_CORRECTOR_STEPS, 2), SO_D(SDFLOW_OPT_SNR, 0.1), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_PC, o, 0);
}
static void sc_ode_euler(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_EULER), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_PF_ODE, o, 0);
}
static void sc_ode_heun(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_HEUN), SO_I(SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_LOGSNR),
                              { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_PF_ODE, o, 0);
}
static void sc_ode_rk4(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SO_I(SDFLOW_OPT_DENOISE, 1), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_PF_ODE, o, 1);
}
static void sc_ode_dopri5(tt_state *h)
{
    static const sopt o[] = { SO_I(SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_DOPRI5), SO_D(SDFLOW_OPT_RTOL, 1e-3),
                              SO_D(SDFLOW_OPT_ATOL, 1e-3), SO_D(SDFLOW_OPT_T_MIN, 1e-2), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_PF_ODE, o, 0);
}
static void sc_ddim(tt_state *h) { diffusion_scenario(h, SDFLOW_SAMPLER_DDIM, NULL, 0); }
static void sc_ddim_eta(tt_state *h)
{
    static const sopt o[] = { SO_D(SDFLOW_OPT_ETA, 0.5), SO_I(SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_DDIM, o, 0);
}
static void sc_dpmpp_2m(tt_state *h) { diffusion_scenario(h, SDFLOW_SAMPLER_DPMPP_2M, NULL, 0); }
static void sc_dpmpp_3m(tt_state *h) { diffusion_scenario(h, SDFLOW_SAMPLER_DPMPP_3M, NULL, 1); }
static void sc_dpmpp_2m_sde(tt_state *h) { diffusion_scenario(h, SDFLOW_SAMPLER_DPMPP_2M_SDE, NULL, 0); }
static void sc_dpmpp_3m_sde(tt_state *h)
{
    static const sopt o[] = { SO_D(SDFLOW_OPT_ETA, 0.7), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_DPMPP_3M_SDE, o, 0);
}
static void sc_edm(tt_state *h)
{
    static const sopt o[] = { SO_D(SDFLOW_OPT_S_CHURN, 10), SO_I(SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS), { 0 } };
    diffusion_scenario(h, SDFLOW_SAMPLER_EDM_HEUN, o, 0);
}

/* SD flow on a kernel target of 16 points (d = 2, or d = 12: GEMM path):
 * the start mode, leave-one-out, noisy evaluation, noise injection, a model
 * source, and the statistics. */
enum { SDF_SELF = 1, SDF_NOISY = 2, SDF_NOISE = 4, SDF_SOURCE = 8, SDF_XINIT = 16 };
static void sdflow_scenario(tt_state *h, size_t d, int start, int flags)
{
    enum { M = 16 };
    size_t N = rows(h, 8);
    sdflow_ctx *ctx = tt_ctx(h, 12);
    double *y = dbuf(M * d), *x = dbuf(N * d), *x0 = dbuf(N * d), stat;
    fill(y, M * d, 1.5, 2.3, 0.1);
    fill(x0, N * d, 1, 0.37, 0.4);
    sdflow_model *km = NULL, *src = NULL, *st = NULL;
    sdflow_sampler *s = NULL;
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, M, d, y, &km));
    TT_NEW(h, s, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s));
    tt_probe(h, probe_sampler, s);
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, km));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 3));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_INNER_STEPS, 2));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_START, start));
    if (start == SDFLOW_START_MODEL) {
        double mean[12] = { 0 }, cov[144] = { 0 };
        for (size_t k = 0; k < d; k++)
            cov[k * d + k] = 1;
        TT_NEW(h, st, sdflow_model_create_gaussian(ctx, d, mean, cov, &st));
        TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_START, st));
    }
    if (flags & SDF_SELF)
        TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_SELF_EXCLUDE, 1));
    if (flags & SDF_NOISY)
        TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_EVAL_NOISY, 1));
    if (flags & SDF_NOISE)
        TT(h, sdflow_sampler_set_double(s, SDFLOW_OPT_NOISE, 0.5));
    if (flags & SDF_SOURCE) {
        double mean[12] = { 0 }, cov[144] = { 0 };
        for (size_t k = 0; k < d; k++)
            cov[k * d + k] = 2;
        TT_NEW(h, src, sdflow_model_create_gaussian(ctx, d, mean, cov, &src));
        TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_SOURCE, src));
    }
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_BLOCK_Q, 4));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_BLOCK_Y, 8));
    TT(h, sdflow_sampler_run(s, N, (flags & SDF_XINIT) ? x0 : NULL, x));
    tt_rec(h, x, N * d * sizeof *x);
    for (int k = SDFLOW_STAT_NFE; k <= SDFLOW_STAT_SIGMA_RATIO; k++) {
        TT(h, sdflow_sampler_get_stat(s, (sdflow_stat)k, &stat));
        tt_rec(h, &stat, sizeof stat);
    }
    tt_probe(h, NULL, NULL);
    sdflow_sampler_free(s);
    sdflow_model_free(src);
    sdflow_model_free(st);
    sdflow_model_free(km);
    sdflow_ctx_free(ctx);
    free(y), free(x), free(x0);
}
static void sc_sdflow_matched(tt_state *h) { sdflow_scenario(h, 2, SDFLOW_START_MATCHED, 0); }
static void sc_sdflow_normal_self(tt_state *h) { sdflow_scenario(h, 2, SDFLOW_START_NORMAL, SDF_SELF); }
static void sc_sdflow_model_noisy(tt_state *h)
{
    sdflow_scenario(h, 2, SDFLOW_START_MODEL, SDF_NOISY | SDF_NOISE);
}
static void sc_sdflow_source(tt_state *h) { sdflow_scenario(h, 2, SDFLOW_START_MATCHED, SDF_SOURCE | SDF_XINIT); }
static void sc_sdflow_gemm(tt_state *h) { sdflow_scenario(h, 12, SDFLOW_START_MATCHED, SDF_SELF | SDF_NOISE); }

/* ---- density estimators ------------------------------------------------------- */

static void density_scenario(tt_state *h, sdflow_density_kind kind, int div, int kernel)
{
    enum { D = 2 };
    size_t N = rows(h, 3);
    sdflow_ctx *ctx = tt_ctx(h, 13);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = NULL;
    if (kernel) {
        double y[10 * D];
        fill(y, sizeof y / sizeof y[0], 1, 1.7, 0.3);
        TT_NEW(h, m, sdflow_model_create_kernel(ctx, 10, D, y, &m));
    } else
        m = tt_gmm(h, ctx);
    sdflow_density *e = NULL;
    double *x = dbuf(N * D), *k8 = dbuf(N * D), *lp = dbuf(N), *se = dbuf(N);
    fill(x, N * D, 1, 0.8, 0.2);
    for (size_t i = 0; i < N * D; i++)
        k8[i] = (double)((37 * i) % 256);
    TT_NEW(h, e, sdflow_density_create(ctx, kind, &e));
    tt_probe(h, probe_density, e);
    TT(h, sdflow_density_set_process(e, p));
    TT(h, sdflow_density_set_model(e, m));
    uint64_t stream;
    TT(h, sdflow_density_get_u64(e, SDFLOW_OPT_STREAM, &stream));
    if (kind == SDFLOW_DENSITY_LIYAN) {
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 8));
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_DRAWS, 2));
    } else {
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4));
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 4));
        TT(h, sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, 0.05));
    }
    if (kind == SDFLOW_DENSITY_PF_ODE_EXACT)
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_DIVERGENCE, div));
    if (kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON) {
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 2));
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_PROBE_KIND, SDFLOW_PROBE_GAUSSIAN));
    }
    TT(h, sdflow_density_logpdf(e, N, x, lp, se));
    tt_rec(h, lp, N * sizeof *lp);
    tt_rec(h, se, N * sizeof *se);
    TT(h, sdflow_density_set_int(e, SDFLOW_OPT_DEQUANTIZE, 1));
    TT(h, sdflow_density_set_double(e, SDFLOW_OPT_DATA_SCALE, 4));
    TT(h, sdflow_density_bits_per_dim(e, N, k8, lp, se));
    tt_rec(h, lp, N * sizeof *lp);
    tt_rec(h, se, N * sizeof *se);
    tt_probe(h, NULL, NULL);
    sdflow_density_free(e);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(x), free(k8), free(lp), free(se);
}
static void sc_density_exact(tt_state *h) { density_scenario(h, SDFLOW_DENSITY_PF_ODE_EXACT, SDFLOW_DIV_ANALYTIC, 0); }
static void sc_density_exact_fd(tt_state *h)
{
    density_scenario(h, SDFLOW_DENSITY_PF_ODE_EXACT, SDFLOW_DIV_FINITE_DIFF, 1);
}
static void sc_density_hutchinson(tt_state *h) { density_scenario(h, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, 0, 1); }
static void sc_density_liyan(tt_state *h) { density_scenario(h, SDFLOW_DENSITY_LIYAN, 0, 0); }

/* ---- metrics ------------------------------------------------------------------ */

static void metrics_scenario(tt_state *h, size_t d)
{
    size_t M = rows(h, 9), N = rows(h, 7) + 3;
    sdflow_ctx *ctx = tt_ctx(h, 14);
    double *x = dbuf(M * d), *y = dbuf(N * d), v[2];
    fill(x, M * d, 1, 0.77, 0.0);
    fill(y, N * d, 1.3, 0.51, 0.6);
    TT(h, sdflow_metric_energy(ctx, M, N, d, x, y, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    TT(h, sdflow_metric_mmd2(ctx, M, N, d, x, y, 0, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    TT(h, sdflow_metric_mmd2(ctx, M, N, d, x, y, 1.5, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    TT(h, sdflow_metric_sliced_wasserstein(ctx, M, N, d, x, y, 2, 5, 3, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    sdflow_ctx_free(ctx);
    free(x), free(y);
}
static void sc_metrics(tt_state *h) { metrics_scenario(h, 3); }
static void sc_metrics_gemm(tt_state *h) { metrics_scenario(h, 16); }

/* ---- DSB, interpolants, couplings, model files ----------------------------------- */

static void sc_dsb(tt_state *h)
{
    enum { N = 6, D = 2 };
    sdflow_ctx *ctx = tt_ctx(h, 19);
    double a[2] = { 0, 1 }, A[4] = { 1, 0.2, 0.2, 0.5 }, x[N * D], y[N * D], stat;
    sdflow_model *data = NULL;
    sdflow_sampler *s = NULL;
    TT_NEW(h, data, sdflow_model_create_gaussian(ctx, D, a, A, &data));
    TT_NEW(h, s, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_DSB, &s));
    tt_probe(h, probe_sampler, s);
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_DATA, data));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_NPAR, 40));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_BATCH, 16));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 4));
    TT(h, sdflow_sampler_fit(s, 1));
    TT(h, sdflow_sampler_get_stat(s, SDFLOW_STAT_FIT_MSE, &stat));
    tt_rec(h, &stat, sizeof stat);
    TT(h, sdflow_sampler_run(s, N, NULL, x));
    tt_rec(h, x, sizeof x);
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_DIRECTION, SDFLOW_DSB_DATA_TO_PRIOR));
    TT(h, sdflow_sampler_run(s, N, x, y));
    tt_rec(h, y, sizeof y);
    tt_probe(h, NULL, NULL);
    sdflow_sampler_free(s);
    sdflow_model_free(data);
    sdflow_ctx_free(ctx);
}

/* velocity v = b - 0.5 x (its JVP -0.5 v) and a denoiser eta = 0.3 x: smooth
 * fields, enough to run every path; their accuracy is test_interpolant's */
static int cb_velocity(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)u;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d; k++)
            out[i * d + k] = (k ? -0.5 : 1.0) * t[i] - 0.5 * x[i * d + k];
    return 0;
}
static int cb_velocity_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv,
                           void *u)
{
    (void)x, (void)t, (void)u;
    for (size_t i = 0; i < n * d; i++)
        jv[i] = -0.5 * v[i];
    return 0;
}
static int cb_denoiser(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)t, (void)u;
    for (size_t i = 0; i < n * d; i++)
        out[i] = 0.3 * x[i];
    return 0;
}

static void sc_interpolant(tt_state *h)
{
    enum { N = 5, D = 2 };
    sdflow_ctx *ctx = tt_ctx(h, 20);
    sdflow_process *p = NULL;
    sdflow_model *v = NULL, *den = NULL, *base = NULL;
    sdflow_sampler *s = NULL;
    sdflow_density *e = NULL;
    double m0[2] = { -1, 0.5 }, S0[4] = { 1, 0.3, 0.3, 0.6 }, t[3] = { 0, 0.4, 1 }, c[18], x[N * D], y[N * D],
           lp[N], se[N], stat;
    TT_NEW(h, p, sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &p));
    TT(h, sdflow_process_set_double(p, SDFLOW_PROC_INTERP_EPS, 0.5));
    TT_NOALLOC(h, sdflow_process_is_interpolant(p));
    TT(h, sdflow_process_interpolant(p, 3, t, c, c + 3, c + 6, c + 9, c + 12, c + 15));
    tt_rec(h, c, sizeof c);
    TT_NEW(h, v, sdflow_model_create_callback(ctx, D, SDFLOW_OUT_VELOCITY, cb_velocity, NULL, &v));
    TT(h, sdflow_model_set_callback_jvp(v, cb_velocity_jvp, NULL));
    TT_NEW(h, den, sdflow_model_create_callback(ctx, D, SDFLOW_OUT_EPS, cb_denoiser, NULL, &den));
    TT_NEW(h, base, sdflow_model_create_gaussian(ctx, D, m0, S0, &base));
    TT_NEW(h, s, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &s));
    tt_probe(h, probe_sampler, s);
    TT(h, sdflow_sampler_set_process(s, p));
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, v));
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, base));
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_DENOISER, den));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 4));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_INTERP_KINETIC, 1));
    TT(h, sdflow_sampler_run(s, N, NULL, x)); /* ODE from the base */
    tt_rec(h, x, sizeof x);
    TT(h, sdflow_sampler_get_stat(s, SDFLOW_STAT_KINETIC_ENERGY, &stat));
    tt_rec(h, &stat, sizeof stat);
    TT(h, sdflow_sampler_transport(s, N, 1.0, 0.0, x, y)); /* and back */
    tt_rec(h, y, sizeof y);
    TT(h, sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_DIFFUSION, 0.3));
    TT(h, sdflow_sampler_run(s, N, NULL, y)); /* SDE */
    tt_rec(h, y, sizeof y);
    for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_PF_ODE_HUTCHINSON; kind++) {
        TT_NEW(h, e, sdflow_density_create(ctx, (sdflow_density_kind)kind, &e));
        tt_probe(h, probe_density, e);
        TT(h, sdflow_density_set_process(e, p));
        TT(h, sdflow_density_set_model(e, v));
        TT(h, sdflow_density_set_base(e, base));
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4));
        TT(h, sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 4));
        TT(h, sdflow_density_logpdf(e, N, x, lp, se));
        tt_rec(h, lp, sizeof lp);
        tt_probe(h, NULL, NULL);
        sdflow_density_free(e);
    }
    sdflow_sampler_free(s);
    sdflow_model_free(base);
    sdflow_model_free(den);
    sdflow_model_free(v);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

static void sc_coupling(tt_state *h)
{
    enum { N = 5, D = 2 };
    sdflow_ctx *ctx = tt_ctx(h, 21);
    double x0[N * D], x1[N * D], cost[N * N], plan[N * N], tot, err;
    size_t perm[N];
    fill(x0, N * D, 1, 0.9, 0.1);
    fill(x1, N * D, 2, 0.4, 0.7);
    for (int i = 0; i < N * N; i++)
        cost[i] = 1 + sin(1.7 * i) * sin(1.7 * i);
    TT(h, sdflow_assignment(ctx, N, cost, perm, &tot));
    tt_rec(h, perm, sizeof perm);
    tt_rec(h, &tot, sizeof tot);
    TT(h, sdflow_sinkhorn(ctx, N, N, cost, 0.5, 1000, 1e-9, plan, &err));
    tt_rec(h, plan, sizeof plan);
    for (int kind = SDFLOW_COUPLING_INDEPENDENT; kind <= SDFLOW_COUPLING_OT_SINKHORN; kind++) {
        TT(h, sdflow_coupling_pair(ctx, (sdflow_coupling)kind, N, D, x0, x1, 0.05, 3, 0, perm, &tot));
        tt_rec(h, perm, sizeof perm);
        tt_rec(h, &tot, sizeof tot);
    }
    sdflow_ctx_free(ctx);
}

/* Model files: each saving kind to a buffer (size query, then save) and
 * loaded back with its process; the mlp also through a file. The bytes and
 * the loaded model's scores are recorded. */
static void sc_files(tt_state *h)
{
    enum { N = 4, D = 2 };
    sdflow_ctx *ctx = tt_ctx(h, 22);
    sdflow_process *p = tt_vp(h, ctx), *lp = NULL;
    sdflow_model *ms[4] = { NULL, NULL, NULL, NULL }, *lm = NULL;
    double mean[2] = { 0.5, -1 }, cov[4] = { 1, 0.3, 0.3, 0.8 }, y[10 * D], x[N * D], t[N] = { 0.2, 0.4, 0.6, 0.8 },
           sc[N * D];
    fill(y, 10 * D, 1, 1.3, 0.2);
    fill(x, N * D, 1, 0.5, 0.3);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sdflow_torture_%ld.safetensors", (long)getpid());
    TT_NEW(h, ms[0], sdflow_model_create_gaussian(ctx, D, mean, cov, &ms[0]));
    ms[1] = tt_gmm(h, ctx);
    TT_NEW(h, ms[2], sdflow_model_create_kernel(ctx, 10, D, y, &ms[2]));
    TT_NEW(h, ms[3], sdflow_model_create_mlp(ctx, D, &ms[3]));
    TT(h, sdflow_model_set_int(ms[3], SDFLOW_OPT_MLP_WIDTH, 5));
    TT(h, sdflow_ctx_set_int(ctx, SDFLOW_CTX_FILE_DTYPE, SDFLOW_DTYPE_F64));
    for (int i = 0; i < 4; i++) {
        size_t size = 0;
        TT(h, sdflow_model_save_buffer(ms[i], p, NULL, 0, &size));
        unsigned char *buf = malloc(size);
        ck_assert(buf);
        TT(h, sdflow_model_save_buffer(ms[i], p, buf, size, &size));
        tt_rec(h, buf, size);
        TT_NEW(h, lm, sdflow_model_load_buffer(ctx, buf, size, &lm, &lp));
        TT(h, sdflow_model_score(lm, lp, N, x, t, sc));
        tt_rec(h, sc, sizeof sc);
        sdflow_model_free(lm);
        sdflow_process_free(lp);
        free(buf);
        if (i != 3) /* the file path once (the mlp): it shares the buffer code, and files are slow under load */
            continue;
        TT(h, sdflow_model_save(ms[i], p, path));
        TT_NEW(h, lm, sdflow_model_load(ctx, path, &lm, NULL));
        TT(h, sdflow_model_score(lm, p, N, x, t, sc));
        tt_rec(h, sc, sizeof sc);
        sdflow_model_free(lm);
    }
    remove(path);
    for (int i = 0; i < 4; i++)
        sdflow_model_free(ms[i]);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

/* ---- trainer checkpoints ------------------------------------------------------
 * Save (size query, buffer, path), restore into another trainer (buffer,
 * path) and the file-alone load, each followed by a step whose weights
 * must equal the clean run's. */
static void sc_checkpoint(tt_state *h)
{
    enum { D = 2, N = 8 };
    sdflow_ctx *ctx = tt_ctx(h, 23);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *m = NULL, *m2 = NULL, *lm = NULL;
    sdflow_trainer *t = NULL, *t2 = NULL, *lt = NULL;
    sdflow_process *lp = NULL;
    double x[N * D], theta[64];
    fill(x, N * D, 1, 0.9, 0.4);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sdflow_torture_ckpt_%ld.safetensors", (long)getpid());
    for (int i = 0; i < 2; i++) {
        sdflow_model **mm = i ? &m2 : &m;
        sdflow_trainer **tt = i ? &t2 : &t;
        TT_NEW(h, *mm, sdflow_model_create_mlp(ctx, D, mm));
        TT(h, sdflow_model_set_int(*mm, SDFLOW_OPT_MLP_WIDTH, 3));
        TT(h, sdflow_model_set_int(*mm, SDFLOW_OPT_MLP_FREQS, 1));
        TT_NEW(h, *tt, sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, tt));
        TT(h, sdflow_trainer_set_model(*tt, *mm));
        TT(h, sdflow_trainer_set_process(*tt, p));
        TT(h, sdflow_trainer_set_data(*tt, N, D, x));
        TT(h, sdflow_trainer_set_int(*tt, SDFLOW_TRAIN_BATCH, 4));
    }
    size_t np = 0, size = 0;
    TT(h, sdflow_model_param_count(m, &np));
    ck_assert(np <= 64);
    TT(h, sdflow_trainer_step(t));
    TT(h, sdflow_trainer_checkpoint_save_buffer(t, NULL, 0, &size));
    unsigned char *buf = malloc(size);
    ck_assert(buf);
    TT(h, sdflow_trainer_checkpoint_save_buffer(t, buf, size, &size));
    tt_rec(h, buf, size);
    TT(h, sdflow_trainer_checkpoint_restore_buffer(t2, buf, size));
    TT(h, sdflow_trainer_step(t2));
    TT(h, sdflow_model_get_params(m2, np, theta));
    tt_rec(h, theta, np * sizeof *theta);
    TT_NEW(h, lt, sdflow_trainer_checkpoint_load_buffer(ctx, buf, size, &lt, &lm, &lp));
    TT(h, sdflow_trainer_set_data(lt, N, D, x));
    TT(h, sdflow_trainer_step(lt));
    TT(h, sdflow_model_get_params(lm, np, theta));
    tt_rec(h, theta, np * sizeof *theta);
    sdflow_trainer_free(lt);
    sdflow_model_free(lm);
    sdflow_process_free(lp);
    /* the path forms once: they share the buffer code */
    TT(h, sdflow_trainer_checkpoint_save(t, path));
    TT(h, sdflow_trainer_checkpoint_restore(t2, path));
    TT_NEW(h, lt, sdflow_trainer_checkpoint_load(ctx, path, &lt, &lm, &lp));
    TT(h, sdflow_model_get_params(lm, np, theta));
    tt_rec(h, theta, np * sizeof *theta);
    remove(path);
    free(buf);
    sdflow_trainer_free(lt);
    sdflow_model_free(lm);
    sdflow_process_free(lp);
    sdflow_trainer_free(t);
    sdflow_trainer_free(t2);
    sdflow_model_free(m);
    sdflow_model_free(m2);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

/* ---- the entry points that do not allocate ---------------------------------------
 * Getters, names, option metadata, version: each once, so that a future
 * allocation in one of them is tortured too (TT_NOALLOC: those without a
 * status must not allocate at all). */
static void sc_misc(tt_state *h)
{
    sdflow_ctx *ctx = tt_ctx(h, 15);
    sdflow_process *p = NULL;
    sdflow_model *km = NULL, *mlp = NULL;
    sdflow_sampler *s = NULL;
    sdflow_density *e = NULL;
    double v, lo, hi, y[8];
    long iv;
    uint64_t u;
    sdflow_option key;
    sdflow_model_kind mk;
    sdflow_process_kind pk;
    sdflow_sampler_kind sk;
    sdflow_density_kind dk;
    fill(y, 8, 1, 1, 0);
    TT_ANY(h, sdflow_ctx_get_double(ctx, SDFLOW_CTX_SEED, &v)); /* no double ctx keys: a type error */
    TT_ANY(h, sdflow_ctx_set_double(ctx, SDFLOW_CTX_SEED, 1.0));
    TT(h, sdflow_ctx_get_u64(ctx, SDFLOW_CTX_SEED, &u));
    TT_NOALLOC(h, sdflow_ctx_last_error(ctx));
    TT_NEW(h, p, sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &p));
    TT(h, sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1));
    TT(h, sdflow_process_get_int(p, SDFLOW_PROC_VE_EXACT_STD, &iv));
    TT(h, sdflow_process_get_double(p, SDFLOW_PROC_SIGMA_MAX, &v));
    TT_NOALLOC(h, sdflow_process_get_kind(p));
    TT_NOALLOC(h, sdflow_process_kind_name(SDFLOW_PROCESS_VE));
    TT(h, sdflow_process_kind_from_name("subvp", &pk));
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, 4, 2, y, &km));
    TT_NOALLOC(h, sdflow_model_dim(km));
    TT_NOALLOC(h, sdflow_model_get_kind(km));
    TT_NOALLOC(h, sdflow_model_kind_name(SDFLOW_MODEL_KERNEL));
    TT(h, sdflow_model_kind_from_name("gmm", &mk));
    TT_ANY(h, sdflow_model_set_double(km, SDFLOW_OPT_BLOCK_Q, 8.0)); /* an int key: a type error */
    TT_ANY(h, sdflow_model_get_double(km, SDFLOW_OPT_BLOCK_Q, &v));
    TT_ANY(h, sdflow_model_set_u64(km, SDFLOW_OPT_BLOCK_Y, 8));
    TT_ANY(h, sdflow_model_get_u64(km, SDFLOW_OPT_BLOCK_Y, &u));
    TT_NEW(h, mlp, sdflow_model_create_mlp(ctx, 2, &mlp));
    TT(h, sdflow_model_get_int(mlp, SDFLOW_OPT_MLP_WIDTH, &iv));
    TT_NEW(h, s, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PC, &s));
    TT(h, sdflow_sampler_get_int(s, SDFLOW_OPT_STEPS, &iv));
    TT_NOALLOC(h, sdflow_sampler_kind_name(SDFLOW_SAMPLER_EDM_HEUN));
    TT(h, sdflow_sampler_kind_from_name("dpmpp_3m_sde", &sk));
    TT_NEW(h, e, sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, &e));
    TT(h, sdflow_density_set_u64(e, SDFLOW_OPT_STREAM, 5));
    TT(h, sdflow_density_get_int(e, SDFLOW_OPT_STEPS, &iv));
    TT(h, sdflow_density_get_double(e, SDFLOW_OPT_RTOL, &v));
    TT_NOALLOC(h, sdflow_density_kind_name(SDFLOW_DENSITY_LIYAN));
    TT(h, sdflow_density_kind_from_name("liyan", &dk));
    TT(h, sdflow_option_bounds(SDFLOW_OPT_STEPS, &lo, &hi));
    TT(h, sdflow_option_from_name(sdflow_option_name(SDFLOW_OPT_ETA), &key));
    TT_NOALLOC(h, sdflow_option_get_type(key));
    TT_NOALLOC(h, sdflow_strerror(SDFLOW_E_NOMEM));
    TT_NOALLOC(h, sdflow_version());
    TT_NOALLOC(h, sdflow_version_string());
    uint32_t ctr[4] = { 1, 2, 3, 4 }, k2[2] = { 5, 6 }, r4[4];
    TT_NOALLOC(h, (sdflow_rng_philox4x32(ctr, k2, r4), 0));
    tt_rec(h, r4, sizeof r4);
    sdflow_density_free(e);
    sdflow_sampler_free(s);
    sdflow_model_free(mlp);
    sdflow_model_free(km);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

/* ---- the state x_out holds after a failure --------------------------------------
 * sampler.h: on NOMEM during a run x_out holds the state after the last
 * completed step. For one-step methods on a custom grid t_0 > ... > t_S
 * that state is, bit for bit, the output of a clean run on the prefix grid
 * t_0 .. t_j (same steps, same keys): x_out after each failing event of the
 * run must be one of those S + 1 prefix states (j = 0: x_init). */
static void check_partial_states(sdflow_sampler_kind kind, int solver)
{
    enum { N = 5, D = 2, S = 4 };
    static const double grid[S + 1] = { 1.0, 0.7, 0.4, 0.15, 0.02 };
    failalloc f = { -1, 0, 0 };
    sdflow_allocator a = { fa_alloc, NULL, fa_free, &f };
    sdflow_ctx *ctx = NULL;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, &a), SDFLOW_OK);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    static const double w[TU_GK] = TU_GMM4_W, mu[TU_GK][2] = TU_GMM4_MU, cov[TU_GK][4] = TU_GMM4_COV;
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, TU_GK, 2, w, &mu[0][0], &cov[0][0], &m), SDFLOW_OK);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, kind, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    if (kind == SDFLOW_SAMPLER_PF_ODE)
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
    double x0[N * D], pre[S + 1][N * D], x[N * D];
    fill(x0, N * D, 1, 0.6, 0.9);
    memcpy(pre[0], x0, sizeof x0);
    for (int j = 1; j <= S; j++) {
        ck_assert_int_eq(sdflow_sampler_set_time_grid(s, (size_t)j + 1, grid), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, N, x0, pre[j]), SDFLOW_OK);
    }
    long before = f.count;
    ck_assert_int_eq(sdflow_sampler_run(s, N, x0, x), SDFLOW_OK);
    ck_assert_int_eq(memcmp(x, pre[S], sizeof x), 0);
    long events = f.count - before, seen[S + 1] = { 0 };
    for (long k = 0; k < events; k++) {
        for (int i = 0; i < N * D; i++)
            x[i] = NAN;
        f.fail_at = f.count + k;
        ck_assert_int_eq(sdflow_sampler_run(s, N, x0, x), SDFLOW_E_NOMEM);
        f.fail_at = -1;
        int j = 0;
        while (j <= S && memcmp(x, pre[j], sizeof x) != 0)
            j++;
        ck_assert_msg(j <= S, "%s solver %d: after failing allocation %ld of %ld x_out is no completed step's state",
                      sdflow_sampler_kind_name(kind), solver, k, events);
        seen[j]++;
    }
    test_note("%s solver %d: %ld failing events left x_out at steps 0..4: %ld %ld %ld %ld %ld",
              sdflow_sampler_kind_name(kind), solver, events, seen[0], seen[1], seen[2], seen[3], seen[4]);
    ck_assert_msg(seen[1] + seen[2] + seen[3] > 0, "no failure met mid-run: the check would not see a mix-up");
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    ck_assert_int_eq(f.live, 0);
}

START_TEST(test_torture_partial_state)
{
    check_partial_states(SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_EULER);
    check_partial_states(SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_HEUN);
    check_partial_states(SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_RK4);
    check_partial_states(SDFLOW_SAMPLER_DDIM, 0);
}
END_TEST

/* ---- threaded paths ---------------------------------------------------------------
 * With SDFLOW_CTX_THREADS = 2 and 64 rows (threads start from 64 rows) the
 * OpenMP teams run and the per-thread workspaces are sized by the thread
 * count. One call per path: under load each team barrier costs a time slice
 * (docs/design.md, "Threads and OpenMP waiting"), so these stay compact. */
static void sc_thr_models(tt_state *h)
{
    enum { N = 64, D = 12, M = 20 };
    sdflow_ctx *ctx = tt_ctx(h, 16);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *g = tt_gmm(h, ctx), *km = NULL, *mlp = NULL;
    double *x = dbuf(N * D), *t = dbuf(N), *y = dbuf(M * D), *out = dbuf(N * D);
    fill(x, N * D, 1, 0.3, 0.2);
    fill(y, M * D, 1, 0.7, 0.1);
    for (int i = 0; i < N; i++)
        t[i] = 0.1 + 0.01 * i;
    TT(h, sdflow_model_score(g, p, N, x, t, out));
    tt_rec(h, out, N * 2 * sizeof *out);
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, M, D, y, &km));
    TT(h, sdflow_model_score(km, p, N, x, t, out));
    tt_rec(h, out, N * D * sizeof *out);
    TT(h, sdflow_model_divergence(km, p, N, x, t, out));
    tt_rec(h, out, N * sizeof *out);
    TT_NEW(h, mlp, sdflow_model_create_mlp(ctx, 2, &mlp));
    TT(h, sdflow_model_set_int(mlp, SDFLOW_OPT_MLP_WIDTH, 6));
    TT(h, sdflow_model_divergence(mlp, p, N, x, t, out));
    tt_rec(h, out, N * sizeof *out);
    sdflow_model_free(mlp);
    sdflow_model_free(km);
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(x), free(t), free(y), free(out);
}

static void sc_thr_samplers(tt_state *h)
{
    enum { N = 64, D = 12, M = 16 };
    sdflow_ctx *ctx = tt_ctx(h, 17);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *g = tt_gmm(h, ctx), *km = NULL;
    sdflow_sampler *s = NULL, *f = NULL;
    double *x = dbuf(N * D), *y = dbuf(M * D);
    fill(y, M * D, 1.5, 2.3, 0.1);
    TT_NEW(h, s, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s));
    TT(h, sdflow_sampler_set_process(s, p));
    TT(h, sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, g));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_HEUN));
    TT(h, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 2));
    TT(h, sdflow_sampler_run(s, N, NULL, x));
    tt_rec(h, x, N * 2 * sizeof *x);
    TT_NEW(h, km, sdflow_model_create_kernel(ctx, M, D, y, &km));
    TT_NEW(h, f, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &f));
    TT(h, sdflow_sampler_set_model(f, SDFLOW_ROLE_TARGET, km));
    TT(h, sdflow_sampler_set_int(f, SDFLOW_OPT_STEPS, 2));
    TT(h, sdflow_sampler_set_int(f, SDFLOW_OPT_INNER_STEPS, 1));
    TT(h, sdflow_sampler_set_int(f, SDFLOW_OPT_SELF_EXCLUDE, 1));
    TT(h, sdflow_sampler_run(f, N, NULL, x));
    tt_rec(h, x, N * D * sizeof *x);
    sdflow_sampler_free(f);
    sdflow_sampler_free(s);
    sdflow_model_free(km);
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(x), free(y);
}

static void sc_thr_density_metrics(tt_state *h)
{
    enum { N = 64, D = 16 };
    sdflow_ctx *ctx = tt_ctx(h, 18);
    sdflow_process *p = tt_vp(h, ctx);
    sdflow_model *g = tt_gmm(h, ctx);
    sdflow_density *e = NULL;
    double *x = dbuf(N * D), *y = dbuf(N * D), lp[N], v[2];
    fill(x, N * D, 1, 0.77, 0.0);
    fill(y, N * D, 1.3, 0.51, 0.6);
    TT_NEW(h, e, sdflow_density_create(ctx, SDFLOW_DENSITY_LIYAN, &e));
    TT(h, sdflow_density_set_process(e, p));
    TT(h, sdflow_density_set_model(e, g));
    TT(h, sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 4));
    TT(h, sdflow_density_logpdf(e, N, x, lp, NULL));
    tt_rec(h, lp, sizeof lp);
    TT(h, sdflow_metric_energy(ctx, N, N, D, x, y, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    TT(h, sdflow_metric_sliced_wasserstein(ctx, N, N, D, x, y, 1, 4, 2, &v[0], &v[1]));
    tt_rec(h, v, sizeof v);
    sdflow_density_free(e);
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(x), free(y);
}

/* ---- the table ---------------------------------------------------------------- */

enum { TT_LIGHT = 0, TT_HEAVY = 1 };
typedef struct tt_row {
    const char *name;
    tt_scenario fn;
    int heavy;
    int with_realloc; /* 1: allocator with a realloc hook, 0: without (alloc-copy-free fallback) */
    int threads;      /* SDFLOW_CTX_THREADS */
} tt_row;

static const tt_row scenarios[] = {
    { "ctx", sc_ctx, TT_LIGHT, 1, 1 },
    { "process", sc_process, TT_LIGHT, 1, 1 },
    { "gaussian", sc_gaussian, TT_LIGHT, 1, 1 },
    { "gmm", sc_gmm, TT_LIGHT, 1, 1 },
    { "kernel_d2", sc_kernel_d2, TT_LIGHT, 1, 1 },
    { "kernel_gemm_d12", sc_kernel_gemm, TT_LIGHT, 1, 1 },
    { "kernel_grow_realloc", sc_kernel_grow, TT_LIGHT, 1, 1 },
    { "kernel_grow_no_realloc", sc_kernel_grow, TT_LIGHT, 0, 1 },
    { "callback", sc_callback, TT_LIGHT, 1, 1 },
    { "mlp", sc_mlp, TT_LIGHT, 1, 1 },
    { "mlp_energy", sc_mlp_energy, TT_LIGHT, 1, 1 },
    { "reverse_sde", sc_sde, TT_LIGHT, 1, 1 },
    { "pc", sc_pc, TT_LIGHT, 1, 1 },
    { "pf_ode_euler", sc_ode_euler, TT_LIGHT, 1, 1 },
    { "pf_ode_heun", sc_ode_heun, TT_LIGHT, 1, 1 },
    { "pf_ode_rk4_grid", sc_ode_rk4, TT_LIGHT, 1, 1 },
    { "pf_ode_dopri5", sc_ode_dopri5, TT_LIGHT, 1, 1 },
    { "ddim", sc_ddim, TT_LIGHT, 1, 1 },
    { "ddim_eta", sc_ddim_eta, TT_LIGHT, 1, 1 },
    { "dpmpp_2m", sc_dpmpp_2m, TT_LIGHT, 1, 1 },
    { "dpmpp_3m_grid", sc_dpmpp_3m, TT_LIGHT, 1, 1 },
    { "dpmpp_2m_sde", sc_dpmpp_2m_sde, TT_LIGHT, 1, 1 },
    { "dpmpp_3m_sde", sc_dpmpp_3m_sde, TT_LIGHT, 1, 1 },
    { "edm_heun_churn", sc_edm, TT_LIGHT, 1, 1 },
    { "sdflow_matched", sc_sdflow_matched, TT_LIGHT, 1, 1 },
    { "sdflow_normal_self_exclude", sc_sdflow_normal_self, TT_LIGHT, 1, 1 },
    { "sdflow_model_start_noisy_noise", sc_sdflow_model_noisy, TT_LIGHT, 1, 1 },
    { "sdflow_source_x_init", sc_sdflow_source, TT_LIGHT, 1, 1 },
    { "sdflow_gemm_d12", sc_sdflow_gemm, TT_LIGHT, 1, 1 },
    { "density_exact", sc_density_exact, TT_LIGHT, 1, 1 },
    { "density_exact_fd_kernel", sc_density_exact_fd, TT_LIGHT, 1, 1 },
    { "density_hutchinson_kernel", sc_density_hutchinson, TT_LIGHT, 1, 1 },
    { "density_liyan", sc_density_liyan, TT_LIGHT, 1, 1 },
    { "metrics", sc_metrics, TT_LIGHT, 1, 1 },
    { "metrics_gemm_d16", sc_metrics_gemm, TT_LIGHT, 1, 1 },
    { "dsb_fit_run_both_ways", sc_dsb, TT_LIGHT, 1, 1 },
    { "interpolant_ode_sde_transport_density", sc_interpolant, TT_LIGHT, 1, 1 },
    { "couplings", sc_coupling, TT_LIGHT, 1, 1 },
    { "model_files", sc_files, TT_LIGHT, 1, 1 },
    { "trainer_checkpoints", sc_checkpoint, TT_LIGHT, 1, 1 },
    { "getters_names_version", sc_misc, TT_LIGHT, 1, 1 },
    /* the threaded paths (OpenMP teams, per-thread workspaces sized by the thread count) */
    { "threads2_models", sc_thr_models, TT_HEAVY, 1, 2 },
    { "threads2_samplers", sc_thr_samplers, TT_HEAVY, 1, 2 },
    { "threads2_density_metrics", sc_thr_density_metrics, TT_HEAVY, 1, 2 },
};
#define NSCEN ((int)(sizeof scenarios / sizeof scenarios[0]))

static void torture_rows(int heavy)
{
    long total = 0;
    int rows = 0;
    for (int i = 0; i < NSCEN; i++) {
        if (scenarios[i].heavy != heavy)
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tt_stats st;
        long n = tt_torture(scenarios[i].name, scenarios[i].fn, scenarios[i].with_realloc, scenarios[i].threads, &st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        test_note("torture %-36s %4ld allocation events, each failed twice (alone; with all later ones in the call) "
                  "and retried; %ld failed calls kept lazy state, %ld had their object's options compared; %.2f s",
                  scenarios[i].name, n, st.kept_lazy, st.probes,
                  (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        total += n;
        rows++;
    }
    test_note("torture (%s): %d scenarios, %ld allocation events", heavy ? "heavy" : "light", rows, total);
}

START_TEST(test_torture_light) { torture_rows(TT_LIGHT); }
END_TEST
START_TEST(test_torture_heavy) { torture_rows(TT_HEAVY); }
END_TEST

/* The harness must catch what it is for. broken_call() stands for a library
 * function (two allocations through public constructors) with one defect
 * chosen by broken_mode; mode 0 is correct and must pass. */
static int broken_mode, broken_calls;
static sdflow_status broken_call(sdflow_ctx *ctx, double *out)
{
    sdflow_process *a = NULL, *b = NULL;
    broken_calls++;
    sdflow_status st = SDFLOW_OK;
    if (broken_mode == 5) { /* 5: allocates inside an OpenMP team */
#pragma omp parallel num_threads(2)
#pragma omp single
        st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &a);
    } else
        st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &a);
    if (st)
        return broken_mode == 1 ? SDFLOW_E_INVALID : st; /* 1: wrong status */
    if ((st = sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &b))) {
        if (broken_mode != 2) /* 2: leaks a on the second failure */
            sdflow_process_free(a);
        if (broken_mode == 4) /* 4: the message no longer names the failure */
            (void)sdflow_ctx_set_int(ctx, TT_POISON_OPTION, 0);
        return st;
    }
    *out = broken_mode == 3 ? broken_calls : 1; /* 3: a failed attempt changes the result of the retry */
    sdflow_process_free(b);
    sdflow_process_free(a);
    return SDFLOW_OK;
}
static void sc_broken(tt_state *h)
{
    double out = 0;
    broken_calls = 0;
    sdflow_ctx *ctx = tt_ctx(h, 1);
    TT(h, broken_call(ctx, &out));
    tt_rec(h, &out, sizeof out);
    sdflow_ctx_free(ctx);
}

START_TEST(test_torture_self_check)
{
    static const char *want[6] = { "", "want SDFLOW_E_NOMEM", "live blocks", "differs from the clean run",
                                   "does not report the failed allocation", "inside an OpenMP team" };
    char why[512];
    for (broken_mode = 0; broken_mode < 6; broken_mode++) {
        int failed = tt_torture_fails(sc_broken, why, sizeof why);
        ck_assert_msg(failed == (broken_mode != 0), "broken mode %d: torture %s", broken_mode,
                      failed ? why : "passed");
        ck_assert_msg(strstr(why, want[broken_mode]), "broken mode %d: '%s' lacks '%s'", broken_mode, why,
                      want[broken_mode]);
    }
    broken_mode = 0;
    ck_assert_int_eq(tt_torture("broken-0", sc_broken, 1, 1, NULL), 3); /* ctx + two processes */
}
END_TEST

/* The allocator's realloc hook is live: a kernel model's workspace grows
 * through it (twice in sc_kernel_grow); without the hook the library
 * allocates, copies and frees, with the same results (both rows above). */
START_TEST(test_torture_realloc_used)
{
    tt_state h;
    memset(&h, 0, sizeof h);
    h.name = "kernel_grow";
    h.a = (sdflow_allocator){ tt_alloc, tt_realloc, tt_free, &h };
    tt_run(&h, sc_kernel_grow, -1);
    ck_assert_int_eq(h.reallocs, 2);
    tt_state_free(&h);
}
END_TEST

Suite *torture_suite(void)
{
    Suite *s = suite_create("torture");
    TCase *tc = tcase_create("torture");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_torture_self_check);
    tcase_add_test(tc, test_torture_realloc_used);
    tcase_add_test(tc, test_torture_partial_state);
    tcase_add_test(tc, test_torture_light);
    suite_add_tcase(s, tc);
    return s;
}

Suite *torture_heavy_suite(void)
{
    Suite *s = suite_create("torture_heavy");
    TCase *tc = tcase_create("torture_heavy");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_torture_heavy);
    suite_add_tcase(s, tc);
    return s;
}
