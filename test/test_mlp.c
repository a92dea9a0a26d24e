/* SPDX-License-Identifier: MIT */
/* MLP score model: every derivative against central differences (each
 * activation, output kind, with and without residual blocks), the energy
 * form's symmetric Jacobian, determinism over threads and batch splits,
 * concurrent evaluation, every sampler and estimator on an MLP, bad input
 * and allocation failures. The PyTorch f64 cross-check is
 * test/mlp_torch_check.py (make mlp-torch-test). */
#include <pthread.h>
#include "testutil.h"

/* Set by the learned-frequency checks: models made by mlp() learn their frequencies. */
static long learn_freqs;

static sdflow_model *mlp(sdflow_ctx *ctx, size_t d, long act, long output, long residual, long depth, long width)
{
    sdflow_model *m;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, d, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, learn_freqs), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, act), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, output), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_RESIDUAL, residual), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, depth), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, width), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 3), SDFLOW_OK);
    /* scale the default init up so the net is far from linear (derivatives of all orders matter) */
    size_t np;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = malloc(np * sizeof *th);
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    for (size_t i = 0; i < np; i++)
        th[i] *= 2.0;
    ck_assert_int_eq(sdflow_model_set_params(m, np, th), SDFLOW_OK);
    free(th);
    return m;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* sum_i w_i . f(x_i) for the native output f: eps/score model output, or the score of an energy model */
static double wdot(sdflow_model *m, sdflow_output native, size_t n, const double *x, const double *t, const double *w)
{
    size_t d = sdflow_model_dim(m);
    double *o = malloc(n * d * sizeof *o), s = 0;
    ck_assert_int_eq(sdflow_model_eval(m, NULL, n, x, t, native, o), SDFLOW_OK);
    for (size_t i = 0; i < n * d; i++)
        s += w[i] * o[i];
    free(o);
    return s;
}

/* sum_i a_i^T J_score(x_i) b_i */
static double bilinear(sdflow_model *m, size_t n, const double *x, const double *t, const double *a, const double *b)
{
    size_t d = sdflow_model_dim(m);
    double *J = malloc(n * d * d * sizeof *J), s = 0;
    ck_assert_int_eq(sdflow_model_jacobian(m, NULL, n, x, t, J), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        for (size_t p = 0; p < d; p++)
            for (size_t q = 0; q < d; q++)
                s += a[i * d + p] * J[i * d * d + p * d + q] * b[i * d + q];
    free(J);
    return s;
}

/* Central differences in f64 with h = 1e-5 (relative to O(1) inputs):
 * truncation h^2/6 |f'''| ~ 1e-11, rounding eps |f| / h ~ 1e-11, so a
 * correct derivative is within ~1e-9 relative; 1e-6 leaves margin and a
 * wrong derivative (sign, missing term) is off by O(1). */
#define FD_H 1e-5
#define FD_TOL 1e-6

/* Depth of the difference checks: two blocks for residual blocks (the skips chain), else 3. */
static long fd_depth(long residual) { return residual == 1 ? 5 : 3; }

/* Parameters the difference checks perturb: every 7th (all layers, weights
 * and biases) and the last 3 (the output bias, or the learned frequencies). */
static int fd_param(size_t j, size_t np) { return j % 7 == 0 || j + 3 >= np; }

/* A scalar of the model whose gradients the checks difference: sum w . f
 * (u = w; v NULL) or sum a^T J b (u = a, v = b). */
typedef struct fd_fn {
    sdflow_model *m;
    sdflow_output native;
    size_t n;
    const double *x, *t, *u, *v;
} fd_fn;

static double fd_eval(const fd_fn *f, const double *x)
{
    return f->v ? bilinear(f->m, f->n, x, f->t, f->u, f->v) : wdot(f->m, f->native, f->n, x, f->t, f->u);
}

/* max_j |central difference of f along theta_j - g_j| over the perturbed parameters (fd_param). */
static double fd_param_err(const fd_fn *f, size_t np, double *th, const double *g)
{
    double e = 0;
    for (size_t j = 0; j < np; j++) {
        if (!fd_param(j, np))
            continue;
        double th0 = th[j], fpm[2];
        for (int s = 0; s < 2; s++) {
            th[j] = th0 + (s ? -FD_H : FD_H);
            ck_assert_int_eq(sdflow_model_set_params(f->m, np, th), SDFLOW_OK);
            fpm[s] = fd_eval(f, f->x);
        }
        th[j] = th0;
        e = fmax(e, fabs((fpm[0] - fpm[1]) / (2 * FD_H) - g[j]));
    }
    ck_assert_int_eq(sdflow_model_set_params(f->m, np, th), SDFLOW_OK);
    return e;
}

static void fd_check(long act, long output, long residual)
{
    sdflow_ctx *ctx = test_ctx(5);
    size_t d = 3, n = 4;
    sdflow_model *m = mlp(ctx, d, act, output, residual, fd_depth(residual), 10);
    sdflow_output native = output == SDFLOW_MLP_ENERGY ? SDFLOW_OUT_SCORE : (sdflow_output)output;
    double x[12], t[4] = { 0.2, 0.5, 0.7, 1.3 }, w[12];
    ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, n, d, x), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 2, 0, n, d, w), SDFLOW_OK);
    /* score Jacobian and divergence vs differences of the score */
    double J[36], div[4], sp[12], sm[12], xp[12];
    ck_assert_int_eq(sdflow_model_jacobian(m, NULL, n, x, t, J), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_divergence(m, NULL, n, x, t, div), SDFLOW_OK);
    double err = 0, scale = max_abs(J, n * d * d);
    for (size_t k = 0; k < d; k++) {
        memcpy(xp, x, sizeof x);
        for (size_t i = 0; i < n; i++)
            xp[i * d + k] += FD_H;
        ck_assert_int_eq(sdflow_model_score(m, NULL, n, xp, t, sp), SDFLOW_OK);
        for (size_t i = 0; i < n; i++)
            xp[i * d + k] -= 2 * FD_H;
        ck_assert_int_eq(sdflow_model_score(m, NULL, n, xp, t, sm), SDFLOW_OK);
        for (size_t i = 0; i < n; i++)
            for (size_t r = 0; r < d; r++)
                err = fmax(err, fabs((sp[i * d + r] - sm[i * d + r]) / (2 * FD_H) - J[i * d * d + r * d + k]));
    }
    ck_assert_msg(err / scale < FD_TOL, "act %ld out %ld res %ld: Jacobian rel err %g", act, output, residual,
                  err / scale);
    for (size_t i = 0; i < n; i++)
        ck_assert_double_eq_tol(div[i], J[i * 9] + J[i * 9 + 4] + J[i * 9 + 8], 1e-12 * scale);
    if (output == SDFLOW_MLP_ENERGY) { /* conservative: symmetric Jacobian */
        for (size_t i = 0; i < n; i++)
            for (size_t p = 0; p < d; p++)
                for (size_t q = 0; q < d; q++)
                    ck_assert_double_le(fabs(J[i * 9 + p * 3 + q] - J[i * 9 + q * 3 + p]), 1e-10 * scale);
    }
    /* parameter gradient of sum w . f vs differences along the parameter axes */
    size_t np;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = malloc(np * sizeof *th), *g = malloc(np * sizeof *g), gx[12];
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_param_grad(m, NULL, n, x, t, w, g, gx), SDFLOW_OK);
    fd_fn f = { m, native, n, x, t, w, NULL };
    double e1 = fd_param_err(&f, np, th, g);
    ck_assert_msg(e1 / max_abs(g, np) < FD_TOL, "act %ld out %ld res %ld: param grad rel err %g", act, output,
                  residual, e1 / max_abs(g, np));
    /* input VJP: d/dx sum w . f vs differences */
    double ex = 0;
    for (size_t k = 0; k < n * d; k++) {
        memcpy(xp, x, sizeof x);
        xp[k] += FD_H;
        double fp = fd_eval(&f, xp);
        xp[k] -= 2 * FD_H;
        double fm = fd_eval(&f, xp);
        ex = fmax(ex, fabs((fp - fm) / (2 * FD_H) - gx[k]));
    }
    ck_assert_msg(ex / max_abs(gx, n * d) < FD_TOL, "VJP rel err %g", ex / max_abs(gx, n * d));
    free(th);
    free(g);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}

/* The bilinear gradient for the score output (native Jacobian = score Jacobian). */
static void fd_bilinear(long act, long residual)
{
    sdflow_ctx *ctx = test_ctx(6);
    size_t d = 3, n = 4;
    sdflow_model *m = mlp(ctx, d, act, SDFLOW_OUT_SCORE, residual, fd_depth(residual), 10);
    double x[12], t[4] = { 0.2, 0.5, 0.7, 1.3 }, a[12], b[12];
    ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, n, d, x), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 3, 0, n, d, a), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 4, 0, n, d, b), SDFLOW_OK);
    size_t np;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = malloc(np * sizeof *th), *g = malloc(np * sizeof *g);
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_param_grad_jac(m, NULL, n, x, t, a, b, g), SDFLOW_OK);
    fd_fn f = { m, SDFLOW_OUT_SCORE, n, x, t, a, b };
    double e = fd_param_err(&f, np, th, g);
    ck_assert_msg(e / max_abs(g, np) < FD_TOL, "act %ld res %ld: a^T J b param grad rel err %g", act, residual,
                  e / max_abs(g, np));
    free(th);
    free(g);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}

START_TEST(test_mlp_finite_differences)
{
    static const long acts[] = { SDFLOW_ACT_SILU, SDFLOW_ACT_TANH, SDFLOW_ACT_SOFTPLUS, SDFLOW_ACT_GELU };
    static const long outs[] = { SDFLOW_OUT_EPS, SDFLOW_OUT_SCORE, SDFLOW_OUT_X0, SDFLOW_OUT_V, SDFLOW_MLP_ENERGY };
    /* residual 0: none, 1: blocks z + W2 act(W1 z), 2: z + act(W z) */
    for (size_t a = 0; a < 4; a++)
        for (size_t o = 0; o < 5; o++)
            for (long r = 0; r < 3; r++)
                fd_check(acts[a], outs[o], r);
    for (size_t a = 0; a < 4; a++)
        for (long r = 0; r < 3; r++)
            fd_bilinear(acts[a], r);
    fd_check(SDFLOW_ACT_RELU, SDFLOW_OUT_EPS, 0); /* first order only */
    /* learned frequencies: their gradient in the first-order, double-backward (energy) and a^T J b passes */
    learn_freqs = 1;
    for (long r = 0; r < 2; r++) {
        fd_check(SDFLOW_ACT_SILU, SDFLOW_OUT_EPS, r);
        fd_check(SDFLOW_ACT_TANH, SDFLOW_MLP_ENERGY, r);
        fd_bilinear(SDFLOW_ACT_GELU, r);
    }
    learn_freqs = 0;
}
END_TEST

/* The difference check can fail: a model whose parameters change between
 * the gradient and the differences (a stand-in for a wrong derivative). */
START_TEST(test_mlp_fd_detects_wrong_gradient)
{
    sdflow_ctx *ctx = test_ctx(5);
    size_t d = 2, n = 3;
    sdflow_model *m = mlp(ctx, d, SDFLOW_ACT_SILU, SDFLOW_OUT_EPS, 0, 2, 8);
    double x[6] = { 0.1, -0.3, 1, 2, -1, 0.5 }, t[3] = { 0.3, 0.5, 0.9 }, w[6] = { 1, 2, 3, -1, 0.5, 0.2 };
    size_t np;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = malloc(np * 8), *g = malloc(np * 8);
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_param_grad(m, NULL, n, x, t, w, g, NULL), SDFLOW_OK);
    /* the last weight of the first layer, with the gradient of the neighbouring weight: must fail */
    size_t j = 1;
    double th0 = th[j];
    th[j] = th0 + FD_H;
    sdflow_model_set_params(m, np, th);
    double fp = wdot(m, SDFLOW_OUT_EPS, n, x, t, w);
    th[j] = th0 - FD_H;
    sdflow_model_set_params(m, np, th);
    double fm = wdot(m, SDFLOW_OUT_EPS, n, x, t, w);
    double fd = (fp - fm) / (2 * FD_H);
    ck_assert_double_le(fabs(fd - g[j]), 1e-8 * fabs(g[j]) + 1e-12);
    ck_assert_double_gt(fabs(fd - g[j + 1]), FD_TOL * max_abs(g, np));
    free(th);
    free(g);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Architecture, names and shapes, nn.Linear init bounds and determinism by seed. */
START_TEST(test_mlp_parameters)
{
    sdflow_ctx *ctx = test_ctx(9);
    sdflow_model *m, *m2;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    size_t np, nt;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    /* 3 x 128, 32 freqs: (66 + 1) 128 + 2 (129 x 128) + 129 x 2 */
    ck_assert_uint_eq(np, 67 * 128 + 2 * 129 * 128 + 129 * 2);
    ck_assert_int_eq(sdflow_model_param_tensors(m, &nt), SDFLOW_OK);
    ck_assert_uint_eq(nt, 9);
    const char *name;
    size_t r, c;
    ck_assert_int_eq(sdflow_model_param_info(m, 0, &name, &r, &c), SDFLOW_OK);
    ck_assert_str_eq(name, "layers.0.weight");
    ck_assert_uint_eq(r, 128);
    ck_assert_uint_eq(c, 66);
    ck_assert_int_eq(sdflow_model_param_info(m, 7, &name, &r, &c), SDFLOW_OK);
    ck_assert_str_eq(name, "layers.3.bias");
    ck_assert_uint_eq(r, 2);
    ck_assert_uint_eq(c, 0);
    ck_assert_int_eq(sdflow_model_param_info(m, 8, &name, &r, &c), SDFLOW_OK);
    ck_assert_str_eq(name, "time_embed.freqs");
    ck_assert_int_eq(sdflow_model_param_info(m, 9, &name, &r, &c), SDFLOW_E_INVALID);
    double *w0 = malloc(128 * 66 * 8), f[32];
    ck_assert_int_eq(sdflow_model_get_param(m, "layers.0.weight", 128 * 66, w0), SDFLOW_OK);
    double mx = max_abs(w0, 128 * 66), mean = vec_mean(w0, 128 * 66, 1), var = vec_var(w0, 128 * 66, 1);
    double bound = 1 / sqrt(66.0);
    ck_assert_double_le(mx, bound);
    ck_assert_double_gt(mx, 0.99 * bound);
    /* U(-b, b): mean 0 (SE b/sqrt(3 N) = 0.0008), variance b^2/3 (SE ~ 0.9% relative) */
    ck_assert_double_le(fabs(mean), 5 * bound / sqrt(3.0 * 128 * 66));
    ck_assert_double_le(fabs(var / (bound * bound / 3) - 1), 0.05);
    ck_assert_int_eq(sdflow_model_get_param(m, "time_embed.freqs", 32, f), SDFLOW_OK);
    ck_assert_double_eq(f[0], 0.5);
    ck_assert_double_eq(f[31], 16.0);
    /* same seed, same parameters */
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m2), SDFLOW_OK);
    double *a = malloc(np * 8), *b = malloc(np * 8);
    ck_assert_int_eq(sdflow_model_get_params(m, np, a), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_get_params(m2, np, b), SDFLOW_OK);
    ck_assert_int_eq(memcmp(a, b, np * 8), 0);
    /* flat vector = tensors in order */
    ck_assert_int_eq(memcmp(a, w0, 128 * 66 * 8), 0);
    free(a);
    free(b);
    free(w0);
    sdflow_model_free(m);
    sdflow_model_free(m2);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Parameter writes between evaluations take effect: the passes keep the
 * transposed weights from one call to the next and must rebuild them after
 * set_param / set_params (a stale copy would give the old outputs). */
START_TEST(test_mlp_params_after_eval)
{
    sdflow_ctx *ctx = test_ctx(9);
    sdflow_process *p;
    sdflow_model *m, *fresh;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &fresh), SDFLOW_OK);
    size_t np, n = 40;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double x[80], t[40], y0[80], y1[80], y2[80], *th = malloc(np * 8), w0[128 * 66];
    ck_assert_int_eq(sdflow_rng_normal(ctx, 3, 0, n, 2, x), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        t[i] = 0.1 + 0.02 * (double)i;
    ck_assert_int_eq(sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_EPS, y0), SDFLOW_OK);
    /* one tensor by name: layers.0.weight scaled by 1/2 */
    ck_assert_int_eq(sdflow_model_get_param(m, "layers.0.weight", 128 * 66, w0), SDFLOW_OK);
    for (size_t j = 0; j < 128 * 66; j++)
        w0[j] *= 0.5;
    ck_assert_int_eq(sdflow_model_set_param(m, "layers.0.weight", 128 * 66, w0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_EPS, y1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_param(fresh, "layers.0.weight", 128 * 66, w0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_eval(fresh, p, n, x, t, SDFLOW_OUT_EPS, y2), SDFLOW_OK);
    ck_assert_int_eq(memcmp(y1, y2, sizeof y1), 0);
    ck_assert_int_ne(memcmp(y0, y1, sizeof y1), 0);
    /* the flat vector: the last hidden layer's weights negated */
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    for (size_t j = 67 * 128 + 129 * 128; j < 67 * 128 + 129 * 128 + 128 * 128; j++)
        th[j] = -th[j];
    ck_assert_int_eq(sdflow_model_set_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_EPS, y1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_params(fresh, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_eval(fresh, p, n, x, t, SDFLOW_OUT_EPS, y2), SDFLOW_OK);
    ck_assert_int_eq(memcmp(y1, y2, sizeof y1), 0);
    free(th);
    sdflow_model_free(m);
    sdflow_model_free(fresh);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_mlp_bad_input)
{
    sdflow_ctx *ctx = test_ctx(9);
    sdflow_model *m, *g;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 0, &m), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 0), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, 9), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_STEPS, 3), SDFLOW_E_UNSUPPORTED);
    /* ReLU with the energy output, in either order */
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, SDFLOW_ACT_RELU), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY), SDFLOW_E_INVALID);
    ck_assert_ptr_nonnull(strstr(sdflow_ctx_last_error(ctx), "ReLU"));
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, SDFLOW_ACT_SILU), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, SDFLOW_ACT_RELU), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_EPS), SDFLOW_OK);
    /* parameters exist after first use: architecture frozen */
    double x[4] = { 0, 1, 2, NAN }, t[2] = { 0.5, 0.5 }, out[4];
    ck_assert_int_eq(sdflow_model_eval(m, NULL, 1, x, t, SDFLOW_OUT_EPS, out), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 64), SDFLOW_E_STATE);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 128), SDFLOW_OK); /* unchanged */
    long v;
    ck_assert_int_eq(sdflow_model_get_int(m, SDFLOW_OPT_MLP_WIDTH, &v), SDFLOW_OK);
    ck_assert_int_eq(v, 128);
    /* NaN input, NaN parameters, wrong sizes, unknown names */
    ck_assert_int_eq(sdflow_model_eval(m, NULL, 2, x, t, SDFLOW_OUT_EPS, out), SDFLOW_E_INVALID);
    size_t np;
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    double *th = calloc(np, 8);
    ck_assert_int_eq(sdflow_model_get_params(m, np - 1, th), SDFLOW_E_INVALID);
    th[5] = NAN;
    ck_assert_int_eq(sdflow_model_set_params(m, np, th), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_param(m, "layers.3.bias", 2, th + 4), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_param(m, "layers.3.bias", 3, th), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_param(m, "layers.9.bias", 2, th), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_param(m, NULL, 2, th), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_param_grad(m, NULL, 1, x, t, NULL, th, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_param_grad(m, NULL, 1, x, t, x + 2, th, NULL), SDFLOW_E_INVALID); /* NaN w */
    /* ReLU: first order works, second order refused */
    sdflow_model *r;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &r), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(r, SDFLOW_OPT_MLP_ACTIVATION, SDFLOW_ACT_RELU), SDFLOW_OK);
    double ab[2] = { 1, 1 };
    ck_assert_int_eq(sdflow_model_param_grad_jac(r, NULL, 1, x, t, ab, ab, th), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_model_param_grad(r, NULL, 1, x, t, ab, th, NULL), SDFLOW_OK);
    /* parameter API on other kinds */
    double mean[2] = { 0, 0 }, cov[4] = { 1, 0, 0, 1 };
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, mean, cov, &g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_param_count(g, &np), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_model_param_count(NULL, &np), SDFLOW_E_INVALID);
    free(th);
    sdflow_model_free(g);
    sdflow_model_free(r);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Each sdflow_activation by name through the public API: a 1-unit net
 * (d = 1, no frequencies, W = 1, b = 0) outputs act(x), compared with the
 * closed forms. */
START_TEST(test_mlp_activations_by_name)
{
    static const struct {
        sdflow_activation act;
        const char *name;
    } acts[] = { { SDFLOW_ACT_SILU, "silu" },
                 { SDFLOW_ACT_TANH, "tanh" },
                 { SDFLOW_ACT_SOFTPLUS, "softplus" },
                 { SDFLOW_ACT_GELU, "gelu" },
                 { SDFLOW_ACT_RELU, "relu" } };
    sdflow_ctx *ctx = test_ctx(2);
    double x[5] = { -3, -0.5, 0, 0.7, 4 }, t[5] = { 0.5, 0.5, 0.5, 0.5, 0.5 }, y[5];
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        sdflow_model *m;
        ck_assert_int_eq(sdflow_model_create_mlp(ctx, 1, &m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, acts[k].act), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 0), SDFLOW_OK);
        long got;
        ck_assert_int_eq(sdflow_model_get_int(m, SDFLOW_OPT_MLP_ACTIVATION, &got), SDFLOW_OK);
        ck_assert_int_eq(got, acts[k].act);
        double theta[4] = { 1, 0, 1, 0 }; /* layers.0.weight, .bias, layers.1.weight, .bias */
        ck_assert_int_eq(sdflow_model_set_params(m, 4, theta), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_eval(m, NULL, 5, x, t, SDFLOW_OUT_EPS, y), SDFLOW_OK);
        for (int i = 0; i < 5; i++) {
            double a = x[i], ref;
            switch (acts[k].act) {
            case SDFLOW_ACT_SILU: ref = a / (1 + exp(-a)); break;
            case SDFLOW_ACT_TANH: ref = tanh(a); break;
            case SDFLOW_ACT_SOFTPLUS: ref = log1p(exp(a)); break;
            case SDFLOW_ACT_GELU: ref = 0.5 * a * (1 + tanh(0.7978845608028654 /* sqrt(2/pi) */ * (a + 0.044715 * a * a * a))); break;
            default: ref = a > 0 ? a : 0; break;
            }
            /* libmvec's vector exp (SiLU rows) is within 4 ulp */
            ck_assert_msg(fabs(y[i] - ref) <= 1e-14 * (1 + fabs(ref)), "%s(%g) = %.17g, expected %.17g",
                          acts[k].name, a, y[i], ref);
        }
        sdflow_model_free(m);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* Residual blocks' tensor names (the PyTorch twin's state_dict), learned
 * frequencies in the flat vector, the frequency scale, and the refusals. */
START_TEST(test_mlp_architecture_options)
{
    sdflow_ctx *ctx = test_ctx(9);
    sdflow_model *m, *b;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_RESIDUAL, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 4), SDFLOW_E_INVALID); /* blocks: odd depth */
    ck_assert_ptr_nonnull(strstr(sdflow_ctx_last_error(ctx), "odd"));
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 8), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQ_SCALE, 1), SDFLOW_E_INVALID); /* a double */
    ck_assert_int_eq(sdflow_model_set_double(m, SDFLOW_OPT_MLP_FREQ_SCALE, 0), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_double(m, SDFLOW_OPT_MLP_FREQ_SCALE, 0.25), SDFLOW_OK);
    double scale;
    ck_assert_int_eq(sdflow_model_get_double(m, SDFLOW_OPT_MLP_FREQ_SCALE, &scale), SDFLOW_OK);
    ck_assert_double_eq(scale, 0.25);
    static const char *names[] = { "input.weight",         "input.bias",           "blocks.0.lin1.weight",
                                   "blocks.0.lin1.bias",   "blocks.0.lin2.weight", "blocks.0.lin2.bias",
                                   "blocks.1.lin1.weight", "blocks.1.lin1.bias",   "blocks.1.lin2.weight",
                                   "blocks.1.lin2.bias",   "output.weight",        "output.bias",
                                   "time_embed.freqs" };
    static const size_t rows[] = { 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 2, 2, 4 }, cols[] = { 10, 0, 8, 0, 8, 0, 8,
                                                                                      0,  8, 0, 8, 0, 0 };
    size_t nt, np;
    ck_assert_int_eq(sdflow_model_param_tensors(m, &nt), SDFLOW_OK);
    ck_assert_uint_eq(nt, 13);
    for (size_t i = 0; i < nt; i++) {
        const char *name;
        size_t r, c;
        ck_assert_int_eq(sdflow_model_param_info(m, i, &name, &r, &c), SDFLOW_OK);
        ck_assert_str_eq(name, names[i]);
        ck_assert_uint_eq(r, rows[i]);
        ck_assert_uint_eq(c, cols[i]);
    }
    /* (10 + 1) 8 + 4 (8 + 1) 8 + (8 + 1) 2 weights and biases, then the 4 frequencies */
    ck_assert_int_eq(sdflow_model_param_count(m, &np), SDFLOW_OK);
    ck_assert_uint_eq(np, 88 + 288 + 18 + 4);
    double th[398], f[4], x[2] = { 0.3, -0.2 }, t = 0.6, y0[2], y1[2];
    ck_assert_int_eq(sdflow_model_get_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_get_param(m, "time_embed.freqs", 4, f), SDFLOW_OK);
    for (int k = 0; k < 4; k++) {
        ck_assert_double_eq(f[k], 0.25 * (k + 1));
        ck_assert_double_eq(th[np - 4 + k], f[k]); /* the flat vector ends with them */
    }
    ck_assert_int_eq(sdflow_model_eval(m, NULL, 1, x, &t, SDFLOW_OUT_EPS, y0), SDFLOW_OK);
    th[np - 1] = 3.0;
    ck_assert_int_eq(sdflow_model_set_params(m, np, th), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_get_param(m, "time_embed.freqs", 4, f), SDFLOW_OK);
    ck_assert_double_eq(f[3], 3.0);
    ck_assert_int_eq(sdflow_model_eval(m, NULL, 1, x, &t, SDFLOW_OUT_EPS, y1), SDFLOW_OK);
    ck_assert(y0[0] != y1[0] || y0[1] != y1[1]);
    ck_assert_int_eq(sdflow_model_set_double(m, SDFLOW_OPT_MLP_FREQ_SCALE, 0.3), SDFLOW_E_STATE);
    /* the frequencies as a buffer: not in the flat vector; the simple residual form takes any depth */
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &b), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_DEPTH, 4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_RESIDUAL, 1), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_RESIDUAL, 2), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_RESIDUAL, 3), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_WIDTH, 8), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(b, SDFLOW_OPT_MLP_FREQS, 4), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_param_count(b, &np), SDFLOW_OK);
    ck_assert_uint_eq(np, 88 + 3 * 72 + 18);
    const char *name;
    ck_assert_int_eq(sdflow_model_param_info(b, 6, &name, NULL, NULL), SDFLOW_OK);
    ck_assert_str_eq(name, "layers.3.weight");
    sdflow_model_free(b);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Evaluations of one row do not depend on the batch or the thread count. */
START_TEST(test_mlp_batch_and_thread_invariance)
{
    for (long out = 0; out < 2; out++) {
        sdflow_ctx *ctx = test_ctx(3);
        size_t d = 5, n = 37;
        sdflow_model *m;
        ck_assert_int_eq(sdflow_model_create_mlp(ctx, d, &m), SDFLOW_OK);
        if (out)
            ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY), SDFLOW_OK);
        double *x = malloc(n * d * 8), t[37], *s1 = malloc(n * d * 8), *s2 = malloc(n * d * 8);
        double *j1 = malloc(n * d * d * 8), *j2 = malloc(n * d * d * 8);
        ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, n, d, x), SDFLOW_OK);
        for (size_t i = 0; i < n; i++)
            t[i] = 0.05 + 0.02 * (double)i;
        ck_assert_int_eq(sdflow_model_score(m, NULL, n, x, t, s1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_jacobian(m, NULL, n, x, t, j1), SDFLOW_OK);
        for (size_t i = 0; i < n; i++) { /* one row at a time: every row at position 0 of its block */
            ck_assert_int_eq(sdflow_model_score(m, NULL, 1, x + i * d, t + i, s2 + i * d), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(m, NULL, 1, x + i * d, t + i, j2 + i * d * d), SDFLOW_OK);
        }
        ck_assert_int_eq(memcmp(s1, s2, n * d * 8), 0);
        ck_assert_int_eq(memcmp(j1, j2, n * d * d * 8), 0);
        ck_assert_int_eq(sdflow_model_score(m, NULL, n - 3, x + 3 * d, t + 3, s2), SDFLOW_OK); /* shifted */
        ck_assert_int_eq(memcmp(s1 + 3 * d, s2, (n - 3) * d * 8), 0);
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_score(m, NULL, n, x, t, s2), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_jacobian(m, NULL, n, x, t, j2), SDFLOW_OK);
        ck_assert_int_eq(memcmp(s1, s2, n * d * 8), 0);
        ck_assert_int_eq(memcmp(j1, j2, n * d * d * 8), 0);
        free(x);
        free(s1);
        free(s2);
        free(j1);
        free(j2);
        sdflow_model_free(m);
        sdflow_ctx_free(ctx);
    }
}
END_TEST

typedef struct evaljob {
    sdflow_model *m;
    const double *x, *t;
    double *out;
    size_t n;
    sdflow_status st;
} evaljob;

static void *eval_thread(void *arg)
{
    evaljob *j = arg;
    for (int rep = 0; rep < 5 && !j->st; rep++)
        j->st = sdflow_model_jacobian(j->m, NULL, j->n, j->x, j->t, j->out);
    return NULL;
}

/* One MLP evaluated from two threads at once (first use included). */
START_TEST(test_mlp_concurrent)
{
    sdflow_ctx *ctx = test_ctx(4);
    size_t d = 3, n = 40;
    sdflow_model *m, *ref;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, d, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, d, &ref), SDFLOW_OK);
    double *x = malloc(n * d * 8), t[40], *o[2], *r = malloc(n * d * d * 8);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, n, d, x), SDFLOW_OK);
    for (size_t i = 0; i < n; i++)
        t[i] = 0.5;
    pthread_t th[2];
    evaljob jobs[2];
    for (int k = 0; k < 2; k++) {
        o[k] = malloc(n * d * d * 8);
        jobs[k] = (evaljob){ m, x, t, o[k], n, SDFLOW_OK };
        ck_assert_int_eq(pthread_create(&th[k], NULL, eval_thread, &jobs[k]), 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ck_assert_int_eq(sdflow_model_jacobian(ref, NULL, n, x, t, r), SDFLOW_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(jobs[k].st, SDFLOW_OK);
        ck_assert_int_eq(memcmp(o[k], r, n * d * d * 8), 0);
        free(o[k]);
    }
    free(x);
    free(r);
    sdflow_model_free(m);
    sdflow_model_free(ref);
    sdflow_ctx_free(ctx);
}
END_TEST

static void run_sampler(sdflow_ctx *ctx, sdflow_model *m, sdflow_process *p, sdflow_sampler_kind kind, long solver,
                        size_t n, uint64_t first, double *x)
{
    sdflow_sampler *s;
    ck_assert_int_eq(sdflow_sampler_create(ctx, kind, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 20), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, first), SDFLOW_OK);
    if (solver >= 0)
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, solver), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, NULL, x), SDFLOW_OK);
    for (size_t i = 0; i < n * 2; i++)
        ck_assert(isfinite(x[i]));
    sdflow_sampler_free(s);
}

/* Every sampler and estimator runs on an MLP, and a split run equals the
 * whole run bit for bit (reverse SDE: noise keyed by global row index). */
START_TEST(test_mlp_samplers_and_estimators)
{
    sdflow_ctx *ctx = test_ctx(8);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m, *e;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 32), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(e, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(e, SDFLOW_OPT_MLP_WIDTH, 32), SDFLOW_OK);
    size_t n = 40;
    double x[80], y[80], y1[80];
    for (long solver = 0; solver < 4; solver++)
        run_sampler(ctx, m, p, SDFLOW_SAMPLER_PF_ODE, solver, n, 0, x);
    run_sampler(ctx, e, p, SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_RK4, n, 0, x);
    run_sampler(ctx, m, p, SDFLOW_SAMPLER_PC, -1, n, 0, x);
    for (int th = 1; th <= 2; th++) {
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, th), SDFLOW_OK);
        run_sampler(ctx, m, p, SDFLOW_SAMPLER_REVERSE_SDE, -1, n, 0, x);
        run_sampler(ctx, m, p, SDFLOW_SAMPLER_REVERSE_SDE, -1, 13, 0, y);
        run_sampler(ctx, m, p, SDFLOW_SAMPLER_REVERSE_SDE, -1, n - 13, 13, y + 26);
        ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
        if (th == 1)
            memcpy(y1, x, sizeof x);
        else
            ck_assert_int_eq(memcmp(x, y1, sizeof x), 0); /* 1 vs 2 threads */
    }
    /* SD flow, model mode: the MLP (no process: sigma-parameterized) as the target score */
    sdflow_sampler *s;
    ck_assert_int_eq(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SOURCE, e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 5), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MAX, 1.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 0.1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 5, 0, n, 2, x), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, n, x, y), SDFLOW_OK);
    sdflow_sampler_free(s);
    /* densities: exact (eval_div) agrees with finite-difference divergences; Hutchinson and Li-Yan run */
    double lp[3][40], se[40];
    static const sdflow_density_kind kinds[] = { SDFLOW_DENSITY_PF_ODE_EXACT, SDFLOW_DENSITY_PF_ODE_EXACT,
                                                 SDFLOW_DENSITY_PF_ODE_HUTCHINSON, SDFLOW_DENSITY_LIYAN };
    for (int k = 0; k < 4; k++) {
        sdflow_density *de;
        ck_assert_int_eq(sdflow_density_create(ctx, kinds[k], &de), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_set_process(de, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_set_model(de, m), SDFLOW_OK);
        if (k < 3)
            ck_assert_int_eq(sdflow_density_set_int(de, SDFLOW_OPT_STEPS, 20), SDFLOW_OK);
        if (k == 1)
            ck_assert_int_eq(sdflow_density_set_int(de, SDFLOW_OPT_DIVERGENCE, SDFLOW_DIV_FINITE_DIFF), SDFLOW_OK);
        else if (k == 3)
            ck_assert_int_eq(sdflow_density_set_int(de, SDFLOW_OPT_LIYAN_TIMES, 32), SDFLOW_OK);
        double *dst = k < 3 ? lp[k] : se;
        ck_assert_int_eq(sdflow_density_logpdf(de, 10, x, dst, NULL), SDFLOW_OK);
        for (int i = 0; i < 10; i++)
            ck_assert(isfinite(dst[i]));
        sdflow_density_free(de);
    }
    /* central-difference divergences: error ~1e-10 per evaluation (model_internal.h), 80 evaluations */
    for (int i = 0; i < 10; i++)
        ck_assert_double_eq_tol(lp[0][i], lp[1][i], 1e-7 * (1 + fabs(lp[0][i])));
    sdflow_model_free(m);
    sdflow_model_free(e);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* d = 1 with Rademacher probes: v^T J v = J exactly, so Hutchinson (the
 * eval_quadform pass with explicit tangents) equals the exact estimator. */
START_TEST(test_mlp_hutchinson_d1)
{
    sdflow_ctx *ctx = test_ctx(8);
    sdflow_process *p = tu_process(ctx, SDFLOW_PROCESS_VP);
    sdflow_model *m;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 1, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 24), SDFLOW_OK);
    double x[5] = { -1, -0.2, 0.3, 0.9, 2 }, lp[2][5];
    for (int k = 0; k < 2; k++) {
        sdflow_density *de;
        ck_assert_int_eq(sdflow_density_create(ctx, k ? SDFLOW_DENSITY_PF_ODE_HUTCHINSON : SDFLOW_DENSITY_PF_ODE_EXACT,
                                               &de), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_set_process(de, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_set_model(de, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_set_int(de, SDFLOW_OPT_STEPS, 30), SDFLOW_OK);
        ck_assert_int_eq(sdflow_density_logpdf(de, 5, x, lp[k], NULL), SDFLOW_OK);
        sdflow_density_free(de);
    }
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq_tol(lp[0][i], lp[1][i], 1e-12 * (1 + fabs(lp[0][i])));
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status mlp_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    sdflow_model *m = NULL;
    double x[6] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6 }, t[3] = { 0.3, 0.4, 0.5 }, o[18], g[2000];
    if (!(st = sdflow_model_create_mlp(ctx, 2, &m)) && !(st = sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 8)) &&
        !(st = sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 2)) &&
        !(st = sdflow_model_eval(m, NULL, 3, x, t, SDFLOW_OUT_SCORE, o)) &&
        !(st = sdflow_model_jacobian(m, NULL, 3, x, t, o)) && !(st = sdflow_model_divergence(m, NULL, 3, x, t, o)) &&
        !(st = sdflow_model_param_grad(m, NULL, 3, x, t, x, g, o)))
        st = sdflow_model_param_grad_jac(m, NULL, 3, x, t, x, x, g);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_mlp_alloc_failures) { check_all_alloc_failures(mlp_workload); }
END_TEST

Suite *mlp_suite(void)
{
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("mlp");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mlp_finite_differences);
    tcase_add_test(tc, test_mlp_fd_detects_wrong_gradient);
    tcase_add_test(tc, test_mlp_parameters);
    tcase_add_test(tc, test_mlp_params_after_eval);
    tcase_add_test(tc, test_mlp_bad_input);
    tcase_add_test(tc, test_mlp_activations_by_name);
    tcase_add_test(tc, test_mlp_architecture_options);
    tcase_add_test(tc, test_mlp_batch_and_thread_invariance);
    tcase_add_test(tc, test_mlp_concurrent);
    tcase_add_test(tc, test_mlp_samplers_and_estimators);
    tcase_add_test(tc, test_mlp_hutchinson_d1);
    tcase_add_test(tc, test_mlp_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
