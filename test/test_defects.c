/* SPDX-License-Identifier: MIT */
/* Regression tests for the defects of issue 9 (found by outside testing):
 * each test failed on a75bf84. */
#include <stdint.h>
#include <stdio.h>
#include "testutil.h"

static const sdflow_process_kind all_procs[] = { SDFLOW_PROCESS_VP, SDFLOW_PROCESS_VP_COSINE, SDFLOW_PROCESS_SUBVP,
                                                 SDFLOW_PROCESS_VE };
static const int all_solvers[] = { SDFLOW_SOLVER_EULER, SDFLOW_SOLVER_HEUN, SDFLOW_SOLVER_RK4, SDFLOW_SOLVER_DOPRI5 };

/* ---- item 1: every stage time lies in [t_end, t_start] ------------------- */

/* Score of N(0, I) data under the process, recording the smallest and
 * largest time it is asked for. */
typedef struct time_rec {
    const sdflow_process *p;
    double lo, hi;
} time_rec;

static int rec_score(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    time_rec *r = user;
    for (size_t i = 0; i < n; i++) {
        r->lo = fmin(r->lo, t[i]);
        r->hi = fmax(r->hi, t[i]);
        double a, s, f, g;
        if (sdflow_process_coefficients(r->p, 1, &t[i], &a, &s, &f, &g))
            return 1;
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = -x[i * d + j] / (a * a + s * s);
    }
    return 0;
}

static void rec_reset(time_rec *r)
{
    r->lo = INFINITY;
    r->hi = -INFINITY;
}

static void check_range(const time_rec *r, double a, double b, const char *what, int kind, int solver, double T)
{
    double lo = fmin(a, b), hi = fmax(a, b);
    ck_assert_msg(r->lo >= lo && r->hi <= hi,
                  "%s, process %d, solver %d, T=%.17g: stage times [%.17g, %.17g] outside [%.17g, %.17g]", what,
                  kind, solver, T, r->lo, r->hi, lo, hi);
}

/* Runs, transports both ways and evaluates the PF-ODE likelihood with every
 * solver on every process, at t_min = t_eps and at the default and an odd
 * horizon T: no stage time may leave [t_end, t_start]. On a75bf84 DOPRI5's
 * c = 1 stage evaluated at t + h past t_eps (run, transport down) or past T
 * (transport up, likelihood) and failed with SDFLOW_E_INVALID. */
START_TEST(test_stage_times_in_range)
{
    const double Ts[] = { 0, 0.123456789, 0.987654321 };
    for (size_t pk = 0; pk < 4; pk++)
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t si = 0; si < 4; si++) {
                sdflow_process_kind kind = all_procs[pk];
                int solver = all_solvers[si];
                sdflow_ctx *ctx = test_ctx(7);
                sdflow_process *p = NULL;
                ck_assert_int_eq(sdflow_process_create(ctx, kind, &p), SDFLOW_OK);
                if (Ts[ti] > 0)
                    ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_T_MAX, Ts[ti]), SDFLOW_OK);
                double teps, T;
                ck_assert_int_eq(sdflow_process_time_range(p, &teps, &T), SDFLOW_OK);
                time_rec r = { p, 0, 0 };
                sdflow_model *m = NULL;
                ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, rec_score, &r, &m), SDFLOW_OK);
                sdflow_sampler *s = NULL;
                ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 7), SDFLOW_OK);
                ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, teps), SDFLOW_OK);
                double x[6], y[6];
                for (size_t n = 1; n <= 3; n++) {
                    rec_reset(&r);
                    ck_assert_msg(sdflow_sampler_run(s, n, NULL, x) == SDFLOW_OK, "run n=%zu: %s", n,
                                  sdflow_ctx_last_error(ctx));
                    check_range(&r, teps, T, "run", kind, solver, T);
                }
                rec_reset(&r);
                ck_assert_msg(sdflow_sampler_transport(s, 3, T, teps, x, y) == SDFLOW_OK, "transport down: %s",
                              sdflow_ctx_last_error(ctx));
                check_range(&r, teps, T, "transport down", kind, solver, T);
                rec_reset(&r);
                ck_assert_msg(sdflow_sampler_transport(s, 3, teps, T, y, x) == SDFLOW_OK, "transport up: %s",
                              sdflow_ctx_last_error(ctx));
                check_range(&r, teps, T, "transport up", kind, solver, T);
                /* an odd interval inside the range, both directions */
                double a = teps + 0.3141592653589793 * (T - teps), b = teps + 0.2718281828459045 * (T - teps);
                rec_reset(&r);
                ck_assert_int_eq(sdflow_sampler_transport(s, 3, a, b, x, y), SDFLOW_OK);
                check_range(&r, a, b, "transport a->b", kind, solver, T);
                rec_reset(&r);
                ck_assert_int_eq(sdflow_sampler_transport(s, 3, b, a, y, x), SDFLOW_OK);
                check_range(&r, a, b, "transport b->a", kind, solver, T);
                /* the likelihood integrates up from t_min = t_eps to T (RK4 or DOPRI5) */
                sdflow_density *e = NULL;
                if (solver != SDFLOW_SOLVER_RK4 && solver != SDFLOW_SOLVER_DOPRI5)
                    goto done;
                ck_assert_int_eq(sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, &e), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_process(e, p), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_model(e, m), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 7), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, teps), SDFLOW_OK);
                double lp[3];
                rec_reset(&r);
                ck_assert_msg(sdflow_density_logpdf(e, 3, x, lp, NULL) == SDFLOW_OK, "likelihood: %s",
                              sdflow_ctx_last_error(ctx));
                check_range(&r, teps, T, "likelihood", kind, solver, T);
            done:
                sdflow_density_free(e);
                sdflow_sampler_free(s);
                sdflow_model_free(m);
                sdflow_process_free(p);
                sdflow_ctx_free(ctx);
            }
}
END_TEST

/* The defaults of every process (VE: t_min = t_eps = 1e-5) with the default
 * DOPRI5 and a closed-form Gaussian model; and x_out untouched when the
 * arguments are refused with SDFLOW_E_INVALID. */
START_TEST(test_default_pf_ode_run)
{
    for (size_t pk = 0; pk < 4; pk++) {
        sdflow_ctx *ctx = test_ctx(3);
        sdflow_process *p = NULL;
        ck_assert_int_eq(sdflow_process_create(ctx, all_procs[pk], &p), SDFLOW_OK);
        double mean[2] = { 0.5, -0.25 }, cov[4] = { 1, 0.2, 0.2, 0.5 };
        sdflow_model *m = NULL;
        ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, mean, cov, &m), SDFLOW_OK);
        sdflow_sampler *s = NULL;
        ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
        double x[10], y[10];
        for (size_t n = 1; n <= 5; n++)
            ck_assert_msg(sdflow_sampler_run(s, n, NULL, x) == SDFLOW_OK, "process %d n=%zu: %s", all_procs[pk], n,
                          sdflow_ctx_last_error(ctx));
        double teps, T;
        ck_assert_int_eq(sdflow_process_time_range(p, &teps, &T), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_transport(s, 5, T, teps, x, y), SDFLOW_OK);
        /* refused arguments leave x_out as it was */
        double z[10];
        for (int i = 0; i < 10; i++)
            z[i] = 1234.5 + i;
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.5 * teps), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, 5, x, z), SDFLOW_E_INVALID);
        for (int i = 0; i < 10; i++)
            ck_assert(z[i] == 1234.5 + i);
        ck_assert_int_eq(sdflow_sampler_transport(s, 5, T, 0.5 * teps, x, z), SDFLOW_E_INVALID);
        for (int i = 0; i < 10; i++)
            ck_assert(z[i] == 1234.5 + i);
        sdflow_sampler_free(s);
        sdflow_model_free(m);
        sdflow_process_free(p);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

/* ---- item 3: a failing right-hand side names the right sample ----------- */

/* Fills every block with 0xFF bytes (a NaN pattern), so a read of memory
 * the library never wrote shows up as NaN. */
static void *ff_alloc(void *u, size_t n)
{
    (void)u;
    void *p = malloc(n);
    if (p)
        memset(p, 0xFF, n);
    return p;
}
static void ff_free(void *u, void *p)
{
    (void)u;
    free(p);
}

/* Score of N(0, I) (at any t, good enough here) with NaN for sample 2. */
static int nan_row2(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)t;
    (void)user;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = i == 2 ? NAN : -x[i * d + j];
    return 0;
}

/* On a75bf84 the likelihood's right-hand side returned NUMERIC without
 * writing dydt and the solver then scanned dydt: an uninitialised read
 * (valgrind) that named "sample 0" with this allocator. */
START_TEST(test_nan_names_sample)
{
    sdflow_allocator a = { ff_alloc, NULL, ff_free, NULL };
    for (int solver = SDFLOW_SOLVER_RK4; solver <= SDFLOW_SOLVER_DOPRI5; solver++) {
        sdflow_ctx *ctx = NULL;
        ck_assert_int_eq(sdflow_ctx_create(&ctx, &a), SDFLOW_OK);
        sdflow_process *p = NULL;
        ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
        sdflow_model *m = NULL;
        ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, nan_row2, NULL, &m), SDFLOW_OK);
        double x[8] = { 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8 }, lp[4], y[8];
        for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_PF_ODE_HUTCHINSON; kind++) {
            sdflow_density *e = NULL;
            ck_assert_int_eq(sdflow_density_create(ctx, (sdflow_density_kind)kind, &e), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_process(e, p), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_model(e, m), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
            sdflow_status st = sdflow_density_logpdf(e, 4, x, lp, NULL);
            if (kind == SDFLOW_DENSITY_PF_ODE_EXACT && st == SDFLOW_E_UNSUPPORTED) { /* no JVP */
                sdflow_density_free(e);
                continue;
            }
            ck_assert_msg(st == SDFLOW_E_NUMERIC, "density %d solver %d: status %d (%s)", kind, solver, st,
                          sdflow_ctx_last_error(ctx));
            ck_assert_msg(strstr(sdflow_ctx_last_error(ctx), "sample 2") != NULL, "density %d solver %d: '%s'", kind,
                          solver, sdflow_ctx_last_error(ctx));
            sdflow_density_free(e);
        }
        sdflow_sampler *s = NULL;
        ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
        ck_assert_status_msg(ctx, sdflow_sampler_run(s, 4, x, y), SDFLOW_E_NUMERIC, "sample 2");
        sdflow_sampler_free(s);
        sdflow_model_free(m);
        sdflow_process_free(p);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

/* ---- item 4: PC keeps the last completed step ------------------------- */

/* VP score of N(0, I) data (-x at every t); fails call number fail_at. */
typedef struct fail_cb {
    long calls, fail_at;
    double scale;
} fail_cb;

static int failing_score(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)t;
    fail_cb *f = user;
    if (f->calls++ == f->fail_at)
        return 1;
    for (size_t i = 0; i < n * d; i++)
        out[i] = f->scale != 0 ? f->scale : -x[i];
    return 0;
}

static sdflow_status pc_run(long fail_at, double *x)
{
    sdflow_ctx *ctx = test_ctx(11);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    fail_cb f = { 0, fail_at, 0 };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, failing_score, &f, &m), SDFLOW_OK);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PC, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 8), SDFLOW_OK);
    sdflow_status st = sdflow_sampler_run(s, 3, NULL, x);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

/* PC with one corrector step makes calls 2k (corrector) and 2k + 1
 * (predictor) in step k. A failure of the predictor of step 6 (k = 5, call
 * 11) must leave the same state as a failure of its corrector (call 10):
 * the end of step 5. On a75bf84 x_out held the corrected, unpredicted state. */
START_TEST(test_pc_failure_keeps_step)
{
    double a[6], b[6];
    ck_assert_int_eq(pc_run(10, a), SDFLOW_E_CALLBACK);
    ck_assert_int_eq(pc_run(11, b), SDFLOW_E_CALLBACK);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert_int_eq(pc_run(-1, b), SDFLOW_OK);
    ck_assert(memcmp(a, b, sizeof a) != 0);
}
END_TEST

/* Item 5, reverse SDE: a finite score of 1e308 drives the one-step result
 * to Inf; on a75bf84 that came back with SDFLOW_OK. */
START_TEST(test_sde_final_state_checked)
{
    sdflow_ctx *ctx = test_ctx(11);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    fail_cb f = { 0, -1, 1e308 };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, failing_score, &f, &m), SDFLOW_OK);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_REVERSE_SDE, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 1), SDFLOW_OK);
    double x[4];
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, NULL, x), SDFLOW_E_NUMERIC, "final state");
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- item 6: transport ignores run-only options ------------------------- */

/* T_START = 0.5 < T_MIN = 0.6 is a bad interval for run, but transport has
 * its own interval; on a75bf84 it failed "need t_min < t_start". */
START_TEST(test_transport_ignores_run_interval)
{
    sdflow_ctx *ctx = test_ctx(5);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    double mean[2] = { 0.5, -0.25 }, cov[4] = { 1, 0, 0, 0.5 };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, mean, cov, &m), SDFLOW_OK);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    double x[4] = { 0.1, 0.2, -0.3, 0.4 }, y[4], z[4];
    ck_assert_int_eq(sdflow_sampler_transport(s, 2, 0.3, 0.8, x, y), SDFLOW_OK); /* reference */
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_START, 0.5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.6), SDFLOW_OK);
    ck_assert_msg(sdflow_sampler_transport(s, 2, 0.3, 0.8, x, z) == SDFLOW_OK, "%s", sdflow_ctx_last_error(ctx));
    ck_assert(memcmp(y, z, sizeof y) == 0);
    ck_assert_status_msg(ctx, sdflow_sampler_run(s, 2, x, z), SDFLOW_E_INVALID, "t_min");
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *defects_suite(void)
{
    Suite *s = suite_create("defects");
    TCase *tc = tcase_create("issue9");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stage_times_in_range);
    tcase_add_test(tc, test_default_pf_ode_run);
    tcase_add_test(tc, test_transport_ignores_run_interval);
    tcase_add_test(tc, test_nan_names_sample);
    tcase_add_test(tc, test_pc_failure_keeps_step);
    tcase_add_test(tc, test_sde_final_state_checked);
    suite_add_tcase(s, tc);
    return s;
}
