/* SPDX-License-Identifier: MIT */
/* Internal: the sampler handle shared by the generic layer (sampler.c) and
 * the algorithm files (sde.c, ode.c, sdflow.c). */
#ifndef SDFLOW_SAMPLER_INTERNAL_H
#define SDFLOW_SAMPLER_INTERNAL_H

#include "model_internal.h"

#define SDFLOW__NSTATS 10

struct sdflow_sampler {
    sdflow_ctx *ctx;
    sdflow_sampler_kind kind;
    const sdflow_process *proc;
    sdflow_model *model[4];         /* indexed by sdflow_role */
    /* options (NaN / 0 where the default depends on the process or data) */
    long steps;
    double t_min, t_start;          /* NaN: process default */
    long time_grid, denoise, solver;
    double snr;
    long corrector_steps, max_steps;
    double h_init, rtol, atol;
    uint64_t first_index, stream;
    double sigma_max, sigma_min, step_frac, noise;
    long inner_steps, self_exclude, eval_noisy, block_q, block_y, start;
    double sigma_min_nn;
    /* statistics of the last run */
    double stats[SDFLOW__NSTATS];
};

/* Algorithm entry points; arguments are validated by sampler.c, x_out holds
 * a copy of the start state (or NULL start was replaced by prior draws),
 * and the stats are zeroed. */
sdflow_status sdflow__sde_run(sdflow_sampler *s, size_t n, double *x);      /* REVERSE_SDE and PC */
sdflow_status sdflow__ode_run(sdflow_sampler *s, size_t n, double t_from, double t_to, double *x); /* PF_ODE */
sdflow_status sdflow__sdflow_run(sdflow_sampler *s, size_t n, int draw_start, double *x); /* SDFLOW; draws the
                                                                  start when x_init was NULL */

/* Resolved t_min / t_start of the bound process. */
double sdflow__sampler_t_min(const sdflow_sampler *s);
double sdflow__sampler_t_start(const sdflow_sampler *s);

/* Fills grid[0..steps] with the times of the SDFLOW_OPT_TIME_GRID kind from
 * t_from to t_to (either direction): grid[0] = t_from, grid[steps] = t_to
 * exactly. Quadratic and log-SNR grids are dense at the smaller time. */
void sdflow__sampler_grid(const sdflow_sampler *s, long steps, double t_from, double t_to, double *grid);

#endif
