/* SPDX-License-Identifier: MIT */
/* Internal: the density-estimator handle shared by the generic layer
 * (density.c) and the algorithm files (pf_ode_density.c, liyan.c). */
#ifndef SDFLOW_DENSITY_INTERNAL_H
#define SDFLOW_DENSITY_INTERNAL_H

#include "model_internal.h"

struct sdflow_density {
    sdflow_ctx *ctx;
    sdflow_density_kind kind;
    const sdflow_process *proc;
    sdflow_model *model;
    sdflow_model *base; /* interpolant base rho_0 (NULL: N(0, I)) */
    /* options */
    long probes, probe_kind, liyan_times, liyan_draws, dequantize, divergence;
    long solver, steps, max_steps;
    double lambda_min, lambda_max, data_scale, rtol, atol, h_init;
    double t_min; /* NaN: max(1e-5, process t_eps) */
    double interp_time; /* interpolant: t of rho_t (default 1) */
    uint64_t first_index, stream;
};

/* What the dispatcher (density.c) resolved for one call; the algorithms
 * take it from here and never call back into it. */
typedef struct sdflow__density_plan {
    double t_min; /* PF-ODE start time (SDFLOW_OPT_T_MIN or max(1e-5, t_eps)) */
} sdflow__density_plan;

/* Algorithm entry points. Arguments are validated by density.c: bound
 * process and model, n >= 1, x finite (n x d, d = model dimension), logp
 * non-NULL. se may be NULL. Row i of the results depends only on x[i], the
 * options and (seed, stream, first_index + i). */
sdflow_status sdflow__pf_ode_logpdf(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                                    double *logp, double *se);
/* Interpolant processes (interp_density.c): the velocity ODE from
 * interp_time down to t = 0 and the base log-density there. */
sdflow_status sdflow__interp_logpdf(sdflow_density *e, size_t n, const double *x, double *logp, double *se);
sdflow_status sdflow__liyan_logpdf(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                                   double *logp, double *se);

#endif
