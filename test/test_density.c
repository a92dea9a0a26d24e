/* SPDX-License-Identifier: MIT */
/* Density estimators: PF-ODE (exact divergence, Hutchinson) and Li-Yan,
 * against the closed-form log-density of noised Gaussian mixtures
 * (algorithms.md §12.a.1, .3-.5). Every test prints its seed. */
#include <stdio.h>
#include "testutil.h"

#define SEED 20261123u

/* ---- fixtures -------------------------------------------------------------- */

/* 2-D mixture, full covariances. */
static sdflow_model *gmm2(sdflow_ctx *ctx)
{
    static const double w[2] = { 0.3, 0.7 };
    static const double mu[4] = { -1.0, 0.5, 1.5, -0.5 };
    static const double cov[8] = { 0.5, 0.2, 0.2, 0.3, 0.4, -0.1, -0.1, 0.6 };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 2, 2, w, mu, cov, &m), SDFLOW_OK);
    return m;
}

/* 8-D mixture: S_k = A_k A_k^T / 8 + 0.2 I with fixed pseudo-random A_k. */
static sdflow_model *gmm8(sdflow_ctx *ctx)
{
    enum { D = 8 };
    double w[2] = { 0.4, 0.6 }, mu[2 * D], cov[2 * D * D];
    for (int k = 0; k < 2; k++) {
        double A[D * D];
        for (int i = 0; i < D * D; i++)
            A[i] = sin(1.7 * (i + 1) + 3.1 * k);
        for (int a = 0; a < D; a++) {
            mu[k * D + a] = (k ? 0.8 : -0.6) * cos(0.9 * a);
            for (int b = 0; b < D; b++) {
                double s = a == b ? 0.2 : 0.0;
                for (int c = 0; c < D; c++)
                    s += A[a * D + c] * A[b * D + c] / D;
                cov[(k * D + a) * D + b] = s;
            }
        }
    }
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 2, D, w, mu, cov, &m), SDFLOW_OK);
    return m;
}

static sdflow_density *estimator(sdflow_ctx *ctx, sdflow_density_kind kind, const sdflow_process *p,
                                 sdflow_model *m)
{
    sdflow_density *e = NULL;
    ck_assert_int_eq(sdflow_density_create(ctx, kind, &e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_process(e, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_model(e, m), SDFLOW_OK);
    return e;
}

/* Deterministic test points: draws of the mixture itself (typical points). */
static void points(sdflow_model *m, size_t n, double *x)
{
    ck_assert_int_eq(sdflow_model_sample(m, 77, 0, n, x), SDFLOW_OK);
}

/* The value the exact PF-ODE returns with the standard prior pi
 * (§12.a.4): log p_tmin(x) + log pi(x(T)) - log p_T(x(T)), with x(T) from
 * the PF-ODE sampler at a tight tolerance. The correction is a smooth
 * function of x(T) with gradient O(alpha_T |mu| + 1/sigma_T^2 |S|), so
 * an x(T) error of 1e-9 changes it by far less than the 1e-4 tolerance. */
static void reference_logp(sdflow_ctx *ctx, sdflow_model *m, const sdflow_process *p, double t_min, size_t n,
                           const double *x, double *ref, double *mismatch)
{
    size_t d = sdflow_model_dim(m);
    double T, *xT = malloc(n * d * sizeof *xT), *t = malloc(n * sizeof *t), *lt = malloc(n * sizeof *lt),
              *lpi = malloc(n * sizeof *lpi);
    ck_assert_int_eq(sdflow_process_time_range(p, NULL, &T), SDFLOW_OK);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
    sdflow_sampler_set_process(s, p);
    sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m);
    sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, 1e-11);
    sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, 1e-11);
    ck_assert_msg(sdflow_sampler_transport(s, n, t_min, T, x, xT) == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    sdflow_sampler_free(s);
    for (size_t i = 0; i < n; i++)
        t[i] = t_min;
    ck_assert_int_eq(sdflow_model_logpdf(m, p, n, x, t, ref), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        t[i] = T;
    ck_assert_int_eq(sdflow_model_logpdf(m, p, n, xT, t, lt), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_prior_logpdf(p, n, d, xT, lpi), SDFLOW_OK);
    *mismatch = 0;
    for (size_t i = 0; i < n; i++) {
        ref[i] += lpi[i] - lt[i];
        *mismatch = fmax(*mismatch, fabs(lpi[i] - lt[i]));
    }
    free(xT);
    free(t);
    free(lt);
    free(lpi);
}

/* Callback model: scale x the exact score of an inner model (scale 1.3 is
 * the deliberately wrong model), optional JVP. With nan_big set it returns
 * NaN where x_0 / alpha(t) > 5000: only for a data point placed at 1e4
 * (the noise never moves the others that far: sigma/alpha < 200). */
typedef struct scaled {
    sdflow_model *inner;
    const sdflow_process *p;
    double scale;
    int nan_big;
} scaled;

static int scaled_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    const scaled *s = u;
    if (sdflow_model_score(s->inner, s->p, n, x, t, out) != SDFLOW_OK)
        return 1;
    for (size_t i = 0; i < n * d; i++)
        out[i] *= s->scale;
    for (size_t i = 0; i < n && s->nan_big; i++) {
        double alpha;
        if (sdflow_process_coefficients(s->p, 1, t + i, &alpha, NULL, NULL, NULL) != SDFLOW_OK)
            return 1;
        if (x[i * d] / alpha > 5000)
            out[i * d] = NAN;
    }
    return 0;
}

static int scaled_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *u)
{
    const scaled *s = u;
    double *J = malloc(n * d * d * sizeof *J);
    int rc = sdflow_model_jacobian(s->inner, s->p, n, x, t, J) != SDFLOW_OK;
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t a = 0; a < d; a++) {
            double acc = 0;
            for (size_t b = 0; b < d; b++)
                acc += J[(i * d + a) * d + b] * v[i * d + b];
            jv[i * d + a] = s->scale * acc;
        }
    free(J);
    return rc;
}

static sdflow_model *scaled_model(sdflow_ctx *ctx, scaled *s, int with_jvp)
{
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, sdflow_model_dim(s->inner), SDFLOW_OUT_SCORE, scaled_fn, s,
                                                  &m),
                     SDFLOW_OK);
    if (with_jvp)
        ck_assert_int_eq(sdflow_model_set_callback_jvp(m, scaled_jvp, s), SDFLOW_OK);
    return m;
}

/* Mean of squares. */
static double vec_mean2(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return s / (double)n;
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs(a[i] - b[i]));
    return e;
}

/* ---- api ------------------------------------------------------------------- */

START_TEST(test_api)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_density *e = NULL;
    sdflow_density_free(NULL);
    ck_assert_int_eq(sdflow_density_create(NULL, SDFLOW_DENSITY_LIYAN, &e), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_density_create(ctx, (sdflow_density_kind)9, &e), SDFLOW_E_INVALID, "kind 9");
    ck_assert_ptr_null(e);
    ck_assert_str_eq(sdflow_density_kind_name(SDFLOW_DENSITY_PF_ODE_EXACT), "pf_ode_exact");
    ck_assert_str_eq(sdflow_density_kind_name(SDFLOW_DENSITY_PF_ODE_HUTCHINSON), "pf_ode_hutchinson");
    ck_assert_str_eq(sdflow_density_kind_name(SDFLOW_DENSITY_LIYAN), "liyan");
    ck_assert_ptr_null(sdflow_density_kind_name((sdflow_density_kind)0));
    sdflow_density_kind k;
    ck_assert_int_eq(sdflow_density_kind_from_name("liyan", &k), SDFLOW_OK);
    ck_assert_int_eq(k, SDFLOW_DENSITY_LIYAN);
    ck_assert_int_eq(sdflow_density_kind_from_name("nope", &k), SDFLOW_E_UNSUPPORTED);

    ck_assert_int_eq(sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, &e), SDFLOW_OK);
    { /* objects of another context are refused */
        sdflow_ctx *other = test_ctx(1);
        sdflow_process *op = NULL;
        double w = 1, mu = 0, cov = 1;
        sdflow_model *om = NULL;
        ck_assert_int_eq(sdflow_process_create(other, SDFLOW_PROCESS_VP, &op), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_create_gmm(other, 1, 1, &w, &mu, &cov, &om), SDFLOW_OK);
        ck_assert_status_msg(ctx, sdflow_density_set_process(e, op), SDFLOW_E_INVALID, "process was created from another");
        ck_assert_status_msg(ctx, sdflow_density_set_model(e, om), SDFLOW_E_INVALID, "model was created from another");
        sdflow_process_free(op);
        sdflow_model_free(om);
        sdflow_ctx_free(other);
    }
    long v;
    double dv;
    uint64_t uv;
    ck_assert_int_eq(sdflow_density_get_int(e, SDFLOW_OPT_PROBES, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(sdflow_density_get_int(e, SDFLOW_OPT_SOLVER, &v), SDFLOW_OK);
    ck_assert_int_eq(v, SDFLOW_SOLVER_DOPRI5);
    ck_assert_int_eq(sdflow_density_get_double(e, SDFLOW_OPT_RTOL, &dv), SDFLOW_OK);
    ck_assert_double_eq(dv, 1e-5);
    ck_assert_int_eq(sdflow_density_get_double(e, SDFLOW_OPT_DATA_SCALE, &dv), SDFLOW_OK);
    ck_assert_double_eq(dv, 2.0);
    ck_assert_int_eq(sdflow_density_set_u64(e, SDFLOW_OPT_FIRST_INDEX, 5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_get_u64(e, SDFLOW_OPT_FIRST_INDEX, &uv), SDFLOW_OK);
    ck_assert_uint_eq(uv, 5);
    /* Li-Yan keys do not apply to a PF-ODE estimator; wrong types and ranges */
    ck_assert_status_msg(ctx, sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 10), SDFLOW_E_UNSUPPORTED,
                         "liyan_times");
    ck_assert_int_eq(sdflow_density_get_int(e, SDFLOW_OPT_LIYAN_TIMES, &v), SDFLOW_E_UNSUPPORTED);
    ck_assert_status_msg(ctx, sdflow_density_set_double(e, SDFLOW_OPT_PROBES, 2.0), SDFLOW_E_INVALID, "int");
    ck_assert_status_msg(ctx, sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 0), SDFLOW_E_INVALID, "probes");
    ck_assert_status_msg(ctx, sdflow_density_set_double(e, SDFLOW_OPT_RTOL, NAN), SDFLOW_E_INVALID, "rtol");
    ck_assert_status_msg(ctx, sdflow_density_set_int(e, SDFLOW_CTX_THREADS, 2), SDFLOW_E_UNSUPPORTED, "threads");
    ck_assert_int_eq(sdflow_density_get_int(e, SDFLOW_OPT_PROBES, NULL), SDFLOW_E_INVALID);

    /* unbound estimator */
    double x[4] = { 0.1, 0.2, 0.3, 0.4 }, lp[2], se[2];
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_STATE, "no model");
    sdflow_model *m = gmm2(ctx);
    sdflow_density_set_model(e, m);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_STATE, "no process");
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_density_set_process(e, p);
    /* bad inputs */
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 0, x, lp, se), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, NULL, lp, se), SDFLOW_E_INVALID, "x");
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, NULL, se), SDFLOW_E_INVALID, "output");
    x[3] = INFINITY;
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_INVALID, "x[1][1]");
    x[3] = 0.4;
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, 1e-7), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_INVALID, "t_min=1e-07");
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, 1e-5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_EULER), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_UNSUPPORTED, "RK4");
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 20), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_OK);
    double lev[4] = { 0, 255, 12.5, 3 };
    ck_assert_status_msg(ctx, sdflow_density_bits_per_dim(e, 2, lev, lp, se), SDFLOW_E_INVALID, "x[1][0] = 12.5");
    lev[2] = 256;
    ck_assert_status_msg(ctx, sdflow_density_bits_per_dim(e, 2, lev, lp, se), SDFLOW_E_INVALID, "0..255");

    /* analytic divergence of a callback without JVP is unsupported */
    scaled sc = { m, p, 1.0, 0 };
    sdflow_model *cb = scaled_model(ctx, &sc, 0);
    sdflow_density_set_model(e, cb);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_DIVERGENCE, SDFLOW_DIV_ANALYTIC), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_UNSUPPORTED, "JVP");
    sdflow_density_free(e);

    /* Li-Yan: lambda range */
    e = estimator(ctx, SDFLOW_DENSITY_LIYAN, p, m);
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_LAMBDA_MIN, 5.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_LAMBDA_MAX, 4.0), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_INVALID, "lambda_min=5");
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_LAMBDA_MIN, 30.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_LAMBDA_MAX, 40.0), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 2, x, lp, se), SDFLOW_E_INVALID, "log-SNR range");
    ck_assert_status_msg(ctx, sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 2), SDFLOW_E_UNSUPPORTED, "probes");
    sdflow_density_free(e);
    sdflow_model_free(cb);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- exact PF-ODE against the closed form ----------------------------------- */

static void exact_case(int d8, sdflow_process_kind kind)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = d8 ? gmm8(ctx) : gmm2(ctx);
    sdflow_process *p = tu_process(ctx, kind);
    size_t d = sdflow_model_dim(m), n = d8 ? 3 : 5;
    double x[5 * 8], lp[5], se[5], ref[5], mism;
    points(m, n, x);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, p, m);
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_RTOL, 1e-8), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_ATOL, 1e-8), SDFLOW_OK);
    ck_assert_msg(sdflow_density_logpdf(e, n, x, lp, se) == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    double tmin;
    ck_assert_int_eq(sdflow_density_get_double(e, SDFLOW_OPT_T_MIN, &tmin), SDFLOW_OK);
    ck_assert_double_eq(tmin, 1e-5);
    reference_logp(ctx, m, p, tmin, n, x, ref, &mism);
    double err = max_abs_diff(lp, ref, n);
    printf("density seed %u: exact PF-ODE d=%zu %s: max |err| = %.2e (prior mismatch up to %.2e)\n", SEED, d,
           sdflow_process_kind_name(kind), err, mism);
    /* solver error at rtol = atol = 1e-8: |err| <~ 10 rtol (1 + |log p|) (§12.a.4) */
    ck_assert_msg(err < 1e-4, "max error %g", err);
    for (size_t i = 0; i < n; i++)
        ck_assert_double_eq(se[i], 0.0);
    sdflow_density_free(e);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}

START_TEST(test_exact_2d_vp) { exact_case(0, SDFLOW_PROCESS_VP); }
END_TEST
START_TEST(test_exact_2d_subvp) { exact_case(0, SDFLOW_PROCESS_SUBVP); }
END_TEST
START_TEST(test_exact_2d_ve) { exact_case(0, SDFLOW_PROCESS_VE); }
END_TEST
START_TEST(test_exact_8d_vp) { exact_case(1, SDFLOW_PROCESS_VP); }
END_TEST
START_TEST(test_exact_8d_subvp) { exact_case(1, SDFLOW_PROCESS_SUBVP); }
END_TEST
START_TEST(test_exact_8d_ve) { exact_case(1, SDFLOW_PROCESS_VE); }
END_TEST

/* The divergence methods agree: analytic (gmm), JVP callback, central
 * differences (error ~1e-10 relative per evaluation, far below the 1e-6
 * tolerance), and RK4 with 400 steps is within 1e-3 of DOPRI5. */
START_TEST(test_exact_methods)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    enum { N = 4 };
    double x[2 * N], a[N], b[N], c[N], r[N];
    points(m, N, x);
    scaled sc = { m, p, 1.0, 0 };
    sdflow_model *cbj = scaled_model(ctx, &sc, 1), *cb = scaled_model(ctx, &sc, 0);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, p, m);
    sdflow_density_set_double(e, SDFLOW_OPT_RTOL, 1e-8);
    sdflow_density_set_double(e, SDFLOW_OPT_ATOL, 1e-8);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, a, NULL), SDFLOW_OK);
    sdflow_density_set_model(e, cbj);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, b, NULL), SDFLOW_OK);
    sdflow_density_set_model(e, cb); /* AUTO falls back to central differences */
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, c, NULL), SDFLOW_OK);
    printf("density seed %u: exact divergence: |jvp - analytic| = %.2e, |fd - analytic| = %.2e\n", SEED,
           max_abs_diff(a, b, N), max_abs_diff(a, c, N));
    ck_assert_msg(max_abs_diff(a, b, N) < 1e-9, "JVP path differs by %g", max_abs_diff(a, b, N));
    ck_assert_msg(max_abs_diff(a, c, N) < 1e-6, "finite differences differ by %g", max_abs_diff(a, c, N));
    sdflow_density_set_model(e, m);
    sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4);
    sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 400);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, r, NULL), SDFLOW_OK);
    printf("density seed %u: RK4 400 steps vs DOPRI5: %.2e\n", SEED, max_abs_diff(a, r, N));
    ck_assert_msg(max_abs_diff(a, r, N) < 1e-3, "RK4 differs by %g", max_abs_diff(a, r, N));
    sdflow_density_free(e);
    sdflow_model_free(cb);
    sdflow_model_free(cbj);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- Hutchinson ------------------------------------------------------------ */

/* n copies of one point: per-sample probe keys make them independent draws
 * of the estimator. */
static void hutch_run(sdflow_ctx *ctx, sdflow_model *m, const sdflow_process *p, long K, long probe_kind,
                      const double *x1, size_t n, double *lp, double *se)
{
    size_t d = sdflow_model_dim(m);
    double *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n; i++)
        memcpy(x + i * d, x1, d * sizeof *x);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, p, m);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_PROBES, K), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_PROBE_KIND, probe_kind), SDFLOW_OK);
    ck_assert_msg(sdflow_density_logpdf(e, n, x, lp, se) == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    sdflow_density_free(e);
    free(x);
}

START_TEST(test_hutchinson)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm8(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    enum { N = 300, D = 8 };
    double x1[D], exact, lp[N], se[N], lp4[N], se4[N];
    points(m, 1, x1);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, p, m);
    ck_assert_int_eq(sdflow_density_logpdf(e, 1, x1, &exact, NULL), SDFLOW_OK);
    sdflow_density_free(e);
    for (long kind = SDFLOW_PROBE_RADEMACHER; kind <= SDFLOW_PROBE_GAUSSIAN; kind++) {
        hutch_run(ctx, m, p, 2, kind, x1, N, lp, se);
        hutch_run(ctx, m, p, 8, kind, x1, N, lp4, se4);
        /* unbiased: the mean of N independent estimates is within 4 SE (SE = sd/sqrt(N)) */
        double mean = vec_mean(lp, N, 1), sem = sqrt(vec_var(lp, N, 1) / N);
        double mean4 = vec_mean(lp4, N, 1), sem4 = sqrt(vec_var(lp4, N, 1) / N);
        double z = (mean - exact) / sem, z4 = (mean4 - exact) / sem4;
        /* reported SE: se^2 = s^2/K is unbiased for the variance of the estimate
         * whatever the probe distribution, so RMS(se) over the N samples estimates
         * sd/sqrt(K): K = 2 vs K = 8 must give the ratio 2 (1/sqrt(K)) */
        double rse = sqrt(vec_mean2(se, N)), rse4 = sqrt(vec_mean2(se4, N));
        double ratio = rse / rse4, sd = sqrt(vec_var(lp, N, 1)), sd4 = sqrt(vec_var(lp4, N, 1));
        printf("density seed %u: Hutchinson %s d=8: exact %.6f, K=2 mean %.6f (z %.2f), K=8 mean %.6f (z %.2f), "
               "RMS SE K=2 %.4f K=8 %.4f ratio %.3f; sd of estimates K=2 %.4f K=8 %.4f ratio %.3f\n",
               SEED, kind ? "gaussian" : "rademacher", exact, mean, z, mean4, z4, rse, rse4, ratio, sd, sd4,
               sd / sd4);
        ck_assert_msg(fabs(z) < 4 && fabs(z4) < 4, "z = %g, %g", z, z4);
        /* mean of N = 300 squared SEs: relative error ~ sqrt((2/(K-1) + kurtosis/K)/N) < 12%
         * for K = 2, so the ratio of square roots is 2 within ~12% */
        ck_assert_msg(fabs(ratio - 2.0) < 0.25, "SE ratio K=2/K=8 = %g, want 2", ratio);
        ck_assert_msg(fabs(sd / sd4 - 2.0) < 0.3, "spread ratio K=2/K=8 = %g, want 2", sd / sd4);
        /* reported SE vs the spread of the estimates: both estimate sd/sqrt(K) (~6% error each) */
        ck_assert_msg(fabs(rse4 / sd4 - 1.0) < 0.2, "reported SE %g vs spread %g", rse4, sd4);
    }
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* The mixture's own probe quadratic forms (score and v^T J v in one O(k d^2)
 * pass) must agree with v^T J v from its full analytic Jacobian (the
 * callback path) for identical probes: both are exact, so only rounding
 * separates them. */
START_TEST(test_hutchinson_quadform_matches_jacobian)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm8(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    enum { N = 5, D = 8 };
    double x[N * D], a[N], b[N], sa[N], sb[N];
    points(m, N, x);
    scaled sc = { m, p, 1.0, 0 };
    sdflow_model *cbj = scaled_model(ctx, &sc, 1);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, p, m);
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, a, sa), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_model(e, cbj), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, b, sb), SDFLOW_OK);
    printf("density seed %u: Hutchinson mixture quadratic forms vs Jacobian path: %.2e\n", SEED, max_abs_diff(a, b, N));
    ck_assert_msg(max_abs_diff(a, b, N) < 1e-9, "log p differs by %g", max_abs_diff(a, b, N));
    ck_assert_msg(max_abs_diff(sa, sb, N) < 1e-9, "SE differs by %g", max_abs_diff(sa, sb, N));
    sdflow_density_free(e);
    sdflow_model_free(cbj);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- Li-Yan --------------------------------------------------------------- */

static void liyan_case(sdflow_process_kind kind, int ve_exact_std)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, kind);
    if (ve_exact_std)
        ck_assert_int_eq(sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_OK);
    enum { N = 8 };
    double x[2 * N], lp[N], se[N], lp4[N], se4[N], ref[N], t[N], teps;
    points(m, N, x);
    /* reference: log p at t_eps, within sigma(t_eps)^2 tr S^-1 ~ 1e-5 of log p_0 */
    sdflow_process_time_range(p, &teps, NULL);
    for (int i = 0; i < N; i++)
        t[i] = teps;
    ck_assert_int_eq(sdflow_model_logpdf(m, p, N, x, t, ref), SDFLOW_OK);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_LIYAN, p, m);
    ck_assert_msg(sdflow_density_logpdf(e, N, x, lp, se) == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_DRAWS, 4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, lp4, se4), SDFLOW_OK);
    double zmax = 0, zmax4 = 0;
    for (int i = 0; i < N; i++) {
        zmax = fmax(zmax, fabs(lp[i] - ref[i]) / se[i]);
        zmax4 = fmax(zmax4, fabs(lp4[i] - ref[i]) / se4[i]);
    }
    double rse = vec_mean(se, N, 1), rse4 = vec_mean(se4, N, 1);
    printf("density seed %u: Li-Yan %s%s: max |z| J=1 %.2f, J=4 %.2f; mean SE J=1 %.4f, J=4 %.4f\n", SEED,
           sdflow_process_kind_name(kind), ve_exact_std ? " (exact std)" : "", zmax, zmax4, rse, rse4);
    /* unbiased up to the dropped tails (< 1e-3 here, far below the SE): each
     * estimate within 4 of its own reported SE */
    ck_assert_msg(zmax < 4 && zmax4 < 4, "max |z| %g, %g", zmax, zmax4);
    /* more noise draws: the noise part of the variance drops 4x, so the SE drops */
    ck_assert_msg(rse4 < 0.75 * rse, "SE J=4 %g vs J=1 %g", rse4, rse);
    sdflow_density_free(e);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}

START_TEST(test_liyan_vp) { liyan_case(SDFLOW_PROCESS_VP, 0); }
END_TEST
START_TEST(test_liyan_subvp) { liyan_case(SDFLOW_PROCESS_SUBVP, 0); }
END_TEST
START_TEST(test_liyan_ve) { liyan_case(SDFLOW_PROCESS_VE, 0); }
END_TEST
START_TEST(test_liyan_ve_exact_std) { liyan_case(SDFLOW_PROCESS_VE, 1); }
END_TEST
START_TEST(test_liyan_cosine) { liyan_case(SDFLOW_PROCESS_VP_COSINE, 0); }
END_TEST

/* The reported SE matches the spread of independent replicates (copies of
 * one point); collapsed strata make it conservative, never much smaller. */
START_TEST(test_liyan_se_calibrated)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    enum { N = 200 };
    double x1[2], x[2 * N], lp[N], se[N];
    points(m, 1, x1);
    for (int i = 0; i < N; i++)
        memcpy(x + 2 * i, x1, sizeof x1);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_LIYAN, p, m);
    sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 64);
    ck_assert_int_eq(sdflow_density_logpdf(e, N, x, lp, se), SDFLOW_OK);
    double sd = sqrt(vec_var(lp, N, 1)), rse = sqrt(vec_mean2(se, N));
    printf("density seed %u: Li-Yan K=64: sd of replicates %.4f, RMS reported SE %.4f\n", SEED, sd, rse);
    /* sd from 200 replicates has ~5% error (more with heavy tails); collapsed strata
     * make the SE conservative by the change of E F across a pair, here small */
    ck_assert_msg(rse > 0.8 * sd && rse < 1.4 * sd, "reported SE %g vs spread %g", rse, sd);
    sdflow_density_free(e);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- a wrong model is detected by every estimator --------------------------- */

START_TEST(test_wrong_model)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    enum { N = 64 };
    double x1[2], x[2 * N], lp[N], se[N], exact;
    points(m, 1, x1);
    for (int i = 0; i < N; i++)
        memcpy(x + 2 * i, x1, sizeof x1);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, p, m);
    ck_assert_int_eq(sdflow_density_logpdf(e, 1, x1, &exact, NULL), SDFLOW_OK);
    sdflow_density_free(e);
    for (int wrong = 0; wrong < 2; wrong++) {
        scaled sc = { m, p, wrong ? 1.3 : 1.0, 0 };
        sdflow_model *cb = scaled_model(ctx, &sc, 1);
        for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_LIYAN; kind++) {
            e = estimator(ctx, (sdflow_density_kind)kind, p, cb);
            if (kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON)
                sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 4);
            size_t n = kind == SDFLOW_DENSITY_PF_ODE_EXACT ? 1 : N;
            ck_assert_int_eq(sdflow_density_logpdf(e, n, x, lp, se), SDFLOW_OK);
            /* SE of the mean over the n independent replicates (0 for exact) */
            double mean = vec_mean(lp, n, 1), sem = n > 1 ? sqrt(vec_var(lp, n, 1) / (double)n) : 0;
            double dev = mean - exact, tol = 1e-4 + 4 * sem;
            printf("density seed %u: %s model, %s: deviation %.4f (tolerance %.4f)\n", SEED,
                   wrong ? "wrong (1.3 x score)" : "right", sdflow_density_kind_name((sdflow_density_kind)kind),
                   dev, tol);
            /* the right model passes, the wrong one fails the same check by a margin */
            if (wrong)
                ck_assert_msg(fabs(dev) > 3 * tol, "wrong model undetected: %g vs %g", dev, tol);
            else
                ck_assert_msg(fabs(dev) < tol, "right model off by %g (tol %g)", dev, tol);
            sdflow_density_free(e);
        }
        sdflow_model_free(cb);
    }
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- bits per dimension ---------------------------------------------------- */

START_TEST(test_bits_per_dim)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    static const double mean[2] = { 0.1, -0.2 }, cov[4] = { 0.09, 0.02, 0.02, 0.16 };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, mean, cov, &m), SDFLOW_OK);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_density *e = estimator(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, p, m);
    static const double k[6] = { 128, 100, 140, 90, 10, 250 };
    double xm[6], lp[3], bpd[3], bpd_dq[3], bpd_dq2[3];
    for (int s = 0; s < 2; s++) { /* data scale 2 ([-1, 1]) and 1 ([-1/2, 1/2]) */
        double a = s ? 1.0 : 2.0;
        ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_DATA_SCALE, a), SDFLOW_OK);
        for (int i = 0; i < 6; i++)
            xm[i] = a * ((k[i] + 0.5) / 256.0 - 0.5);
        ck_assert_int_eq(sdflow_density_logpdf(e, 3, xm, lp, NULL), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_bits_per_dim(e, 3, k, bpd, NULL), SDFLOW_OK);
        for (int i = 0; i < 3; i++) {
            /* by hand: -log p / (d ln 2) - log2 a + 8; same arithmetic up to rounding */
            double hand = -lp[i] / (2 * log(2.0)) - log2(a) + 8;
            ck_assert_double_eq_tol(bpd[i], hand, 1e-12);
        }
    }
    /* dequantization: deterministic per seed, and within a cell's variation of the midpoint value:
     * |d bpd| <= |grad log p| a/256 sqrt(d) / (d ln 2) with |grad log p| < 20 on these cells */
    ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_DEQUANTIZE, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_bits_per_dim(e, 3, k, bpd_dq, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_bits_per_dim(e, 3, k, bpd_dq2, NULL), SDFLOW_OK);
    ck_assert_mem_eq(bpd_dq, bpd_dq2, sizeof bpd_dq);
    for (int i = 0; i < 3; i++) {
        double dv = fabs(bpd_dq[i] - bpd[i]), bound = 20 * 1.0 / 256 * sqrt(2.0) / (2 * log(2.0));
        ck_assert_msg(dv > 0 && dv < bound, "dequantized change %g (bound %g)", dv, bound);
    }
    sdflow_density_free(e);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- determinism, progress, cancellation, NaN -------------------------------- */

static void run_split(sdflow_density_kind kind, int threads, int split, size_t n, const double *x, double *lp,
                      double *se)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, threads), SDFLOW_OK);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_SUBVP);
    sdflow_density *e = estimator(ctx, kind, p, m);
    if (kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON)
        sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 3);
    if (kind == SDFLOW_DENSITY_LIYAN)
        sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 16);
    size_t h = split ? n / 3 : n;
    ck_assert_int_eq(sdflow_density_logpdf(e, h, x, lp, se), SDFLOW_OK);
    if (split) {
        sdflow_density_set_u64(e, SDFLOW_OPT_FIRST_INDEX, h);
        ck_assert_int_eq(sdflow_density_logpdf(e, n - h, x + 2 * h, lp + h, se + h), SDFLOW_OK);
    }
    sdflow_density_free(e);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}

START_TEST(test_determinism)
{
    enum { N = 96 }; /* >= 64 so that the library loops use both threads */
    double x[2 * N], a[N], sa[N], b[N], sb[N];
    for (int i = 0; i < 2 * N; i++)
        x[i] = 2.0 * sin(0.37 * i + 0.1);
    for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_LIYAN; kind++) {
        run_split((sdflow_density_kind)kind, 1, 0, N, x, a, sa);
        run_split((sdflow_density_kind)kind, 2, 1, N, x, b, sb);
        ck_assert_mem_eq(a, b, sizeof a);
        ck_assert_mem_eq(sa, sb, sizeof sa);
    }
}
END_TEST

typedef struct prog {
    long calls, stop_at, last_done, last_total;
} prog;

static int prog_fn(void *u, long done, long total)
{
    prog *pr = u;
    pr->calls++;
    pr->last_done = done;
    pr->last_total = total;
    return pr->stop_at > 0 && pr->calls >= pr->stop_at;
}

START_TEST(test_progress_cancel_nan)
{
    sdflow_ctx *ctx = test_ctx(SEED);
    sdflow_model *m = gmm2(ctx);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    double x[6] = { 0.1, 0.2, -1.0, 0.4, 1.0, 1.0 }, lp[3], se[3];
    for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_LIYAN; kind++) {
        sdflow_density *e = estimator(ctx, (sdflow_density_kind)kind, p, m);
        if (kind != SDFLOW_DENSITY_LIYAN) {
            sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4);
            sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 10);
        } else {
            sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 10);
        }
        prog pr = { 0, 0, 0, 0 };
        sdflow_ctx_set_progress(ctx, prog_fn, &pr);
        ck_assert_int_eq(sdflow_density_logpdf(e, 3, x, lp, se), SDFLOW_OK);
        /* once per step (RK4) or per time point (Li-Yan) */
        ck_assert_int_eq(pr.calls, 10);
        ck_assert_int_eq(pr.last_done, 10);
        ck_assert_int_eq(pr.last_total, 10);
        prog stop = { 0, 3, 0, 0 };
        sdflow_ctx_set_progress(ctx, prog_fn, &stop);
        ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 3, x, lp, se), SDFLOW_E_CANCELLED, "cancelled");
        ck_assert_int_eq(stop.calls, 3);
        sdflow_ctx_set_progress(ctx, NULL, NULL);
        /* a model that returns NaN around sample 1 */
        scaled sc = { m, p, 1.0, 1 };
        sdflow_model *cb = scaled_model(ctx, &sc, 1);
        sdflow_density_set_model(e, cb);
        x[2] = 1e4;
        ck_assert_status_msg(ctx, sdflow_density_logpdf(e, 3, x, lp, se), SDFLOW_E_NUMERIC, "sample 1");
        x[2] = -1.0;
        sdflow_density_free(e);
        sdflow_model_free(cb);
    }
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------- */

/* Score of N(0, I) data under VP (alpha^2 + sigma^2 = 1): -x. Allocates nothing. */
static int vp_std_score(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)t;
    (void)u;
    for (size_t i = 0; i < n * d; i++)
        out[i] = -x[i];
    return 0;
}

static sdflow_status tiny_run(const sdflow_allocator *a, sdflow_density_kind kind, int fd)
{
    sdflow_ctx *ctx = NULL;
    sdflow_model *m = NULL, *cb = NULL;
    sdflow_process *p = NULL;
    sdflow_density *e = NULL;
    static const double w[1] = { 1.0 }, mu[2] = { 0.2, -0.1 }, cov[4] = { 1.0, 0.3, 0.3, 0.5 };
    double x[4] = { 0.1, 0.2, -0.3, 0.4 }, lp[2], se[2], lev[4] = { 1, 2, 3, 4 };
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (!st)
        st = sdflow_model_create_gmm(ctx, 1, 2, w, mu, cov, &m);
    if (!st)
        st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p);
    if (!st && fd)
        st = sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, vp_std_score, NULL, &cb);
    if (!st)
        st = sdflow_density_create(ctx, kind, &e);
    if (!st) {
        sdflow_density_set_process(e, p);
        sdflow_density_set_model(e, fd ? cb : m);
        if (kind == SDFLOW_DENSITY_LIYAN) {
            sdflow_density_set_int(e, SDFLOW_OPT_LIYAN_TIMES, 3);
            sdflow_density_set_int(e, SDFLOW_OPT_DEQUANTIZE, 1);
        } else {
            sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4);
            sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 2);
            sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 2);
        }
        st = sdflow_density_logpdf(e, 2, x, lp, se);
        if (!st)
            st = sdflow_density_bits_per_dim(e, 2, lev, lp, se);
    }
    sdflow_density_free(e);
    sdflow_model_free(cb);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

static sdflow_status tiny_exact(const sdflow_allocator *a) { return tiny_run(a, SDFLOW_DENSITY_PF_ODE_EXACT, 0); }
static sdflow_status tiny_exact_fd(const sdflow_allocator *a) { return tiny_run(a, SDFLOW_DENSITY_PF_ODE_EXACT, 1); }
static sdflow_status tiny_hutch(const sdflow_allocator *a) { return tiny_run(a, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, 0); }
static sdflow_status tiny_hutch_fd(const sdflow_allocator *a)
{
    return tiny_run(a, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, 1);
}
static sdflow_status tiny_liyan(const sdflow_allocator *a) { return tiny_run(a, SDFLOW_DENSITY_LIYAN, 0); }

START_TEST(test_alloc_failures)
{
    check_all_alloc_failures(tiny_exact);
    check_all_alloc_failures(tiny_exact_fd);
    check_all_alloc_failures(tiny_hutch);
    check_all_alloc_failures(tiny_hutch_fd);
    check_all_alloc_failures(tiny_liyan);
}
END_TEST

Suite *density_suite(void)
{
    Suite *s = suite_create("density");
    TCase *api = tcase_create("api");
    tcase_set_timeout(api, 60);
    tcase_add_test(api, test_api);
    tcase_add_test(api, test_determinism);
    tcase_add_test(api, test_progress_cancel_nan);
    tcase_add_test(api, test_alloc_failures);
    tcase_add_test(api, test_bits_per_dim);
    suite_add_tcase(s, api);
    TCase *num = tcase_create("numerics");
    tcase_set_timeout(num, 120);
    tcase_add_test(num, test_exact_2d_vp);
    tcase_add_test(num, test_exact_2d_subvp);
    tcase_add_test(num, test_exact_2d_ve);
    tcase_add_test(num, test_exact_8d_vp);
    tcase_add_test(num, test_exact_8d_subvp);
    tcase_add_test(num, test_exact_8d_ve);
    tcase_add_test(num, test_exact_methods);
    tcase_add_test(num, test_hutchinson);
    tcase_add_test(num, test_hutchinson_quadform_matches_jacobian);
    tcase_add_test(num, test_liyan_vp);
    tcase_add_test(num, test_liyan_subvp);
    tcase_add_test(num, test_liyan_ve);
    tcase_add_test(num, test_liyan_ve_exact_std);
    tcase_add_test(num, test_liyan_cosine);
    tcase_add_test(num, test_liyan_se_calibrated);
    tcase_add_test(num, test_wrong_model);
    suite_add_tcase(s, num);
    return s;
}
