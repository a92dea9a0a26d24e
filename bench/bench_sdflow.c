/* SPDX-License-Identifier: MIT */
/* SD-flow step benchmark (workload a_sdf_step): one synchronous step of N
 * particles against M targets, the particles themselves (K = N) as the
 * source, at fixed sigma, ctx THREADS=2. A run also estimates the target
 * NN spacing and the memorization ratio once, so the step time is the
 * marginal cost: (time of a 5-step run - time of a 1-step run) / 4, median
 * over reps. SDFLOW_BENCH_SCALE=1 adds the N = M = 10^6, d = 2 step (minutes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_util.h"
#include "sdflow.h"

typedef struct job {
    sdflow_ctx *ctx;
    sdflow_sampler *s;
    size_t n, d;
    double *x0, *x;
} job;

static double time_run(job *j, long inner)
{
    sdflow_sampler_set_int(j->s, SDFLOW_OPT_INNER_STEPS, inner);
    double t0 = bench_now();
    if (sdflow_sampler_run(j->s, j->n, j->x0, j->x) != SDFLOW_OK) {
        fprintf(stderr, "bench a_sdf_step failed: %s\n", sdflow_ctx_last_error(j->ctx));
        exit(1);
    }
    return bench_now() - t0;
}

static void bench_step(size_t n, size_t d, int reps, int blas_pool)
{
    job j = { .n = n, .d = d };
    sdflow_ctx_create(&j.ctx, NULL);
    sdflow_ctx_set_int(j.ctx, SDFLOW_CTX_THREADS, 2);
    sdflow_ctx_set_int(j.ctx, SDFLOW_CTX_BLAS_POOL, blas_pool);
    double *y = malloc(n * d * sizeof *y);
    j.x0 = malloc(n * d * sizeof *y);
    j.x = malloc(n * d * sizeof *y);
    if (!y || !j.x0 || !j.x) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    sdflow_rng_normal(j.ctx, 1, 0, n, d, y);
    sdflow_rng_normal(j.ctx, 2, 0, n, d, j.x0);
    for (size_t i = 0; i < n * d; i++)
        j.x0[i] = 2.0 * j.x0[i] + 1.0;
    sdflow_model *target;
    if (sdflow_model_create_kernel(j.ctx, n, d, y, &target) != SDFLOW_OK) {
        fprintf(stderr, "bench: %s\n", sdflow_ctx_last_error(j.ctx));
        exit(1);
    }
    sdflow_sampler_create(j.ctx, SDFLOW_SAMPLER_SDFLOW, &j.s);
    sdflow_sampler_set_model(j.s, SDFLOW_ROLE_TARGET, target);
    sdflow_sampler_set_int(j.s, SDFLOW_OPT_STEPS, 1);
    sdflow_sampler_set_double(j.s, SDFLOW_OPT_SIGMA_MAX, 1.0);
    sdflow_sampler_set_double(j.s, SDFLOW_OPT_SIGMA_MIN, 1.0);
    double t[64];
    if (reps > 64)
        reps = 64;
    time_run(&j, 2); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t1 = time_run(&j, 1), t5 = time_run(&j, 5);
        t[r] = (t5 - t1) / 4.0;
    }
    qsort(t, (size_t)reps, sizeof t[0], bench_cmp);
    char size[64];
    snprintf(size, sizeof size, "N=M=K=%zu d=%zu%s", n, d, blas_pool == SDFLOW_BLAS_POOL_SINGLE ? " blas_pool=single" : "");
    /* Two kernel means (targets Y, source X), each a logit GEMM N x M x d and a
     * weighted sum N x M x d: 8 N M d flops; one exp per (particle, point) pair. */
    double nm = (double)n * (double)n;
    bench_report("a_sdf_step", size, 2, reps, t, 8.0 * nm * (double)d, 2.0 * nm);
    sdflow_sampler_free(j.s);
    sdflow_model_free(target);
    sdflow_ctx_free(j.ctx);
    free(y);
    free(j.x0);
    free(j.x);
}

/* One step at N = M = 10^6 (no marginal trick: a single timed run). */
static void bench_scale(void)
{
    size_t n = 1000000, d = 2;
    sdflow_ctx *ctx;
    sdflow_ctx_create(&ctx, NULL);
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2);
    double *y = malloc(n * d * sizeof *y), *x = malloc(n * d * sizeof *x);
    if (!y || !x)
        exit(1);
    sdflow_rng_normal(ctx, 1, 0, n, d, y);
    sdflow_rng_normal(ctx, 2, 0, n, d, x);
    sdflow_model *target;
    sdflow_sampler *s;
    sdflow_model_create_kernel(ctx, n, d, y, &target);
    sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s);
    sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, target);
    sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 1);
    sdflow_sampler_set_int(s, SDFLOW_OPT_INNER_STEPS, 1);
    sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MAX, 0.1);
    sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 0.1);
    double t0 = bench_now();
    if (sdflow_sampler_run(s, n, x, x) != SDFLOW_OK) {
        fprintf(stderr, "bench scale failed: %s\n", sdflow_ctx_last_error(ctx));
        exit(1);
    }
    double t1 = bench_now() - t0;
    /* step only (the NN diagnostics are not counted: the ratio is an upper estimate) */
    bench_report("a_sdf_step", "N=M=K=1000000 d=2 (incl. NN diagnostics)", 2, 1, &t1, 8.0 * 1e12 * 2.0, 2.0 * 1e12);
    sdflow_sampler_free(s);
    sdflow_model_free(target);
    sdflow_ctx_free(ctx);
    free(y);
    free(x);
}

int main(void)
{
    const char *only = getenv("SDFLOW_BENCH_ONLY_SCALE");
    if (!only || strcmp(only, "1") != 0) {
        bench_step(4096, 2, 7, SDFLOW_BLAS_POOL_HOST);
        /* d = 64 runs the GEMM path: the default (OpenBLAS left alone) and the single-pool mode */
        bench_step(4096, 64, 5, SDFLOW_BLAS_POOL_HOST);
        bench_step(4096, 64, 5, SDFLOW_BLAS_POOL_SINGLE);
        bench_step(16384, 2, 5, SDFLOW_BLAS_POOL_HOST);
    }
    const char *scale = getenv("SDFLOW_BENCH_SCALE");
    if ((scale && strcmp(scale, "1") == 0) || (only && strcmp(only, "1") == 0))
        bench_scale();
    return 0;
}
