/* SPDX-License-Identifier: MIT */
/* Interpolant likelihood (algorithms.md §8): t = 0 is the base, t = 1 the
 * data. From x at t = interp_time integrate the augmented state (x, l) down
 * to t = 0 with dx/dt = v(t, x) and dl/dt = div v (exact) or one probe
 * quadratic form per accumulator (Hutchinson); then
 *   log rho_t(x) = log rho_0(x(0)) + l(0),   l(0) = -int_0^t div v.
 * The velocity is finite on the closed interval, so t runs to 0 exactly
 * (a velocity model; a score-like model's velocity is undefined at t = 0). */
#include <math.h>
#include <string.h>
#include "density_internal.h"
#include "ode_internal.h"

typedef struct interp_aug {
    sdflow_density *e;
    size_t d, L;
    double *xs, *v, *acc;   /* compact positions, velocities, divergences / quadratic forms */
    double *probes, *pv;    /* Hutchinson: n_all x L x d probes, gathered for one call */
} interp_aug;

static sdflow_status interp_rhs(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                                double *dydt)
{
    interp_aug *u = user;
    sdflow_density *e = u->e;
    size_t d = u->d, L = u->L, dim = d + L;
    for (size_t i = 0; i < n; i++)
        memcpy(u->xs + i * d, y + i * dim, d * sizeof(double));
    sdflow_status st;
    if (!u->probes) {
        st = sdflow__model_velocity_and_divergence(e->model, e->proc, n, u->xs, t, (int)e->divergence, u->v, u->acc);
    } else {
        for (size_t i = 0; i < n; i++)
            memcpy(u->pv + i * L * d, u->probes + rows[i] * L * d, L * d * sizeof(double));
        st = sdflow__model_velocity_and_quadform(e->model, e->proc, n, u->xs, t, L, u->pv, (int)e->divergence, u->v,
                                                 u->acc);
    }
    for (size_t i = 0; i < n; i++) { /* written even after a failure: the solver names the sample */
        memcpy(dydt + i * dim, u->v + i * d, d * sizeof(double));
        memcpy(dydt + i * dim + d, u->acc + i * L, L * sizeof(double));
    }
    return st;
}

/* Probes of row i: L vectors keyed by (seed, stream, first_index + i), as the PF-ODE estimator. */
static void draw_probes(const sdflow_density *e, size_t n, size_t d, size_t L, double *probes)
{
    uint64_t stream = sdflow__stream(e->stream, 0x70726f62ull /* "prob" */, 0);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < L; k++) {
            double *v = probes + (i * L + k) * d;
            uint64_t row = e->first_index + i;
            if (e->probe_kind == SDFLOW_PROBE_GAUSSIAN)
                sdflow__rng_normal_row(e->ctx->seed, stream, row, k * ((d + 1) / 2), d, v);
            else
                sdflow__rng_rademacher_row(e->ctx->seed, stream, row, k * ((d + 127) / 128), d, v);
        }
}

/* log rho_0 at the ODE end points: N(0, I), or the base model's data
 * density -- its noised density under the interpolant at t = 1, where
 * alpha = b(1) = 1 and sigma = 0, is the clean one. */
static sdflow_status base_logpdf(sdflow_density *e, size_t n, const double *x0, double *lp)
{
    if (!e->base)
        return sdflow_process_prior_logpdf(e->proc, n, e->model->d, x0, lp);
    double *t1 = sdflow__alloc_array(e->ctx, n, sizeof(double), "base times");
    if (!t1)
        return SDFLOW_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        t1[i] = 1.0;
    sdflow_status st = sdflow_model_logpdf(e->base, e->proc, n, x0, t1, lp);
    sdflow__free(e->ctx, t1);
    return st;
}

sdflow_status sdflow__interp_logpdf(sdflow_density *e, size_t n, const double *x, double *logp, double *se)
{
    sdflow_ctx *ctx = e->ctx;
    size_t d = e->model->d;
    int hutch = e->kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON;
    size_t L = hutch ? (size_t)e->probes : 1, dim = d + L;
    if (!sdflow__size_ok(n, dim) || !sdflow__size_ok(n, L * d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu rows of %zu state entries overflow size_t", n, dim);
    interp_aug u = { .e = e, .d = d, .L = L };
    double *y = sdflow__alloc_array(ctx, n, dim * sizeof(double), "augmented ODE state");
    double *lp0 = sdflow__alloc_array(ctx, n, sizeof(double), "base log-density");
    double *x0 = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE end points");
    u.xs = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE positions");
    u.v = sdflow__calloc_array(ctx, n, d * sizeof(double), "velocities");
    u.acc = sdflow__calloc_array(ctx, n, L * sizeof(double), "divergence accumulators");
    if (hutch) {
        u.probes = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "Hutchinson probes");
        u.pv = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "gathered probes");
    }
    sdflow_status st = SDFLOW_OK;
    if (!y || !lp0 || !x0 || !u.xs || !u.v || !u.acc || (hutch && (!u.probes || !u.pv)))
        st = SDFLOW_E_NOMEM;
    if (!st) {
        if (hutch)
            draw_probes(e, n, d, L, u.probes);
        for (size_t i = 0; i < n; i++) {
            memcpy(y + i * dim, x + i * d, d * sizeof(double));
            memset(y + i * dim + d, 0, L * sizeof(double));
        }
        sdflow__ode_opts o = { .solver = (int)e->solver, .steps = e->steps, .rtol = e->rtol, .atol = e->atol,
                               .h_init = e->h_init, .max_steps = e->max_steps,
                               .what = hutch ? "interpolant Hutchinson likelihood" : "interpolant exact likelihood" };
        /* down to t = 0, or to SDFLOW_OPT_T_MIN when set (score-like models, whose velocity is
         * undefined at t = 0: rho_{t_min} is then taken as the base, an O(t_min) error) */
        double t_end = isnan(e->t_min) ? 0.0 : e->t_min;
        if (!(t_end < e->interp_time)) {
            st = sdflow__fail(ctx, SDFLOW_E_INVALID, "t_min=%g must be < interp_time=%g", t_end, e->interp_time);
        } else {
            st = sdflow__ode_solve(ctx, &o, n, dim, e->interp_time, t_end, y, interp_rhs, &u, NULL);
        }
    }
    if (!st) {
        for (size_t i = 0; i < n; i++)
            memcpy(x0 + i * d, y + i * dim, d * sizeof(double));
        st = base_logpdf(e, n, x0, lp0);
    }
    for (size_t i = 0; i < n && !st; i++) {
        const double *l = y + i * dim + d;
        double mean = 0, ss = 0;
        for (size_t k = 0; k < L; k++)
            mean += l[k];
        mean /= (double)L;
        for (size_t k = 0; k < L; k++)
            ss += (l[k] - mean) * (l[k] - mean);
        logp[i] = lp0[i] + mean;
        if (se)
            se[i] = L > 1 ? sqrt(ss / (double)(L - 1) / (double)L) : 0.0;
        if (!isfinite(logp[i]))
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "log-density of sample %zu is %g", i, logp[i]);
    }
    sdflow__free(ctx, y);
    sdflow__free(ctx, lp0);
    sdflow__free(ctx, x0);
    sdflow__free(ctx, u.xs);
    sdflow__free(ctx, u.v);
    sdflow__free(ctx, u.acc);
    sdflow__free(ctx, u.probes);
    sdflow__free(ctx, u.pv);
    return st;
}
