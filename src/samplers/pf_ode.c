/* SPDX-License-Identifier: MIT */
/* The probability-flow ODE sampler: integrates dx/dt = f x - g^2/2 score
 * with the solvers of src/solvers/ over the plan's times. */
#include <math.h>
#include <string.h>
#include "ode_internal.h"
#include "sampler_internal.h"

typedef struct pf_rhs {
    sdflow_model *m;
    const sdflow_process *p;
} pf_rhs;

/* The PF-ODE drift f x - g^2/2 score is the model's VELOCITY output. A
 * score model's drift is formed by the process (coefficients once per
 * distinct time) from the unchecked model evaluation: the state was checked
 * by the solver, the score and the drift are each scanned once here, and
 * either names the caller's sample. */
static sdflow_status pf_drift(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                              double *dydt)
{
    const pf_rhs *u = user;
    if (u->m->native != SDFLOW_OUT_SCORE)
        return sdflow__model_eval_rows(u->m, u->p, n, y, t, SDFLOW_OUT_VELOCITY, dydt, rows);
    sdflow_status st = sdflow__model_eval_rows(u->m, u->p, n, y, t, SDFLOW_OUT_SCORE, dydt, rows);
    if (st)
        return st;
    size_t bad = sdflow__process_velocity_of_score(u->p, n, u->m->d, t, y, dydt, 0, NULL, dydt, u->m->d);
    if (bad < n)
        return sdflow__fail(u->m->ctx, SDFLOW_E_NUMERIC, "right-hand side is NaN/Inf for sample %zu", rows[bad]);
    return SDFLOW_OK;
}

sdflow_status sdflow__ode_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow_model *m = s->model[SDFLOW_ROLE_SCORE];
    pf_rhs u = { m, s->proc };
    sdflow__ode_opts o = { .solver = (int)s->solver, .steps = s->steps, .grid = plan->grid, .rtol = s->rtol,
                           .atol = s->atol, .h_init = s->h_init, .max_steps = s->max_steps,
                           .what = "pf_ode sampler" };
    sdflow__ode_stats stats = { 0, 0, 0 };
    sdflow_status st = sdflow__ode_solve(s->ctx, &o, n, m->d, plan->t_from, plan->t_to, x, pf_drift, &u, &stats);
    s->stats[SDFLOW_STAT_NFE] += stats.nfe;
    s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += stats.accepted;
    s->stats[SDFLOW_STAT_STEPS_REJECTED] += stats.rejected;
    return st;
}

/* Adaptive DOPRI5 picks its own times: no grid. */
static int pf_ode_uses_grid(const sdflow_sampler *s) { return s->solver != SDFLOW_SOLVER_DOPRI5; }

const sdflow__sampler_kind_ops sdflow__pf_ode_kind = {
    .kind = SDFLOW_SAMPLER_PF_ODE, .name = "pf_ode", .roles = SDFLOW__ROLE_BIT(SDFLOW_ROLE_SCORE),
    .roles_hint = "use SDFLOW_ROLE_SCORE", .primary = SDFLOW_ROLE_SCORE, .primary_name = "score",
    .process = SDFLOW__SK_PROC_DIFFUSION, .flags = SDFLOW__SK_STEPPED, .transport = 1,
    .uses_grid = pf_ode_uses_grid, .run = sdflow__ode_run,
};
