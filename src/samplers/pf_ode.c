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
 * score model's drift is formed here with the coefficients computed once per
 * distinct time (fixed-step solvers evaluate all rows at one time) instead
 * of once per row in the generic conversion. */
static sdflow_status pf_drift(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                              double *dydt)
{
    const pf_rhs *u = user;
    int score = u->m->native == SDFLOW_OUT_SCORE;
    memset(dydt, 0, n * u->m->d * sizeof *dydt); /* defined even where a failing model wrote nothing */
    sdflow_status st = sdflow_model_eval(u->m, u->p, n, y, t, score ? SDFLOW_OUT_SCORE : SDFLOW_OUT_VELOCITY, dydt);
    if (st == SDFLOW_E_NUMERIC) {
        /* the model's output check wrote dydt and counts the rows of this
         * call: name the caller's sample */
        size_t bad = sdflow__first_nonfinite_row(dydt, n, u->m->d);
        if (bad < n)
            return sdflow__fail(u->m->ctx, SDFLOW_E_NUMERIC, "model output is NaN/Inf for sample %zu", rows[bad]);
    }
    if (st || !score)
        return st;
    size_t d = u->m->d;
    sdflow__coef c;
    double tc = NAN;
    for (size_t i = 0; i < n; i++) {
        if (!(t[i] == tc)) {
            sdflow__process_coef(u->p, t[i], &c);
            tc = t[i];
        }
        for (size_t j = 0; j < d; j++)
            dydt[i * d + j] = c.f * y[i * d + j] - 0.5 * c.g2 * dydt[i * d + j];
    }
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
