/* SPDX-License-Identifier: MIT */
/* PF-ODE likelihood (algorithms.md §5): integrate the augmented state
 * (x, l) from t_min to T with dx/dt = v = f x - g^2/2 s and
 * dl/dt = div v = d f - g^2/2 div s; then log p(x) = log prior(x(T)) + l(T).
 * The exact estimator carries one accumulator l; the Hutchinson estimator
 * carries K (one per probe), so the state is d + K wide and the spread of
 * the K estimates gives the standard error. */
#include <math.h>
#include <string.h>
#include "density_internal.h"
#include "ode_internal.h"

/* The PF-ODE family's options (sdflow__pf_ode_opts, e->priv of both kinds):
 * key, kinds that accept it, field, default (t_min NaN: resolved from the
 * bound process). */
#define K_EX SDFLOW__KIND_BIT(SDFLOW_DENSITY_PF_ODE_EXACT)
#define K_HU SDFLOW__KIND_BIT(SDFLOW_DENSITY_PF_ODE_HUTCHINSON)
#define K_ODE (K_EX | K_HU)
#define SLOT(key, kinds, field, def) SDFLOW__PRIV_SLOT(sdflow__pf_ode_opts, key, kinds, field, def)
static const sdflow__opt_slot pf_ode_slots[] = {
    SLOT(SDFLOW_OPT_PROBES, K_HU, probes, 1),
    SLOT(SDFLOW_OPT_PROBE_KIND, K_HU, probe_kind, SDFLOW_PROBE_RADEMACHER),
    SLOT(SDFLOW_OPT_DIVERGENCE, K_ODE, divergence, SDFLOW_DIV_AUTO),
    SLOT(SDFLOW_OPT_RTOL, K_ODE, rtol, 1e-5),
    SLOT(SDFLOW_OPT_ATOL, K_ODE, atol, 1e-5),
    SLOT(SDFLOW_OPT_SOLVER, K_ODE, solver, SDFLOW_SOLVER_DOPRI5),
    SLOT(SDFLOW_OPT_STEPS, K_ODE, steps, 100),
    SLOT(SDFLOW_OPT_MAX_STEPS, K_ODE, max_steps, 100000),
    SLOT(SDFLOW_OPT_H_INIT, K_ODE, h_init, 0),
    SLOT(SDFLOW_OPT_T_MIN, K_ODE, t_min, NAN),
    SLOT(SDFLOW_OPT_INTERP_TIME, K_ODE, interp_time, 1.0),
};

/* Start time of the diffusion PF-ODE: SDFLOW_OPT_T_MIN, or
 * max(1e-5, t_eps) of the bound process (interpolants: 0, the base end). */
static double start_time(const sdflow_density *e)
{
    double t_min = sdflow__pf_ode_opts_of(e)->t_min;
    if (!isnan(t_min))
        return t_min;
    if (sdflow__process_is_interp(e->proc))
        return 0.0; /* interpolants: down to the base end */
    return e->proc->t_eps > 1e-5 ? e->proc->t_eps : 1e-5; /* score_sde likelihood eps */
}

/* The resolved default: t_min of the bound process. */
static void resolve_option(const void *owner, sdflow_option key, void *value)
{
    const sdflow_density *e = owner;
    if (key == SDFLOW_OPT_T_MIN && e->proc)
        *(double *)value = start_time(e);
}

static const sdflow__opt_store pf_ode_store = { "estimator", pf_ode_slots,
                                                sizeof pf_ode_slots / sizeof pf_ode_slots[0], NULL, resolve_option };

/* dydt = (v, div v) with v = f x - g^2/2 s and div v = d f - g^2/2 div s
 * (or the probes' quadratic forms), formed by the process. The state was
 * checked by the solver; the model evaluation is the unchecked one and
 * names the caller's sample (rows) itself, as does the drift check. */
static sdflow_status aug_eval(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                              double *dydt)
{
    sdflow__aug *u = user;
    sdflow_density *e = u->e;
    int div = (int)sdflow__pf_ode_opts_of(e)->divergence;
    size_t d = u->d, L = u->L, dim = u->dim;
    sdflow__aug_gather(u, n, rows, y);
    sdflow_status st;
    if (!u->probes) /* score and divergence in one model pass where the model offers it */
        st = sdflow__model_score_and_divergence(e->model, e->proc, n, u->xs, t, div, u->field, u->acc, rows);
    else
        st = sdflow__model_score_and_quadform(e->model, e->proc, n, u->xs, t, L, u->pv, div, u->field, u->acc,
                                              rows);
    if (st)
        return st;
    /* the linear part f x of the drift has the exact trace d f, so probes
     * only estimate the score part (lower variance) */
    size_t bad = sdflow__process_velocity_of_score(e->proc, n, d, t, u->xs, u->field, L, u->acc, dydt, dim);
    if (bad < n)
        return sdflow__fail(e->ctx, SDFLOW_E_NUMERIC, "right-hand side is NaN/Inf for sample %zu", rows[bad]);
    return SDFLOW_OK;
}

static sdflow_status pf_ode_logpdf(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                                   double *logp, double *se)
{
    (void)plan; /* a diffusion process (density.c sends interpolants to sdflow__interp_logpdf) */
    const sdflow__pf_ode_opts *p = sdflow__pf_ode_opts_of(e);
    sdflow__aug u;
    sdflow_status st = sdflow__aug_open(&u, e, n, x);
    if (!st) {
        sdflow__ode_opts o = { .solver = (int)p->solver, .steps = p->steps, .rtol = p->rtol, .atol = p->atol,
                               .h_init = p->h_init, .max_steps = p->max_steps,
                               .what = u.probes ? "pf_ode_hutchinson likelihood" : "pf_ode_exact likelihood" };
        st = sdflow__ode_solve(e->ctx, &o, n, u.dim, start_time(e), e->proc->t_max, u.y, aug_eval, &u, NULL);
    }
    if (!st) {
        sdflow__aug_ends(&u, n);
        st = sdflow_process_prior_logpdf(e->proc, n, u.d, u.x_end, u.end_lp);
    }
    if (!st)
        st = sdflow__aug_finish(&u, n, logp, se);
    sdflow__aug_close(&u);
    return st;
}

/* The start time and the solver (the interpolant path starts at the base
 * end, whatever t_min resolves to). */
static sdflow_status pf_ode_check(const sdflow_density *e, const sdflow__density_plan *plan)
{
    double lo = e->proc->t_eps, hi = e->proc->t_max, t0 = start_time(e);
    long solver = sdflow__pf_ode_opts_of(e)->solver;
    if (!plan->interp && !(t0 >= lo && t0 < hi))
        return sdflow__fail(e->ctx, SDFLOW_E_INVALID, "t_min=%g must lie in [t_eps=%g, T=%g)", t0, lo, hi);
    if (solver != SDFLOW_SOLVER_DOPRI5 && solver != SDFLOW_SOLVER_RK4)
        return sdflow__fail(e->ctx, SDFLOW_E_UNSUPPORTED,
                            "solver %ld: density estimators use SDFLOW_SOLVER_DOPRI5 or SDFLOW_SOLVER_RK4", solver);
    return SDFLOW_OK;
}

const sdflow__density_kind_ops sdflow__pf_ode_exact_kind = {
    .kind = SDFLOW_DENSITY_PF_ODE_EXACT, .name = "pf_ode_exact", .check = pf_ode_check,
    .logpdf = pf_ode_logpdf, .interp_logpdf = sdflow__interp_logpdf,
    .opts = &pf_ode_store, .priv_size = sizeof(sdflow__pf_ode_opts),
};

const sdflow__density_kind_ops sdflow__pf_ode_hutchinson_kind = {
    .kind = SDFLOW_DENSITY_PF_ODE_HUTCHINSON, .name = "pf_ode_hutchinson", .hutchinson = 1, .check = pf_ode_check,
    .logpdf = pf_ode_logpdf, .interp_logpdf = sdflow__interp_logpdf,
    .opts = &pf_ode_store, .priv_size = sizeof(sdflow__pf_ode_opts),
};
