/* SPDX-License-Identifier: MIT */
/* The augmented ODE state (x, l) that both ODE likelihoods integrate
 * (pf_ode_density.c: diffusion PF-ODE; interp_density.c: interpolant
 * velocity ODE): its buffers, the Hutchinson probes, the per-call gathering
 * of positions and probes, and the final combination
 *   log p(x) = log p_end(x_end) + mean_k l_k,  se = sd_k(l_k) / sqrt(K).
 * The two estimators differ only in their right-hand side, their direction
 * in time and the density at the far end. */
#include <math.h>
#include <string.h>
#include "density_internal.h"

/* Probes of row i: L vectors keyed by (seed, stream, first_index + i), so a
 * row's probes do not depend on the batch or the thread count. */
static void draw_probes(const sdflow_density *e, size_t n, size_t d, size_t L, double *probes)
{
    uint64_t stream = sdflow__stream(e->stream, 0x70726f62ull /* "prob" */, 0);
    uint64_t seed = e->ctx->seed;
    long probe_kind = sdflow__pf_ode_opts_of(e)->probe_kind;
    int nt = sdflow__threads_for(e->ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < L; k++) {
            double *v = probes + (i * L + k) * d;
            uint64_t row = e->first_index + i;
            if (probe_kind == SDFLOW_PROBE_GAUSSIAN)
                sdflow__rng_normal_row(seed, stream, row, k * ((d + 1) / 2), d, v);
            else
                sdflow__rng_rademacher_row(seed, stream, row, k * ((d + 127) / 128), d, v);
        }
}

sdflow_status sdflow__aug_open(sdflow__aug *a, sdflow_density *e, size_t n, const double *x)
{
    sdflow_ctx *ctx = e->ctx;
    size_t d = e->model->d;
    int hutch = e->ops->hutchinson;
    size_t L = hutch ? (size_t)sdflow__pf_ode_opts_of(e)->probes : 1, dim = d + L;
    memset(a, 0, sizeof *a);
    a->e = e;
    a->d = d;
    a->L = L;
    a->dim = dim;
    if (!sdflow__size_ok(n, dim) || !sdflow__size_ok(n, L * d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu rows of %zu state entries overflow size_t", n, dim);
    a->y = sdflow__alloc_array(ctx, n, dim * sizeof(double), "augmented ODE state");
    a->end_lp = sdflow__alloc_array(ctx, n, sizeof(double), "end-point log-density");
    a->x_end = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE end points");
    a->xs = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE positions");
    /* zeroed: an RHS writes dydt from them even after a failed model call
     * (the solver then names the sample) */
    a->field = sdflow__calloc_array(ctx, n, d * sizeof(double), "ODE velocities or scores");
    a->acc = sdflow__calloc_array(ctx, n, L * sizeof(double), "divergence accumulators");
    if (hutch) {
        a->probes = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "Hutchinson probes");
        a->pv = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "gathered probes");
    }
    if (!a->y || !a->end_lp || !a->x_end || !a->xs || !a->field || !a->acc || (hutch && (!a->probes || !a->pv)))
        return SDFLOW_E_NOMEM;
    if (hutch)
        draw_probes(e, n, d, L, a->probes);
    for (size_t i = 0; i < n; i++) {
        memcpy(a->y + i * dim, x + i * d, d * sizeof(double));
        memset(a->y + i * dim + d, 0, L * sizeof(double));
    }
    return SDFLOW_OK;
}

void sdflow__aug_gather(sdflow__aug *a, size_t n, const size_t *rows, const double *y)
{
    size_t d = a->d, L = a->L, dim = a->dim;
    for (size_t i = 0; i < n; i++)
        memcpy(a->xs + i * d, y + i * dim, d * sizeof(double));
    for (size_t i = 0; a->probes && i < n; i++)
        memcpy(a->pv + i * L * d, a->probes + rows[i] * L * d, L * d * sizeof(double));
}

void sdflow__aug_ends(sdflow__aug *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(a->x_end + i * a->d, a->y + i * a->dim, a->d * sizeof(double));
}

sdflow_status sdflow__aug_finish(sdflow__aug *a, size_t n, double *logp, double *se)
{
    size_t d = a->d, L = a->L, dim = a->dim;
    for (size_t i = 0; i < n; i++) {
        const double *l = a->y + i * dim + d;
        double mean = 0, ss = 0;
        for (size_t k = 0; k < L; k++)
            mean += l[k];
        mean /= (double)L;
        for (size_t k = 0; k < L; k++)
            ss += (l[k] - mean) * (l[k] - mean);
        logp[i] = a->end_lp[i] + mean;
        /* se = sd(probe estimates)/sqrt(K); K = 1 (and exact) gives 0 */
        if (se)
            se[i] = L > 1 ? sqrt(ss / (double)(L - 1) / (double)L) : 0.0;
        if (!isfinite(logp[i]))
            return sdflow__fail(a->e->ctx, SDFLOW_E_NUMERIC, "log-density of sample %zu is %g", i, logp[i]);
    }
    return SDFLOW_OK;
}

void sdflow__aug_close(sdflow__aug *a)
{
    sdflow_ctx *ctx = a->e->ctx;
    sdflow__free(ctx, a->y);
    sdflow__free(ctx, a->end_lp);
    sdflow__free(ctx, a->x_end);
    sdflow__free(ctx, a->xs);
    sdflow__free(ctx, a->field);
    sdflow__free(ctx, a->acc);
    sdflow__free(ctx, a->probes);
    sdflow__free(ctx, a->pv);
}
