/* SPDX-License-Identifier: MIT */
/* Training steps of the MLP of docs/performance.md (3 x 128 SiLU, 32 Fourier
 * frequencies, VP process), ctx THREADS = 2, one sdflow_trainer_step each
 * (batch draw, forward, backward, Adam, EMA):
 *   b_dsm_train_step    DSM, eps output, B = 512 at d = 2 and d = 64
 *   b_energy_train_step DSM on an energy MLP (double backward), B = 512, d = 2
 *   b_qcsgm_train_step  DSM + QCSGM penalty (K = 1), B = 512, d = 2
 * Work counted as for a DSM step: forward + backward = 3 evaluations of
 * 2 (d_in 128 + 2 128^2 + 128 d) flops per row (d_in = d + 64) and 384 exps
 * (SiLU, forward only). The energy and QCSGM lines use the same count, so
 * their ratio shows their cost in units of a DSM step's bound (no target). */
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

enum { THREADS = 2, B = 512, N = 4096 };

static sdflow_ctx *ctx;

static void die(const char *what)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, sdflow_ctx_last_error(ctx));
    exit(1);
}

static double step_flops(double d) { return 3.0 * 2.0 * ((d + 64) * 128 + 2 * 128.0 * 128 + 128 * d); }

static int step(void *arg) { return sdflow_trainer_step(arg) != SDFLOW_OK; }

static void one(const char *workload, size_t d, long output, double gamma, sdflow_process *vp, const char *tag)
{
    sdflow_model *m;
    sdflow_trainer *t;
    double *x = malloc(N * d * sizeof *x);
    if (!x || sdflow_rng_normal(ctx, 3, 0, N, d, x))
        die("data");
    if (sdflow_model_create_mlp(ctx, d, &m) || sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, output) ||
        sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t) || sdflow_trainer_set_model(t, m) ||
        sdflow_trainer_set_process(t, vp) || sdflow_trainer_set_data(t, N, d, x) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, B) ||
        sdflow_trainer_set_double(t, SDFLOW_TRAIN_QCSGM_WEIGHT, gamma))
        die("setup");
    char size[96];
    snprintf(size, sizeof size, "B=%d d=%zu mlp3x128 silu%s%s", B, d,
             output == SDFLOW_MLP_ENERGY ? " energy" : gamma > 0 ? " qcsgm K=1" : "", tag);
    bench_run(workload, size, THREADS, 15, step, t, B * step_flops((double)d), B * 384.0);
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    free(x);
}

int main(void)
{
    sdflow_process *vp;
    if (sdflow_ctx_create(&ctx, NULL) || sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, THREADS) ||
        sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp))
        return 1;
    one("b_dsm_train_step", 2, SDFLOW_OUT_EPS, 0, vp, "");
    one("b_dsm_train_step", 64, SDFLOW_OUT_EPS, 0, vp, "");
    one("b_energy_train_step", 2, SDFLOW_MLP_ENERGY, 0, vp, "");
    one("b_qcsgm_train_step", 2, SDFLOW_OUT_EPS, 1.0, vp, "");
    /* The same steps with one thread pool (SDFLOW_BLAS_POOL_SINGLE): the
     * MLP's GEMMs are per-thread blocks that OpenBLAS runs on the calling
     * thread anyway, but an idle OpenBLAS pool of the host's default size
     * still competes for the 2 cores (docs/benchmarks.md, "Two pools"). */
    if (sdflow_ctx_set_int(ctx, SDFLOW_CTX_BLAS_POOL, SDFLOW_BLAS_POOL_SINGLE))
        die("blas_pool");
    one("b_dsm_train_step", 2, SDFLOW_OUT_EPS, 0, vp, " blas_pool=single");
    one("b_dsm_train_step", 64, SDFLOW_OUT_EPS, 0, vp, " blas_pool=single");
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
    return 0;
}
