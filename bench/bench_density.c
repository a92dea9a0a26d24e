/* SPDX-License-Identifier: MIT */
/* Log-density of 1000 points of a 4-component Gaussian mixture (full
 * covariances) under the VP process, at d = 2 and d = 16, by each estimator:
 * PF-ODE exact divergence and Hutchinson (1 Rademacher probe) with fixed-step
 * RK4 x 100 (the solver bench/torch_likelihood.py uses), and Li-Yan with 256
 * stratified log-SNR points and one antithetic pair. ctx THREADS = 2. */
#include <math.h>
#include <stdio.h>
#include "bench_util.h"
#include "sdflow.h"

enum { N = 1000, KMIX = 4, THREADS = 2 };

typedef struct job {
    sdflow_density *e;
    const double *x;
    double *logp, *se;
} job;

static int run(void *arg)
{
    job *j = arg;
    return sdflow_density_logpdf(j->e, N, j->x, j->logp, j->se) != SDFLOW_OK;
}

/* The mixture bench/torch_likelihood.py rebuilds: mean_k[a] = 2 cos(k + 0.7 a),
 * S_k = B B^T / d + 0.3 I with B[a][b] = sin(1.3 (a d + b) + k). */
static void mixture(size_t d, double *w, double *mu, double *cov)
{
    for (size_t k = 0; k < KMIX; k++) {
        w[k] = 1.0 / KMIX;
        for (size_t a = 0; a < d; a++) {
            mu[k * d + a] = 2.0 * cos((double)k + 0.7 * (double)a);
            for (size_t b = 0; b < d; b++) {
                double s = a == b ? 0.3 : 0.0;
                for (size_t c = 0; c < d; c++)
                    s += sin(1.3 * (double)(a * d + c) + (double)k) * sin(1.3 * (double)(b * d + c) + (double)k) /
                         (double)d;
                cov[(k * d + a) * d + b] = s;
            }
        }
    }
}

int main(void)
{
    static const size_t dims[2] = { 2, 16 };
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return 1;
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, THREADS);
    sdflow_process *vp = NULL;
    if (sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp) != SDFLOW_OK)
        return 1;
    for (int di = 0; di < 2; di++) {
        size_t d = dims[di];
        double w[KMIX], *mu = malloc(KMIX * d * sizeof *mu), *cov = malloc(KMIX * d * d * sizeof *cov);
        double *x = malloc(N * d * sizeof *x), *logp = malloc(N * sizeof *logp), *se = malloc(N * sizeof *se);
        sdflow_model *m = NULL;
        mixture(d, w, mu, cov);
        if (sdflow_model_create_gmm(ctx, KMIX, d, w, mu, cov, &m) != SDFLOW_OK ||
            sdflow_model_sample(m, 1, 0, N, x) != SDFLOW_OK) {
            fprintf(stderr, "%s\n", sdflow_ctx_last_error(ctx));
            return 1;
        }
        /* Work (docs/benchmarks.md): a mixture row evaluation costs 4 KMIX d^2
         * flops (two d x d matrix-vector products per component) and KMIX exps;
         * the closed-form divergence adds O(KMIX d) (not counted), a probe's
         * quadratic form one more product per component (2 KMIX d^2). RK4 x 100
         * = 400 evaluations. Li-Yan: per row and log-SNR point an antithetic
         * pair of evaluations, KMIX logs (the per-row log-determinants), the
         * time map and coefficients (4 calls) and d normals (1.5 calls each). */
        double dd = (double)d * (double)d, ev = (double)N * KMIX;
        static const struct {
            sdflow_density_kind kind;
            const char *name, *what;
            double evals, flops_per, exps_extra;
        } runs[3] = { { SDFLOW_DENSITY_PF_ODE_EXACT, "d_loglik_exact", "rk4x100", 400, 4, 0 },
                      { SDFLOW_DENSITY_PF_ODE_HUTCHINSON, "d_loglik_hutch", "rk4x100 K=1", 400, 6, 0 },
                      { SDFLOW_DENSITY_LIYAN, "d_loglik_liyan", "K=256 J=1", 512, 4, 1 } };
        for (int r = 0; r < 3; r++) {
            sdflow_density *e = NULL;
            sdflow_density_create(ctx, runs[r].kind, &e);
            sdflow_density_set_process(e, vp);
            sdflow_density_set_model(e, m);
            if (runs[r].kind != SDFLOW_DENSITY_LIYAN) {
                sdflow_density_set_int(e, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4);
                sdflow_density_set_int(e, SDFLOW_OPT_STEPS, 100);
            }
            char size[64];
            snprintf(size, sizeof size, "n=%d d=%zu gmm%d %s", N, d, KMIX, runs[r].what);
            job j = { e, x, logp, se };
            double flops = runs[r].evals * ev * runs[r].flops_per * dd;
            double exps = runs[r].evals * ev + runs[r].exps_extra * 256.0 * N * (KMIX + 4.0 + 1.5 * (double)d);
            bench_run(runs[r].name, size, THREADS, 5, run, &j, flops, exps);
            sdflow_density_free(e);
        }
        sdflow_model_free(m);
        free(mu);
        free(cov);
        free(x);
        free(logp);
        free(se);
    }
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
    return 0;
}
