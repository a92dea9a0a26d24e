/* SPDX-License-Identifier: MIT */
/* Diffusion samplers: PF-ODE solver orders against the Gaussian flow map,
 * DOPRI5 efficiency and tolerance response, Euler-Maruyama moments and weak
 * order, two-sample tests of reverse SDE / PC / PF-ODE against an exact GMM,
 * encode/decode round trip, determinism, cancellation, NaN reporting,
 * options, state errors and allocation failures. Oracles: algorithms.md
 * §12.b.1, §12.b.2, §12.e, §13.2. Every test uses the fixed seeds shown. */
#include <stdio.h>
#include "testutil.h"

/* ---- shared set-up -------------------------------------------------------- */

/* Gaussian data N(tu_gm, diag(tu_glam)) in d = 2 (diagonal: the eigenbasis is the
 * coordinate basis, so §12.b.1 applies per coordinate). */

static void coef(const sdflow_process *p, double t, double *alpha, double *sigma, double *f, double *g2)
{
    double g;
    ck_assert_int_eq(sdflow_process_coefficients(p, 1, &t, alpha, sigma, f, &g), SDFLOW_OK);
    *g2 = g * g;
}

/* §12.b.1: x_t = alpha_t m + sqrt(c_t / c_s) (x_s - alpha_s m), c = alpha^2 lambda + sigma^2. */
static void exact_flow(const sdflow_process *p, double ts, double tt, const double *xs, double *xt)
{
    double as, ss, at, st_, f, g2;
    coef(p, ts, &as, &ss, &f, &g2);
    coef(p, tt, &at, &st_, &f, &g2);
    for (int j = 0; j < 2; j++) {
        double cs = as * as * tu_glam[j] + ss * ss, ct = at * at * tu_glam[j] + st_ * st_;
        xt[j] = at * tu_gm[j] + sqrt(ct / cs) * (xs[j] - as * tu_gm[j]);
    }
}

/* Start points at t = 1: spread over the prior. */
#define NSTART 4
static const double xstart[NSTART][2] = { { 0.3, -1.2 }, { -1.5, 0.7 }, { 2.0, 2.0 }, { -0.1, 0.05 } };

/* Mean error |x - exact| of the PF-ODE from t = 1 to t = t_end over the
 * start points (scaled by the prior std for VE); nfe gets NFE per sample. */
static double pf_error(sdflow_process_kind kind, int solver, long steps, double tol, double t_end, double *nfe)
{
    sdflow_ctx *ctx = test_ctx(1);
    sdflow_process *p = tu_process(ctx, kind);
    sdflow_model *m = tu_gauss2(ctx);
    sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_PF_ODE, p, m);
    double scale = kind == SDFLOW_PROCESS_VE ? 50.0 : 1.0; /* prior std */
    double x[NSTART][2], out[NSTART][2];
    for (int i = 0; i < NSTART; i++)
        for (int j = 0; j < 2; j++)
            x[i][j] = scale * xstart[i][j];
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
    if (solver == SDFLOW_SOLVER_DOPRI5) {
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, tol), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, tol), SDFLOW_OK);
    } else {
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, steps), SDFLOW_OK);
    }
    sdflow_status st = sdflow_sampler_transport(s, NSTART, 1.0, t_end, &x[0][0], &out[0][0]);
    ck_assert_msg(st == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    double err = 0;
    for (int i = 0; i < NSTART; i++) {
        double ex[2];
        exact_flow(p, 1.0, t_end, x[i], ex);
        err += hypot(out[i][0] - ex[0], out[i][1] - ex[1]) / NSTART;
    }
    if (nfe) {
        ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, nfe), SDFLOW_OK);
        *nfe /= NSTART;
    }
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return err;
}

/* Least-squares slope of log2(err) against log2(1/h). */
static double fit_order(const double *err, const long *steps, int k)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < k; i++) {
        double lx = log2((double)steps[i]), ly = log2(err[i]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
    }
    return -(k * sxy - sx * sy) / (k * sxx - sx * sx);
}

/* ---- PF-ODE: orders, DOPRI5 ---------------------------------------------- */

START_TEST(test_pf_ode_orders)
{
    /* §12.e: t_min = 0.1 keeps the stiffness ~ g^2 / c moderate; 5 grids
     * (4 halvings) in the asymptotic range (errors far above roundoff). */
    static const sdflow_process_kind kinds[2] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VE };
    static const int solvers[3] = { SDFLOW_SOLVER_EULER, SDFLOW_SOLVER_HEUN, SDFLOW_SOLVER_RK4 };
    static const double expect[3] = { 1, 2, 4 };
    static const long base[3] = { 32, 16, 8 };
    for (int k = 0; k < 2; k++)
        for (int v = 0; v < 3; v++) {
            double err[5];
            long steps[5];
            for (int i = 0; i < 5; i++) {
                steps[i] = base[v] << i;
                err[i] = pf_error(kinds[k], solvers[v], steps[i], 0, 0.1, NULL);
            }
            double p = fit_order(err, steps, 5);
            printf("pf_ode order %s solver %d: p = %.3f (err %.3g .. %.3g)\n", kinds[k] == SDFLOW_PROCESS_VP ? "vp" : "ve",
                   solvers[v], p, err[0], err[4]);
            /* issue 4 / brief: |p - p_expected| <= 0.3 */
            ck_assert_msg(fabs(p - expect[v]) <= 0.3, "process %d solver %d: order %.3f, expected %.0f", kinds[k],
                          solvers[v], p, expect[v]);
        }
}
END_TEST

START_TEST(test_dopri5_efficiency)
{
    /* DOPRI5 at rtol = atol = 1e-6 against RK4 on refining uniform grids:
     * RK4 needs more evaluations per sample to reach the same error. */
    static const sdflow_process_kind kinds[2] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VE };
    for (int k = 0; k < 2; k++) {
        double nfe_dp, err_dp = pf_error(kinds[k], SDFLOW_SOLVER_DOPRI5, 0, 1e-6, 0.1, &nfe_dp);
        long n = 2;
        double err = 1e300;
        while (n < 100000 && (err = pf_error(kinds[k], SDFLOW_SOLVER_RK4, n, 0, 0.1, NULL)) > err_dp)
            n += (n + 7) / 8; /* ~12% refinements: the matched NFE is resolved to ~12% */
        printf("dopri5 %s: err %.3g with %.1f NFE/sample; rk4 reaches %.3g with %ld NFE/sample\n",
               kinds[k] == SDFLOW_PROCESS_VP ? "vp" : "ve", err_dp, nfe_dp, err, 4 * n);
        ck_assert_msg(err_dp < 1e-4, "dopri5 error %g at rtol 1e-6", err_dp);
        ck_assert_msg(nfe_dp < 4.0 * (double)n, "dopri5 NFE %.1f not below rk4 NFE %ld", nfe_dp, 4 * n);
    }
}
END_TEST

START_TEST(test_dopri5_tolerance)
{
    /* §12.e: the error decreases monotonically with rtol (= atol) over 1e-3..1e-8
     * and the work grows. */
    static const sdflow_process_kind kinds[2] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VE };
    for (int k = 0; k < 2; k++) {
        double prev = 1e300, prev_nfe = 0;
        for (int e = 3; e <= 8; e++) {
            double nfe, err = pf_error(kinds[k], SDFLOW_SOLVER_DOPRI5, 0, pow(10, -e), 0.1, &nfe);
            printf("dopri5 %s rtol 1e-%d: err %.3g, NFE/sample %.1f\n", kinds[k] == SDFLOW_PROCESS_VP ? "vp" : "ve", e,
                   err, nfe);
            ck_assert_msg(err < prev, "rtol 1e-%d: error %g not below %g", e, err, prev);
            ck_assert_msg(nfe >= prev_nfe, "rtol 1e-%d: NFE %g below %g", e, nfe, prev_nfe);
            prev = err;
            prev_nfe = nfe;
        }
    }
}
END_TEST

START_TEST(test_pf_ode_all_processes)
{
    /* Every process (VP, VP-cosine, sub-VP, VE) and a model whose output is
     * eps rather than the score: RK4 with 400 steps from T to 0.1 matches the
     * flow map to 1e-6 (its error at 100 steps is ~1e-5 in the order test,
     * 4th order gives /256). */
    static const sdflow_process_kind kinds[4] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VP_COSINE, SDFLOW_PROCESS_SUBVP,
                                                  SDFLOW_PROCESS_VE };
    for (int k = 0; k < 4; k++) {
        sdflow_ctx *ctx = test_ctx(2);
        sdflow_process *p = tu_process(ctx, kinds[k]);
        sdflow_model *m = tu_gauss2(ctx);
        sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_PF_ODE, p, m);
        double T;
        ck_assert_int_eq(sdflow_process_time_range(p, NULL, &T), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 400), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.1), SDFLOW_OK);
        double x[NSTART][2], out[NSTART][2];
        memcpy(x, xstart, sizeof x);
        ck_assert_int_eq(sdflow_sampler_run(s, NSTART, &x[0][0], &out[0][0]), SDFLOW_OK);
        for (int i = 0; i < NSTART; i++) {
            double ex[2];
            exact_flow(p, T, 0.1, x[i], ex);
            for (int j = 0; j < 2; j++)
                ck_assert_msg(fabs(out[i][j] - ex[j]) < 1e-6 * (1 + fabs(ex[j])), "process %d row %d: %.12g vs %.12g",
                              kinds[k], i, out[i][j], ex[j]);
        }
        sdflow_sampler_free(s);
        sdflow_model_free(m);
        sdflow_process_free(p);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

/* ---- reverse SDE: Euler-Maruyama moments and weak order ------------------- */

/* 1-D Gaussian data N(em_m, em_v) under VP. */
static const double em_m = 1.5, em_v = 0.5;

/* §12.b.2 discrete EM moment recursion on the uniform grid the sampler uses,
 * started from the prior N(0, 1); the last step keeps x_mean (no noise). */
static void em_moments(const sdflow_process *p, long N, double tmin, double *mean, double *var)
{
    double mu = 0, v = 1, T = 1;
    for (long k = 0; k < N; k++) {
        double t = T - (double)k / (double)N * (T - tmin);
        double tn = k + 1 == N ? tmin : T - (double)(k + 1) / (double)N * (T - tmin), h = t - tn;
        double a, sg, f, g2;
        coef(p, t, &a, &sg, &f, &g2);
        double c = a * a * em_v + sg * sg, A = -f - g2 / c, b = g2 * a * em_m / c;
        mu = (1 + h * A) * mu + h * b;
        v = (1 + h * A) * (1 + h * A) * v + (k + 1 == N ? 0 : g2 * h);
    }
    *mean = mu;
    *var = v;
}

/* §12.b.2 continuous reverse SDE from the prior N(0, 1) at T. */
static void em_exact(const sdflow_process *p, double tmin, double *mean, double *var)
{
    double aT, sT, at, s_t, f, g2;
    coef(p, 1.0, &aT, &sT, &f, &g2);
    coef(p, tmin, &at, &s_t, &f, &g2);
    double cT = aT * aT * em_v + sT * sT, ct = at * at * em_v + s_t * s_t, rho = ct * aT / (cT * at);
    *mean = at * em_m + (0 - aT * em_m) * rho;
    *var = ct + (1 - cT) * rho * rho;
}

START_TEST(test_em_moments)
{
    /* The library's reverse-SDE samples (n = 1e5, 1-D, coarse N = 16 so the
     * scheme's bias is large) have the mean and variance of the discrete EM
     * recursion within 4 standard errors (mean: sqrt(var/n); variance:
     * var sqrt(2/(n-1))), while the continuous-time moments are many standard
     * errors away: the check sees the discretization, not just the target. */
    sdflow_ctx *ctx = test_ctx(3);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 1, &em_m, &em_v, &m), SDFLOW_OK);
    sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_REVERSE_SDE, p, m);
    const long N = 16;
    const size_t n = 100000;
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, N), SDFLOW_OK);
    double tmin;
    ck_assert_int_eq(sdflow_sampler_get_double(s, SDFLOW_OPT_T_MIN, &tmin), SDFLOW_OK);
    ck_assert_double_eq_tol(tmin, 1e-3, 1e-15); /* documented VP default */
    double *x = malloc(n * sizeof *x);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
    double mean = vec_mean(x, n, 1), var = vec_var(x, n, 1), rm, rv, cm, cv;
    em_moments(p, N, tmin, &rm, &rv);
    em_exact(p, tmin, &cm, &cv);
    double se_m = sqrt(rv / (double)n), se_v = rv * sqrt(2.0 / (double)(n - 1));
    printf("em N=%ld: sample mean %.5f var %.5f; recursion %.5f %.5f; continuous %.5f %.5f; se %.2g %.2g\n", N, mean,
           var, rm, rv, cm, cv, se_m, se_v);
    ck_assert_msg(fabs(mean - rm) < 4 * se_m, "mean %g vs recursion %g", mean, rm);
    ck_assert_msg(fabs(var - rv) < 4 * se_v, "var %g vs recursion %g", var, rv);
    ck_assert_msg(fabs(rm - cm) > 8 * se_m || fabs(rv - cv) > 8 * se_v, "no visible discretization bias");
    double nfe, acc;
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_STEPS_ACCEPTED, &acc), SDFLOW_OK);
    ck_assert_double_eq(nfe, (double)n * (double)N);
    ck_assert_double_eq(acc, (double)n * (double)N);
    free(x);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_em_weak_order)
{
    /* §12.e: weak error |E x - E x_exact| + |Var x - Var x_exact| of the
     * scheme (via the recursion the previous test ties to the library) at
     * N = 64 .. 1024 fits order 1 within 0.2. */
    sdflow_ctx *ctx = test_ctx(4);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    double cm, cv, err[5];
    long steps[5];
    em_exact(p, 1e-3, &cm, &cv);
    for (int i = 0; i < 5; i++) {
        double rm, rv;
        steps[i] = 64L << i;
        em_moments(p, steps[i], 1e-3, &rm, &rv);
        err[i] = fabs(rm - cm) + fabs(rv - cv);
    }
    double order = fit_order(err, steps, 5);
    printf("em weak order %.3f (err %.3g .. %.3g)\n", order, err[0], err[4]);
    ck_assert_msg(fabs(order - 1) <= 0.2, "weak order %.3f", order);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_pc_gaussian)
{
    /* PC (2 Langevin steps per level, snr 0.16, N = 250) on 1-D Gaussian data
     * keeps the right law: mean and variance of n = 1e4 samples match the
     * continuous reverse-SDE moments (§12.b.2) within 4 standard errors plus
     * the EM bias at N = 250 (< 6e-3: the weak-order test measures 2.0e-2 at
     * N = 64 with order 0.94). */
    sdflow_ctx *ctx = test_ctx(8);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 1, &em_m, &em_v, &m), SDFLOW_OK);
    sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_PC, p, m);
    const size_t n = 10000;
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 250), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_CORRECTOR_STEPS, 2), SDFLOW_OK);
    double *x = malloc(n * sizeof *x), cm, cv, nfe;
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
    em_exact(p, 1e-3, &cm, &cv);
    double mean = vec_mean(x, n, 1), var = vec_var(x, n, 1);
    double se_m = sqrt(cv / (double)n), se_v = cv * sqrt(2.0 / (double)(n - 1));
    printf("pc gaussian: mean %.4f var %.4f, exact %.4f %.4f, se %.2g %.2g\n", mean, var, cm, cv, se_m, se_v);
    ck_assert_msg(fabs(mean - cm) < 4 * se_m + 6e-3, "mean %g vs %g", mean, cm);
    ck_assert_msg(fabs(var - cv) < 4 * se_v + 6e-3, "var %g vs %g", var, cv);
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe), SDFLOW_OK);
    ck_assert_double_eq(nfe, (double)n * 250 * 3); /* 2 corrector + 1 predictor evaluations per step */
    free(x);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- two-sample tests against an exact GMM -------------------------------- */


#define TS_N 1000
#define TS_NULL 40

/* Null threshold of the energy two-sample test (testutil.h). */
static double null_threshold(sdflow_ctx *ctx, sdflow_model *truth)
{
    double mean, sd, thr = tu_energy_null(ctx, truth, TS_N, TS_NULL, 1000, &mean, &sd);
    printf("energy null: mean %.3g std %.3g -> threshold %.3g\n", mean, sd, thr);
    return thr;
}

/* E_u between TS_N samples of sampler kind (score model `model`) and exact samples of truth. */
static double sampler_energy(sdflow_ctx *ctx, const sdflow_process *p, sdflow_model *model, sdflow_model *truth,
                             sdflow_sampler_kind kind)
{
    sdflow_sampler *s = tu_sampler(ctx, kind, p, model);
    if (kind != SDFLOW_SAMPLER_PF_ODE)
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 500), SDFLOW_OK);
    double *x = malloc(2 * TS_N * sizeof *x), *y = malloc(2 * TS_N * sizeof *y), e;
    sdflow_status st = sdflow_sampler_run(s, TS_N, NULL, x);
    ck_assert_msg(st == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    ck_assert_int_eq(sdflow_model_sample(truth, 7, 0, TS_N, y), SDFLOW_OK);
    ck_assert_int_eq(sdflow_metric_energy(ctx, TS_N, TS_N, 2, x, y, &e, NULL), SDFLOW_OK);
    free(x);
    free(y);
    sdflow_sampler_free(s);
    return e;
}

START_TEST(test_gmm_two_sample)
{
    /* Reverse SDE (EM, 500 steps), PC (500 steps, 1 Langevin step, snr
     * 0.16) and PF-ODE (DOPRI5, rtol 1e-5) with the exact GMM score pass the
     * test; the same samplers driven by a GMM whose means are shifted by 0.5
     * fail it. (Threads are covered by the determinism test.) */
    static const sdflow_sampler_kind kinds[3] = { SDFLOW_SAMPLER_REVERSE_SDE, SDFLOW_SAMPLER_PC,
                                                  SDFLOW_SAMPLER_PF_ODE };
    sdflow_ctx *ctx = test_ctx(5);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *truth = tu_gmm4(ctx, 0), *wrong = tu_gmm4(ctx, 0.5);
    double thr = null_threshold(ctx, truth);
    for (int k = 0; k < 3; k++) {
        double good = sampler_energy(ctx, p, truth, truth, kinds[k]);
        double bad = sampler_energy(ctx, p, wrong, truth, kinds[k]);
        printf("energy %s: exact model %.3g, shifted model %.3g, threshold %.3g\n", sdflow_sampler_kind_name(kinds[k]),
               good, bad, thr);
        ck_assert_msg(good < thr, "%s: E_u %g >= threshold %g with the exact score", sdflow_sampler_kind_name(kinds[k]),
                      good, thr);
        ck_assert_msg(bad > thr, "%s: E_u %g <= threshold %g with a wrong score", sdflow_sampler_kind_name(kinds[k]),
                      bad, thr);
    }
    sdflow_model_free(truth);
    sdflow_model_free(wrong);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_encode_decode)
{
    /* PF-ODE round trip t_min -> T -> t_min with DOPRI5 at rtol = atol = 1e-9
     * returns GMM data points to 1e-6 (each leg's global error is ~10 rtol
     * times the solution scale ~4). */
    sdflow_ctx *ctx = test_ctx(6);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m = tu_gmm4(ctx, 0);
    sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_PF_ODE, p, m);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, 1e-9), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, 1e-9), SDFLOW_OK);
    enum { N = 100 };
    double x[N * 2], z[N * 2], back[N * 2], tmin, nfe;
    ck_assert_int_eq(sdflow_sampler_get_double(s, SDFLOW_OPT_T_MIN, &tmin), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_sample(m, 3, 0, N, x), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_transport(s, N, tmin, 1.0, x, z), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe), SDFLOW_OK);
    /* the latent is close to the prior N(0, I): no point stays at its data value */
    ck_assert_double_lt(fabs(vec_mean(z, N, 2)), 0.5);
    memcpy(back, z, sizeof back);
    ck_assert_int_eq(sdflow_sampler_transport(s, N, 1.0, tmin, back, back), SDFLOW_OK); /* aliasing allowed */
    double worst = 0;
    for (int i = 0; i < 2 * N; i++)
        worst = fmax(worst, fabs(back[i] - x[i]));
    printf("encode/decode: max error %.3g (encode NFE/sample %.0f)\n", worst, nfe / N);
    ck_assert_msg(worst < 1e-6, "round trip error %g", worst);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- determinism ---------------------------------------------------------- */

static void det_run(sdflow_sampler_kind kind, int threads, size_t n, uint64_t first, double *out)
{
    sdflow_ctx *ctx = test_ctx(11);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, threads), SDFLOW_OK);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m = tu_gmm4(ctx, 0);
    sdflow_sampler *s = tu_sampler(ctx, kind, p, m);
    if (kind != SDFLOW_SAMPLER_PF_ODE)
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 40), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, first), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, out), SDFLOW_OK);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

START_TEST(test_determinism)
{
    /* n = 1000 in one run (1 thread) == 2 threads == runs of 300 and 700 at
     * first index 0 and 300, bit for bit, for EM, PC and adaptive PF-ODE. */
    static const sdflow_sampler_kind kinds[3] = { SDFLOW_SAMPLER_REVERSE_SDE, SDFLOW_SAMPLER_PC,
                                                  SDFLOW_SAMPLER_PF_ODE };
    const size_t n = 1000, d = 2;
    double *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b), *c = malloc(n * d * sizeof *c);
    for (int k = 0; k < 3; k++) {
        det_run(kinds[k], 1, n, 0, a);
        det_run(kinds[k], 2, n, 0, b);
        det_run(kinds[k], 2, 300, 0, c);
        det_run(kinds[k], 1, 700, 300, c + 300 * d);
        ck_assert_msg(memcmp(a, b, n * d * sizeof *a) == 0, "%s: 1 vs 2 threads differ", sdflow_sampler_kind_name(kinds[k]));
        ck_assert_msg(memcmp(a, c, n * d * sizeof *a) == 0, "%s: split run differs", sdflow_sampler_kind_name(kinds[k]));
        /* the check can fail: another first index gives other samples */
        det_run(kinds[k], 1, 700, 301, c + 300 * d);
        ck_assert(memcmp(a, c, n * d * sizeof *a) != 0);
    }
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- cancellation, NaN, options, state, allocation ------------------------ */

static int cancel_at_3(void *user, long done, long total)
{
    (void)done;
    (void)total;
    return ++*(int *)user >= 3;
}

START_TEST(test_cancel)
{
    static const sdflow_sampler_kind kinds[3] = { SDFLOW_SAMPLER_REVERSE_SDE, SDFLOW_SAMPLER_PC,
                                                  SDFLOW_SAMPLER_PF_ODE };
    static const int solvers[2] = { SDFLOW_SOLVER_RK4, SDFLOW_SOLVER_DOPRI5 };
    for (int k = 0; k < 4; k++) {
        sdflow_ctx *ctx = test_ctx(12);
        int calls = 0;
        ck_assert_int_eq(sdflow_ctx_set_progress(ctx, cancel_at_3, &calls), SDFLOW_OK);
        sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VE);
        sdflow_model *m = tu_gmm4(ctx, 0);
        sdflow_sampler *s = tu_sampler(ctx, kinds[k < 3 ? k : 2], p, m);
        if (k >= 2)
            ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solvers[k - 2]), SDFLOW_OK);
        double x[20 * 2];
        ck_assert_status_msg(ctx, sdflow_sampler_run(s, 20, NULL, x), SDFLOW_E_CANCELLED, "cancelled");
        ck_assert_int_eq(calls, 3); /* stopped at once */
        for (int i = 0; i < 40; i++) /* the state of the last completed step */
            ck_assert(isfinite(x[i]));
        sdflow_sampler_free(s);
        sdflow_model_free(m);
        sdflow_process_free(p);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

/* Score -x, except NaN for row 7 once t < 0.5. */
static int nan_model(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)user;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = i == 7 && t[i] < 0.5 ? NAN : -x[i * d + j];
    return 0;
}

START_TEST(test_nan_model)
{
    static const sdflow_sampler_kind kinds[3] = { SDFLOW_SAMPLER_REVERSE_SDE, SDFLOW_SAMPLER_PC,
                                                  SDFLOW_SAMPLER_PF_ODE };
    static const int solvers[4] = { SDFLOW_SOLVER_EULER, SDFLOW_SOLVER_HEUN, SDFLOW_SOLVER_RK4, SDFLOW_SOLVER_DOPRI5 };
    for (int k = 0; k < 6; k++) {
        sdflow_ctx *ctx = test_ctx(13);
        sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
        sdflow_model *m = NULL;
        ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, nan_model, NULL, &m), SDFLOW_OK);
        sdflow_sampler *s = tu_sampler(ctx, kinds[k < 2 ? k : 2], p, m);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 20), SDFLOW_OK);
        if (k >= 2)
            ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solvers[k - 2]), SDFLOW_OK);
        double x[10 * 2];
        ck_assert_status_msg(ctx, sdflow_sampler_run(s, 10, NULL, x), SDFLOW_E_NUMERIC, "sample 7");
        const char *msg = sdflow_ctx_last_error(ctx);
        ck_assert_msg(strstr(msg, "step") && strstr(msg, "t = 0."), "message lacks step/time: %s", msg);
        sdflow_sampler_free(s);
        sdflow_model_free(m);
        sdflow_process_free(p);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

START_TEST(test_options_and_state)
{
    sdflow_ctx *ctx = test_ctx(14);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PC, &s), SDFLOW_OK);
    double x[4] = { 0 };
    /* no model, then no process */
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_STATE, "no score model");
    sdflow_model *m = tu_gmm4(ctx, 0);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_STATE, "no process");
    { /* objects of another context are refused, and the binding is kept */
        sdflow_ctx *other = test_ctx(1);
        sdflow_process *op = NULL;
        sdflow_model *om = tu_gmm4(other, 0);
        ck_assert_int_eq(sdflow_process_create(other, SDFLOW_PROCESS_VP, &op), SDFLOW_OK);
        ck_assert_status_msg(ctx, sdflow_sampler_set_process(s, op), SDFLOW_E_INVALID, "process was created from another context");
        ck_assert_status_msg(ctx, sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, om), SDFLOW_E_INVALID,
                             "model was created from another context");
        ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_STATE, "no process");
        sdflow_process_free(op);
        sdflow_model_free(om);
        sdflow_ctx_free(other);
    }
    /* unknown key, key of another kind, wrong type, out of bounds */
    ck_assert_status_msg(ctx, sdflow_sampler_set_int(s, (sdflow_option)9999, 1), SDFLOW_E_UNSUPPORTED, "9999");
    ck_assert_status_msg(ctx, sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, 1), SDFLOW_E_UNSUPPORTED, "solver");
    ck_assert_status_msg(ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_STEPS, 10.0), SDFLOW_E_INVALID, "type");
    ck_assert_status_msg(ctx, sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 0), SDFLOW_E_INVALID, "outside");
    ck_assert_status_msg(ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_SNR, NAN), SDFLOW_E_INVALID, "outside");
    ck_assert_status_msg(ctx, sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, 5), SDFLOW_E_INVALID, "outside");
    long v;
    double dv;
    ck_assert_int_eq(sdflow_sampler_get_int(s, SDFLOW_OPT_STEPS, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 1000); /* documented default */
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_CORRECTOR_STEPS, 2), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_int(s, SDFLOW_OPT_CORRECTOR_STEPS, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(sdflow_sampler_get_double(s, SDFLOW_OPT_SNR, &dv), SDFLOW_OK);
    ck_assert_double_eq(dv, 0.16);
    uint64_t uv = 0;
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, 300), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_get_u64(s, SDFLOW_OPT_FIRST_INDEX, &uv), SDFLOW_OK);
    ck_assert_uint_eq(uv, 300);
    ck_assert_int_eq(sdflow_sampler_get_u64(s, SDFLOW_OPT_STEPS, &uv), SDFLOW_E_INVALID); /* an int option */
    ck_assert_int_eq(sdflow_sampler_get_u64(s, SDFLOW_OPT_PROBES, &uv), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_sampler_get_u64(s, SDFLOW_OPT_FIRST_INDEX, NULL), SDFLOW_E_INVALID);
    sdflow_sampler *bad = (sdflow_sampler *)&v; /* must be cleared on failure */
    ck_assert_int_eq(sdflow_sampler_create(NULL, SDFLOW_SAMPLER_PC, &bad), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PC, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_sampler_create(ctx, (sdflow_sampler_kind)17, &bad), SDFLOW_E_INVALID,
                         "unknown sampler kind 17");
    ck_assert_ptr_null(bad);
    sdflow_sampler_kind kind;
    ck_assert_int_eq(sdflow_sampler_kind_from_name("pf_ode", &kind), SDFLOW_OK);
    ck_assert_int_eq(kind, SDFLOW_SAMPLER_PF_ODE);
    ck_assert_int_eq(sdflow_sampler_kind_from_name("sdflow", &kind), SDFLOW_OK);
    ck_assert_int_eq(kind, SDFLOW_SAMPLER_SDFLOW);
    ck_assert_int_eq(sdflow_sampler_kind_from_name("euler", &kind), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_sampler_kind_from_name(NULL, &kind), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_sampler_kind_from_name("pc", NULL), SDFLOW_E_INVALID);
    /* t_min >= t_start */
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.6), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_START, 0.5), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_INVALID, "t_min");
    /* transport is PF-ODE only */
    ck_assert_status_msg(ctx, sdflow_sampler_transport(s, 2, 1.0, 0.5, x, x), SDFLOW_E_UNSUPPORTED, "pf_ode");
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Small complete pipeline for check_all_alloc_failures. */
static sdflow_status alloc_pipeline(const sdflow_allocator *a, sdflow_sampler_kind kind, int solver, int grid,
                                    int denoise)
{
    static const double g_w[TU_GK] = TU_GMM4_W, g_mu[TU_GK][2] = TU_GMM4_MU, g_cov[TU_GK][4] = TU_GMM4_COV;
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_sampler *s = NULL;
    double x[8 * 2];
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    if (!(st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p)) &&
        !(st = sdflow_model_create_gmm(ctx, TU_GK, 2, g_w, &g_mu[0][0], &g_cov[0][0], &m)) &&
        !(st = sdflow_sampler_create(ctx, kind, &s))) {
        sdflow_sampler_set_process(s, p);
        sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m);
        sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 5);
        sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, grid);
        sdflow_sampler_set_int(s, SDFLOW_OPT_DENOISE, denoise);
        if (kind == SDFLOW_SAMPLER_PF_ODE)
            sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver);
        st = sdflow_sampler_run(s, 8, NULL, x);
    }
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

static sdflow_status alloc_sde(const sdflow_allocator *a)
{
    return alloc_pipeline(a, SDFLOW_SAMPLER_REVERSE_SDE, 0, SDFLOW_GRID_QUADRATIC, 1);
}
static sdflow_status alloc_pc(const sdflow_allocator *a) { return alloc_pipeline(a, SDFLOW_SAMPLER_PC, 0, 0, 0); }
static sdflow_status alloc_rk4(const sdflow_allocator *a)
{
    return alloc_pipeline(a, SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_RK4, SDFLOW_GRID_LOGSNR, 0);
}
static sdflow_status alloc_dopri5(const sdflow_allocator *a)
{
    return alloc_pipeline(a, SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_DOPRI5, 0, 1);
}

START_TEST(test_alloc_failures)
{
    check_all_alloc_failures(alloc_sde);
    check_all_alloc_failures(alloc_pc);
    check_all_alloc_failures(alloc_rk4);
    check_all_alloc_failures(alloc_dopri5);
}
END_TEST

START_TEST(test_grids_and_denoise)
{
    /* Quadratic and log-SNR grids are valid (RK4 on them still reaches the
     * flow map to 1e-5, with errors of the order measured in the order
     * test) and Tweedie denoising on the Gaussian moves the PF-ODE output
     * x to (x + sigma^2 s)/alpha at t_min exactly as the model's x0 output. */
    sdflow_ctx *ctx = test_ctx(15);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VE);
    sdflow_model *m = tu_gauss2(ctx);
    for (int grid = 0; grid < 3; grid++) {
        sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_PF_ODE, p, m);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 200), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, grid), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.1), SDFLOW_OK);
        double x[NSTART][2], out[NSTART][2], ex[2];
        for (int i = 0; i < NSTART; i++)
            for (int j = 0; j < 2; j++)
                x[i][j] = 50 * xstart[i][j];
        ck_assert_int_eq(sdflow_sampler_run(s, NSTART, &x[0][0], &out[0][0]), SDFLOW_OK);
        for (int i = 0; i < NSTART; i++) {
            exact_flow(p, 1.0, 0.1, x[i], ex);
            ck_assert_msg(hypot(out[i][0] - ex[0], out[i][1] - ex[1]) < 1e-5, "grid %d row %d", grid, i);
        }
        if (grid == 0) {
            double den[NSTART][2], x0[NSTART][2], t[NSTART] = { 0.1, 0.1, 0.1, 0.1 };
            ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_DENOISE, 1), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_run(s, NSTART, &x[0][0], &den[0][0]), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_eval(m, p, NSTART, &out[0][0], t, SDFLOW_OUT_X0, &x0[0][0]), SDFLOW_OK);
            ck_assert_int_eq(memcmp(den, x0, sizeof den), 0);
        }
        sdflow_sampler_free(s);
    }
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *ode = tcase_create("pf_ode");
    tcase_set_timeout(ode, 60);
    tcase_add_test(ode, test_pf_ode_orders);
    tcase_add_test(ode, test_dopri5_efficiency);
    tcase_add_test(ode, test_dopri5_tolerance);
    tcase_add_test(ode, test_pf_ode_all_processes);
    tcase_add_test(ode, test_grids_and_denoise);
    tcase_add_test(ode, test_encode_decode);
    suite_add_tcase(s, ode);
    TCase *sde = tcase_create("sde");
    tcase_set_timeout(sde, 60);
    tcase_add_test(sde, test_em_moments);
    tcase_add_test(sde, test_em_weak_order);
    tcase_add_test(sde, test_pc_gaussian);
    suite_add_tcase(s, sde);
    TCase *gmm = tcase_create("two_sample");
    tcase_set_timeout(gmm, 120);
    tcase_add_test(gmm, test_gmm_two_sample);
    suite_add_tcase(s, gmm);
    TCase *api = tcase_create("api");
    tcase_set_timeout(api, 60);
    tcase_add_test(api, test_determinism);
    tcase_add_test(api, test_cancel);
    tcase_add_test(api, test_nan_model);
    tcase_add_test(api, test_options_and_state);
    tcase_add_test(api, test_alloc_failures);
    suite_add_tcase(s, api);
    return s;
}
