/* SPDX-License-Identifier: MIT */
/* Heavy learning run outside `make check` (minutes): an MLP velocity
 * trained on the interpolant loss from N(0, I) to the 2-D checkerboard
 * (8 x 8 unit cells on [-4, 4)^2, half of them filled: uniform on area 32,
 * entropy log 32 = 3.4657 nats), then the held-out NLL by the interpolant
 * likelihood with the MLP's exact divergence. Any model's NLL (the cross
 * entropy) is >= the entropy, so the result must be >= 3.4657 up to its SE
 * and should approach it. Same Adam loop as test/test_interp_learn.c.
 *
 *   cc -O2 -Iinclude test/heavy/interp_checkerboard.c -Llib -lsdflow -Wl,-rpath,$PWD/lib -lm -o cb && ./cb [steps] [width]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

typedef struct lcg {
    uint64_t s;
} lcg;
static double lcg_u(lcg *g)
{
    g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(g->s >> 11) + 0.5) / 9007199254740992.0;
}

static void checkerboard(lcg *g, size_t n, double *out)
{
    for (size_t i = 0; i < n;) {
        double x = 8 * lcg_u(g) - 4, y = 8 * lcg_u(g) - 4;
        if (((long)floor(x) + (long)floor(y)) % 2 == 0) {
            out[2 * i] = x;
            out[2 * i + 1] = y;
            i++;
        }
    }
}

#define CK(call)                                                                                                   \
    do {                                                                                                           \
        if ((call) != SDFLOW_OK) {                                                                                 \
            fprintf(stderr, "%s: %s\n", #call, sdflow_ctx_last_error(ctx));                                        \
            return 1;                                                                                              \
        }                                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 20000, width = argc > 2 ? atol(argv[2]) : 128;
    size_t B = 512, N = 2000;
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_ctx_create(&ctx, NULL);
    sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 5);
    CK(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_LINEAR, &p));
    CK(sdflow_model_create_mlp(ctx, 2, &m));
    CK(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 4));
    CK(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, width));
    CK(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 16));
    CK(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY));
    size_t np;
    CK(sdflow_model_param_count(m, &np));
    double *th = malloc(np * sizeof *th), *g = malloc(np * sizeof *g), *m1 = calloc(np, sizeof *m1),
           *m2 = calloc(np, sizeof *m2);
    double *x0 = malloc(B * 2 * sizeof *x0), *x1 = malloc(B * 2 * sizeof *x1), *xt = malloc(B * 2 * sizeof *xt),
           *dI = malloc(B * 2 * sizeof *dI), *vh = malloc(B * 2 * sizeof *vh), *w = malloc(B * 2 * sizeof *w),
           *t = malloc(B * sizeof *t), *a = malloc(B * sizeof *a), *b = malloc(B * sizeof *b),
           *da = malloc(B * sizeof *da), *db = malloc(B * sizeof *db);
    CK(sdflow_model_get_params(m, np, th));
    lcg data = { 1 }, tg = { 2 };
    double lr0 = 1e-3, run = 0;
    for (long k = 0; k < steps; k++) {
        CK(sdflow_process_prior_sample(p, 3, (uint64_t)k * B, B, 2, x0));
        checkerboard(&data, B, x1);
        for (size_t i = 0; i < B; i++)
            t[i] = lcg_u(&tg);
        CK(sdflow_process_interpolant(p, B, t, a, b, da, db, NULL, NULL));
        for (size_t i = 0; i < 2 * B; i++) {
            xt[i] = a[i / 2] * x0[i] + b[i / 2] * x1[i];
            dI[i] = da[i / 2] * x0[i] + db[i / 2] * x1[i];
        }
        CK(sdflow_model_eval(m, p, B, xt, t, SDFLOW_OUT_VELOCITY, vh));
        double l = 0;
        for (size_t i = 0; i < 2 * B; i++) {
            l += (vh[i] * vh[i] - 2 * dI[i] * vh[i]) / (double)B;
            w[i] = 2 * (vh[i] - dI[i]) / (double)B;
        }
        run = k ? 0.99 * run + 0.01 * l : l;
        CK(sdflow_model_param_grad(m, p, B, xt, t, w, g, NULL));
        /* cosine learning-rate decay to 0 */
        double lr = 0.5 * lr0 * (1 + cos(3.14159265358979 * (double)k / (double)steps));
        double c1 = 1 - pow(0.9, (double)(k + 1)), c2 = 1 - pow(0.999, (double)(k + 1));
        for (size_t j = 0; j < np; j++) {
            m1[j] = 0.9 * m1[j] + 0.1 * g[j];
            m2[j] = 0.999 * m2[j] + 0.001 * g[j] * g[j];
            th[j] -= lr * (m1[j] / c1) / (sqrt(m2[j] / c2) + 1e-8);
        }
        CK(sdflow_model_set_params(m, np, th));
        if ((k + 1) % 2000 == 0)
            fprintf(stderr, "step %ld: running reported loss %.4f\n", k + 1, run);
    }
    double *xh = malloc(N * 2 * sizeof *xh), *lp = malloc(N * sizeof *lp);
    lcg held = { 77 };
    checkerboard(&held, N, xh);
    sdflow_density *e = NULL;
    CK(sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, &e));
    CK(sdflow_density_set_process(e, p));
    CK(sdflow_density_set_model(e, m));
    CK(sdflow_density_logpdf(e, N, xh, lp, NULL));
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) {
        s += -lp[i];
        s2 += lp[i] * lp[i];
    }
    double mean = s / (double)N, sd = sqrt(s2 / (double)N - mean * mean), se = sd / sqrt((double)N);
    printf("checkerboard: %ld steps, MLP 4x%ld (%zu params): held-out NLL %.4f +- %.4f nats (n = %zu); "
           "entropy bound log 32 = %.4f; gap %.4f\n",
           steps, width, np, mean, se, N, log(32.0), mean - log(32.0));
    return 0;
}
