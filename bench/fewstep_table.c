/* SPDX-License-Identifier: MIT */
/* Error against NFE of the few-step samplers next to the PF-ODE solvers
 * (docs/fewstep.md). 2-D and 8-D Gaussian mixtures with the exact score, VP
 * process, Karras grid (rho = 7) to t_min = 1e-3; 10^4 samples per cell;
 * error = sliced Wasserstein-2 over 256 directions against 10^4 exact
 * mixture samples (the std printed is the Monte Carlo error of the
 * direction average); the null floor (two exact samples of 10^4) is printed
 * first. All rows start from the same prior draws (x_init), and the
 * deterministic rows also report the RMS distance of their samples to the
 * PF-ODE solution from the same starts (DOPRI5, rtol = atol = 1e-10): the
 * discretization error without the sampling noise of the metric. (MMD^2 on 2 x 10^4 points costs ~1 min per cell on the shared
 * machine; SW2 is O(L n log n).) Build and run:
 *   make build/bench/fewstep_table && build/bench/fewstep_table
 * (not part of `make bench`: it measures accuracy, not speed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

#define N 10000
#define K 4

typedef struct row {
    const char *name;
    sdflow_sampler_kind kind;
    int solver;    /* PF-ODE solver or -1 */
    int per_step;  /* NFE per step (steps = NFE / per_step) */
} row;

static const row rows[] = {
    { "ddim", SDFLOW_SAMPLER_DDIM, -1, 1 },
    { "dpmpp_2m", SDFLOW_SAMPLER_DPMPP_2M, -1, 1 },
    { "dpmpp_3m", SDFLOW_SAMPLER_DPMPP_3M, -1, 1 },
    { "dpmpp_2m_sde", SDFLOW_SAMPLER_DPMPP_2M_SDE, -1, 1 },
    { "dpmpp_3m_sde", SDFLOW_SAMPLER_DPMPP_3M_SDE, -1, 1 },
    { "edm_heun", SDFLOW_SAMPLER_EDM_HEUN, -1, 2 },
    { "pf_ode heun", SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_HEUN, 2 },
    { "pf_ode rk4", SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_RK4, 4 },
};

static int fail(sdflow_ctx *ctx)
{
    fprintf(stderr, "failed: %s\n", sdflow_ctx_last_error(ctx));
    return 1;
}

/* Runs one sampler; *nfe gets the NFE per sample. */
static int sample(sdflow_ctx *ctx, const sdflow_process *p, sdflow_model *m, const row *r, long nfe_target,
                  double rtol, const double *x0, double *x, double *nfe)
{
    sdflow_sampler *s = NULL;
    if (sdflow_sampler_create(ctx, r->kind, &s) || sdflow_sampler_set_process(s, p) ||
        sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m))
        return fail(ctx);
    if (r->solver >= 0 && sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, r->solver))
        return fail(ctx);
    if (rtol > 0) {
        if (sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, rtol) || sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, rtol))
            return fail(ctx);
    } else if (sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, nfe_target / r->per_step) ||
               sdflow_sampler_set_int(s, SDFLOW_OPT_TIME_GRID, SDFLOW_GRID_KARRAS)) {
        return fail(ctx);
    }
    if (sdflow_sampler_run(s, N, x0, x) || sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, nfe))
        return fail(ctx);
    *nfe /= N;
    sdflow_sampler_free(s);
    return 0;
}

int main(void)
{
    static const long nfes[3] = { 10, 20, 50 };
    static const double rtols[3] = { 1e-1, 1e-2, 1e-3 };
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    if (sdflow_ctx_create(&ctx, NULL) || sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p))
        return 1;
    double *x = malloc(N * 8 * sizeof *x), *y = malloc(N * 8 * sizeof *y), *y2 = malloc(N * 8 * sizeof *y2);
    double *x0 = malloc(N * 8 * sizeof *x0), *ref = malloc(N * 8 * sizeof *ref);
    if (!x || !y || !y2 || !x0 || !ref)
        return 1;
    for (int dd = 0; dd < 2; dd++) {
        size_t d = dd ? 8 : 2;
        double w[K] = { 0.1, 0.2, 0.3, 0.4 }, mu[K * 8], cov[K * 64] = { 0 };
        for (int k = 0; k < K; k++)
            for (size_t j = 0; j < d; j++) {
                mu[k * d + j] = ((k >> (j % 2)) & 1 ? 2.0 : -2.0) * (j < 2 ? 1 : 0.5 * ((k + (int)j) % 3 - 1));
                cov[(k * d + j) * d + j] = 0.2 + 0.05 * (double)((k + (int)j) % 4);
            }
        sdflow_model *m = NULL;
        if (sdflow_model_create_gmm(ctx, K, d, w, mu, cov, &m) || sdflow_model_sample(m, 77, 0, N, y) ||
            sdflow_model_sample(m, 78, 0, N, y2))
            return fail(ctx);
        double v, sd, nfe;
        static const row exact = { "reference", SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_DOPRI5, 1 };
        if (sdflow_process_prior_sample(p, 1, 0, N, d, x0) || sample(ctx, p, m, &exact, 0, 1e-10, x0, ref, &nfe))
            return fail(ctx);
        if (sdflow_metric_sliced_wasserstein(ctx, N, N, d, y2, y, 2, 256, 5, &v, &sd))
            return fail(ctx);
        printf("\n### d = %zu: sliced W2 x 100 (MC std); null floor %.2f (%.2f)\n\n", d, v * 100, sd * 100);
        printf("reference PF-ODE DOPRI5 rtol 1e-10: %.0f NFE; cells: SW2 x 100 (MC std) / RMS to reference @ NFE\n\n", nfe);
        printf("| sampler | NFE 10 | NFE 20 | NFE 50 |\n|---|---|---|---|\n");
        for (size_t r = 0; r <= sizeof rows / sizeof rows[0]; r++) {
            int dopri = r == sizeof rows / sizeof rows[0];
            static const row dp = { "pf_ode dopri5 (rtol 1e-1, 1e-2, 1e-3)", SDFLOW_SAMPLER_PF_ODE, SDFLOW_SOLVER_DOPRI5, 1 };
            const row *rr = dopri ? &dp : &rows[r];
            printf("| %s |", rr->name);
            for (int c = 0; c < 3; c++) {
                if (sample(ctx, p, m, rr, nfes[c], dopri ? rtols[c] : 0, x0, x, &nfe) ||
                    sdflow_metric_sliced_wasserstein(ctx, N, N, d, x, y, 2, 256, 5, &v, &sd))
                    return 1;
                int stoch = rr->kind == SDFLOW_SAMPLER_DPMPP_2M_SDE || rr->kind == SDFLOW_SAMPLER_DPMPP_3M_SDE;
                double e2 = 0;
                for (size_t i = 0; i < N * d; i++)
                    e2 += (x[i] - ref[i]) * (x[i] - ref[i]);
                if (stoch)
                    printf(" %.2f (%.2f) / - @%.0f |", v * 100, sd * 100, nfe);
                else
                    printf(" %.2f (%.2f) / %.2g @%.0f |", v * 100, sd * 100, sqrt(e2 / N), nfe);
                fflush(stdout);
            }
            printf("\n");
        }
        sdflow_model_free(m);
    }
    free(x);
    free(y);
    free(y2);
    free(x0);
    free(ref);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return 0;
}
