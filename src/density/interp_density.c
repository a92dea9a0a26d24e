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

static sdflow_status interp_rhs(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                                double *dydt)
{
    sdflow__aug *u = user;
    sdflow_density *e = u->e;
    int div = (int)sdflow__pf_ode_opts_of(e)->divergence;
    size_t d = u->d, L = u->L, dim = u->dim;
    sdflow__aug_gather(u, n, rows, y);
    sdflow_status st;
    if (!u->probes)
        st = sdflow__model_velocity_and_divergence(e->model, e->proc, n, u->xs, t, div, u->field, u->acc);
    else
        st = sdflow__model_velocity_and_quadform(e->model, e->proc, n, u->xs, t, L, u->pv, div, u->field, u->acc);
    for (size_t i = 0; i < n; i++) { /* written even after a failure: the solver names the sample */
        memcpy(dydt + i * dim, u->field + i * d, d * sizeof(double));
        memcpy(dydt + i * dim + d, u->acc + i * L, L * sizeof(double));
    }
    return st;
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
    const sdflow__pf_ode_opts *p = sdflow__pf_ode_opts_of(e);
    sdflow__aug u;
    sdflow_status st = sdflow__aug_open(&u, e, n, x);
    if (!st) {
        sdflow__ode_opts o = { .solver = (int)p->solver, .steps = p->steps, .rtol = p->rtol, .atol = p->atol,
                               .h_init = p->h_init, .max_steps = p->max_steps,
                               .what = u.probes ? "interpolant Hutchinson likelihood" : "interpolant exact likelihood" };
        /* down to t = 0, or to SDFLOW_OPT_T_MIN when set (score-like models, whose velocity is
         * undefined at t = 0: rho_{t_min} is then taken as the base, an O(t_min) error) */
        double t_end = isnan(p->t_min) ? 0.0 : p->t_min;
        if (!(t_end < p->interp_time))
            st = sdflow__fail(e->ctx, SDFLOW_E_INVALID, "t_min=%g must be < interp_time=%g", t_end, p->interp_time);
        else
            st = sdflow__ode_solve(e->ctx, &o, n, u.dim, p->interp_time, t_end, u.y, interp_rhs, &u, NULL);
    }
    if (!st) {
        sdflow__aug_ends(&u, n);
        st = base_logpdf(e, n, u.x_end, u.end_lp);
    }
    if (!st)
        st = sdflow__aug_finish(&u, n, logp, se);
    sdflow__aug_close(&u);
    return st;
}
