/* SPDX-License-Identifier: MIT */
/* Internal: the ODE integrator shared by the PF-ODE sampler and the PF-ODE
 * density estimators. Rows are independent systems; every row has its own
 * time, step size, error norm and evaluation count (adaptive solvers too),
 * so a row's result never depends on the other rows of the batch. */
#ifndef SDFLOW_ODE_INTERNAL_H
#define SDFLOW_ODE_INTERNAL_H

#include "ctx_internal.h"

/* Right-hand side for a batch of rows: dydt[i] = F(t[i], y[i]) for i < n,
 * y and dydt are n x dim row-major. rows[i] is the caller's original row
 * index of batch row i (so F can look up per-row data such as probes).
 * Returns SDFLOW_OK or a failure already reported into the ctx; a NaN/Inf
 * in dydt must be reported by F itself as SDFLOW_E_NUMERIC naming rows[i]
 * (sdflow__check_rows, sdflow__model_eval_rows): the solver does not
 * re-scan the outputs, it prefixes F's message with the step and time. */
typedef sdflow_status (*sdflow__ode_rhs)(void *user, size_t n, const size_t *rows, const double *t,
                                         const double *y, double *dydt);

typedef struct sdflow__ode_opts {
    int solver;          /* sdflow_solver */
    long steps;          /* fixed-step solvers: number of steps from t0 to t1 */
    const double *grid;  /* fixed-step solvers: steps + 1 times from t0 to t1, or NULL for uniform */
    double rtol, atol;   /* DOPRI5 */
    double h_init;       /* DOPRI5 initial |step|; 0: Hairer's heuristic */
    long max_steps;      /* DOPRI5: attempted steps per row before SDFLOW_E_NUMERIC */
    const char *what;    /* names the operation in progress and error messages */
} sdflow__ode_opts;

typedef struct sdflow__ode_stats {
    double nfe;       /* right-hand-side evaluations, summed over rows */
    double accepted;  /* accepted steps, summed over rows */
    double rejected;  /* rejected steps, summed over rows */
} sdflow__ode_stats;

/* Integrates all n rows of y (n x dim, in place) from t0 to t1 (either
 * direction). Reports progress through the ctx callback once per step
 * (fixed) or per round of attempted steps (adaptive), and stops with
 * SDFLOW_E_NUMERIC naming row, time and step when a NaN/Inf appears.
 * stats (may be NULL) is accumulated into, not reset. */
sdflow_status sdflow__ode_solve(sdflow_ctx *ctx, const sdflow__ode_opts *o, size_t n, size_t dim, double t0,
                                double t1, double *y, sdflow__ode_rhs rhs, void *user, sdflow__ode_stats *stats);

#endif
