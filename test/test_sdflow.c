/* SPDX-License-Identifier: MIT */
/* SD-flow sampler: closed-form oracles (algorithms.md 12.c), Gaussian and
 * GMM targets checked statistically, memorization diagnostic, determinism,
 * cancellation, NaN reporting, allocation failures and bad input. */
#include "testutil.h"

static double *normals(sdflow_ctx *ctx, uint64_t stream, size_t n, size_t d, const double *scale, const double *shift)
{
    double *a = malloc(n * d * sizeof *a);
    ck_assert_int_eq(sdflow_rng_normal(ctx, stream, 0, n, d, a), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d; k++)
            a[i * d + k] = scale[k] * a[i * d + k] + shift[k];
    return a;
}

static sdflow_sampler *flow_sampler(sdflow_ctx *ctx, sdflow_model *target, long steps, long inner, double smax,
                                    double smin)
{
    sdflow_sampler *s;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, target), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, steps), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_INNER_STEPS, inner), SDFLOW_OK);
    if (smax > 0)
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MAX, smax), SDFLOW_OK);
    if (smin > 0)
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, smin), SDFLOW_OK);
    return s;
}

/* 12.c.1: particles equal to the target set do not move (self included),
 * for clean and noisy evaluation; leave-one-out does move them. */
START_TEST(test_sdflow_fixed_point)
{
    sdflow_ctx *ctx = test_ctx(21);
    size_t m = 200, d = 2;
    double sc[2] = { 1, 0.5 }, sh[2] = { 3, -1 };
    double *y = normals(ctx, 1, m, d, sc, sh), *x = malloc(m * d * 8);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
    for (int variant = 0; variant < 3; variant++) {
        sdflow_sampler *s = flow_sampler(ctx, km, 5, 2, 2.0, 0.05);
        if (variant == 1)
            ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_EVAL_NOISY, 1), SDFLOW_OK);
        if (variant == 2)
            ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SELF_EXCLUDE, 1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, m, y, x), SDFLOW_OK);
        double res = 0;
        for (size_t i = 0; i < m * d; i++)
            res = fmax(res, fabs(x[i] - y[i]));
        printf("sdflow fixed point (variant %d): max |x - y| = %.3g\n", variant, res);
        if (variant < 2)
            ck_assert_msg(res <= 1e-12, "fixed point moved by %g", res);
        else
            ck_assert_msg(res > 1e-3, "leave-one-out should move the particles, moved %g", res);
        sdflow_sampler_free(s);
    }
    sdflow_model_free(km);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* 12.c.2 and 12.c.3: one particle, one target: x - y shrinks by
 * (1 - step_frac) per step; two-point target {-a, a}: x converges to the
 * positive root of x = a tanh(a x / sigma^2). */
START_TEST(test_sdflow_closed_forms)
{
    sdflow_ctx *ctx = test_ctx(22);
    double y1 = 1.5, x0 = -0.5, x;
    sdflow_model *one;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 1, 1, &y1, &one), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, one, 1, 5, 0.7, 0.7);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_STEP_FRAC, 0.3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 1, &x0, &x), SDFLOW_OK);
    double want = y1 + pow(0.7, 5) * (x0 - y1);
    ck_assert_msg(fabs(x - want) < 1e-14, "single particle: %.17g vs %.17g", x, want); /* 5 roundings */
    sdflow_sampler_free(s);
    sdflow_model_free(one);

    double a = 1.0, sigma = 0.8, pts[2] = { -1.0, 1.0 }, xs = 0.3;
    sdflow_model *two;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 2, 1, pts, &two), SDFLOW_OK);
    s = flow_sampler(ctx, two, 1, 400, sigma, sigma);
    ck_assert_int_eq(sdflow_sampler_run(s, 1, &xs, &x), SDFLOW_OK);
    double lo = 0.1, hi = 1.0; /* bisection on x - a tanh(a x / sigma^2) */
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid - a * tanh(a * mid / (sigma * sigma)) < 0)
            lo = mid;
        else
            hi = mid;
    }
    /* contraction factor g'(x*) ~ 0.5 per step: after 400 steps only rounding remains */
    ck_assert_msg(fabs(x - lo) < 1e-12, "two-point fixed point %.17g vs %.17g", x, lo);
    sdflow_sampler_free(s);
    sdflow_model_free(two);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Gaussian source N(0, I) -> Gaussian target N(mu, diag(S)) given as 1000
 * samples, default schedule shortened to 40 x 5 steps: particle mean and
 * covariance within 4 standard errors of the target's (the particles
 * estimate the target through its sample of M and their own N:
 * se(mean_k) = sqrt(S_k (1/M + 1/N)), se(cov_kl) = sqrt((S_k S_l + S_kl^2)(1/M + 1/N))). */
static void gaussian_case(size_t d, uint64_t seed)
{
    sdflow_ctx *ctx = test_ctx(seed);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
    size_t m = 1000, n = 1000;
    double S[5] = { 0.25, 1.0, 0.5, 2.0, 0.8 }, mu[5] = { 2.0, -1.0, 0.5, 0.0, 1.0 }, sd[5], one[5] = { 1, 1, 1, 1, 1 },
           zero[5] = { 0 };
    for (size_t k = 0; k < d; k++)
        sd[k] = sqrt(S[k]);
    double *y = normals(ctx, 1, m, d, sd, mu), *x0 = normals(ctx, 2, n, d, one, zero), *x = malloc(n * d * 8);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 40, 5, 0, 0);
    ck_assert_int_eq(sdflow_sampler_run(s, n, x0, x), SDFLOW_OK);
    double f = 1.0 / (double)m + 1.0 / (double)n, worst = 0;
    for (size_t k = 0; k < d; k++) {
        double mk = vec_mean(x + k, n, d), z = fabs(mk - mu[k]) / sqrt(S[k] * f);
        worst = fmax(worst, z);
        ck_assert_msg(z < 4, "d=%zu mean[%zu] = %g vs %g (%.2f se)", d, k, mk, mu[k], z);
        for (size_t l = 0; l <= k; l++) {
            double ml = vec_mean(x + l, n, d), c = 0;
            for (size_t i = 0; i < n; i++)
                c += (x[i * d + k] - mk) * (x[i * d + l] - ml);
            c /= (double)(n - 1);
            double want = k == l ? S[k] : 0, se = sqrt((S[k] * S[l] + want * want) * f);
            worst = fmax(worst, fabs(c - want) / se);
            ck_assert_msg(fabs(c - want) < 4 * se, "d=%zu cov[%zu][%zu] = %g vs %g (%.2f se)", d, k, l, c, want,
                          fabs(c - want) / se);
        }
    }
    printf("sdflow Gaussian d=%zu: largest deviation %.2f standard errors (limit 4)\n", d, worst);
    /* the start (N(0, I)) fails the same check: the test can fail */
    ck_assert(fabs(vec_mean(x0, n, d) - mu[0]) / sqrt(S[0] * f) > 4);
    sdflow_sampler_free(s);
    sdflow_model_free(km);
    free(y), free(x0), free(x);
    sdflow_ctx_free(ctx);
}

START_TEST(test_sdflow_gaussian_1d) { gaussian_case(1, 23); }
END_TEST

START_TEST(test_sdflow_gaussian_5d) { gaussian_case(5, 24); }
END_TEST

/* 2-D GMM target given as 1000 samples, 1000 particles from N(0, I):
 * energy distance of the output to 1000 fresh target samples against the
 * null distribution of that statistic for two independent target samples
 * (30 replicates): threshold = null mean + 4 null sd (false-alarm rate
 * ~3e-5 under a normal approximation, <= 6 % by Cantelli's inequality for
 * any distribution). A 2-step run fails the same test. */
START_TEST(test_sdflow_gmm_energy)
{
    sdflow_ctx *ctx = test_ctx(25);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
    size_t n = 1000, d = 2;
    double w[3] = { 0.3, 0.5, 0.2 }, mu[6] = { -2, 0, 2, 1, 0, -2 };
    double cov[12] = { 0.3, 0.1, 0.1, 0.2, 0.2, 0, 0, 0.4, 0.5, -0.2, -0.2, 0.3 };
    sdflow_model *g, *km;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 3, d, w, mu, cov, &g), SDFLOW_OK);
    double *y = malloc(n * d * 8), *z = malloc(n * d * 8), *z2 = malloc(n * d * 8), *x = malloc(n * d * 8);
    ck_assert_int_eq(sdflow_model_sample(g, 1, 0, n, y), SDFLOW_OK);
    double sum = 0, sum2 = 0, e;
    int reps = 30;
    for (int r = 0; r < reps; r++) {
        ck_assert_int_eq(sdflow_model_sample(g, 100 + (uint64_t)r, 0, n, z), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(g, 200 + (uint64_t)r, 0, n, z2), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, n, n, d, z, z2, &e, NULL), SDFLOW_OK);
        sum += e;
        sum2 += e * e;
    }
    double nm = sum / reps, nsd = sqrt((sum2 - reps * nm * nm) / (reps - 1)), thr = nm + 4 * nsd;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, n, d, y, &km), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_sample(g, 2, 0, n, z), SDFLOW_OK); /* fresh target sample */
    double stat[2];
    for (int run = 0; run < 2; run++) {
        sdflow_sampler *s = run ? flow_sampler(ctx, km, 2, 1, 0, 0) : flow_sampler(ctx, km, 40, 5, 0, 0);
        ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, n, n, d, x, z, &stat[run], NULL), SDFLOW_OK);
        sdflow_sampler_free(s);
    }
    printf("sdflow GMM energy distance: flow %.4g, 2-step run %.4g, null mean %.3g sd %.3g, threshold %.4g\n",
           stat[0], stat[1], nm, nsd, thr);
    ck_assert_msg(stat[0] < thr, "flow output distinguishable from the target: %g >= %g", stat[0], thr);
    ck_assert_msg(stat[1] > thr, "a 2-step run passed the test: %g <= %g", stat[1], thr);
    sdflow_model_free(km);
    sdflow_model_free(g);
    free(y), free(z), free(z2), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Default schedule on a 2-D target: memorization ratio >= 0.5; sigma_min
 * far below the NN spacing collapses particles onto targets (ratio < 0.1). */
START_TEST(test_sdflow_memorization)
{
    sdflow_ctx *ctx = test_ctx(26);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
    size_t n = 400, d = 2;
    double sc[2] = { 1.0, 0.6 }, sh[2] = { 0, 0 };
    double *y = normals(ctx, 1, n, d, sc, sh), *x = malloc(n * d * 8), ratio[2], smin;
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, n, d, y, &km), SDFLOW_OK);
    for (int run = 0; run < 2; run++) {
        sdflow_sampler *s = flow_sampler(ctx, km, 100, 10, 0, 0);
        if (run) {
            sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 0.01 * smin / 2); /* 0.01 x h_NN */
            sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 60);
        }
        ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_MEMORIZATION_RATIO, &ratio[run]), SDFLOW_OK);
        if (!run)
            ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_SIGMA_MIN, &smin), SDFLOW_OK);
        sdflow_sampler_free(s);
    }
    printf("sdflow memorization ratio: default schedule %.3f, sigma_min = 0.01 h_NN %.3g\n", ratio[0], ratio[1]);
    ck_assert_msg(ratio[0] >= 0.5, "default schedule memorizes: ratio %g", ratio[0]);
    ck_assert_msg(ratio[1] < 0.1, "tiny sigma_min should copy targets: ratio %g", ratio[1]);
    sdflow_model_free(km);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* 1 vs 2 threads bit-identical (noise injection and noisy evaluation on). In
 * model mode (GMM target and source) particles are independent, so a run
 * split in two with FIRST_INDEX equals the whole run bit for bit. */
START_TEST(test_sdflow_determinism)
{
    size_t n = 300, d = 2;
    double *out[2];
    for (int th = 0; th < 2; th++) {
        sdflow_ctx *ctx = test_ctx(27);
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, th + 1), SDFLOW_OK);
        double sc[2] = { 1, 2 }, sh[2] = { 1, 0 };
        double *y = normals(ctx, 1, n, d, sc, sh);
        sdflow_model *km;
        ck_assert_int_eq(sdflow_model_create_kernel(ctx, n, d, y, &km), SDFLOW_OK);
        sdflow_sampler *s = flow_sampler(ctx, km, 10, 2, 0, 0);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_EVAL_NOISY, 1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_NOISE, 0.1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_BLOCK_Y, 64), SDFLOW_OK);
        out[th] = malloc(n * d * 8);
        ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, out[th]), SDFLOW_OK);
        sdflow_sampler_free(s);
        sdflow_model_free(km);
        free(y);
        sdflow_ctx_free(ctx);
    }
    ck_assert_msg(memcmp(out[0], out[1], n * d * 8) == 0, "1 vs 2 threads differ");

    sdflow_ctx *ctx = test_ctx(28);
    double w[2] = { 0.5, 0.5 }, mu[4] = { -1, 0, 1, 0 }, cov[8] = { 0.2, 0, 0, 0.2, 0.2, 0, 0, 0.2 };
    double w1[1] = { 1 }, mu1[2] = { 0, 0 }, cov1[4] = { 1, 0, 0, 1 };
    sdflow_model *tg, *src;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 2, d, w, mu, cov, &tg), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, 1, d, w1, mu1, cov1, &src), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, tg, 10, 2, 2.0, 0.2);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SOURCE, src), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_EVAL_NOISY, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, out[0]), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 100, NULL, out[1]), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, 100), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n - 100, NULL, out[1] + 100 * d), SDFLOW_OK);
    ck_assert_msg(memcmp(out[0], out[1], n * d * 8) == 0, "model mode: split run differs");
    sdflow_sampler_free(s);
    sdflow_model_free(tg);
    sdflow_model_free(src);
    sdflow_ctx_free(ctx);
    free(out[0]), free(out[1]);
}
END_TEST

static int cancel_at_3(void *u, long done, long total)
{
    (void)total;
    *(long *)u = done;
    return done >= 3;
}

static int bad_score(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)t, (void)u;
    for (size_t i = 0; i < n * d; i++)
        out[i] = -x[i];
    out[7 * d + 1] = NAN;
    return 0;
}

/* Cancellation leaves the state of the last completed step; a NaN score is
 * reported with the step, sigma and particle. */
START_TEST(test_sdflow_cancel_and_nan)
{
    sdflow_ctx *ctx = test_ctx(29);
    size_t n = 50, d = 2;
    double sc[2] = { 1, 1 }, sh[2] = { 0, 0 };
    double *y = normals(ctx, 1, n, d, sc, sh), *x = malloc(n * d * 8), *x3 = malloc(n * d * 8);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, n, d, y, &km), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 1, 3, 0.5, 0.5);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x3), SDFLOW_OK);
    long seen = 0;
    ck_assert_int_eq(sdflow_ctx_set_progress(ctx, cancel_at_3, &seen), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_INNER_STEPS, 10), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, n, NULL, x), SDFLOW_E_CANCELLED, "cancelled");
    ck_assert_int_eq(seen, 3);
    ck_assert(memcmp(x, x3, n * d * 8) == 0);
    ck_assert_int_eq(sdflow_ctx_set_progress(ctx, NULL, NULL), SDFLOW_OK);
    sdflow_sampler_free(s);

    sdflow_model *cb;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, d, SDFLOW_OUT_SCORE, bad_score, NULL, &cb), SDFLOW_OK);
    s = flow_sampler(ctx, cb, 3, 1, 0.5, 0.5);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, n, y, x), SDFLOW_E_NUMERIC, "SD flow step 0 (sigma = 0.5)");
    ck_assert(strstr(sdflow_ctx_last_error(ctx), "NaN") != NULL);
    ck_assert(memcmp(x, y, n * d * 8) == 0); /* nothing completed: the start state */
    sdflow_sampler_free(s);
    sdflow_model_free(cb);
    sdflow_model_free(km);
    free(y), free(x), free(x3);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status flow_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double y[40], x[40];
    for (int i = 0; i < 40; i++)
        y[i] = sin(3.0 * i);
    sdflow_model *km = NULL;
    sdflow_sampler *s = NULL;
    st = sdflow_model_create_kernel(ctx, 20, 2, y, &km);
    if (!st)
        st = sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s);
    if (!st)
        st = sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, km);
    if (!st)
        st = sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 2);
    if (!st)
        st = sdflow_sampler_set_int(s, SDFLOW_OPT_INNER_STEPS, 1);
    if (!st)
        st = sdflow_sampler_run(s, 20, NULL, x);
    sdflow_sampler_free(s);
    sdflow_model_free(km);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_sdflow_alloc_failures) { check_all_alloc_failures(flow_workload); }
END_TEST

START_TEST(test_sdflow_bad_input)
{
    sdflow_ctx *ctx = test_ctx(30);
    double y[4] = { 0, 0, 1, 1 }, x[4];
    sdflow_model *km, *one;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 2, 2, y, &km), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 1, 2, y, &one), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 2, 1, 0, 0);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SELF_EXCLUDE, 1), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 1, NULL, x), SDFLOW_E_INVALID, "self_exclude needs n >= 2");
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SELF_EXCLUDE, 0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 10.0), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_INVALID, "sigma_min=10 must be <=");
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 1e-12), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_INVALID, "below 1e-6 x the data scale");
    ck_assert_status_msg(ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_STEP_FRAC, 3.0), SDFLOW_E_INVALID, "step_frac");
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, one), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 0), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_INVALID, "cannot derive the sigma schedule");
    x[1] = NAN;
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, x, x), SDFLOW_E_INVALID, "x_init[0][1] is NaN");
    sdflow_sampler_free(s);
    sdflow_model_free(km);
    sdflow_model_free(one);
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *sdflow_suite(void)
{
    Suite *s = suite_create("sdflow");
    TCase *num = tcase_create("numerics");
    tcase_set_timeout(num, 120);
    tcase_add_test(num, test_sdflow_fixed_point);
    tcase_add_test(num, test_sdflow_closed_forms);
    tcase_add_test(num, test_sdflow_gaussian_1d);
    tcase_add_test(num, test_sdflow_gaussian_5d);
    tcase_add_test(num, test_sdflow_gmm_energy);
    tcase_add_test(num, test_sdflow_memorization);
    tcase_add_test(num, test_sdflow_determinism);
    suite_add_tcase(s, num);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_sdflow_cancel_and_nan);
    tcase_add_test(api, test_sdflow_alloc_failures);
    tcase_add_test(api, test_sdflow_bad_input);
    suite_add_tcase(s, api);
    return s;
}
