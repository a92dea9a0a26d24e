/* SPDX-License-Identifier: MIT */
/* Kernel (empirical) score model: exp accuracy, exactness against a naive
 * reference, derivatives by finite differences, shard merge, stability at
 * extreme sigma, thread determinism, allocation failures, bad input. */
#include <cblas.h>
#include <float.h>
#include <pthread.h>
#include "testutil.h"

/* Naive reference: softmax over -|x - alpha y_j|^2 / (2 sigma^2) with libm exp,
 * accumulated in long double; writes score (d) and log-density. */
static void naive(size_t m, size_t d, const double *y, const double *x, double alpha, double sigma, double *score,
                  double *logp)
{
    long double mx = -INFINITY, s = 0, v[64] = { 0 };
    for (size_t j = 0; j < m; j++) {
        long double d2 = 0;
        for (size_t k = 0; k < d; k++)
            d2 += (x[k] - alpha * y[j * d + k]) * (x[k] - alpha * y[j * d + k]);
        long double l = -d2 / (2.0L * sigma * sigma);
        mx = l > mx ? l : mx;
    }
    for (size_t j = 0; j < m; j++) {
        long double d2 = 0;
        for (size_t k = 0; k < d; k++)
            d2 += (x[k] - alpha * y[j * d + k]) * (x[k] - alpha * y[j * d + k]);
        long double w = expl(-d2 / (2.0L * sigma * sigma) - mx);
        s += w;
        for (size_t k = 0; k < d; k++)
            v[k] += w * y[j * d + k];
    }
    for (size_t k = 0; k < d; k++)
        score[k] = (double)((alpha * v[k] / s - x[k]) / ((long double)sigma * sigma));
    long double two_pi = 6.28318530717958647692528676655900577L;
    *logp = (double)(mx + logl(s) - logl((long double)m) - 0.5L * (long double)d * logl(two_pi * sigma * sigma));
}

static double *normals(sdflow_ctx *ctx, uint64_t stream, size_t n, size_t d, double scale, double shift)
{
    double *a = malloc(n * d * sizeof *a);
    ck_assert_int_eq(sdflow_rng_normal(ctx, stream, 0, n, d, a), SDFLOW_OK);
    for (size_t i = 0; i < n * d; i++)
        a[i] = scale * a[i] + shift;
    return a;
}

static double max_rel(const double *a, const double *b, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / (1e-300 + fmax(fabs(a[i]), fabs(b[i])));
        e = r > e ? r : e;
    }
    return e;
}

START_TEST(test_kernel_exp_accuracy)
{
    /* own vectorizable exp vs glibc exp (itself < 1 ulp): <= 2 ulp on [-708, 709] */
    size_t n = 400001;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), worst = 0, at = 0;
    for (size_t i = 0; i < n; i++)
        x[i] = -708.0 + 1417.0 * (double)i / (double)(n - 1) + 1e-7 * (double)(i % 7);
    x[0] = -708.0;
    x[1] = 0.0;
    x[2] = -0x1p-30;
    x[3] = 0x1p-30;
    ck_assert_int_eq(sdflow_kernel_exp(n, x, y), SDFLOW_OK);
    for (size_t i = 0; i < n; i++) {
        if (x[i] > 709.0)
            continue;
        double ref = exp(x[i]), ulp = nextafter(ref, INFINITY) - ref;
        double e = fabs(y[i] - ref) / ulp;
        if (e > worst) {
            worst = e;
            at = x[i];
        }
    }
    printf("kernel exp: max error %.3f ulp at x = %.17g\n", worst, at);
    ck_assert_msg(worst <= 2.0, "exp error %.3f ulp at %.17g", worst, at);
    /* below the range: exactly 0, also for -inf */
    double lo[3] = { -708.5, -1e300, -INFINITY }, out[3];
    ck_assert_int_eq(sdflow_kernel_exp(3, lo, out), SDFLOW_OK);
    for (int i = 0; i < 3; i++)
        ck_assert(out[i] == 0.0);
    ck_assert_int_eq(sdflow_kernel_exp(1, NULL, out), SDFLOW_E_INVALID);
    free(x);
    free(y);
}
END_TEST

/* Blocked results equal the naive sum for fused (d = 3) and GEMM (d = 20)
 * paths, tiny and default blocks, with and without a process. */
START_TEST(test_kernel_matches_naive)
{
    sdflow_ctx *ctx = test_ctx(11);
    sdflow_process *vp;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp), SDFLOW_OK);
    size_t dims[2] = { 3, 20 }, m = 137, n = 41;
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        double *y = normals(ctx, 1, m, d, 1.5, 0.3), *x = normals(ctx, 2, n, d, 2.0, 0.0);
        double *t = malloc(n * sizeof *t), *sc = malloc(n * d * sizeof *sc), *lp = malloc(n * sizeof *lp);
        double *rs = malloc(n * d * sizeof *rs), *rl = malloc(n * sizeof *rl);
        sdflow_model *km;
        ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
        for (int blocks = 0; blocks < 2; blocks++) {
            if (blocks) {
                ck_assert_int_eq(sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Q, 3), SDFLOW_OK);
                ck_assert_int_eq(sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Y, 5), SDFLOW_OK);
            }
            for (int proc = 0; proc < 2; proc++) {
                const sdflow_process *p = proc ? vp : NULL;
                for (size_t i = 0; i < n; i++)
                    t[i] = proc ? 0.05 + 0.9 * (double)i / (double)n : 0.3 + 0.05 * (double)i;
                ck_assert_int_eq(sdflow_model_score(km, p, n, x, t, sc), SDFLOW_OK);
                ck_assert_int_eq(sdflow_model_logpdf(km, p, n, x, t, lp), SDFLOW_OK);
                for (size_t i = 0; i < n; i++) {
                    double a = 1, sg = t[i];
                    if (proc) {
                        ck_assert_int_eq(sdflow_process_coefficients(vp, 1, t + i, &a, &sg, NULL, NULL), SDFLOW_OK);
                    }
                    naive(m, d, y, x + i * d, a, sg, rs + i * d, rl + i);
                }
                /* rounding only: the GEMM expansion loses ~u (|x|^2 + |y|^2) / sigma^2 in a logit */
                double es = max_rel(sc, rs, n * d), el = max_rel(lp, rl, n);
                ck_assert_msg(es < 1e-10 && el < 1e-12, "d=%zu blocks=%d proc=%d: score err %g logp err %g", d,
                              blocks, proc, es, el);
            }
        }
        long v;
        ck_assert_int_eq(sdflow_model_get_int(km, SDFLOW_OPT_BLOCK_Y, &v), SDFLOW_OK);
        ck_assert_int_eq(v, 5);
        sdflow_model_free(km);
        free(y), free(x), free(t), free(sc), free(lp), free(rs), free(rl);
    }
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Score = gradient of the log-density; Jacobian = gradient of the score;
 * divergence = its trace. Central differences, h = 1e-5: truncation
 * O(h^2 f''') ~ 1e-10 and rounding ~ 1e-16 |f| / h ~ 1e-10 at these scales. */
START_TEST(test_kernel_derivatives_fd)
{
    sdflow_ctx *ctx = test_ctx(12);
    sdflow_process *vp;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp), SDFLOW_OK);
    size_t d = 3, m = 60, n = 5;
    double *y = normals(ctx, 3, m, d, 1.0, 0.0), *x = normals(ctx, 4, n, d, 1.2, 0.0);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
    for (int proc = 0; proc < 2; proc++) {
        const sdflow_process *p = proc ? vp : NULL;
        double t = proc ? 0.3 : 0.6, h = 1e-5;
        for (size_t i = 0; i < n; i++) {
            double s[3], J[9], div, xp[3], xm[3], lp, lm, sp[3], sm[3];
            ck_assert_int_eq(sdflow_model_score(km, p, 1, x + i * d, &t, s), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(km, p, 1, x + i * d, &t, J), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_divergence(km, p, 1, x + i * d, &t, &div), SDFLOW_OK);
            double tr = 0;
            for (size_t b = 0; b < d; b++) {
                memcpy(xp, x + i * d, sizeof xp);
                memcpy(xm, x + i * d, sizeof xm);
                xp[b] += h;
                xm[b] -= h;
                ck_assert_int_eq(sdflow_model_logpdf(km, p, 1, xp, &t, &lp), SDFLOW_OK);
                ck_assert_int_eq(sdflow_model_logpdf(km, p, 1, xm, &t, &lm), SDFLOW_OK);
                double fd = (lp - lm) / (2 * h);
                ck_assert_msg(fabs(fd - s[b]) < 1e-6 * (1 + fabs(s[b])), "score[%zu] %g vs FD %g", b, s[b], fd);
                ck_assert_int_eq(sdflow_model_score(km, p, 1, xp, &t, sp), SDFLOW_OK);
                ck_assert_int_eq(sdflow_model_score(km, p, 1, xm, &t, sm), SDFLOW_OK);
                for (size_t a = 0; a < d; a++) {
                    double fdj = (sp[a] - sm[a]) / (2 * h);
                    ck_assert_msg(fabs(fdj - J[a * d + b]) < 1e-5 * (1 + fabs(J[a * d + b])), "J[%zu][%zu] %g vs FD %g",
                                  a, b, J[a * d + b], fdj);
                    ck_assert(fabs(J[a * d + b] - J[b * d + a]) < 1e-12 * (1 + fabs(J[a * d + b]))); /* conservative */
                }
                tr += J[b * d + b];
            }
            ck_assert_msg(fabs(div - tr) < 1e-12 * (1 + fabs(tr)), "divergence %g vs trace %g", div, tr);
        }
    }
    sdflow_model_free(km);
    sdflow_process_free(vp);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Y split into 3 unequal shards: partial triples merged in two different
 * orders finalize to the unsharded score / log-density within 1e-12
 * (rounding of a few rescalings); a wrong m_total is caught by the same check. */
START_TEST(test_kernel_shards_merge)
{
    sdflow_ctx *ctx = test_ctx(13);
    size_t dims[2] = { 2, 21 }, m = 500, n = 64, cut[4] = { 0, 70, 321, 500 };
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        double *y = normals(ctx, 5, m, d, 1.0, 3.0), *x = normals(ctx, 6, n, d, 1.5, 3.0), *t = malloc(n * 8);
        for (size_t i = 0; i < n; i++)
            t[i] = 0.2 + 0.01 * (double)i;
        double *mx[3], *s[3], *v[3], *ref = malloc(n * d * 8), *refl = malloc(n * 8);
        double *sc = malloc(n * d * 8), *lp = malloc(n * 8), *mean = malloc(n * d * 8);
        sdflow_model *all;
        ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &all), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_score(all, NULL, n, x, t, ref), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_logpdf(all, NULL, n, x, t, refl), SDFLOW_OK);
        for (int k = 0; k < 3; k++) {
            sdflow_model *sh;
            ck_assert_int_eq(sdflow_model_create_kernel(ctx, cut[k + 1] - cut[k], d, y + cut[k] * d, &sh), SDFLOW_OK);
            mx[k] = malloc(n * 8), s[k] = malloc(n * 8), v[k] = malloc(n * d * 8);
            ck_assert_int_eq(sdflow_model_kernel_partial(sh, NULL, n, x, t, mx[k], s[k], v[k]), SDFLOW_OK);
            sdflow_model_free(sh);
        }
        double err = 0, errl = 0;
        for (int order = 0; order < 2; order++) {
            double *a0 = malloc(n * 8), *a1 = malloc(n * 8), *a2 = malloc(n * d * 8);
            int first = order ? 2 : 0, second = 1, third = order ? 0 : 2;
            memcpy(a0, mx[first], n * 8), memcpy(a1, s[first], n * 8), memcpy(a2, v[first], n * d * 8);
            ck_assert_int_eq(sdflow_kernel_merge(ctx, n, d, a0, a1, a2, mx[second], s[second], v[second]), SDFLOW_OK);
            ck_assert_int_eq(sdflow_kernel_merge(ctx, n, d, a0, a1, a2, mx[third], s[third], v[third]), SDFLOW_OK);
            ck_assert_int_eq(sdflow_kernel_finalize(ctx, NULL, n, d, m, x, t, a0, a1, a2, sc, mean, lp), SDFLOW_OK);
            for (size_t i = 0; i < n * d; i++)
                err = fmax(err, fabs(sc[i] - ref[i]) / (1 + fabs(ref[i])));
            for (size_t i = 0; i < n; i++)
                errl = fmax(errl, fabs(lp[i] - refl[i]) / (1 + fabs(refl[i])));
            /* a deliberately wrong total count shifts the log-density by log(2) */
            ck_assert_int_eq(sdflow_kernel_finalize(ctx, NULL, n, d, 2 * m, x, t, a0, a1, a2, NULL, NULL, lp),
                             SDFLOW_OK);
            ck_assert(fabs(lp[0] - refl[0]) > 0.5);
            free(a0), free(a1), free(a2);
        }
        printf("kernel shards d=%zu: max score diff %.3g, log-density diff %.3g\n", d, err, errl);
        ck_assert_msg(err <= 1e-12 && errl <= 1e-12, "sharded vs unsharded: %g, %g", err, errl);
        for (int k = 0; k < 3; k++)
            free(mx[k]), free(s[k]), free(v[k]);
        sdflow_model_free(all);
        free(y), free(x), free(t), free(ref), free(refl), free(sc), free(lp), free(mean);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* sigma = 1e-3 and 1e3 relative to data of unit scale, placed far from the
 * origin (offset 1e4): finite, and equal to the limits nearest-neighbour
 * score (y_nn - x)/sigma^2 and (mean(Y) - x)/sigma^2 + O(sigma^-4). */
START_TEST(test_kernel_extreme_sigma)
{
    sdflow_ctx *ctx = test_ctx(14);
    size_t dims[2] = { 2, 20 }, m = 300, n = 20;
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        double *y = normals(ctx, 7, m, d, 1.0, 1e4), *x = malloc(n * d * 8), *sc = malloc(n * d * 8);
        double *lp = malloc(n * 8), t[20];
        sdflow_model *km;
        ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
        double *z = normals(ctx, 8, n, d, 1e-4, 0.0);
        for (size_t i = 0; i < n; i++) /* queries: 1e-4 away from target i (sigma = 1e-3 nearest-neighbour regime) */
            for (size_t k = 0; k < d; k++)
                x[i * d + k] = y[i * d + k] + z[i * d + k];
        for (size_t i = 0; i < n; i++)
            t[i] = 1e-3;
        ck_assert_int_eq(sdflow_model_score(km, NULL, n, x, t, sc), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_logpdf(km, NULL, n, x, t, lp), SDFLOW_OK);
        for (size_t i = 0; i < n * d; i++) {
            double want = (y[i] - x[i]) / 1e-6; /* other targets are >> 40 sigma away: weight < e^-800 */
            ck_assert_msg(fabs(sc[i] - want) < 1e-6 * fabs(want) + 1e-3, "sigma=1e-3: %g vs %g", sc[i], want);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert(isfinite(lp[i]));
        double mean[20] = { 0 };
        for (size_t j = 0; j < m; j++)
            for (size_t k = 0; k < d; k++)
                mean[k] += y[j * d + k] / (double)m;
        for (size_t i = 0; i < n; i++)
            t[i] = 1e3;
        ck_assert_int_eq(sdflow_model_score(km, NULL, n, x, t, sc), SDFLOW_OK);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < d; k++) {
                double want = (mean[k] - x[i * d + k]) / 1e6; /* next term Cov (x - mean)/sigma^4 ~ 1e-12 */
                ck_assert_msg(fabs(sc[i * d + k] - want) < 1e-11, "sigma=1e3: %g vs %g", sc[i * d + k], want);
            }
        sdflow_model_free(km);
        free(y), free(x), free(sc), free(lp), free(z);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_kernel_threads_identical)
{
    size_t dims[2] = { 2, 24 }, m = 700, n = 300;
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        double *out[2];
        for (int th = 0; th < 2; th++) {
            sdflow_ctx *ctx = test_ctx(15);
            ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, th + 1), SDFLOW_OK);
            double *y = normals(ctx, 9, m, d, 1.0, 0.0), *x = normals(ctx, 10, n, d, 1.0, 0.0), t[300];
            for (size_t i = 0; i < n; i++)
                t[i] = 0.4;
            sdflow_model *km;
            ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Q, 64), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Y, 128), SDFLOW_OK);
            out[th] = malloc(n * (d + 1) * 8);
            openblas_set_num_threads(2); /* neither BLAS pool mode may leave OpenBLAS's count changed */
            ck_assert_int_eq(sdflow_model_score(km, NULL, n, x, t, out[th]), SDFLOW_OK);
            ck_assert_int_eq(openblas_get_num_threads(), 2);
            ck_assert_int_eq(sdflow_model_logpdf(km, NULL, n, x, t, out[th] + n * d), SDFLOW_OK);
            sdflow_model_free(km);
            free(y), free(x);
            sdflow_ctx_free(ctx);
        }
        ck_assert_msg(memcmp(out[0], out[1], n * (d + 1) * 8) == 0, "d=%zu: 1 vs 2 threads differ", d);
        free(out[0]), free(out[1]);
    }
}
END_TEST

/* SDFLOW_CTX_BLAS_POOL (core/blas.c): HOST (default) never changes
 * OpenBLAS's thread count; SINGLE pins it to 1 during the GEMM path, so the
 * bits do not depend on it (they equal an OpenBLAS-1-thread run; at this
 * size HOST with 2 OpenBLAS threads measured a 1-ulp difference), and
 * restores it. */
START_TEST(test_kernel_blas_pool)
{
    enum { M = 3000, N = 1000, D = 64 };
    long v = -1;
    sdflow_ctx *ctx = test_ctx(33);
    ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_BLAS_POOL, &v), SDFLOW_OK);
    ck_assert_int_eq(v, SDFLOW_BLAS_POOL_HOST);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_BLAS_POOL, 2), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
    double *y = normals(ctx, 3, M, D, 0.3, 0.0), *x = normals(ctx, 4, N, D, 0.3, 0.0), *t = malloc(N * sizeof *t);
    double *out[3];
    for (size_t i = 0; i < N; i++)
        t[i] = 0.3 + 0.001 * (double)i;
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, M, D, y, &km), SDFLOW_OK);
    int blas[3] = { 1, 2, 2 }, pool[3] = { SDFLOW_BLAS_POOL_HOST, SDFLOW_BLAS_POOL_SINGLE, SDFLOW_BLAS_POOL_HOST };
    for (int r = 0; r < 3; r++) {
        out[r] = malloc(N * D * sizeof(double));
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_BLAS_POOL, pool[r]), SDFLOW_OK);
        ck_assert_int_eq(sdflow_ctx_get_int(ctx, SDFLOW_CTX_BLAS_POOL, &v), SDFLOW_OK);
        ck_assert_int_eq(v, pool[r]);
        openblas_set_num_threads(blas[r]);
        ck_assert_int_eq(sdflow_model_score(km, NULL, N, x, t, out[r]), SDFLOW_OK);
        ck_assert_int_eq(openblas_get_num_threads(), blas[r]);
    }
    ck_assert_msg(memcmp(out[0], out[1], N * D * sizeof(double)) == 0, "SINGLE at 2 OpenBLAS threads != 1 thread");
    double worst = 0; /* HOST at 2 OpenBLAS threads: rounding-level differences only */
    for (size_t i = 0; i < N * D; i++)
        worst = fmax(worst, fabs(out[2][i] - out[0][i]) / (1e-300 + fabs(out[0][i])));
    printf("blas pool: HOST at 2 OpenBLAS threads vs 1: max rel diff %.3g (SINGLE: identical)\n", worst);
    ck_assert_msg(worst < 1e-10, "HOST result differs by %g", worst);
    sdflow_model_free(km);
    for (int r = 0; r < 3; r++)
        free(out[r]);
    free(y), free(x), free(t);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Kernel models on the GEMM path used from two threads at once (each with
 * its own ctx and model): results equal a one-thread evaluation bit for bit,
 * and OpenBLAS's thread count is the host's once both are done. */
typedef struct eval_job {
    size_t m, n, d;
    uint64_t stream;
    int reps;
    double *out;
} eval_job;

static void *eval_job_run(void *arg)
{
    eval_job *j = arg;
    sdflow_ctx *ctx = test_ctx(21);
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2);
    double *y = normals(ctx, j->stream, j->m, j->d, 1.0, 0.0), *x = normals(ctx, j->stream + 1, j->n, j->d, 1.0, 0.0);
    double *t = malloc(j->n * sizeof *t);
    for (size_t i = 0; i < j->n; i++)
        t[i] = 0.7;
    sdflow_model *km = NULL;
    if (sdflow_model_create_kernel(ctx, j->m, j->d, y, &km) == SDFLOW_OK) {
        sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Q, 32);
        for (int r = 0; r < j->reps; r++)
            if (sdflow_model_score(km, NULL, j->n, x, t, j->out) != SDFLOW_OK)
                j->out[0] = NAN;
    }
    sdflow_model_free(km);
    free(y), free(x), free(t);
    sdflow_ctx_free(ctx);
    return NULL;
}

START_TEST(test_kernel_concurrent_gemm_path)
{
    enum { M = 400, N = 200, D = 24 };
    eval_job jobs[2], ref[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (eval_job){ M, N, D, 40 + 2 * (uint64_t)k, 30, malloc(N * D * sizeof(double)) };
        ref[k] = jobs[k];
        ref[k].reps = 1;
        ref[k].out = malloc(N * D * sizeof(double));
        eval_job_run(&ref[k]);
    }
    openblas_set_num_threads(2);
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, eval_job_run, &jobs[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ck_assert_int_eq(openblas_get_num_threads(), 2);
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(memcmp(jobs[k].out, ref[k].out, N * D * sizeof(double)) == 0, "thread %d result differs", k);
        free(jobs[k].out), free(ref[k].out);
    }
}
END_TEST

/* One kernel model evaluated by two threads at once (distinct samplers
 * sharing a model do that): the cached workspace serves one call, a
 * concurrent call works in its own block, and every result equals the
 * serial one bit for bit. With one shared workspace (the model before
 * 0.x: "must not be evaluated concurrently") the threads overwrite each
 * other's query rows and this fails. */
typedef struct shared_job {
    sdflow_model *km;
    const double *x, *t;
    size_t n, d;
    int reps, bad;
    double *out;
    const double *ref;
} shared_job;

static void *shared_job_run(void *arg)
{
    shared_job *j = arg;
    for (int r = 0; r < j->reps; r++) {
        if (sdflow_model_score(j->km, NULL, j->n, j->x, j->t, j->out) != SDFLOW_OK ||
            memcmp(j->out, j->ref, j->n * j->d * sizeof(double)) != 0)
            j->bad++;
    }
    return NULL;
}

START_TEST(test_kernel_shared_model_concurrent)
{
    enum { M = 3000, N = 300 };
    static const size_t dims[2] = { 2, 16 }; /* fused and GEMM paths */
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        sdflow_ctx *ctx = test_ctx(23);
        double *y = normals(ctx, 50, M, d, 1.0, 0.0), *x[2], *ref[2], *out[2], t[N];
        for (size_t i = 0; i < N; i++)
            t[i] = 0.3 + 0.001 * (double)i;
        sdflow_model *km = NULL;
        ck_assert_int_eq(sdflow_model_create_kernel(ctx, M, d, y, &km), SDFLOW_OK);
        shared_job jobs[2];
        for (int k = 0; k < 2; k++) {
            x[k] = normals(ctx, 60 + (uint64_t)k, N, d, 1.0, 0.0);
            ref[k] = malloc(N * d * sizeof(double));
            out[k] = malloc(N * d * sizeof(double));
            ck_assert_int_eq(sdflow_model_score(km, NULL, N, x[k], t, ref[k]), SDFLOW_OK);
            jobs[k] = (shared_job){ km, x[k], t, N, d, 40, 0, out[k], ref[k] };
        }
        pthread_t th[2];
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(pthread_create(&th[k], NULL, shared_job_run, &jobs[k]), 0);
        for (int k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++) {
            ck_assert_msg(jobs[k].bad == 0, "d=%zu thread %d: %d of 40 concurrent evaluations differ", d, k,
                          jobs[k].bad);
            free(x[k]), free(ref[k]), free(out[k]);
        }
        sdflow_model_free(km);
        free(y);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

/* The derivative ops used by likelihood estimators (score + divergence in
 * one pass, Jacobian-vector products): on one fixed RK4 grid the PF-ODE
 * log-density with the analytic divergence equals the one with central
 * differences (error ~1e-10 per evaluation, 40 x 4 evaluations: far inside
 * 1e-6), for exact traces and for Hutchinson probes (same probes). */
START_TEST(test_kernel_derivative_ops_in_likelihood)
{
    sdflow_ctx *ctx = test_ctx(17);
    sdflow_process *vp;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp), SDFLOW_OK);
    size_t m = 40, d = 2, n = 3;
    double *y = normals(ctx, 11, m, d, 1.0, 0.0), *x = normals(ctx, 12, n, d, 1.0, 0.0);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
    sdflow_density_kind kinds[2] = { SDFLOW_DENSITY_PF_ODE_EXACT, SDFLOW_DENSITY_PF_ODE_HUTCHINSON };
    for (int k = 0; k < 2; k++) {
        double lp[2][3];
        for (int method = 0; method < 2; method++) {
            sdflow_density *e;
            ck_assert_int_eq(sdflow_density_create(ctx, kinds[k], &e), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_process(e, vp), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_model(e, km), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_DIVERGENCE,
                                                    method ? SDFLOW_DIV_FINITE_DIFF : SDFLOW_DIV_ANALYTIC),
                             SDFLOW_OK);
            /* same fixed RK4 grid for both methods, away from the stiff t -> 0 end */
            ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, 0.3), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 40), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_logpdf(e, n, x, lp[method], NULL), SDFLOW_OK);
            sdflow_density_free(e);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(fabs(lp[0][i] - lp[1][i]) < 1e-6 * (1 + fabs(lp[1][i])),
                          "kind %d: analytic %.12g vs FD %.12g", (int)kinds[k], lp[0][i], lp[1][i]);
    }
    sdflow_model_free(km);
    sdflow_process_free(vp);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status kernel_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double y[40], x[10], t[5] = { 0.5, 0.5, 0.5, 0.5, 0.5 }, out[50];
    for (int i = 0; i < 40; i++)
        y[i] = sin(i);
    for (int i = 0; i < 10; i++)
        x[i] = cos(i);
    sdflow_model *km = NULL;
    size_t d = 2;
    st = sdflow_model_create_kernel(ctx, 20, d, y, &km);
    if (!st)
        st = sdflow_model_score(km, NULL, 5, x, t, out);
    if (!st)
        st = sdflow_model_jacobian(km, NULL, 5, x, t, out);
    sdflow_model_free(km);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_kernel_alloc_failures) { check_all_alloc_failures(kernel_workload); }
END_TEST

START_TEST(test_kernel_bad_input)
{
    sdflow_ctx *ctx = test_ctx(16);
    double y[6] = { 0, 1, 2, 3, 4, 5 }, x[2] = { 0, 0 }, t = 0.5, out[4];
    sdflow_model *km = NULL, *g = NULL;
    ck_assert_status_msg(ctx, sdflow_model_create_kernel(ctx, 3, 2, NULL, &km), SDFLOW_E_INVALID, "y is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_kernel(ctx, 0, 2, y, &km), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_model_create_kernel(ctx, 3, 0, y, &km), SDFLOW_E_INVALID, "d=0");
    y[3] = NAN;
    ck_assert_status_msg(ctx, sdflow_model_create_kernel(ctx, 3, 2, y, &km), SDFLOW_E_INVALID, "y[1][1] is NaN");
    ck_assert(km == NULL);
    y[3] = 3;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 3, 2, y, &km), SDFLOW_OK);
    ck_assert_str_eq(sdflow_model_kind_name(sdflow_model_get_kind(km)), "kernel");
    ck_assert_status_msg(ctx, sdflow_model_set_int(km, SDFLOW_OPT_BLOCK_Q, 0), SDFLOW_E_INVALID, "block_q");
    ck_assert_int_eq(sdflow_model_set_int(km, SDFLOW_OPT_STEPS, 3), SDFLOW_E_UNSUPPORTED);
    t = -1;
    ck_assert_int_eq(sdflow_model_score(km, NULL, 1, x, &t, out), SDFLOW_E_INVALID);
    t = 0.5;
    double mx = -INFINITY, s = 0, v[2] = { 0, 0 };
    ck_assert_status_msg(ctx, sdflow_kernel_finalize(ctx, NULL, 1, 2, 3, x, &t, &mx, &s, v, out, NULL, NULL),
                         SDFLOW_E_INVALID, "partial triple 0 is empty");
    s = NAN;
    ck_assert_status_msg(ctx, sdflow_kernel_merge(ctx, 1, 2, &mx, &s, v, &mx, &s, v), SDFLOW_E_INVALID,
                         "partial triple 0");
    double w[1] = { 1 }, mu[2] = { 0, 0 }, cov[4] = { 1, 0, 0, 1 };
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 1, 2, w, mu, cov, &g), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_model_kernel_partial(g, NULL, 1, x, &t, &mx, &s, v), SDFLOW_E_INVALID,
                         "need a kernel model");
    ck_assert_status_msg(ctx, sdflow_model_kernel_partial(km, NULL, 1, x, &t, NULL, &s, v), SDFLOW_E_INVALID,
                         "mx is NULL");
    sdflow_model_free(g);
    sdflow_model_free(km);
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *kernel_suite(void)
{
    Suite *s = suite_create("kernel");
    TCase *num = tcase_create("numerics");
    tcase_set_timeout(num, 60);
    tcase_add_test(num, test_kernel_exp_accuracy);
    tcase_add_test(num, test_kernel_matches_naive);
    tcase_add_test(num, test_kernel_derivatives_fd);
    tcase_add_test(num, test_kernel_shards_merge);
    tcase_add_test(num, test_kernel_extreme_sigma);
    tcase_add_test(num, test_kernel_derivative_ops_in_likelihood);
    suite_add_tcase(s, num);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_kernel_alloc_failures);
    tcase_add_test(api, test_kernel_blas_pool);
    tcase_add_test(api, test_kernel_bad_input);
    suite_add_tcase(s, api);
    return s;
}

/* The multi-threaded tests apart: valgrind (make valgrind) runs threads one
 * at a time, so it says nothing about races there and makes these evaluations
 * ~50x slower; the native and ASan runs keep them. */
Suite *kernel_threads_suite(void)
{
    Suite *s = suite_create("kernel_threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kernel_threads_identical);
    tcase_add_test(tc, test_kernel_concurrent_gemm_path);
    tcase_add_test(tc, test_kernel_shared_model_concurrent);
    suite_add_tcase(s, tc);
    return s;
}
