/* SPDX-License-Identifier: MIT */
/* Two-sample metrics: Gaussian closed forms and variances of algorithms.md
 * §13, exact agreement with naive O(N^2) references, invariances, thread
 * independence, allocation failures and bad input. */
#include "testutil.h"

#define PI 3.14159265358979323846

/* n x d sample of N(mu, diag(s^2)); mu, s of length d (s NULL: 1). */
static double *gauss_sample(sdflow_ctx *ctx, uint64_t stream, size_t n, size_t d, const double *mu, const double *s)
{
    double *x = malloc(n * d * sizeof(double));
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(sdflow_rng_normal(ctx, stream, 0, n, d, x), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d; k++)
            x[i * d + k] = (mu ? mu[k] : 0) + (s ? s[k] : 1) * x[i * d + k];
    return x;
}

static double d2(const double *a, const double *b, size_t d)
{
    double s = 0;
    for (size_t k = 0; k < d; k++)
        s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
}

/* Naive U-statistic: -U for the distance kernel (gamma 0), U for exp(-gamma d2). */
static double naive_u(size_t m, size_t n, size_t d, const double *x, const double *y, double gamma)
{
    double sxx = 0, syy = 0, sxy = 0;
#define K(a, b) (gamma > 0 ? exp(-gamma * d2(a, b, d)) : sqrt(d2(a, b, d)))
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            if (i != j)
                sxx += K(x + i * d, x + j * d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j)
                syy += K(y + i * d, y + j * d);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            sxy += K(x + i * d, y + j * d);
#undef K
    double u = sxx / (double)(m * (m - 1)) + syy / (double)(n * (n - 1)) - 2 * sxy / (double)(m * n);
    return gamma > 0 ? u : -u;
}

static double relerr(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/* kappa(delta, V) of §13.1 for diagonal V (d entries). */
static double kappa(const double *delta, const double *v, size_t d, double l)
{
    double r = 1;
    for (size_t k = 0; k < d; k++)
        r *= exp(-0.5 * delta[k] * delta[k] / (l * l + v[k])) / sqrt(1 + v[k] / (l * l));
    return r;
}

/* Var of MMD2_u under H0 for N(mu, diag(s^2)), exact (§13.1). */
static double mmd_h0_var(const double *s, size_t d, double l, size_t m, size_t n)
{
    double p1 = 1, p2 = 1, p3 = 1;
    for (size_t k = 0; k < d; k++) {
        double r = s[k] * s[k] / (l * l);
        p1 /= sqrt(1 + 4 * r);
        p2 /= sqrt((1 + 3 * r) * (1 + r));
        p3 /= 1 + 2 * r;
    }
    double dm = (double)m, dn = (double)n;
    return (p1 - 2 * p2 + p3) * (2 / (dm * (dm - 1)) + 2 / (dn * (dn - 1)) + 4 / (dm * dn));
}

START_TEST(test_mmd_gaussian)
{
    sdflow_ctx *ctx = test_ctx(11);
    enum { M = 1500, N = 1200, D = 2 };
    const double l = 1.0, mu1[D] = { 0, 0 }, s1[D] = { 1, 0.7 }, mu2[D] = { 0.4, -0.2 }, s2[D] = { 1.3, 0.7 };
    double *x = gauss_sample(ctx, 1, M, D, mu1, s1), *y = gauss_sample(ctx, 2, N, D, mu2, s2);
    double *y0 = gauss_sample(ctx, 3, N, D, mu1, s1);
    double v, sd, v0, sd0;
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, N, D, x, y, l, &v, &sd), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, N, D, x, y0, l, &v0, &sd0), SDFLOW_OK);
    /* Population MMD^2 = kappa(0, 2 S1) + kappa(0, 2 S2) - 2 kappa(mu1 - mu2, S1 + S2). */
    double v11[D], v22[D], v12[D], dl[D], zero[D] = { 0, 0 };
    for (int k = 0; k < D; k++) {
        v11[k] = 2 * s1[k] * s1[k];
        v22[k] = 2 * s2[k] * s2[k];
        v12[k] = s1[k] * s1[k] + s2[k] * s2[k];
        dl[k] = mu1[k] - mu2[k];
    }
    double pop = kappa(zero, v11, D, l) + kappa(zero, v22, D, l) - 2 * kappa(dl, v12, D, l);
    /* H1: tolerance 5 std, std from the plug-in formula (validated in test_mmd_std). */
    double z1 = (v - pop) / sd;
    ck_assert_msg(fabs(z1) < 5, "MMD2 %.6g vs population %.6g: z = %.2f", v, pop, z1);
    /* H0: exact variance of §13.1, mean exactly 0. */
    double sd_h0 = sqrt(mmd_h0_var(s1, D, l, M, N));
    ck_assert_msg(fabs(v0) < 5 * sd_h0, "H0 MMD2 %.3g vs 5 sd = %.3g", v0, 5 * sd_h0);
    /* The H0 std reported must match the exact one (plug-in error ~ a few %). */
    ck_assert_msg(sd0 > 0.8 * sd_h0 && sd0 < 1.5 * sd_h0, "H0 std %.3g vs exact %.3g", sd0, sd_h0);
    /* Fails on purpose: the H1 sample is far from the H0 value. */
    ck_assert(fabs(v) > 5 * sd_h0);
    free(x);
    free(y);
    free(y0);
    sdflow_ctx_free(ctx);
}
END_TEST

/* The reported std matches the spread of the estimator over repetitions. */
START_TEST(test_mmd_std)
{
    sdflow_ctx *ctx = test_ctx(12);
    enum { R = 120, M = 150, D = 2 };
    const double mu2[D] = { 0.5, 0 };
    double est[R], sds[R], eest[R], esds[R];
    for (int r = 0; r < R; r++) {
        double *x = gauss_sample(ctx, 100 + 2 * (uint64_t)r, M, D, NULL, NULL);
        double *y = gauss_sample(ctx, 101 + 2 * (uint64_t)r, M, D, mu2, NULL);
        ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, M, D, x, y, 1.0, &est[r], &sds[r]), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, M, M, D, x, y, &eest[r], &esds[r]), SDFLOW_OK);
        free(x);
        free(y);
    }
    /* The sd of R = 120 draws has relative SE ~ 1/sqrt(2(R-1)) = 6.5 %; the
     * plug-in std is a first-order formula: accept a ratio within 0.7..1.4. */
    double q = sqrt(vec_var(est, R, 1)) / vec_mean(sds, R, 1);
    double qe = sqrt(vec_var(eest, R, 1)) / vec_mean(esds, R, 1);
    ck_assert_msg(q > 0.7 && q < 1.4, "MMD empirical sd / reported std = %.3f", q);
    ck_assert_msg(qe > 0.7 && qe < 1.4, "energy empirical sd / reported std = %.3f", qe);
    sdflow_ctx_free(ctx);
}
END_TEST

/* E|X - Y| for X - Y ~ N(delta, s^2), 1-D (§13.2). */
static double h_abs(double delta, double s)
{
    return s * sqrt(2 / PI) * exp(-delta * delta / (2 * s * s)) + delta * erf(delta / (s * sqrt(2)));
}

START_TEST(test_energy_gaussian)
{
    sdflow_ctx *ctx = test_ctx(13);
    enum { M = 2000, N = 1500 };
    const double mu1 = 0.0, s1 = 1.0, mu2 = 0.5, s2 = 1.5;
    double *x = gauss_sample(ctx, 1, M, 1, &mu1, &s1), *y = gauss_sample(ctx, 2, N, 1, &mu2, &s2);
    double v, sd;
    ck_assert_int_eq(sdflow_metric_energy(ctx, M, N, 1, x, y, &v, &sd), SDFLOW_OK);
    double pop = 2 * h_abs(mu1 - mu2, sqrt(s1 * s1 + s2 * s2)) - 2 * (s1 + s2) / sqrt(PI);
    double z = (v - pop) / sd;
    ck_assert_msg(fabs(z) < 5, "energy %.6g vs population %.6g: z = %.2f", v, pop, z);
    /* A wrong oracle (the shift ignored) is rejected by the same check. */
    double wrong = 2 * h_abs(0, sqrt(s1 * s1 + s2 * s2)) - 2 * (s1 + s2) / sqrt(PI);
    ck_assert(fabs(v - wrong) / sd > 5);
    free(x);
    free(y);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Under H0 the mean of E_u is 0 and its variance is dVar^2 (2/(m(m-1)) +
 * 2/(n(n-1)) + 4/(mn)), dVar^2 = s^2 (4/pi)(1 + pi/3 - sqrt 3) in 1-D. */
START_TEST(test_energy_null)
{
    sdflow_ctx *ctx = test_ctx(14);
    enum { R = 300, M = 80, N = 60 };
    double e[R], sds[R];
    for (int r = 0; r < R; r++) {
        double *x = gauss_sample(ctx, 10 + 2 * (uint64_t)r, M, 1, NULL, NULL);
        double *y = gauss_sample(ctx, 11 + 2 * (uint64_t)r, N, 1, NULL, NULL);
        ck_assert_int_eq(sdflow_metric_energy(ctx, M, N, 1, x, y, &e[r], &sds[r]), SDFLOW_OK);
        free(x);
        free(y);
    }
    double dvar2 = (4 / PI) * (1 + PI / 3 - sqrt(3));
    double var = dvar2 * (2.0 / (M * (M - 1)) + 2.0 / (N * (N - 1)) + 4.0 / (M * N));
    double mean = vec_mean(e, R, 1), se = sqrt(var / R);
    ck_assert_msg(fabs(mean) < 5 * se, "null mean %.3g, SE %.3g (z = %.2f)", mean, se, mean / se);
    /* Sample variance: relative SE ~ sqrt(2/R) * kurtosis factor (< 2 for a weighted chi^2): 25 %. */
    double ratio = vec_var(e, R, 1) / var;
    ck_assert_msg(ratio > 0.75 && ratio < 1.33, "null variance ratio %.3f", ratio);
    /* The reported std includes the H0 term: its mean matches sqrt(var) to the plug-in error. */
    double q = vec_mean(sds, R, 1) / sqrt(var);
    ck_assert_msg(q > 0.8 && q < 1.6, "reported null std / exact = %.3f", q);
    sdflow_ctx_free(ctx);
}
END_TEST

/* SW_2^2(N(mu1, s1^2 I), N(mu2, s2^2 I)) = |delta|^2/d + (s1 - s2)^2. */
START_TEST(test_sw_gaussian)
{
    sdflow_ctx *ctx = test_ctx(15);
    enum { M = 3000, N = 2500, D = 3, L = 800 };
    const double mu1[D] = { 0, 0, 0 }, mu2[D] = { 1.0, -0.5, 0.5 };
    const double s1[D] = { 1, 1, 1 }, s2[D] = { 1.4, 1.4, 1.4 };
    double *x = gauss_sample(ctx, 1, M, D, mu1, s1), *y = gauss_sample(ctx, 2, N, D, mu2, s2);
    double v, sd;
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, M, N, D, x, y, 2, L, 7, &v, &sd), SDFLOW_OK);
    double dd = 1.0 + 0.25 + 0.25, pop = dd / D + 0.4 * 0.4;
    /* Variances: directions |delta|^4 (2d-2)/(d^2(d+2)) / L; sample means
     * 4 |delta|^2 (s1^2 + s2^2)/(m d^2) (cross term of the mean shift);
     * sample spreads 4 (s1-s2)^2 (s1^2/(2m) + s2^2/(2n)) (no averaging over
     * directions assumed). Finite-sample bias is positive, of order
     * (s1^2 + s2^2)/m: allowance 3 (s1^2 + s2^2)/min(m, n). */
    double var_dir = dd * dd * (2.0 * D - 2) / (D * D * (D + 2.0)) / L;
    double var_fs = 4 * dd * (1 + 1.96) / ((double)N * D * D) + 4 * 0.16 * (1 / (2.0 * M) + 1.96 / (2.0 * N));
    double bias = 3 * (1 + 1.96) / N, tol = 5 * sqrt(var_dir + var_fs) + bias;
    double err = v * v - pop;
    ck_assert_msg(fabs(err) < tol, "SW2^2 %.5f vs %.5f: err %.3g, tol %.3g", v * v, pop, err, tol);
    /* A wrong oracle (|delta|^2 without the 1/d) fails the same check. */
    ck_assert(fabs(v * v - (dd + 0.16)) > tol);
    /* Reported std (directions only) vs the exact direction variance carried to SW_2. */
    double sd_exact = sqrt(var_dir) / (2 * sqrt(pop));
    ck_assert_msg(sd > 0.7 * sd_exact && sd < 1.4 * sd_exact, "SW std %.3g vs %.3g", sd, sd_exact);
    /* Equal sizes take the same path: compare with the closed form too. */
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, N, N, D, x, y, 2, L, 7, &v, NULL), SDFLOW_OK);
    ck_assert_msg(fabs(v * v - pop) < tol, "SW2^2 (m = n) %.5f vs %.5f", v * v, pop);
    free(x);
    free(y);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Unequal sizes: hand-computed quantile integral, and duplicating every
 * point of Y leaves W_p unchanged (exact merged-breakpoint formula). */
START_TEST(test_sw_unequal)
{
    sdflow_ctx *ctx = test_ctx(16);
    const double x[2] = { 0, 1 }, y[3] = { 2, 0, 0.5 };
    double v;
    /* d = 1: directions are +-1. Quantile pieces: [1/3,1/2) 0.5^2, [1/2,2/3) 0.5^2, [2/3,1) 1^2. */
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, 2, 3, 1, x, y, 2, 4, 0, &v, NULL), SDFLOW_OK);
    ck_assert_double_eq_tol(v * v, 0.25 / 6 + 0.25 / 6 + 1.0 / 3, 1e-15);
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, 2, 3, 1, x, y, 1, 4, 0, &v, NULL), SDFLOW_OK);
    ck_assert_double_eq_tol(v, 0.5 / 6 + 0.5 / 6 + 1.0 / 3, 1e-15);

    enum { M = 170, N = 230, D = 4 };
    double *a = gauss_sample(ctx, 1, M, D, NULL, NULL), *b = gauss_sample(ctx, 2, N, D, NULL, NULL);
    double *bb = malloc(2 * N * D * sizeof(double));
    ck_assert_ptr_nonnull(bb);
    memcpy(bb, b, N * D * sizeof(double));
    memcpy(bb + N * D, b, N * D * sizeof(double));
    double w1, w2;
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, M, N, D, a, b, 1.5, 32, 3, &w1, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, M, 2 * N, D, a, bb, 1.5, 32, 3, &w2, NULL), SDFLOW_OK);
    ck_assert_msg(relerr(w2, w1) < 1e-12, "duplicated Y: %.17g vs %.17g", w2, w1);
    /* Dropping one point does change it (the check can fail). */
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, M, 2 * N - 1, D, a, bb, 1.5, 32, 3, &w2, NULL), SDFLOW_OK);
    ck_assert(relerr(w2, w1) > 1e-6);
    free(a);
    free(b);
    free(bb);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Blocked energy / MMD equal naive double loops (unequal sizes, several
 * tiles, direct path d = 3 and GEMM path d = 40). Tolerances: summation
 * order (~1e-14), GEMM expansion on centred data (~1e-12 relative here). */
START_TEST(test_naive_reference)
{
    sdflow_ctx *ctx = test_ctx(17);
    const size_t dims[2] = { 3, 40 };
    for (int t = 0; t < 2; t++) {
        size_t d = dims[t], m = 300, n = 517;
        double *x = gauss_sample(ctx, 1, m, d, NULL, NULL), *y = gauss_sample(ctx, 2, n, d, NULL, NULL);
        for (size_t i = 0; i < n * d; i++)
            y[i] = 3 + 1.2 * y[i]; /* offset: exercises the centring */
        double l = 0.8 * sqrt((double)d), e, mm;
        ck_assert_int_eq(sdflow_metric_energy(ctx, m, n, d, x, y, &e, NULL), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_mmd2(ctx, m, n, d, x, y, l, &mm, NULL), SDFLOW_OK);
        double tol = d < 16 ? 1e-13 : 1e-10;
        double e_ref = naive_u(m, n, d, x, y, 0), mm_ref = naive_u(m, n, d, x, y, 1 / (2 * l * l));
        ck_assert_msg(relerr(e, e_ref) < tol, "d=%zu energy %.17g vs %.17g", d, e, e_ref);
        ck_assert_msg(relerr(mm, mm_ref) < tol, "d=%zu MMD2 %.17g vs %.17g", d, mm, mm_ref);
        /* y may be the very buffer x: the cross sums still include i = j. */
        ck_assert_int_eq(sdflow_metric_mmd2(ctx, m, m, d, x, x, l, &mm, NULL), SDFLOW_OK);
        mm_ref = naive_u(m, m, d, x, x, 1 / (2 * l * l));
        ck_assert_msg(fabs(mm - mm_ref) < 1e-12, "d=%zu MMD2(x, x) %.17g vs %.17g", d, mm, mm_ref);
        free(x);
        free(y);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

static int cmp_dbl(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* Lower median of the pairwise distances of the pooled first rows (naive). */
static double naive_median(size_t m, size_t n, size_t d, const double *x, const double *y)
{
    size_t N = m + n, np = 0;
    double *z = malloc(N * d * sizeof(double)), *dist = malloc(N * (N - 1) / 2 * sizeof(double));
    ck_assert(z && dist);
    memcpy(z, x, sizeof(double) * m * d);
    memcpy(z + m * d, y, sizeof(double) * n * d);
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++)
            dist[np++] = sqrt(d2(z + i * d, z + j * d, d));
    qsort(dist, np, sizeof(double), cmp_dbl);
    double l = dist[(np - 1) / 2];
    free(z);
    free(dist);
    return l;
}

/* Median heuristic = MMD with the naive lower median of pooled distances:
 * spread data (one histogram pass), data whose distances pile up in one bin
 * (nested passes) and d = 20 (GEMM distances). */
START_TEST(test_median_heuristic)
{
    sdflow_ctx *ctx = test_ctx(18);
    enum { M = 140, N = 110, D = 2, K = 700, D20 = 20 };
    const double mu2[D] = { 1, 0 };
    double *x = gauss_sample(ctx, 1, M, D, NULL, NULL), *y = gauss_sample(ctx, 2, N, D, mu2, NULL);
    double l = naive_median(M, N, D, x, y), a, b, wrong;
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, N, D, x, y, 0, &a, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, N, D, x, y, l, &b, NULL), SDFLOW_OK);
    /* The selection is exact: the same squared distances, the same bandwidth. */
    ck_assert_msg(a == b, "median MMD2 %.17g vs %.17g", a, b);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, M, N, D, x, y, 1.001 * l, &wrong, NULL), SDFLOW_OK);
    ck_assert(relerr(a, wrong) > 1e-6);
    free(x);
    free(y);

    /* Tight clusters at 0 (3/4 of the points) and 1: the median lies among
     * the ~610k pairs closer than 2e-4, all in the first histogram bin (far
     * more than one bin may hold), so nested passes run. */
    double cx[K], cy[K];
    for (int i = 0; i < K; i++) {
        cx[i] = (i % 4 == 3) + 1e-7 * i;
        cy[i] = (i % 4 == 3) + 1e-7 * (i + 0.5);
    }
    l = naive_median(K, K, 1, cx, cy);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, K, K, 1, cx, cy, 0, &a, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, K, K, 1, cx, cy, l, &b, NULL), SDFLOW_OK);
    ck_assert_msg(a == b, "clustered median MMD2 %.17g vs %.17g (l = %g)", a, b, l);

    /* GEMM distances differ from the naive ones by rounding (~1e-15 relative here). */
    x = gauss_sample(ctx, 3, 300, D20, NULL, NULL);
    y = gauss_sample(ctx, 4, 250, D20, NULL, NULL);
    l = naive_median(300, 250, D20, x, y);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, 300, 250, D20, x, y, 0, &a, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, 300, 250, D20, x, y, l, &b, NULL), SDFLOW_OK);
    ck_assert_msg(relerr(a, b) < 1e-10, "d=20 median MMD2 %.17g vs %.17g", a, b);
    free(x);
    free(y);
    sdflow_ctx_free(ctx);
}
END_TEST

static void shuffle(double *a, size_t n, size_t d, unsigned seed)
{
    double tmp[64];
    for (size_t i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        size_t j = (seed >> 8) % (i + 1);
        memcpy(tmp, a + i * d, d * sizeof(double));
        memcpy(a + i * d, a + j * d, d * sizeof(double));
        memcpy(a + j * d, tmp, d * sizeof(double));
    }
}

/* The three metrics of one data set: value and std of each. */
static void all_metrics(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x, const double *y, double *o)
{
    ck_assert_int_eq(sdflow_metric_energy(ctx, m, n, d, x, y, o, o + 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, m, n, d, x, y, 0, o + 2, o + 3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, m, n, d, x, y, 2, 64, 5, o + 4, o + 5), SDFLOW_OK);
}

START_TEST(test_permutation)
{
    sdflow_ctx *ctx = test_ctx(19);
    const size_t dims[2] = { 2, 20 };
    for (int t = 0; t < 2; t++) {
        size_t d = dims[t], m = 400, n = 333;
        double *x = gauss_sample(ctx, 1, m, d, NULL, NULL), *y = gauss_sample(ctx, 2, n, d, NULL, NULL);
        for (size_t i = 0; i < n * d; i += d)
            y[i] += 0.3;
        double a[6], b[6];
        all_metrics(ctx, m, n, d, x, y, a);
        shuffle(x, m, d, 1);
        shuffle(y, n, d, 2);
        all_metrics(ctx, m, n, d, x, y, b);
        /* Only the summation order changes: rounding, far below 1e-12 relative. */
        for (int k = 0; k < 6; k++)
            ck_assert_msg(relerr(b[k], a[k]) < 1e-12, "d=%zu output %d: %.17g vs %.17g", d, k, b[k], a[k]);
        free(x);
        free(y);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_threads_identical)
{
    sdflow_ctx *ctx = test_ctx(20);
    const size_t dims[2] = { 2, 24 };
    for (int t = 0; t < 2; t++) {
        size_t d = dims[t], m = 700, n = 600;
        double *x = gauss_sample(ctx, 1, m, d, NULL, NULL), *y = gauss_sample(ctx, 2, n, d, NULL, NULL);
        double a[6], b[6];
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 1), SDFLOW_OK);
        all_metrics(ctx, m, n, d, x, y, a);
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
        all_metrics(ctx, m, n, d, x, y, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "d=%zu: 1 and 2 threads differ", d);
        free(x);
        free(y);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* A shift of 0.5 sd is detected by all three (z well above 5); an unshifted
 * sample is not (the same check fails). SW is calibrated by a parametric
 * bootstrap of its null distribution (§13.3). */
START_TEST(test_shift_detected)
{
    sdflow_ctx *ctx = test_ctx(21);
    enum { M = 1000, D = 2, B = 200, MB = 150 };
    const double sh[D] = { 0.5, 0 };
    double *x = gauss_sample(ctx, 1, M, D, NULL, NULL), *y = gauss_sample(ctx, 2, M, D, sh, NULL);
    double *y0 = gauss_sample(ctx, 3, M, D, NULL, NULL);
    double o[6], o0[6];
    all_metrics(ctx, M, M, D, x, y, o);
    all_metrics(ctx, M, M, D, x, y0, o0);
    ck_assert_msg(o[0] / o[1] > 5, "energy z = %.2f", o[0] / o[1]);
    ck_assert_msg(o[2] / o[3] > 5, "MMD z = %.2f", o[2] / o[3]);
    ck_assert_msg(o0[0] / o0[1] < 3, "null energy z = %.2f", o0[0] / o0[1]);
    ck_assert_msg(o0[2] / o0[3] < 3, "null MMD z = %.2f", o0[2] / o0[3]);

    double boot[B];
    for (int r = 0; r < B; r++) {
        double *a = gauss_sample(ctx, 1000 + 2 * (uint64_t)r, MB, D, NULL, NULL);
        double *b = gauss_sample(ctx, 1001 + 2 * (uint64_t)r, MB, D, NULL, NULL);
        ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, MB, MB, D, a, b, 2, 32, 9, &boot[r], NULL),
                         SDFLOW_OK);
        free(a);
        free(b);
    }
    qsort(boot, B, sizeof(double), cmp_dbl);
    double q995 = boot[(int)(0.995 * B)];
    double s_null, s_shift;
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, MB, MB, D, x, y0, 2, 32, 9, &s_null, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, MB, MB, D, x, y, 2, 32, 9, &s_shift, NULL), SDFLOW_OK);
    ck_assert_msg(s_null < q995, "SW null %.4f above bootstrap 99.5%% %.4f", s_null, q995);
    ck_assert_msg(s_shift > q995, "SW shifted %.4f below bootstrap 99.5%% %.4f", s_shift, q995);
    free(x);
    free(y);
    free(y0);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status metrics_workload(const sdflow_allocator *al)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, al);
    if (st)
        return st;
    enum { M = 300, N = 280, D = 20 };
    double *x = malloc(M * D * sizeof(double)), *y = malloc(N * D * sizeof(double)), v, sd;
    ck_assert(x && y);
    sdflow_rng_normal(ctx, 1, 0, M, D, x);
    sdflow_rng_normal(ctx, 2, 0, N, D, y);
    if (!(st = sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2)) && !(st = sdflow_metric_energy(ctx, M, N, D, x, y, &v, &sd)) &&
        !(st = sdflow_metric_mmd2(ctx, M, N, D, x, y, 0, &v, &sd)))
        st = sdflow_metric_sliced_wasserstein(ctx, M, N, D, x, y, 2, 16, 0, &v, &sd);
    free(x);
    free(y);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_alloc_failures)
{
    check_all_alloc_failures(metrics_workload);
}
END_TEST

START_TEST(test_bad_input)
{
    sdflow_ctx *ctx = test_ctx(22);
    double x[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }, y[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, v, sd;
    ck_assert_int_eq(sdflow_metric_energy(NULL, 4, 4, 2, x, y, &v, NULL), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 1, 4, 2, x, y, &v, NULL), SDFLOW_E_INVALID, "m=1 must be >= 2");
    ck_assert_status_msg(ctx, sdflow_metric_mmd2(ctx, 4, 1, 2, x, y, 1, &v, NULL), SDFLOW_E_INVALID, "n=1 must be >= 2");
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 4, 4, 0, x, y, &v, NULL), SDFLOW_E_INVALID, "d=0 must be >= 1");
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 4, 4, 2, NULL, y, &v, NULL), SDFLOW_E_INVALID, "x is NULL");
    ck_assert_status_msg(ctx, sdflow_metric_mmd2(ctx, 4, 4, 2, x, NULL, 1, &v, NULL), SDFLOW_E_INVALID, "y is NULL");
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 4, 4, 2, x, y, NULL, NULL), SDFLOW_E_INVALID, "value is NULL");
    y[7] = NAN;
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 4, 4, 2, x, y, &v, NULL), SDFLOW_E_INVALID, "y[3][1] is NaN");
    y[7] = 8;
    x[2] = INFINITY;
    ck_assert_status_msg(ctx, sdflow_metric_sliced_wasserstein(ctx, 4, 4, 2, x, y, 2, 8, 0, &v, NULL), SDFLOW_E_INVALID,
                         "x[1][0] is Inf");
    x[2] = 2;
    ck_assert_status_msg(ctx, sdflow_metric_mmd2(ctx, 4, 4, 2, x, y, -1, &v, NULL), SDFLOW_E_INVALID, "bandwidth=-1");
    ck_assert_status_msg(ctx, sdflow_metric_mmd2(ctx, 4, 4, 2, x, y, NAN, &v, NULL), SDFLOW_E_INVALID, "bandwidth=nan");
    ck_assert_status_msg(ctx, sdflow_metric_sliced_wasserstein(ctx, 4, 4, 2, x, y, 0.5, 8, 0, &v, NULL),
                         SDFLOW_E_INVALID, "p=0.5 must be");
    ck_assert_status_msg(ctx, sdflow_metric_sliced_wasserstein(ctx, 4, 4, 2, x, y, 2, 0, 0, &v, NULL), SDFLOW_E_INVALID,
                         "directions=0 must be >= 1");
    ck_assert_status_msg(ctx, sdflow_metric_sliced_wasserstein(ctx, 4, 4, 2, x, y, 2, 1, 0, &v, &sd), SDFLOW_E_INVALID,
                         "directions=1 must be >= 2 to estimate a std");
    ck_assert_int_eq(sdflow_metric_sliced_wasserstein(ctx, 4, 4, 2, x, y, 2, 1, 0, &v, NULL), SDFLOW_OK);
    /* Identical points: the median heuristic has no scale. */
    double same[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    ck_assert_status_msg(ctx, sdflow_metric_mmd2(ctx, 4, 4, 2, same, same, 0, &v, NULL), SDFLOW_E_NUMERIC, "coincide");
    /* Finite but huge inputs overflow the distances. */
    double big[8] = { 1e300, -1e300, 0, 0, 0, 0, 0, 0 };
    ck_assert_status_msg(ctx, sdflow_metric_energy(ctx, 4, 4, 2, big, y, &v, NULL), SDFLOW_E_NUMERIC, "not finite");
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mmd_gaussian);
    tcase_add_test(tc, test_mmd_std);
    tcase_add_test(tc, test_energy_gaussian);
    tcase_add_test(tc, test_energy_null);
    tcase_add_test(tc, test_sw_gaussian);
    tcase_add_test(tc, test_sw_unequal);
    tcase_add_test(tc, test_naive_reference);
    tcase_add_test(tc, test_median_heuristic);
    tcase_add_test(tc, test_permutation);
    tcase_add_test(tc, test_threads_identical);
    tcase_add_test(tc, test_shift_detected);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
