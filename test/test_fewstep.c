/* SPDX-License-Identifier: MIT */
/* Few-step samplers (DDIM, DPM-Solver++ 2M / 3M / SDE, EDM Heun) and the
 * Karras and custom time grids: convergence orders on the Gaussian flow map
 * (algorithms.md §12.b.1, §12.e), the peers' pitfalls (tiny final sigma,
 * lower-order-final for every step count against an independent
 * reference, no dummy or repeated step, duplicate custom times, <= 10
 * steps), energy two-sample tests of the stochastic variants (§13.2),
 * determinism over splits and threads, every model output kind and every
 * process. Fixed seeds throughout. */
#include <stdio.h>
#include "testutil.h"


static void coef2(const sdflow_process *p, double t, double *alpha, double *sigma)
{
    double f, g;
    ck_assert_int_eq(sdflow_process_coefficients(p, 1, &t, alpha, sigma, &f, &g), SDFLOW_OK);
}

/* §12.b.1 flow map of N(tu_gm, diag(tu_glam)) from ts to tt. */
static void flow(const sdflow_process *p, double ts, double tt, const double *xs, double *xt)
{
    double as, ss, at, st_;
    coef2(p, ts, &as, &ss);
    coef2(p, tt, &at, &st_);
    for (int j = 0; j < 2; j++) {
        double cs = as * as * tu_glam[j] + ss * ss, ct = at * at * tu_glam[j] + st_ * st_;
        xt[j] = at * tu_gm[j] + sqrt(ct / cs) * (xs[j] - as * tu_gm[j]);
    }
}

#define NSTART 4
static const double xstart[NSTART][2] = { { 0.3, -1.2 }, { -1.5, 0.7 }, { 2.0, 2.0 }, { -0.1, 0.05 } };

/* Mean |x_N - exact| from t = T to t_min = 0.1 over the start points (VE
 * starts scaled by its prior std 50), on the given grid. */
static double fs_error(sdflow_process_kind pk, sdflow_sampler_kind kind, long steps, int grid)
{
    sdflow_ctx *ctx = test_ctx(21);
    sdflow_process *p = tu_process(ctx, pk);
    sdflow_model *m = tu_gauss2(ctx);
    sdflow_sampler *s = tu_sampler(ctx, kind, p, m);
    double scale = pk == SDFLOW_PROCESS_VE ? 50.0 : 1.0, T, x[NSTART][2], out[NSTART][2], err = 0, nfe;
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_PROC_T_MAX, &T), SDFLOW_OK);
    for (int i = 0; i < NSTART; i++)
        for (int j = 0; j < 2; j++)
            x[i][j] = scale * xstart[i][j];
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, steps), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, grid), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.1), SDFLOW_OK);
    sdflow_status st = sdflow_sampler_run(s, NSTART, &x[0][0], &out[0][0]);
    ck_assert_msg(st == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    for (int i = 0; i < NSTART; i++) {
        double ex[2];
        flow(p, T, 0.1, x[i], ex);
        err += hypot(out[i][0] - ex[0], out[i][1] - ex[1]) / NSTART;
    }
    /* exactly one (two for EDM Heun) model evaluations per step and sample */
    ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe), SDFLOW_OK);
    ck_assert_double_eq(nfe, (double)NSTART * (double)steps * (kind == SDFLOW_SAMPLER_EDM_HEUN ? 2 : 1));
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return err;
}

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

START_TEST(test_fewstep_orders)
{
    /* §12.e: 5 grids (4 halvings) from 16 steps (>= 15: full order at the
     * last steps), errors far above roundoff; uniform log-SNR grid and
     * uniform t, VP and VE. Accept |p - p_expected| <= 0.2. */
    static const sdflow_process_kind pk[2] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VE };
    static const sdflow_sampler_kind kinds[4] = { SDFLOW_SAMPLER_DDIM, SDFLOW_SAMPLER_DPMPP_2M, SDFLOW_SAMPLER_DPMPP_3M,
                                                  SDFLOW_SAMPLER_EDM_HEUN };
    static const double expect[4] = { 1, 2, 3, 2 };
    static const int grids[2] = { SDFLOW_GRID_LOGSNR, SDFLOW_GRID_UNIFORM };
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 2; k++)
            for (int v = 0; v < 4; v++) {
                double err[5];
                long steps[5];
                for (int i = 0; i < 5; i++) {
                    steps[i] = (v == 2 ? 32L : 16L) << i;
                    err[i] = fs_error(pk[k], kinds[v], steps[i], grids[g]);
                }
                double p = fit_order(err, steps, 5);
                printf("fewstep order %s %s grid %d: p = %.3f (err %.3g .. %.3g)\n",
                       pk[k] == SDFLOW_PROCESS_VP ? "vp" : "ve", sdflow_sampler_kind_name(kinds[v]), grids[g], p, err[0],
                       err[4]);
                ck_assert_msg(fabs(p - expect[v]) <= 0.2, "%s process %d grid %d: order %.3f, expected %.0f",
                              sdflow_sampler_kind_name(kinds[v]), pk[k], grids[g], p, expect[v]);
            }
}
END_TEST

/* ---- pitfalls ------------------------------------------------------------- */

static const sdflow_sampler_kind all_kinds[6] = { SDFLOW_SAMPLER_DDIM, SDFLOW_SAMPLER_DPMPP_2M,
                                                  SDFLOW_SAMPLER_DPMPP_3M, SDFLOW_SAMPLER_DPMPP_2M_SDE,
                                                  SDFLOW_SAMPLER_DPMPP_3M_SDE, SDFLOW_SAMPLER_EDM_HEUN };

/* Gaussian posterior mean D_j(x, t) = m_j + lam_j alpha (x_j - alpha m_j) / (alpha^2 lam_j + sigma^2). */
static double gauss_D(double alpha, double sigma, int j, double x)
{
    return tu_gm[j] + tu_glam[j] * alpha * (x - alpha * tu_gm[j]) / (alpha * alpha * tu_glam[j] + sigma * sigma);
}

/* Independent scalar DPM-Solver++ 2M / 3M (k-diffusion's loop, written in
 * sigma~ = sigma / alpha, with the exact 3M weight), lower-order-final
 * rule on or off, on the times tg[0..N]. */
static void ref_dpmpp(const sdflow_process *p, int order, int lof, long N, const double *tg, const double *x0,
                      double *out)
{
    for (int j = 0; j < 2; j++) {
        double x = x0[j], d1 = 0, d2 = 0, h1 = 0, h2 = 0;
        for (long k = 0; k < N; k++) {
            double at, st_, au, su;
            coef2(p, tg[k], &at, &st_);
            coef2(p, tg[k + 1], &au, &su);
            double D = gauss_D(at, st_, j, x), lt = -log(st_ / at), lu = -log(su / au), h = lu - lt;
            long ord = k + 1 < order ? k + 1 : order;
            if (lof && N < 15 && N - k < ord)
                ord = N - k;
            double y = exp(-h) * x / at - expm1(-h) * D;
            if (ord == 2 && order == 2)
                y += -0.5 * expm1(-h) * (D - d1) / (h1 / h);
            else if (ord == 2)
                y += (expm1(-h) / h + 1) * (D - d1) / (h1 / h);
            else if (ord == 3) {
                double r0 = h1 / h, r1 = h2 / h, e0 = (D - d1) / r0, e1 = (d1 - d2) / r1;
                double phi2 = expm1(-h) / h + 1, phi3 = phi2 / h - 0.5;
                y += phi2 * (e0 + (e0 - e1) * r0 / (r0 + r1)) - 2 * phi3 * (e0 - e1) / (r0 + r1);
            }
            x = au * y;
            d2 = d1;
            d1 = D;
            h2 = h1;
            h1 = h;
        }
        out[j] = x;
    }
}

START_TEST(test_lower_order_final_every_count)
{
    /* For every step count 2..17, odd and even, 2M and 3M match the
     * independent reference with the lower-order-final rule to 1e-12
     * (roundoff of ~N operations on O(1) values), on a non-uniform custom
     * grid (quadratic in t). The reference without the rule differs by far
     * more for N < 15: the check can fail. */
    sdflow_ctx *ctx = test_ctx(31);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m = tu_gauss2(ctx);
    const double x0[2] = { 0.7, -1.1 };
    for (int order = 2; order <= 3; order++)
        for (long N = 2; N <= 17; N++) {
            double tg[18], out[2], ref[2], off[2];
            for (long k = 0; k <= N; k++) {
                double u = 1 - (double)k / (double)N;
                tg[k] = 0.05 + 0.95 * u * u;
            }
            sdflow_sampler *s = tu_sampler(ctx, order == 2 ? SDFLOW_SAMPLER_DPMPP_2M : SDFLOW_SAMPLER_DPMPP_3M, p, m);
            ck_assert_int_eq(sdflow_sampler_set_time_grid(s, (size_t)N + 1, tg), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_run(s, 1, x0, out), SDFLOW_OK);
            ref_dpmpp(p, order, 1, N, tg, x0, ref);
            ref_dpmpp(p, order, 0, N, tg, x0, off);
            double e = fmax(fabs(out[0] - ref[0]), fabs(out[1] - ref[1]));
            double moved = fmax(fabs(off[0] - ref[0]), fabs(off[1] - ref[1]));
            ck_assert_msg(e < 1e-12, "order %d N %ld: |lib - ref| = %g", order, N, e);
            if (N < 15)
                ck_assert_msg(moved > 1e-8, "order %d N %ld: rule has no effect (%g)", order, N, moved);
            else
                ck_assert_double_eq(moved, 0);
            sdflow_sampler_free(s);
        }
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* A model of any output kind: the Gaussian's output of that kind, and a
 * log of the distinct times it was called at (no dummy or repeated steps). */
typedef struct kind_model {
    sdflow_model *g;
    const sdflow_process *p;
    sdflow_output kind;
    double times[64];
    int ncalls;
} kind_model;

static int kind_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)d;
    kind_model *km = user;
    if (km->ncalls < 64)
        km->times[km->ncalls] = t[0];
    km->ncalls++;
    return sdflow_model_eval(km->g, km->p, n, x, t, km->kind, out) != SDFLOW_OK;
}

START_TEST(test_output_kinds_and_steps)
{
    /* Every model output kind (score, eps, x0, velocity, v) gives the
     * Gaussian model's result to 1e-9 for every sampler, and the model is
     * called exactly once per step (twice for EDM Heun) at the grid times,
     * never at a repeated or extra final time. */
    sdflow_ctx *ctx = test_ctx(32);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *g = tu_gauss2(ctx);
    const double x0[2] = { 0.4, 1.3 };
    const long N = 12;
    for (int v = 0; v < 6; v++) {
        double want[2];
        sdflow_sampler *s = tu_sampler(ctx, all_kinds[v], p, g);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, N), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, 1, x0, want), SDFLOW_OK);
        for (int kind = SDFLOW_OUT_SCORE; kind <= SDFLOW_OUT_V; kind++) {
            kind_model km = { .g = g, .p = p, .kind = (sdflow_output)kind };
            sdflow_model *cb = NULL;
            double got[2];
            ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, (sdflow_output)kind, kind_fn, &km, &cb), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, cb), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_run(s, 1, x0, got), SDFLOW_OK);
            ck_assert_msg(fabs(got[0] - want[0]) < 1e-9 && fabs(got[1] - want[1]) < 1e-9, "%s kind %d: %g %g vs %g %g",
                          sdflow_sampler_kind_name(all_kinds[v]), kind, got[0], got[1], want[0], want[1]);
            int heun = all_kinds[v] == SDFLOW_SAMPLER_EDM_HEUN;
            ck_assert_int_eq(km.ncalls, (int)(heun ? 2 * N - 1 : N)); /* N < 15: Euler last step */
            for (int c = heun ? 2 : 1; c < km.ncalls; c += heun ? 2 : 1) /* step starts */
                ck_assert_msg(km.times[c] < km.times[c - (heun ? 2 : 1)], "%s: time repeated at call %d",
                              sdflow_sampler_kind_name(all_kinds[v]), c);
            ck_assert_double_eq(km.times[0], 1.0);
            ck_assert_double_gt(km.times[km.ncalls - 1], 1e-3 - (heun ? 1e-15 : -1e-15)); /* never past t_min */
            ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, g), SDFLOW_OK);
            sdflow_model_free(cb);
        }
        sdflow_sampler_free(s);
    }
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_tiny_final_sigma_and_few_steps)
{
    /* The peers' log(sigma) = log 0 NaN: here sigma~ never reaches 0 inside
     * [t_eps, T], so the test drives it as close as the processes allow
     * (t_min = t_eps = 1e-12: sigma~ ~ 3e-6 for VP, ~4e-8 for VE with the
     * exact std), on Karras grids of 1..10 steps, the most uneven steps in
     * lambda. Every sampler, every process gives finite samples that do
     * not blow up: |x| < 50 for data of std <= 1 (3M SDE reaches 16 at 11
     * steps, EDM Heun 280 at 1 step before its Euler last step; both are
     * accuracy, not stability, limits: docs/fewstep.md). */
    static const sdflow_process_kind pk[4] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VP_COSINE, SDFLOW_PROCESS_SUBVP,
                                               SDFLOW_PROCESS_VE };
    sdflow_ctx *ctx = test_ctx(33);
    sdflow_model *g = tu_gauss2(ctx);
    for (int k = 0; k < 4; k++) {
        sdflow_process *p = tu_process(ctx, pk[k]);
        ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_T_EPS, 1e-12), SDFLOW_OK);
        if (pk[k] == SDFLOW_PROCESS_VE)
            ck_assert_int_eq(sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_OK);
        for (int v = 0; v < 6; v++)
            for (long N = 1; N <= 10; N++) {
                enum { NS = 50 };
                double x[NS * 2];
                sdflow_sampler *s = tu_sampler(ctx, all_kinds[v], p, g);
                ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, N), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 1e-12), SDFLOW_OK);
                if (all_kinds[v] == SDFLOW_SAMPLER_EDM_HEUN)
                    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_S_CHURN, 10), SDFLOW_OK);
                sdflow_status st = sdflow_sampler_run(s, NS, NULL, x);
                ck_assert_msg(st == SDFLOW_OK, "%s process %d N %ld: %s", sdflow_sampler_kind_name(all_kinds[v]), pk[k],
                              N, sdflow_ctx_last_error(ctx));
                for (int i = 0; i < NS * 2; i++)
                    ck_assert_msg(isfinite(x[i]) && fabs(x[i]) < 50, "%s process %d N %ld: x = %g",
                                  sdflow_sampler_kind_name(all_kinds[v]), pk[k], N, x[i]);
                sdflow_sampler_free(s);
            }
        sdflow_process_free(p);
    }
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_custom_grid_errors)
{
    /* Duplicate or unordered times are a clear error and change nothing; an
     * increasing grid is used reversed; a custom copy of the uniform grid
     * gives the uniform grid's samples bit for bit; steps must match. */
    sdflow_ctx *ctx = test_ctx(34);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VE);
    sdflow_model *g = tu_gauss2(ctx);
    sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_DPMPP_3M, p, g);
    const double dup[5] = { 1.0, 0.5, 0.5, 0.2, 0.1 }, bump[4] = { 1.0, 0.3, 0.5, 0.1 };
    const double nan_[3] = { 1.0, NAN, 0.1 };
    ck_assert_status_msg(ctx, sdflow_sampler_set_time_grid(s, 5, dup), SDFLOW_E_INVALID, "strictly monotone");
    ck_assert_status_msg(ctx, sdflow_sampler_set_time_grid(s, 4, bump), SDFLOW_E_INVALID, "times[2]");
    ck_assert_status_msg(ctx, sdflow_sampler_set_time_grid(s, 3, nan_), SDFLOW_E_INVALID, "times");
    ck_assert_status_msg(ctx, sdflow_sampler_set_time_grid(s, 1, dup), SDFLOW_E_INVALID, "2 ..");
    ck_assert_status_msg(ctx, sdflow_sampler_set_time_grid(s, 2, NULL), SDFLOW_E_INVALID, "times");
    long grid;
    ck_assert_int_eq(sdflow_sampler_get_int(s, SDFLOW_OPT_TIME_GRID, &grid), SDFLOW_OK);
    ck_assert_int_eq(grid, SDFLOW_GRID_UNIFORM);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_CUSTOM), SDFLOW_OK);
    double x[4] = { 10, -20, 30, 5 }, a[4], b[4], c[4];
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, x, a), SDFLOW_E_STATE, "no grid");
    /* uniform reference with t_min = 0.1, 9 steps */
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_UNIFORM), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 9), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 2, x, a), SDFLOW_OK);
    double tg[10], up[10], tmin;
    for (int k = 0; k <= 9; k++)
        tg[k] = k == 9 ? 0.1 : 1.0 - (double)k / 9.0 * (1.0 - 0.1); /* sampler.c: hi - u (hi - lo) */
    for (int k = 0; k <= 9; k++)
        up[k] = tg[9 - k];
    ck_assert_int_eq(sdflow_sampler_set_time_grid(s, 10, tg), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 2, x, b), SDFLOW_OK);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    ck_assert_int_eq(sdflow_sampler_set_time_grid(s, 10, up), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 2, x, c), SDFLOW_OK);
    ck_assert_int_eq(memcmp(a, c, sizeof a), 0);
    ck_assert_int_eq(sdflow_sampler_get_double(s, SDFLOW_OPT_T_MIN, &tmin), SDFLOW_OK);
    ck_assert_double_eq(tmin, 0.1);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 8), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, x, c), SDFLOW_E_STATE, "steps");
    /* a grid outside the process range */
    const double wide[3] = { 2.0, 1.0, 0.5 };
    ck_assert_int_eq(sdflow_sampler_set_time_grid(s, 3, wide), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, x, c), SDFLOW_E_INVALID, "t_start");
    /* options of other kinds are refused */
    ck_assert_status_msg(ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_ETA, 1), SDFLOW_E_UNSUPPORTED, "eta");
    ck_assert_status_msg(ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_S_CHURN, 1), SDFLOW_E_UNSUPPORTED, "s_churn");
    sdflow_sampler_free(s);
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_karras_grid)
{
    /* The Karras grid, VP and VE: sigma~(t_k)^(1/rho) is uniform in k to
     * 1e-12 relative (closed-form inverse of the log-SNR) and starts
     * exactly at T: the model sees exactly these N times. */
    static const sdflow_process_kind pk[2] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VE };
    sdflow_ctx *ctx = test_ctx(35);
    sdflow_model *g = tu_gauss2(ctx);
    for (int k = 0; k < 2; k++) {
        sdflow_process *p = tu_process(ctx, pk[k]);
        kind_model km = { .g = g, .p = p, .kind = SDFLOW_OUT_X0 };
        sdflow_model *cb = NULL;
        ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_X0, kind_fn, &km, &cb), SDFLOW_OK);
        sdflow_sampler *s = tu_sampler(ctx, SDFLOW_SAMPLER_DDIM, p, cb);
        const long N = 20;
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, N), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS), SDFLOW_OK);
        double x[2] = { 0.1, 0.2 }, out[2], a, sg, tmin;
        ck_assert_int_eq(sdflow_sampler_run(s, 1, x, out), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_get_double(s, SDFLOW_OPT_T_MIN, &tmin), SDFLOW_OK);
        ck_assert_int_eq(km.ncalls, (int)N);
        ck_assert_double_eq(km.times[0], 1.0);
        coef2(p, 1.0, &a, &sg);
        double r0 = pow(sg / a, 1 / 7.0);
        coef2(p, tmin, &a, &sg);
        double r1 = pow(sg / a, 1 / 7.0);
        for (long i = 1; i < N; i++) {
            coef2(p, km.times[i], &a, &sg);
            double want = r0 + (double)i / (double)N * (r1 - r0);
            ck_assert_msg(fabs(pow(sg / a, 1 / 7.0) / want - 1) < 1e-12, "process %d k %ld", pk[k], i);
        }
        sdflow_sampler_free(s);
        sdflow_model_free(cb);
        sdflow_process_free(p);
    }
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- stochastic variants: two-sample tests, determinism ---------------------- */


#define TS_N 1000
#define TS_NULL 40

/* Null threshold of the energy two-sample test (testutil.h). */
static double null_thr(sdflow_ctx *ctx, sdflow_model *truth)
{
    return tu_energy_null(ctx, truth, TS_N, TS_NULL, 2000, NULL, NULL);
}

static sdflow_sampler *stoch_sampler(sdflow_ctx *ctx, int v, const sdflow_process *p, sdflow_model *m, long steps)
{
    static const sdflow_sampler_kind kinds[4] = { SDFLOW_SAMPLER_DDIM, SDFLOW_SAMPLER_DPMPP_2M_SDE,
                                                  SDFLOW_SAMPLER_DPMPP_3M_SDE, SDFLOW_SAMPLER_EDM_HEUN };
    sdflow_sampler *s = tu_sampler(ctx, kinds[v], p, m);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, steps), SDFLOW_OK);
    if (kinds[v] == SDFLOW_SAMPLER_DDIM)
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_ETA, 1), SDFLOW_OK);
    if (kinds[v] == SDFLOW_SAMPLER_EDM_HEUN)
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_S_CHURN, 40), SDFLOW_OK);
    return s;
}

START_TEST(test_stochastic_two_sample)
{
    /* DDIM eta = 1, DPM-Solver++ 2M SDE and 3M SDE (eta = 1) and EDM Heun
     * with S_churn = 40, at 20 and 50 steps (Karras grid), exact GMM score:
     * E_u below the null threshold; with the GMM shifted by 0.5 above it. */
    sdflow_ctx *ctx = test_ctx(36);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *truth = tu_gmm4(ctx, 0), *wrong = tu_gmm4(ctx, 0.5);
    double thr = null_thr(ctx, truth);
    double *x = malloc(2 * TS_N * sizeof *x), *y = malloc(2 * TS_N * sizeof *y);
    ck_assert_int_eq(sdflow_model_sample(truth, 9, 0, TS_N, y), SDFLOW_OK);
    for (int v = 0; v < 4; v++)
        for (int w = 0; w < 2; w++) {
            long steps = w ? 50 : 20;
            double e[2];
            for (int bad = 0; bad < 2; bad++) {
                sdflow_sampler *s = stoch_sampler(ctx, v, p, bad ? wrong : truth, steps);
                ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS), SDFLOW_OK);
                sdflow_status st = sdflow_sampler_run(s, TS_N, NULL, x);
                ck_assert_msg(st == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
                ck_assert_int_eq(sdflow_metric_energy(ctx, TS_N, TS_N, 2, x, y, &e[bad], NULL), SDFLOW_OK);
                if (bad == 0)
                    printf("energy kind %d %ld steps: exact %.3g", v, steps, e[0]);
                sdflow_sampler_free(s);
            }
            printf(" [kind %d] shifted %.3g threshold %.3g\n", v, e[1], thr);
            ck_assert_msg(e[0] < thr, "kind %d steps %ld: E_u %g >= threshold %g", v, steps, e[0], thr);
            ck_assert_msg(e[1] > thr, "kind %d steps %ld: shifted model passes (%g <= %g)", v, steps, e[1], thr);
        }
    free(x);
    free(y);
    sdflow_model_free(truth);
    sdflow_model_free(wrong);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

static void det_run(int v, int threads, size_t n, uint64_t first, double *out)
{
    sdflow_ctx *ctx = test_ctx(37);
    ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, threads), SDFLOW_OK);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VE);
    sdflow_model *m = tu_gmm4(ctx, 0);
    sdflow_sampler *s = stoch_sampler(ctx, v, p, m, 15);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, first), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, out), SDFLOW_OK);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}

START_TEST(test_fewstep_determinism)
{
    /* n = 1000 in one run (1 thread) == 2 threads == runs of 300 and 700 at
     * first index 0 and 300, bit for bit, for the four stochastic samplers;
     * another first index gives other samples. */
    const size_t n = 1000, d = 2;
    double *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b), *c = malloc(n * d * sizeof *c);
    for (int v = 0; v < 4; v++) {
        det_run(v, 1, n, 0, a);
        det_run(v, 2, n, 0, b);
        det_run(v, 2, 300, 0, c);
        det_run(v, 1, 700, 300, c + 300 * d);
        ck_assert_msg(memcmp(a, b, n * d * sizeof *a) == 0, "kind %d: 1 vs 2 threads differ", v);
        ck_assert_msg(memcmp(a, c, n * d * sizeof *a) == 0, "kind %d: split run differs", v);
        det_run(v, 1, 700, 301, c + 300 * d);
        ck_assert(memcmp(a, c, n * d * sizeof *a) != 0);
    }
    free(a);
    free(b);
    free(c);
}
END_TEST

/* Small pipeline for check_all_alloc_failures. */
static sdflow_status alloc_few(const sdflow_allocator *al, sdflow_sampler_kind kind)
{
    static const double g_w[TU_GK] = TU_GMM4_W, g_mu[TU_GK][2] = TU_GMM4_MU, g_cov[TU_GK][4] = TU_GMM4_COV;
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_sampler *s = NULL;
    double x[8 * 2];
    const double tg[4] = { 1.0, 0.5, 0.2, 0.1 };
    sdflow_status st = sdflow_ctx_create(&ctx, al);
    if (st)
        return st;
    if (!(st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p)) &&
        !(st = sdflow_model_create_gmm(ctx, TU_GK, 2, g_w, &g_mu[0][0], &g_cov[0][0], &m)) &&
        !(st = sdflow_sampler_create(ctx, kind, &s))) {
        sdflow_sampler_set_process(s, p);
        sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m);
        if (kind == SDFLOW_SAMPLER_EDM_HEUN)
            sdflow_sampler_set_double(s, SDFLOW_OPT_S_CHURN, 1);
        if (!(st = sdflow_sampler_set_time_grid(s, 4, tg)))
            st = sdflow_sampler_run(s, 8, NULL, x);
    }
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}
static sdflow_status alloc_ddim(const sdflow_allocator *a) { return alloc_few(a, SDFLOW_SAMPLER_DDIM); }
static sdflow_status alloc_3msde(const sdflow_allocator *a) { return alloc_few(a, SDFLOW_SAMPLER_DPMPP_3M_SDE); }
static sdflow_status alloc_edm(const sdflow_allocator *a) { return alloc_few(a, SDFLOW_SAMPLER_EDM_HEUN); }

START_TEST(test_fewstep_alloc_failures)
{
    check_all_alloc_failures(alloc_ddim);
    check_all_alloc_failures(alloc_3msde);
    check_all_alloc_failures(alloc_edm);
}
END_TEST

Suite *fewstep_suite(void)
{
    Suite *s = suite_create("fewstep");
    TCase *tc = tcase_create("orders");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fewstep_orders);
    suite_add_tcase(s, tc);
    TCase *pit = tcase_create("pitfalls");
    tcase_set_timeout(pit, 60);
    tcase_add_test(pit, test_lower_order_final_every_count);
    tcase_add_test(pit, test_output_kinds_and_steps);
    tcase_add_test(pit, test_tiny_final_sigma_and_few_steps);
    tcase_add_test(pit, test_custom_grid_errors);
    tcase_add_test(pit, test_karras_grid);
    tcase_add_test(pit, test_fewstep_alloc_failures);
    suite_add_tcase(s, pit);
    TCase *sto = tcase_create("stochastic");
    tcase_set_timeout(sto, 120);
    tcase_add_test(sto, test_stochastic_two_sample);
    tcase_add_test(sto, test_fewstep_determinism);
    suite_add_tcase(s, sto);
    return s;
}
