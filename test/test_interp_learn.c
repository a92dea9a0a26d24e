/* SPDX-License-Identifier: MIT */
/* Learned interpolant flows (algorithms.md §8): an MLP velocity trained on
 * the quadratic loss E|v_hat - dI/dt|^2 (the test's own Adam loop over the
 * public sdflow_model_param_grad, until the trainer's INTERPOLANT loss
 * exists), then sampled with SDFLOW_SAMPLER_INTERPOLANT and judged by the
 * MMD two-sample test against fresh target draws. The untrained network
 * must fail the same test. Budget: <= 60 s per test on one core. */
#include "testutil.h"

#define PI 3.14159265358979323846

typedef struct lcg {
    uint64_t s;
} lcg;
static double lcg_u(lcg *g)
{
    g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(g->s >> 11) + 0.5) / 9007199254740992.0;
}

/* Two moons (as examples/two_moons_sdflow.c): noise 0.1, scaled by 1.5, centred. */
static void two_moons(lcg *g, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        double u = lcg_u(g) * PI, z0, z1;
        double r = sqrt(-2 * log(lcg_u(g))), th = 2 * PI * lcg_u(g);
        z0 = r * cos(th), z1 = r * sin(th);
        double x = i % 2 ? 1 - cos(u) : cos(u), y = i % 2 ? 0.5 - sin(u) : sin(u);
        out[2 * i] = 1.5 * (x - 0.5 + 0.1 * z0);
        out[2 * i + 1] = 1.5 * (y - 0.25 + 0.1 * z1);
    }
}

typedef void (*draw_fn)(void *user, uint64_t key, size_t n, double *out);

typedef struct src {
    sdflow_model *model; /* gmm/gaussian: sdflow_model_sample */
    int moons;           /* else two moons */
} src;

static void draw(void *user, uint64_t key, size_t n, double *out)
{
    src *s = user;
    if (s->moons) {
        lcg g = { key * 2654435761ull + 17 };
        two_moons(&g, n, out);
    } else {
        ck_assert_int_eq(sdflow_model_sample(s->model, key, 0, n, out), SDFLOW_OK);
    }
}

/* Adam (PyTorch defaults, lr given) on the interpolant loss of the process p:
 * t ~ U(0, 1), x0 from base, x1 from data (independent), x_t = a x0 + b x1,
 * row loss |v_hat - (a' x0 + b' x1)|^2, mean over the batch. Returns the last
 * 100 steps' mean of the reported loss |v_hat|^2 - 2 dI . v_hat (§8). */
static double train(sdflow_model *m, const sdflow_process *p, src *base, src *data, long steps, size_t B, double lr)
{
    size_t np = 0;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = malloc(np * sizeof *th), *g = malloc(np * sizeof *g), *m1 = calloc(np, sizeof *m1),
           *m2 = calloc(np, sizeof *m2);
    double *x0 = malloc(B * 2 * sizeof *x0), *x1 = malloc(B * 2 * sizeof *x1), *xt = malloc(B * 2 * sizeof *xt),
           *dI = malloc(B * 2 * sizeof *dI), *vh = malloc(B * 2 * sizeof *vh), *w = malloc(B * 2 * sizeof *w),
           *t = malloc(B * sizeof *t), *a = malloc(B * sizeof *a), *b = malloc(B * sizeof *b),
           *da = malloc(B * sizeof *da), *db = malloc(B * sizeof *db);
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    lcg tg = { 99 };
    double rep = 0;
    for (long k = 0; k < steps; k++) {
        draw(base, 1000 + 2 * (uint64_t)k, B, x0);
        draw(data, 1001 + 2 * (uint64_t)k, B, x1);
        for (size_t i = 0; i < B; i++)
            t[i] = lcg_u(&tg);
        ck_assert_int_eq(sdflow_process_interpolant(p, B, t, a, b, da, db, NULL, NULL), SDFLOW_OK);
        for (size_t i = 0; i < 2 * B; i++) {
            size_t r = i / 2;
            xt[i] = a[r] * x0[i] + b[r] * x1[i];
            dI[i] = da[r] * x0[i] + db[r] * x1[i];
        }
        ck_assert_int_eq(sdflow_model_eval(m, p, B, xt, t, SDFLOW_OUT_VELOCITY, vh), SDFLOW_OK);
        double l = 0;
        for (size_t i = 0; i < 2 * B; i++) {
            l += (vh[i] * vh[i] - 2 * dI[i] * vh[i]) / (double)B;
            w[i] = 2 * (vh[i] - dI[i]) / (double)B; /* d/dv of the mean squared error */
        }
        if (k >= steps - 100)
            rep += l / 100;
        ck_assert_int_eq(sdflow_model_param_grad(m, p, B, xt, t, w, g, NULL), SDFLOW_OK);
        double c1 = 1 - pow(0.9, (double)(k + 1)), c2 = 1 - pow(0.999, (double)(k + 1));
        for (size_t j = 0; j < np; j++) {
            m1[j] = 0.9 * m1[j] + 0.1 * g[j];
            m2[j] = 0.999 * m2[j] + 0.001 * g[j] * g[j];
            th[j] -= lr * (m1[j] / c1) / (sqrt(m2[j] / c2) + 1e-8);
        }
        ck_assert_int_eq(sdflow_model_set_params(m, np, th), SDFLOW_OK);
    }
    free(th), free(g), free(m1), free(m2), free(x0), free(x1), free(xt), free(dI), free(vh), free(w), free(t);
    free(a), free(b), free(da), free(db);
    return rep;
}

static sdflow_model *velocity_mlp(sdflow_ctx *ctx)
{
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 64), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 8), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY), SDFLOW_OK);
    return m;
}

/* MMD^2 null threshold: mean + 5 sd over reps pairs of independent draws of
 * the target at size n (as tu_energy_null for the energy distance). */
static double mmd_null(sdflow_ctx *ctx, src *target, size_t n, int reps, uint64_t key0)
{
    double *a = malloc(n * 2 * sizeof *a), *b = malloc(n * 2 * sizeof *b), v[32];
    ck_assert(reps <= 32);
    for (int r = 0; r < reps; r++) {
        draw(target, key0 + 2 * (uint64_t)r, n, a);
        draw(target, key0 + 1 + 2 * (uint64_t)r, n, b);
        ck_assert_int_eq(sdflow_metric_mmd2(ctx, n, n, 2, a, b, 0, &v[r], NULL), SDFLOW_OK);
    }
    free(a);
    free(b);
    return vec_mean(v, (size_t)reps, 1) + 5 * sqrt(vec_var(v, (size_t)reps, 1));
}

/* Samples n points by transporting base draws from t0 to t1 with the velocity model m. */
static void flow(sdflow_ctx *ctx, const sdflow_process *p, sdflow_model *m, const double *x_in, size_t n, double t0,
                 double t1, double *out)
{
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, 1e-4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, 1e-4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_transport(s, n, t0, t1, x_in, out), SDFLOW_OK);
    sdflow_sampler_free(s);
}

START_TEST(test_interp_learn_gmm)
{
    sdflow_ctx *ctx = test_ctx(21);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &p), SDFLOW_OK);
    const double zero[2] = { 0, 0 }, I2[4] = { 1, 0, 0, 1 };
    sdflow_model *gauss = NULL, *gmm = tu_gmm4(ctx, 0), *m = velocity_mlp(ctx);
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, zero, I2, &gauss), SDFLOW_OK);
    src base = { gauss, 0 }, data = { gmm, 0 };
    enum { N = 1000 };
    double thr = mmd_null(ctx, &data, N, 16, 500);
    double *x0 = malloc(N * 2 * sizeof *x0), *x = malloc(N * 2 * sizeof *x), *ref = malloc(N * 2 * sizeof *ref);
    draw(&base, 7, N, x0);
    draw(&data, 8, N, ref);
    double before, after;
    flow(ctx, p, m, x0, N, 0, 1, x);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, x, ref, 0, &before, NULL), SDFLOW_OK);
    double rep = train(m, p, &base, &data, 3000, 256, 2e-3);
    flow(ctx, p, m, x0, N, 0, 1, x);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, x, ref, 0, &after, NULL), SDFLOW_OK);
    test_note("learned N(0,I) -> GMM (trig, MLP 3x64, 3000 Adam steps of 256): MMD^2 untrained %.4g, trained %.4g, "
              "null threshold %.4g; reported loss (last 100 steps) %.3f",
              before, after, thr, rep);
    ck_assert_msg(before > thr, "untrained MMD^2 %g must exceed the null threshold %g", before, thr);
    ck_assert_msg(after < thr, "trained MMD^2 %g must pass the null threshold %g", after, thr);
    free(x0), free(x), free(ref);
    sdflow_model_free(m), sdflow_model_free(gmm), sdflow_model_free(gauss);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* GMM <-> two moons: one flow, judged in both directions. */
START_TEST(test_interp_learn_moons)
{
    sdflow_ctx *ctx = test_ctx(22);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_LINEAR, &p), SDFLOW_OK);
    sdflow_model *gmm = tu_gmm4(ctx, 0), *m = velocity_mlp(ctx);
    src base = { gmm, 0 }, data = { NULL, 1 };
    enum { N = 1000 };
    double thr_fwd = mmd_null(ctx, &data, N, 16, 600), thr_bwd = mmd_null(ctx, &base, N, 16, 700);
    double *x0 = malloc(N * 2 * sizeof *x0), *x1 = malloc(N * 2 * sizeof *x1), *y = malloc(N * 2 * sizeof *y),
           *r0 = malloc(N * 2 * sizeof *r0), *r1 = malloc(N * 2 * sizeof *r1);
    draw(&base, 9, N, x0);
    draw(&data, 10, N, x1);
    draw(&base, 11, N, r0);
    draw(&data, 12, N, r1);
    double fb, bb, fa, ba;
    flow(ctx, p, m, x0, N, 0, 1, y);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, y, r1, 0, &fb, NULL), SDFLOW_OK);
    flow(ctx, p, m, x1, N, 1, 0, y);
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, y, r0, 0, &bb, NULL), SDFLOW_OK);
    double rep = train(m, p, &base, &data, 3000, 256, 2e-3);
    flow(ctx, p, m, x0, N, 0, 1, y); /* GMM -> moons */
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, y, r1, 0, &fa, NULL), SDFLOW_OK);
    flow(ctx, p, m, x1, N, 1, 0, y); /* moons -> GMM */
    ck_assert_int_eq(sdflow_metric_mmd2(ctx, N, N, 2, y, r0, 0, &ba, NULL), SDFLOW_OK);
    test_note("learned GMM <-> two moons (linear, MLP 3x64, 3000 steps): GMM->moons MMD^2 %.4g -> %.4g (thr %.4g); "
              "moons->GMM %.4g -> %.4g (thr %.4g); reported loss %.3f",
              fb, fa, thr_fwd, bb, ba, thr_bwd, rep);
    ck_assert_msg(fb > thr_fwd && bb > thr_bwd, "untrained flow passes: %g %g", fb, bb);
    ck_assert_msg(fa < thr_fwd, "GMM -> moons MMD^2 %g vs threshold %g", fa, thr_fwd);
    ck_assert_msg(ba < thr_bwd, "moons -> GMM MMD^2 %g vs threshold %g", ba, thr_bwd);
    free(x0), free(x1), free(y), free(r0), free(r1);
    sdflow_model_free(m), sdflow_model_free(gmm);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* The trainer's INTERPOLANT loss (sdflow_trainer, SDFLOW_LOSS_INTERPOLANT):
 * N(0, I) -> N((1, 0), diag(4, 0.25)) with the independent and the exact-OT
 * coupling. Both learned flows reproduce the target moments (loose: an MLP
 * fit, 6 SE); the OT flow's kinetic energy int E|v|^2 is close to W2^2 = 2.25
 * and the independent one's measurably larger (its minimum is the oracle
 * int E|v|^2 of the independent interpolant; linear schedule: > W2^2). */
START_TEST(test_interp_trainer_coupling)
{
    sdflow_ctx *ctx = test_ctx(23);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_LINEAR, &p), SDFLOW_OK);
    const double m1[2] = { 1, 0 }, S1[4] = { 4, 0, 0, 0.25 };
    sdflow_model *g1 = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m1, S1, &g1), SDFLOW_OK);
    enum { ND = 20000, N = 2000 };
    double *data = malloc(ND * 2 * sizeof *data), *x0 = malloc(N * 2 * sizeof *x0), *x = malloc(N * 2 * sizeof *x);
    ck_assert_int_eq(sdflow_model_sample(g1, 31, 0, ND, data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_prior_sample(p, 32, 0, N, 2, x0), SDFLOW_OK);
    double ke[2], loss[2];
    for (int c = 0; c < 2; c++) {
        sdflow_model *m = velocity_mlp(ctx);
        sdflow_trainer *t = NULL;
        ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_INTERPOLANT, &t), SDFLOW_OK);
        ck_assert_str_eq(sdflow_trainer_kind_name(SDFLOW_LOSS_INTERPOLANT), "interpolant");
        ck_assert_int_eq(sdflow_trainer_set_model(t, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_process(t, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_data(t, ND, 2, data), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, 256), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_LR, 2e-3), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_OPT_COUPLING, c ? SDFLOW_COUPLING_OT_EXACT : 0), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_fit(t, 2000), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_RUNNING_LOSS, &loss[c]), SDFLOW_OK);
        sdflow_sampler *s = NULL;
        ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &s), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_INTERP_KINETIC, 1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, N, x0, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_KINETIC_ENERGY, &ke[c]), SDFLOW_OK);
        double mu0 = vec_mean(x, N, 2), v0 = vec_var(x, N, 2), v1 = vec_var(x + 1, N, 2);
        test_note("trainer %s coupling: running loss %.3f, kinetic energy %.3f (W2^2 2.25), mean %.3f var %.3f %.3f",
                  c ? "exact OT" : "independent", loss[c], ke[c], mu0, v0, v1);
        ck_assert(fabs(mu0 - 1) < 6 * sqrt(4.0 / N) && fabs(v0 / 4 - 1) < 0.15 && fabs(v1 / 0.25 - 1) < 0.15);
        sdflow_sampler_free(s);
        sdflow_trainer_free(t);
        sdflow_model_free(m);
    }
    /* measured 2.367 (+5.2%): minibatch-OT bias at B = 256 (+2.2% for the pairs alone, test_interpolant)
     * plus the MLP fit; 8% keeps a margin, the independent flow (3.16, +40%) fails it */
    ck_assert_msg(fabs(ke[1] / 2.25 - 1) < 0.08, "OT flow kinetic energy %g vs W2^2 2.25", ke[1]);
    ck_assert(fabs(ke[0] / 2.25 - 1) > 0.08);
    ck_assert_msg(ke[0] > 1.1 * ke[1], "independent %g vs OT %g", ke[0], ke[1]);
    free(data), free(x0), free(x);
    sdflow_model_free(g1);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

Suite *interp_learn_suite(void)
{
    Suite *s = suite_create("interp_learn");
    TCase *tc = tcase_create("interp_learn");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_interp_learn_gmm);
    tcase_add_test(tc, test_interp_learn_moons);
    tcase_add_test(tc, test_interp_trainer_coupling);
    suite_add_tcase(s, tc);
    return s;
}
