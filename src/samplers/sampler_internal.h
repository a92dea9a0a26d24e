/* SPDX-License-Identifier: MIT */
/* Internal: the sampler handle shared by the generic layer (sampler.c) and
 * the algorithm files (sde.c, ode.c, sdflow.c). */
#ifndef SDFLOW_SAMPLER_INTERNAL_H
#define SDFLOW_SAMPLER_INTERNAL_H

#include "model_internal.h"

#define SDFLOW__NSTATS 6

struct sdflow_sampler {
    sdflow_ctx *ctx;
    sdflow_sampler_kind kind;
    const sdflow_process *proc;
    sdflow_model *model[3];         /* indexed by sdflow_role */
    /* options (NaN / 0 where the default depends on the process or data) */
    long steps;
    double t_min, t_start;          /* NaN: process default */
    long time_grid, denoise, solver;
    double snr;
    long corrector_steps, max_steps;
    double h_init, rtol, atol;
    uint64_t first_index, stream;
    double sigma_max, sigma_min, step_frac, noise;
    long inner_steps, self_exclude, eval_noisy, block_q, block_y;
    double eta, s_churn, s_tmin, s_tmax, s_noise, rho; /* few-step samplers, Karras grid */
    double *custom;                 /* SDFLOW_GRID_CUSTOM times, decreasing (owned) */
    size_t ncustom;
    /* statistics of the last run */
    double stats[SDFLOW__NSTATS];
};

/* Algorithm entry points; arguments are validated by sampler.c, x_out holds
 * a copy of the start state (or NULL start was replaced by prior draws),
 * and the stats are zeroed. */
sdflow_status sdflow__sde_run(sdflow_sampler *s, size_t n, double *x);      /* REVERSE_SDE and PC */
sdflow_status sdflow__ode_run(sdflow_sampler *s, size_t n, double t_from, double t_to, double *x); /* PF_ODE */
sdflow_status sdflow__sdflow_run(sdflow_sampler *s, size_t n, double *x);   /* SDFLOW */
sdflow_status sdflow__ddim_run(sdflow_sampler *s, size_t n, double *x);     /* DDIM */
sdflow_status sdflow__dpmpp_run(sdflow_sampler *s, size_t n, double *x);    /* DPMPP_2M, _3M, _2M_SDE, _3M_SDE */
sdflow_status sdflow__edm_run(sdflow_sampler *s, size_t n, double *x);      /* EDM_HEUN */

/* Model output of the given kind at (x, t) for n rows (tv: n-time scratch);
 * a NaN/Inf in x or in the output is SDFLOW_E_NUMERIC naming the sampler
 * kind, step, time and sample. Counts n evaluations (fewstep.c). */
sdflow_status sdflow__sampler_eval(sdflow_sampler *s, size_t n, const double *x, double *tv, double t, long step,
                                   sdflow_output kind, double *out);

/* Resolved t_min / t_start of the bound process. */
double sdflow__sampler_t_min(const sdflow_sampler *s);
double sdflow__sampler_t_start(const sdflow_sampler *s);

/* Fills grid[0..steps] with the times of the SDFLOW_OPT_TIME_GRID kind from
 * t_from to t_to (either direction): grid[0] = t_from, grid[steps] = t_to
 * exactly. Quadratic, log-SNR and Karras grids are dense at the smaller
 * time; a custom grid is copied (its ends are t_start and t_min). */
void sdflow__sampler_grid(const sdflow_sampler *s, long steps, double t_from, double t_to, double *grid);

#endif
