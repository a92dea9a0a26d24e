/* SPDX-License-Identifier: MIT */
/* The MLP score model of docs/performance.md (3 x 128 SiLU, 32 Fourier
 * frequencies, epsilon output, VP process) on its own and under the
 * existing samplers and estimators, ctx THREADS = 2:
 *   b_mlp_forward   B = 512 at d = 2 and d = 64
 *   c_pf_ode_rk4    10^4 samples, RK4 x 100, d = 2
 *   c_sde_em        10^4 samples, Euler-Maruyama x 1000, d = 2
 *   c_dpmpp_2m      10^4 samples, DPM-Solver++(2M) x 20, d = 2 (few-step)
 *   d_loglik_exact  1000 points, d = 64, RK4 x 100, exact divergence
 *   d_loglik_hutch  the same with one Rademacher probe
 * b_mlp_forward is printed twice more with SDFLOW_BLAS_POOL_SINGLE.
 * SDFLOW_BENCH_MLP_SCALE = s (default 1) divides the sample/point counts of
 * the four long workloads by s (the shared machine: report the size used).
 * Work counted as in docs/performance.md: an MLP evaluation at d is
 * 2 (d_in 128 + 2 128^2 + 128 d) flops, d_in = d + 64, and 384 exps (SiLU);
 * an exact divergence adds d tangent passes of the same cost (exps not
 * repeated), a Hutchinson probe one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

enum { THREADS = 2 };

static double eval_flops(double d) { return 2.0 * ((d + 64) * 128 + 2 * 128.0 * 128 + 128 * d); }
#define EVAL_EXPS 384.0

static sdflow_ctx *ctx;
static sdflow_process *vp;

static void die(const char *what)
{
    fprintf(stderr, "bench_mlp: %s: %s\n", what, sdflow_ctx_last_error(ctx));
    exit(1);
}

static sdflow_model *make_mlp(size_t d)
{
    sdflow_model *m;
    if (sdflow_model_create_mlp(ctx, d, &m))
        die("create");
    return m; /* defaults: 3 x 128 SiLU, 32 frequencies, epsilon output */
}

typedef struct fwd_job {
    sdflow_model *m;
    size_t n;
    double *x, *t, *out;
} fwd_job;

static int fwd(void *arg)
{
    fwd_job *j = arg;
    return sdflow_model_eval(j->m, vp, j->n, j->x, j->t, SDFLOW_OUT_EPS, j->out) != SDFLOW_OK;
}

/* One timed run (these take seconds; no warm-up, reps = 1). */
static void once(const char *workload, const char *size, int (*fn)(void *), void *arg, double flops, double exps)
{
    double t0 = bench_now();
    if (fn(arg))
        die(workload);
    double t = bench_now() - t0;
    bench_report(workload, size, THREADS, 1, &t, flops, exps);
}

typedef struct samp_job {
    sdflow_sampler *s;
    size_t n;
    double *x;
} samp_job;

static int samp(void *arg)
{
    samp_job *j = arg;
    return sdflow_sampler_run(j->s, j->n, NULL, j->x) != SDFLOW_OK;
}

typedef struct dens_job {
    sdflow_density *e;
    size_t n;
    double *x, *logp;
} dens_job;

static int dens(void *arg)
{
    dens_job *j = arg;
    return sdflow_density_logpdf(j->e, j->n, j->x, j->logp, NULL) != SDFLOW_OK;
}

int main(void)
{
    const char *sc = getenv("SDFLOW_BENCH_MLP_SCALE");
    size_t scale = sc && atoi(sc) > 0 ? (size_t)atoi(sc) : 1;
    if (sdflow_ctx_create(&ctx, NULL) || sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, THREADS) ||
        sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp))
        return 1;
    char size[128];
    /* b_mlp_forward; the second pair with the single BLAS pool
     * (docs/benchmarks.md, "Two pools"), then the host's pool again */
    for (int di = 0; di < 4; di++) {
        size_t d = di % 2 ? 64 : 2, n = 512;
        if (sdflow_ctx_set_int(ctx, SDFLOW_CTX_BLAS_POOL, di < 2 ? SDFLOW_BLAS_POOL_HOST : SDFLOW_BLAS_POOL_SINGLE))
            die("blas_pool");
        sdflow_model *m = make_mlp(d);
        fwd_job j = { m, n, malloc(n * d * 8), malloc(n * 8), malloc(n * d * 8) };
        if (sdflow_rng_normal(ctx, 1, 0, n, d, j.x))
            die("rng");
        for (size_t i = 0; i < n; i++)
            j.t[i] = 0.5;
        snprintf(size, sizeof size, "B=512 d=%zu mlp3x128 silu%s", d, di < 2 ? "" : " blas_pool=single");
        bench_run("b_mlp_forward", size, THREADS, 21, fwd, &j, n * eval_flops((double)d), n * EVAL_EXPS);
        free(j.x), free(j.t), free(j.out);
        sdflow_model_free(m);
    }
    if (sdflow_ctx_set_int(ctx, SDFLOW_CTX_BLAS_POOL, SDFLOW_BLAS_POOL_HOST))
        die("blas_pool");
    /* samplers, d = 2 */
    sdflow_model *m2 = make_mlp(2);
    size_t ns = 10000 / scale;
    double *xs = malloc(ns * 2 * 8);
    static const struct { sdflow_sampler_kind kind; const char *name, *tag; long steps; double evals; } sr[3] = {
        { SDFLOW_SAMPLER_PF_ODE, "c_pf_ode_rk4", "rk4x100", 100, 400 },
        { SDFLOW_SAMPLER_REVERSE_SDE, "c_sde_em", "emx1000", 1000, 1000 },
        { SDFLOW_SAMPLER_DPMPP_2M, "c_dpmpp_2m", "dpmpp2mx20", 20, 20 } };
    for (int k = 0; k < 3; k++) {
        sdflow_sampler *s;
        if (sdflow_sampler_create(ctx, sr[k].kind, &s) || sdflow_sampler_set_process(s, vp) ||
            sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m2) || sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, sr[k].steps))
            die("sampler");
        if (sr[k].kind == SDFLOW_SAMPLER_PF_ODE && sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4))
            die("solver");
        samp_job j = { s, ns, xs };
        snprintf(size, sizeof size, "n=%zu d=2 mlp3x128 %s", ns, sr[k].tag);
        once(sr[k].name, size, samp, &j, sr[k].evals * ns * eval_flops(2), sr[k].evals * ns * EVAL_EXPS);
        sdflow_sampler_free(s);
    }
    free(xs);
    sdflow_model_free(m2);
    /* likelihoods, d = 64 */
    sdflow_model *m64 = make_mlp(64);
    size_t np = 1000 / scale;
    dens_job dj = { NULL, np, malloc(np * 64 * 8), malloc(np * 8) };
    if (sdflow_rng_normal(ctx, 2, 0, np, 64, dj.x))
        die("rng");
    for (int k = 0; k < 2; k++) {
        if (sdflow_density_create(ctx, k ? SDFLOW_DENSITY_PF_ODE_HUTCHINSON : SDFLOW_DENSITY_PF_ODE_EXACT, &dj.e) ||
            sdflow_density_set_process(dj.e, vp) || sdflow_density_set_model(dj.e, m64) ||
            sdflow_density_set_int(dj.e, SDFLOW_OPT_STEPS, 100))
            die("density");
        double per = eval_flops(64) * (k ? 2 : 65);
        snprintf(size, sizeof size, "n=%zu d=64 mlp3x128 rk4x100%s", np, k ? " K=1" : "");
        once(k ? "d_loglik_hutch" : "d_loglik_exact", size, dens, &dj, 400.0 * np * per, 400.0 * np * EVAL_EXPS);
        sdflow_density_free(dj.e);
    }
    free(dj.x), free(dj.logp);
    sdflow_model_free(m64);
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
    return 0;
}
