/* SPDX-License-Identifier: MIT */
/* sdflow_model_asymmetry (QCSGM diagnostic): closed forms (a linear map A x
 * has ||A - A^T||_F; a GMM score and an energy MLP are gradients, so their
 * asymmetry is 0 to rounding), Hutchinson estimates within 4 SE of the
 * exact value, determinism and argument checks. */
#include "testutil.h"

#define AD 5
/* a fixed non-symmetric map; score(x) = A x */
static const double A_MAP[AD][AD] = { { -1.0, 0.3, 0.0, 0.5, -0.2 },
                                      { 0.1, -2.0, 0.7, 0.0, 0.0 },
                                      { 0.4, -0.6, -1.5, 0.2, 0.3 },
                                      { 0.0, 0.0, 0.9, -0.8, 0.1 },
                                      { -0.3, 0.2, 0.0, 0.6, -1.2 } };

static int lin_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)t;
    double scale = user ? *(const double *)user : 1.0;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++) {
            double s = 0;
            for (size_t b = 0; b < d; b++)
                s += A_MAP[a][b] * x[i * d + b];
            out[i * d + a] = scale * s;
        }
    return 0;
}

static int lin_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *user)
{
    (void)x;
    return lin_fn(n, d, v, t, jv, user);
}

static int fail_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *user)
{
    (void)n, (void)d, (void)x, (void)t, (void)v, (void)jv, (void)user;
    return 7;
}

static void rows(sdflow_ctx *ctx, size_t n, size_t d, double *x, double *t, double tval)
{
    ck_assert_int_eq(sdflow_rng_normal(ctx, 99, 0, n, d, x), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        t[i] = tval;
}

START_TEST(test_asym_linear_closed_form)
{
    sdflow_ctx *ctx = test_ctx(11);
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, AD, SDFLOW_OUT_SCORE, lin_fn, NULL, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_callback_jvp(m, lin_jvp, NULL), SDFLOW_OK);
    double want = 0, jf = 0;
    for (int a = 0; a < AD; a++)
        for (int b = 0; b < AD; b++) {
            want += (A_MAP[a][b] - A_MAP[b][a]) * (A_MAP[a][b] - A_MAP[b][a]);
            jf += A_MAP[a][b] * A_MAP[a][b];
        }
    want = sqrt(want);
    double nwant = want / sqrt(jf);
    enum { N = 40 };
    double x[N * AD], t[N], o[4];
    rows(ctx, N, AD, x, t, 0.5);
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, N, x, t, 0, 0, o), SDFLOW_OK);
    ck_assert_msg(fabs(o[0] - want) <= 1e-13 * want, "exact %.17g want %.17g", o[0], want);
    ck_assert_msg(fabs(o[2] - nwant) <= 1e-13 * nwant, "exact normalized %.17g want %.17g", o[2], nwant);
    ck_assert(o[1] == 0 && o[3] == 0);
    /* Hutchinson, K = 8 probes on each of 40 rows (J is the same at every
     * row, so the 320 probes are i.i.d.): within 4 SE of the exact value,
     * and the SE small enough (< 5%) that the comparison means something */
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, N, x, t, 8, 3, o), SDFLOW_OK);
    test_note("linear: exact %.6f, Hutchinson %.6f +- %.6f; normalized %.6f, %.6f +- %.6f", want, o[0], o[1], nwant,
              o[2], o[3]);
    ck_assert_msg(o[1] > 0 && o[1] < 0.05 * want, "SE %g", o[1]);
    ck_assert_msg(fabs(o[0] - want) < 4 * o[1], "Hutchinson %g +- %g, exact %g", o[0], o[1], want);
    ck_assert_msg(o[3] > 0 && fabs(o[2] - nwant) < 4 * o[3], "normalized %g +- %g, exact %g", o[2], o[3], nwant);
    /* a wrong closed form is rejected: the asymmetry of A + A^T (0) or of 2A is > 4 SE away */
    ck_assert(fabs(o[0] - 2 * want) > 4 * o[1] && fabs(o[0]) > 4 * o[1]);
    /* same seed and stream: the same bits; a batch of the first rows does not change their probes */
    double o2[4];
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, N, x, t, 8, 3, o2), SDFLOW_OK);
    ck_assert(memcmp(o, o2, sizeof o) == 0);
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, N, x, t, 8, 4, o2), SDFLOW_OK);
    ck_assert(o2[0] != o[0]);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_asym_gmm_symmetric)
{
    sdflow_ctx *ctx = test_ctx(12);
    sdflow_model *g = tu_gmm4(ctx, 0.0);
    enum { N = 64 };
    double x[N * 2], t[N], o[4];
    rows(ctx, N, 2, x, t, 0.7);
    for (size_t i = 0; i < N * 2; i++)
        x[i] *= 2.5;
    ck_assert_int_eq(sdflow_model_asymmetry(g, NULL, N, x, t, 0, 0, o), SDFLOW_OK);
    test_note("gmm: exact normalized asymmetry %.3g, Hutchinson below", o[2]);
    ck_assert_msg(o[2] < 1e-14, "exact normalized %g", o[2]);
    ck_assert_int_eq(sdflow_model_asymmetry(g, NULL, N, x, t, 4, 1, o), SDFLOW_OK);
    test_note("gmm: Hutchinson normalized %.3g +- %.3g", o[2], o[3]);
    ck_assert_msg(o[2] < 1e-7, "Hutchinson normalized %g", o[2]); /* sqrt of a rounding-level square */
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_model *small_mlp(sdflow_ctx *ctx, size_t d, int output)
{
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, d, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, output), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 2), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 16), SDFLOW_OK);
    return m;
}

START_TEST(test_asym_mlp)
{
    sdflow_ctx *ctx = test_ctx(13);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    enum { N = 30, D = 4 };
    double x[N * D], t[N], o[4], e[4];
    rows(ctx, N, D, x, t, 0.3);
    /* an epsilon MLP at initialization is far from conservative */
    sdflow_model *m = small_mlp(ctx, D, SDFLOW_OUT_EPS);
    ck_assert_int_eq(sdflow_model_asymmetry(m, p, N, x, t, 0, 0, e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_asymmetry(m, p, N, x, t, 16, 5, o), SDFLOW_OK);
    test_note("mlp eps: exact %.6g / %.6g, Hutchinson %.6g +- %.3g / %.6g +- %.3g", e[0], e[2], o[0], o[1], o[2],
              o[3]);
    ck_assert(e[2] > 0.05);
    ck_assert_msg(o[1] > 0 && fabs(o[0] - e[0]) < 4 * o[1], "%g +- %g vs %g", o[0], o[1], e[0]);
    ck_assert_msg(o[3] > 0 && fabs(o[2] - e[2]) < 4 * o[3], "%g +- %g vs %g", o[2], o[3], e[2]);
    sdflow_model_free(m);
    /* energy MLP: score = -grad E has a symmetric Jacobian (Hessian) */
    m = small_mlp(ctx, D, SDFLOW_MLP_ENERGY);
    ck_assert_int_eq(sdflow_model_asymmetry(m, p, N, x, t, 0, 0, e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_asymmetry(m, p, N, x, t, 4, 5, o), SDFLOW_OK);
    test_note("mlp energy: exact normalized %.3g, Hutchinson %.3g", e[2], o[2]);
    ck_assert_msg(e[2] < 1e-12, "energy exact normalized %g", e[2]);
    ck_assert_msg(o[2] < 1e-6, "energy Hutchinson normalized %g", o[2]);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

static int zero_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    (void)x, (void)t, (void)user;
    memset(out, 0, n * d * sizeof *out);
    return 0;
}

static int zero_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *user)
{
    (void)v;
    return zero_fn(n, d, x, t, jv, user);
}

START_TEST(test_asym_errors)
{
    sdflow_ctx *ctx = test_ctx(14);
    sdflow_model *m = NULL;
    double x[2 * AD] = { 0 }, t[2] = { 1, 1 }, o[4];
    ck_assert_int_eq(sdflow_model_asymmetry(NULL, NULL, 2, x, t, 0, 0, o), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_create_callback(ctx, AD, SDFLOW_OUT_SCORE, lin_fn, NULL, &m), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_model_asymmetry(m, NULL, 2, x, t, 0, 0, o), SDFLOW_E_UNSUPPORTED, "JVP");
    ck_assert_int_eq(sdflow_model_set_callback_jvp(m, lin_jvp, NULL), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_model_asymmetry(m, NULL, 2, x, t, 1, 0, o), SDFLOW_E_INVALID, "probes = 1");
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, 0, x, t, 0, 0, o), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, 2, NULL, t, 0, 0, o), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, 2, x, t, 0, 0, NULL), SDFLOW_E_INVALID);
    x[3] = NAN;
    ck_assert_status_msg(ctx, sdflow_model_asymmetry(m, NULL, 2, x, t, 0, 0, o), SDFLOW_E_INVALID, "NaN");
    x[3] = 0;
    t[1] = -1;
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, 2, x, t, 0, 0, o), SDFLOW_E_INVALID);
    t[1] = 1;
    ck_assert_int_eq(sdflow_model_set_callback_jvp(m, fail_jvp, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_asymmetry(m, NULL, 2, x, t, 2, 0, o), SDFLOW_E_CALLBACK);
    sdflow_model_free(m);
    ck_assert_int_eq(sdflow_model_create_callback(ctx, AD, SDFLOW_OUT_SCORE, zero_fn, NULL, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_callback_jvp(m, zero_jvp, NULL), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_model_asymmetry(m, NULL, 2, x, t, 0, 0, o), SDFLOW_E_NUMERIC, "undefined");
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status asym_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    sdflow_model *m = NULL;
    double x[3 * AD] = { 1, 2, 3, 4, 5, 0, 1, 0, 1, 0, -1, 2, 0, 1, 1 }, t[3] = { 1, 1, 1 }, o[4];
    if (!(st = sdflow_model_create_callback(ctx, AD, SDFLOW_OUT_SCORE, lin_fn, NULL, &m)) &&
        !(st = sdflow_model_set_callback_jvp(m, lin_jvp, NULL)) &&
        !(st = sdflow_model_asymmetry(m, NULL, 3, x, t, 0, 0, o)))
        st = sdflow_model_asymmetry(m, NULL, 3, x, t, 3, 0, o);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_asym_alloc_failures) { check_all_alloc_failures(asym_workload); }
END_TEST

Suite *asymmetry_suite(void)
{
    Suite *s = suite_create("asymmetry");
    TCase *tc = tcase_create("asymmetry");
    tcase_add_test(tc, test_asym_linear_closed_form);
    tcase_add_test(tc, test_asym_gmm_symmetric);
    tcase_add_test(tc, test_asym_mlp);
    tcase_add_test(tc, test_asym_errors);
    tcase_add_test(tc, test_asym_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
