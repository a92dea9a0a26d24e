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
 * for clean and noisy evaluation; leave-one-out does move them (and is
 * stopped as diverging). */
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
        /* leave-one-out drives the particles off the targets, and the run stops
         * with a clear error once they have drifted 1.5x the first level's
         * distance (x then holds the last completed step) */
        ck_assert_int_eq(sdflow_sampler_run(s, m, y, x), variant < 2 ? SDFLOW_OK : SDFLOW_E_NUMERIC);
        if (variant == 2)
            ck_assert(strstr(sdflow_ctx_last_error(ctx), "leave-one-out") != NULL);
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
    /* the fixed 2 h_NN floor: this test checks the flow's moments, and the
     * adaptive stop can end (at 40 levels, d = 5) while the narrow coordinate
     * is still over-dispersed (var 0.36 vs 0.25, see docs/sdflow.md) */
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN_NN, 2.0), SDFLOW_OK);
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

/* Default schedule on a 2-D target: memorization ratio >= 0.8; sigma_min
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
            sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN_NN, 0.01);
            sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 60);
        }
        ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_MEMORIZATION_RATIO, &ratio[run]), SDFLOW_OK);
        if (!run)
            ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_H_NN, &smin), SDFLOW_OK);
        else { /* the schedule used is queryable: sigma_min = 0.01 h_NN, geometric levels */
            double lo, hi, r, lv, h;
            sdflow_sampler_get_stat(s, SDFLOW_STAT_SIGMA_MIN, &lo);
            sdflow_sampler_get_stat(s, SDFLOW_STAT_SIGMA_MAX, &hi);
            sdflow_sampler_get_stat(s, SDFLOW_STAT_SIGMA_RATIO, &r);
            sdflow_sampler_get_stat(s, SDFLOW_STAT_LEVELS, &lv);
            sdflow_sampler_get_stat(s, SDFLOW_STAT_H_NN, &h);
            ck_assert(lv == 60 && h == smin);
            ck_assert(fabs(lo - 0.01 * h) < 1e-12 * h && fabs(hi * pow(r, 59) - lo) < 1e-9 * lo);
        }
        sdflow_sampler_free(s);
    }
    printf("sdflow memorization ratio: default schedule %.3f, sigma_min = 0.01 h_NN %.3g\n", ratio[0], ratio[1]);
    ck_assert_msg(ratio[0] >= 0.8 && ratio[0] <= 1.2, "default schedule: ratio %g", ratio[0]);
    ck_assert_msg(ratio[1] < 0.1, "tiny sigma_min should copy targets: ratio %g", ratio[1]);
    sdflow_model_free(km);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Mean distance from each row of a to its nearest row of b (brute force,
 * independent of the library's kernel_nn). */
static double mean_nn(const double *a, size_t na, const double *b, size_t nb, size_t d)
{
    double acc = 0;
    for (size_t i = 0; i < na; i++) {
        double best = INFINITY;
        for (size_t j = 0; j < nb; j++) {
            double s2 = 0;
            for (size_t k = 0; k < d; k++)
                s2 += (a[i * d + k] - b[j * d + k]) * (a[i * d + k] - b[j * d + k]);
            best = fmin(best, s2);
        }
        acc += sqrt(best);
    }
    return acc / (double)na;
}

/* Runs SD flow with m particles from the default start against the m
 * training rows tr (sigma_min_nn 0: the default adaptive stop) and returns
 * NN-ratio = mean NN distance of the outputs to tr / that of the held-out
 * rows te (1 = like fresh data, 0 = copies); energy e and its floor (the
 * training set itself against te) with the metric's std. */
static double flow_nn_ratio(sdflow_ctx *ctx, size_t m, size_t nte, size_t d, const double *tr, const double *te,
                            double sigma_min_nn, double *e, double *floor_e, double *e_sd)
{
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, tr, &km), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 100, 10, 0, 0);
    if (sigma_min_nn > 0)
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN_NN, sigma_min_nn), SDFLOW_OK);
    double *x = malloc(m * d * sizeof *x), sd2;
    ck_assert_int_eq(sdflow_sampler_run(s, m, NULL, x), SDFLOW_OK);
    double r = mean_nn(x, m, tr, m, d) / mean_nn(te, nte, tr, m, d);
    ck_assert_int_eq(sdflow_metric_energy(ctx, m, nte, d, x, te, e, e_sd), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_energy(ctx, m, nte, d, tr, te, floor_e, &sd2), SDFLOW_OK);
    sdflow_sampler_free(s);
    sdflow_model_free(km);
    free(x);
    return r;
}

/* Reads one of sklearn's bundled tables (header "rows,cols,...", then rows
 * of cols features and a label), standardizes each column, and shuffles the
 * rows with a fixed permutation. python3-sklearn is a test dependency. */
static double *sklearn_table(const char *name, size_t *rows, size_t *cols)
{
    char path[256], line[1 << 14];
    snprintf(path, sizeof path, "/usr/lib/python3/dist-packages/sklearn/datasets/data/%s", name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing: install python3-sklearn (mk/deps.sh)", path);
    ck_assert(fgets(line, sizeof line, f) != NULL);
    size_t n = strtoul(line, NULL, 10), d = strtoul(strchr(line, ',') + 1, NULL, 10);
    double *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        ck_assert(fgets(line, sizeof line, f) != NULL);
        char *p = line;
        for (size_t k = 0; k < d; k++, p++)
            x[i * d + k] = strtod(p, &p);
    }
    fclose(f);
    for (size_t k = 0; k < d; k++) {
        double mu = vec_mean(x + k, n, d), v = 0;
        for (size_t i = 0; i < n; i++)
            v += (x[i * d + k] - mu) * (x[i * d + k] - mu);
        v = sqrt(v / (double)(n - 1));
        for (size_t i = 0; i < n; i++)
            x[i * d + k] = (x[i * d + k] - mu) / v;
    }
    uint64_t state = 7; /* Fisher-Yates with a fixed LCG */
    for (size_t i = n - 1; i > 0; i--) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((state >> 33) % (i + 1));
        for (size_t k = 0; k < d; k++) {
            double t = x[i * d + k];
            x[i * d + k] = x[j * d + k];
            x[j * d + k] = t;
        }
    }
    *rows = n, *cols = d;
    return x;
}

/* Default options on real tables (wine d = 13, breast cancer d = 30,
 * standardized, 2/3 train, 1/3 held out): NN-ratio in [0.8, 1.2], and the
 * energy distance to the held-out rows within 2 of its std above the floor
 * (training set against held-out). The N(0, I) start fails both. */
START_TEST(test_sdflow_default_tables)
{
    sdflow_ctx *ctx = test_ctx(31); /* one thread: results do not depend on it (test_sdflow_determinism),
                                     and OpenMP spin-waiting makes 2 threads ~20x slower on a loaded machine */
    const char *names[2] = { "wine_data.csv", "breast_cancer.csv" };
    for (int t = 0; t < 2; t++) {
        size_t n, d;
        double *x = sklearn_table(names[t], &n, &d), e, fl, sd;
        size_t m = n * 2 / 3;
        double r = flow_nn_ratio(ctx, m, n - m, d, x, x + m * d, 0, &e, &fl, &sd);
        printf("sdflow default on %s (d=%zu, m=%zu): NN-ratio %.3f, energy %.4g, floor %.4g, std %.2g\n", names[t],
               d, m, r, e, fl, sd);
        ck_assert_msg(r >= 0.8 && r <= 1.2, "%s: NN-ratio %g", names[t], r);
        ck_assert_msg(e <= fl + 2 * sd, "%s: energy %g above floor %g + 2 x %g", names[t], e, fl, sd);
        double *z = malloc(m * d * sizeof *z), ez, sdz; /* the start alone fails */
        ck_assert_int_eq(sdflow_rng_normal(ctx, 5, 0, m, d, z), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, m, n - m, d, z, x + m * d, &ez, &sdz), SDFLOW_OK);
        ck_assert(ez > fl + 2 * sd && mean_nn(z, m, x, m, d) / mean_nn(x + m * d, n - m, x, m, d) > 1.2);
        free(x), free(z);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* d = 32 GMM (300 train, 1000 fresh held-out samples) and a 2-D GMM (400 /
 * 1000): default NN-ratio in [0.8, 1.2], energy within 2 std of the floor;
 * the old fixed floor sigma_min = 2 h_NN gives a ratio > 0.04 higher in 32-D
 * (measured 1.050 vs 0.991) and leaves the band in 2-D (measured 0.46). */
START_TEST(test_sdflow_default_gmm)
{
    sdflow_ctx *ctx = test_ctx(32); /* one thread: results do not depend on it (test_sdflow_determinism),
                                     and OpenMP spin-waiting makes 2 threads ~20x slower on a loaded machine */
    size_t dims[2] = { 32, 2 }, ms[2] = { 300, 400 }, K = 4, nte = 1000;
    for (int c = 0; c < 2; c++) {
        size_t d = dims[c], m = ms[c];
        double w[4] = { .25, .25, .25, .25 }, *mu = calloc(K * d, 8), *cov = calloc(K * d * d, 8);
        for (size_t j = 0; j < K; j++)
            for (size_t k = 0; k < d; k++) {
                mu[j * d + k] = ((double)((j * 7 + k * 3) % 5) - 2.0) * (d == 2 ? 1.5 : 0.5);
                cov[j * d * d + k * d + k] = d == 2 ? 0.2 : 0.3 + 0.02 * (double)((k + j) % 5);
            }
        sdflow_model *g;
        ck_assert_int_eq(sdflow_model_create_gmm(ctx, K, d, w, mu, cov, &g), SDFLOW_OK);
        double *y = malloc((m + nte) * d * 8), e, fl, sd, e2, fl2, sd2;
        ck_assert_int_eq(sdflow_model_sample(g, 9, 0, m + nte, y), SDFLOW_OK);
        double r = flow_nn_ratio(ctx, m, nte, d, y, y + m * d, 0, &e, &fl, &sd);
        double r_old = flow_nn_ratio(ctx, m, nte, d, y, y + m * d, 2.0, &e2, &fl2, &sd2);
        printf("sdflow default on GMM d=%zu (m=%zu): NN-ratio %.3f (old 2 h_NN: %.3f), energy %.4g (old %.4g), "
               "floor %.4g, std %.2g\n",
               d, m, r, r_old, e, e2, fl, sd);
        ck_assert_msg(r >= 0.8 && r <= 1.2, "GMM d=%zu: NN-ratio %g", d, r);
        ck_assert_msg(e <= fl + 2 * sd, "GMM d=%zu: energy %g above floor %g + 2 x %g", d, e, fl, sd);
        ck_assert_msg(d == 2 ? r_old < 0.8 : r_old > r + 0.04, "old default d=%zu: %g", d, r_old);
        sdflow_model_free(g);
        free(mu), free(cov), free(y);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* Matched start: with a negligible step the first-level particles keep the
 * start, whose mean and variance match the targets' within 4 SE
 * (se(mean) = sd sqrt(1/M + 1/N), se(var) = var sqrt(2/(M-1) + 2/(N-1)));
 * SDFLOW_START_NORMAL fails the same check. */
START_TEST(test_sdflow_matched_start)
{
    sdflow_ctx *ctx = test_ctx(33);
    size_t m = 2000, n = 2000, d = 3;
    double sc[3] = { 3.0, 0.5, 10.0 }, sh[3] = { 5.0, -2.0, 100.0 };
    double *y = normals(ctx, 1, m, d, sc, sh), *x = malloc(n * d * 8);
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, m, d, y, &km), SDFLOW_OK);
    for (int kind = 0; kind < 2; kind++) {
        sdflow_sampler *s = flow_sampler(ctx, km, 1, 1, 0, 0);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_STEP_FRAC, 1e-9), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_START, kind), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
        double worst = 0;
        for (size_t k = 0; k < d; k++) {
            double my = vec_mean(y + k, m, d), mx = vec_mean(x + k, n, d), vy = 0, vx = 0;
            for (size_t i = 0; i < m; i++)
                vy += (y[i * d + k] - my) * (y[i * d + k] - my);
            for (size_t i = 0; i < n; i++)
                vx += (x[i * d + k] - mx) * (x[i * d + k] - mx);
            vy /= (double)(m - 1), vx /= (double)(n - 1);
            worst = fmax(worst, fabs(mx - my) / sqrt(vy * (1.0 / m + 1.0 / n)));
            worst = fmax(worst, fabs(vx - vy) / (vy * sqrt(2.0 / (m - 1) + 2.0 / (n - 1))));
        }
        printf("sdflow start %s: largest deviation %.2f SE\n", kind ? "normal" : "matched", worst);
        ck_assert_msg(kind ? worst > 4 : worst < 4, "start %d: %g SE", kind, worst);
        sdflow_sampler_free(s);
    }
    /* a start model: exact samples of a gaussian at the targets' moments */
    double mean[3] = { 5, -2, 100 }, cov[9] = { 9, 0, 0, 0, 0.25, 0, 0, 0, 100 };
    sdflow_model *g;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, d, mean, cov, &g), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 1, 1, 0, 0);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_START, SDFLOW_START_MODEL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_E_STATE);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_START, g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_STEP_FRAC, 1e-9), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
    ck_assert(fabs(vec_mean(x + 2, n, d) - 100) < 4 * 10 / sqrt(n));
    sdflow_sampler_free(s);
    sdflow_model_free(g);
    sdflow_model_free(km);
    free(y), free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Noise injection ends with a noise-free level: one more noise-free step at
 * the final sigma moves the output by far less than the injected noise
 * (noise x sigma_min per coordinate) would be. */
START_TEST(test_sdflow_noise_finish)
{
    sdflow_ctx *ctx = test_ctx(34);
    size_t n = 400, d = 2;
    double sc[2] = { 1.0, 0.6 }, sh[2] = { 0, 0 };
    double *y = normals(ctx, 1, n, d, sc, sh), *x = malloc(n * d * 8), *x2 = malloc(n * d * 8), smin, lv;
    sdflow_model *km;
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, n, d, y, &km), SDFLOW_OK);
    sdflow_sampler *s = flow_sampler(ctx, km, 60, 5, 0, 0);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_NOISE, 0.5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_SIGMA_MIN, &smin), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_LEVELS, &lv), SDFLOW_OK);
    sdflow_sampler *s1 = flow_sampler(ctx, km, 1, 1, smin, smin);
    ck_assert_int_eq(sdflow_sampler_run(s1, n, x, x2), SDFLOW_OK);
    double acc = 0;
    for (size_t i = 0; i < n * d; i++)
        acc += (x2[i] - x[i]) * (x2[i] - x[i]);
    double rms = sqrt(acc / (double)(n * d));
    printf("sdflow noise 0.5: %g levels, one more noise-free step moves %.3g rms, injected noise %.3g\n", lv, rms,
           0.5 * smin);
    ck_assert_msg(rms < 0.1 * 0.5 * smin, "residual %g vs noise %g", rms, 0.5 * smin);
    sdflow_sampler_free(s);
    sdflow_sampler_free(s1);
    sdflow_model_free(km);
    free(y), free(x), free(x2);
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
    tcase_add_test(num, test_sdflow_default_tables);
    tcase_add_test(num, test_sdflow_default_gmm);
    tcase_add_test(num, test_sdflow_matched_start);
    tcase_add_test(num, test_sdflow_noise_finish);
    suite_add_tcase(s, num);
    TCase *api = tcase_create("api");
    tcase_add_test(api, test_sdflow_cancel_and_nan);
    tcase_add_test(api, test_sdflow_alloc_failures);
    tcase_add_test(api, test_sdflow_bad_input);
    suite_add_tcase(s, api);
    return s;
}
