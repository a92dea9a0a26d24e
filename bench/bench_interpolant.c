/* SPDX-License-Identifier: MIT */
/* Interpolant workloads (one JSON line each):
 *   i_interp_rk4  interpolant sampler, N(0, I) -> 4-component GMM with the
 *                 mixture's exact velocity (its score through the trig
 *                 interpolant), RK4 100 steps from t = 1e-6 to 1, 10^4 samples, d = 2
 *   i_ot_exact    exact minibatch OT pairing (sdflow_coupling_pair,
 *                 SDFLOW_COUPLING_OT_EXACT) of two batches of 512, d = 2
 *   i_interp_train_step  one sdflow_trainer_step of SDFLOW_LOSS_INTERPOLANT
 *                 (trig, N(0, I) base, data rows of the GMM, independent
 *                 coupling; the MLP of bench_train.c: 3 x 128 SiLU, 32 Fourier
 *                 frequencies, velocity output; Adam, EMA), B = 512, d = 2;
 *                 work counted as a DSM step (forward + backward = 3
 *                 evaluations of the GEMM flops, 384 exps per row)
 * ctx SDFLOW_CTX_THREADS = 2. PyTorch peer: bench/torch_interpolant.py. */
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

#define N 10000
#define B 512
#define THREADS 2
#define K 4
#define D 2

/* As bench_samplers.c: 4 K d^2 flops and K exps per mixture row evaluation,
 * 1.5 exp-class calls per standard normal. The assignment counts B^3
 * "flops" (its O(B^3) inner updates; docs/benchmarks.md). */
static double eval_flops(double evals) { return evals * N * 4.0 * K * D * D; }
static double eval_exps(double evals, double normals) { return evals * N * K + normals * N * D * 1.5; }

static const double weights[4] = { 0.1, 0.2, 0.3, 0.4 };
static const double means[8] = { -2, -2, 2, -2, -2, 2, 2, 2 };
static const double covs[16] = { 0.3, 0, 0, 0.3, 0.5, 0.2, 0.2, 0.3, 0.2, 0, 0, 0.2, 0.4, -0.1, -0.1, 0.2 };

typedef struct job {
    sdflow_ctx *ctx;
    sdflow_sampler *s;
    double *x0, *x, *x1;
    size_t *pair;
} job;

static int run_sampler(void *arg)
{
    job *j = arg;
    if (sdflow_sampler_run(j->s, N, j->x0, j->x) != SDFLOW_OK) {
        fprintf(stderr, "%s\n", sdflow_ctx_last_error(j->ctx));
        return 1;
    }
    return 0;
}

static int run_step(void *arg) { return sdflow_trainer_step(arg) != SDFLOW_OK; }

static int run_ot(void *arg)
{
    job *j = arg;
    double cost;
    if (sdflow_coupling_pair(j->ctx, SDFLOW_COUPLING_OT_EXACT, B, D, j->x0, j->x1, 0, 0, 0, j->pair, &cost)) {
        fprintf(stderr, "%s\n", sdflow_ctx_last_error(j->ctx));
        return 1;
    }
    return 0;
}

int main(void)
{
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    if (sdflow_ctx_create(&ctx, NULL) || sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, THREADS) ||
        sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &p) ||
        sdflow_model_create_gmm(ctx, K, D, weights, means, covs, &m)) {
        fprintf(stderr, "setup failed: %s\n", ctx ? sdflow_ctx_last_error(ctx) : "no memory");
        return 1;
    }
    job j = { ctx, NULL, malloc(N * D * sizeof(double)), malloc(N * D * sizeof(double)),
              malloc(B * D * sizeof(double)), malloc(B * sizeof(size_t)) };
    if (!j.x0 || !j.x || !j.x1 || !j.pair)
        return 1;
    if (sdflow_process_prior_sample(p, 1, 0, N, D, j.x0) || sdflow_model_sample(m, 2, 0, B, j.x1))
        return 1;
    if (sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &j.s) || sdflow_sampler_set_process(j.s, p) ||
        sdflow_sampler_set_model(j.s, SDFLOW_ROLE_VELOCITY, m) ||
        sdflow_sampler_set_double(j.s, SDFLOW_OPT_INTERP_T0, 1e-6) ||
        sdflow_sampler_set_int(j.s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4) ||
        sdflow_sampler_set_int(j.s, SDFLOW_OPT_STEPS, 100))
        return 1;
    bench_run("i_interp_rk4", "n=10000 d=2 gmm k=4 interp_trig rk4 steps=100 ctx_threads=2", THREADS, 7, run_sampler, &j,
              eval_flops(400), eval_exps(400, 0));
    sdflow_sampler_free(j.s);
    bench_run("i_ot_exact", "b=512 d=2 exact assignment ctx_threads=2", THREADS, 7, run_ot, &j, (double)B * B * B, 0);
    sdflow_model *mlp = NULL;
    sdflow_trainer *t = NULL;
    double *data = malloc(4096 * D * sizeof(double));
    if (!data || sdflow_model_sample(m, 3, 0, 4096, data) || sdflow_model_create_mlp(ctx, D, &mlp) ||
        sdflow_model_set_int(mlp, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY) ||
        sdflow_trainer_create(ctx, SDFLOW_LOSS_INTERPOLANT, &t) || sdflow_trainer_set_model(t, mlp) ||
        sdflow_trainer_set_process(t, p) || sdflow_trainer_set_data(t, 4096, D, data) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, B)) {
        fprintf(stderr, "train setup failed: %s\n", sdflow_ctx_last_error(ctx));
        return 1;
    }
    double step_flops = 3.0 * 2.0 * ((D + 64) * 128 + 2 * 128.0 * 128 + 128 * D);
    bench_run("i_interp_train_step", "B=512 d=2 mlp3x128 silu interp_trig adam ctx_threads=2", THREADS, 15, run_step,
              t, B * step_flops, B * 384.0);
    sdflow_trainer_free(t);
    sdflow_model_free(mlp);
    free(data);
    free(j.x0);
    free(j.x);
    free(j.x1);
    free(j.pair);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return 0;
}
