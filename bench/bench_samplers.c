/* SPDX-License-Identifier: MIT */
/* Diffusion sampler workloads (one JSON line each):
 *   c_pf_ode_rk4  probability-flow ODE, RK4, 100 steps, 10^4 samples, d = 2
 *   c_sde_em      reverse-time SDE, Euler-Maruyama, 1000 steps, same
 *   c_dpmpp_2m, c_dpmpp_3m_sde, c_edm_heun   few-step samplers at 20 NFE
 *                 (Karras grid; EDM Heun: 10 steps = 19 NFE), same
 * Score model: exact 4-component GMM (the MLP of performance.md is another
 * workload); VP process; ctx SDFLOW_CTX_THREADS = 2. */
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

#define N 10000
#define THREADS 2
#define K 4
#define D 2

/* Per score evaluation of a row of the K-component mixture: two d x d
 * matrix-vector products per component (U^T (x - alpha mu), U u), 4 K d^2 flops,
 * and K exps (the responsibilities). A standard normal costs 1.5 exp-class calls
 * (Box-Muller: log, cos, sin per pair). docs/benchmarks.md. */
static double eval_flops(double evals) { return evals * N * 4.0 * K * D * D; }
static double eval_exps(double evals, double normals) { return evals * N * K + normals * N * D * 1.5; }

static const double weights[4] = { 0.1, 0.2, 0.3, 0.4 };
static const double means[8] = { -2, -2, 2, -2, -2, 2, 2, 2 };
static const double covs[16] = { 0.3, 0, 0, 0.3, 0.5, 0.2, 0.2, 0.3, 0.2, 0, 0, 0.2, 0.4, -0.1, -0.1, 0.2 };

typedef struct job {
    sdflow_ctx *ctx;
    sdflow_sampler *s;
    double *x;
} job;

static int run(void *arg)
{
    job *j = arg;
    if (sdflow_sampler_run(j->s, N, NULL, j->x) != SDFLOW_OK) {
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
        sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p) || sdflow_model_create_gmm(ctx, K, D, weights, means, covs, &m)) {
        fprintf(stderr, "setup failed: %s\n", ctx ? sdflow_ctx_last_error(ctx) : "no memory");
        return 1;
    }
    job j = { ctx, NULL, malloc(N * 2 * sizeof(double)) };
    if (!j.x)
        return 1;

    if (sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &j.s) || sdflow_sampler_set_process(j.s, p) ||
        sdflow_sampler_set_model(j.s, SDFLOW_ROLE_SCORE, m) ||
        sdflow_sampler_set_int(j.s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4) ||
        sdflow_sampler_set_int(j.s, SDFLOW_OPT_STEPS, 100))
        return 1;
    /* RK4: 4 evaluations per step; the initial draw is n d normals */
    bench_run("c_pf_ode_rk4", "n=10000 d=2 gmm k=4 vp rk4 steps=100 ctx_threads=2", THREADS, 7, run, &j,
              eval_flops(400), eval_exps(400, 1));
    sdflow_sampler_free(j.s);

    if (sdflow_sampler_create(ctx, SDFLOW_SAMPLER_REVERSE_SDE, &j.s) || sdflow_sampler_set_process(j.s, p) ||
        sdflow_sampler_set_model(j.s, SDFLOW_ROLE_SCORE, m) || sdflow_sampler_set_int(j.s, SDFLOW_OPT_STEPS, 1000))
        return 1;
    /* EM: one evaluation and n d normals per step, plus the initial draw */
    bench_run("c_sde_em", "n=10000 d=2 gmm k=4 vp em steps=1000 ctx_threads=2", THREADS, 5, run, &j,
              eval_flops(1000), eval_exps(1000, 1001));
    sdflow_sampler_free(j.s);

    static const struct {
        const char *name, *params;
        sdflow_sampler_kind kind;
        long steps;
        double nfe, normals; /* evaluations and noise draws (rows of d normals) per sample */
    } few[3] = {
        { "c_dpmpp_2m", "n=10000 d=2 gmm k=4 vp dpmpp_2m steps=20 nfe=20 karras ctx_threads=2", SDFLOW_SAMPLER_DPMPP_2M, 20,
          20, 1 },
        { "c_dpmpp_3m_sde", "n=10000 d=2 gmm k=4 vp dpmpp_3m_sde steps=20 nfe=20 karras ctx_threads=2",
          SDFLOW_SAMPLER_DPMPP_3M_SDE, 20, 20, 21 },
        { "c_edm_heun", "n=10000 d=2 gmm k=4 vp edm_heun steps=10 nfe=19 karras ctx_threads=2", SDFLOW_SAMPLER_EDM_HEUN, 10,
          19, 1 },
    };
    for (int f = 0; f < 3; f++) {
        if (sdflow_sampler_create(ctx, few[f].kind, &j.s) || sdflow_sampler_set_process(j.s, p) ||
            sdflow_sampler_set_model(j.s, SDFLOW_ROLE_SCORE, m) || sdflow_sampler_set_int(j.s, SDFLOW_OPT_STEPS, few[f].steps) ||
            sdflow_sampler_set_int(j.s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS))
            return 1;
        bench_run(few[f].name, few[f].params, THREADS, 7, run, &j, eval_flops(few[f].nfe),
                  eval_exps(few[f].nfe, few[f].normals));
        sdflow_sampler_free(j.s);
    }

    free(j.x);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return 0;
}
