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

/* The augmented state (x, l) of the ODE likelihoods (augmented.c): n rows
 * of d positions and L accumulators (L = probes for Hutchinson, else 1). */
typedef struct sdflow__aug {
    sdflow_density *e;
    size_t d, L, dim;  /* dim = d + L */
    double *y;         /* n x dim state: x, then l (starts at 0) */
    double *end_lp;    /* n log-densities at the far end (the caller fills them) */
    double *x_end;     /* n x d positions at the far end (sdflow__aug_ends) */
    double *xs;        /* n x d positions of the rows of one RHS call */
    double *field;     /* n x d model output of one call (velocity or score), zeroed */
    double *acc;       /* n x L divergences or probe quadratic forms of one call, zeroed */
    double *probes;    /* Hutchinson: n x L x d probes by original row, else NULL */
    double *pv;        /* Hutchinson: the probes gathered for the rows of one call */
} sdflow__aug;
/* Allocates, draws the probes, sets y = (x, 0). On failure the caller
 * still calls sdflow__aug_close. */
sdflow_status sdflow__aug_open(sdflow__aug *a, sdflow_density *e, size_t n, const double *x);
/* xs (and pv) for the n rows `rows` of one RHS call with state y. */
void sdflow__aug_gather(sdflow__aug *a, size_t n, const size_t *rows, const double *y);
/* x_end = the position part of the integrated state. */
void sdflow__aug_ends(sdflow__aug *a, size_t n);
/* logp = end_lp + mean of the accumulators, se their standard error (may be
 * NULL); SDFLOW_E_NUMERIC naming the first non-finite row. */
sdflow_status sdflow__aug_finish(sdflow__aug *a, size_t n, double *logp, double *se);
void sdflow__aug_close(sdflow__aug *a);

#endif
