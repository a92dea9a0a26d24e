/* SPDX-License-Identifier: MIT */
/* Internal: the sampler handle shared by the generic layer (sampler.c) and
 * the algorithm files (sde.c, pf_ode.c, sdflow.c). */
#ifndef SDFLOW_SAMPLER_INTERNAL_H
#define SDFLOW_SAMPLER_INTERNAL_H

#include "model_internal.h"

#define SDFLOW__NSTATS 13
#define SDFLOW__NROLES 11

struct sdflow__dsb; /* DSB fitted state (dsb.c) */

struct sdflow_sampler {
    sdflow_ctx *ctx;
    sdflow_sampler_kind kind;
    const sdflow_process *proc;
    sdflow_model *model[SDFLOW__NROLES]; /* indexed by sdflow_role */
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
    double eta, s_churn, s_tmin, s_tmax, s_noise, rho; /* few-step samplers, Karras grid */
    /* DSB (dsb.c) */
    long dsb_schedule, dsb_reference, dsb_mean_match, dsb_time_input, dsb_direction, dsb_npar, dsb_batch;
    long dsb_train_steps, dsb_cache_refresh, dsb_lr_cosine;
    double dsb_gamma_min, dsb_gamma_max, dsb_prior_mean, dsb_prior_var, dsb_lr;
    struct sdflow__dsb *dsb;        /* fitted means, NULL until the first half-bridge (owned) */
    double interp_t0, interp_t1, interp_diffusion;  /* interpolant: run times, SDE diffusion */
    long interp_kinetic;
    double *custom;                 /* SDFLOW_GRID_CUSTOM times, decreasing (owned) */
    size_t ncustom;
    /* statistics of the last run */
    double stats[SDFLOW__NSTATS];
};

/* What the dispatcher (sampler.c) resolved for one run or transport: the
 * algorithms take everything from here and never call back into it. */
typedef struct sdflow__sampler_plan {
    const char *what;     /* names the kind in progress reports and messages */
    double t_from, t_to;  /* run: t_start -> t_min; transport: the caller's ends */
    const double *grid;   /* steps + 1 times t_from..t_to (SDFLOW_OPT_TIME_GRID) or NULL (DOPRI5, sdflow) */
} sdflow__sampler_plan;

/* Algorithm entry points; arguments are validated by sampler.c, x_out holds
 * a copy of the start state (or NULL start was replaced by prior draws),
 * and the stats are zeroed. */
sdflow_status sdflow__sde_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x); /* REVERSE_SDE, PC */
sdflow_status sdflow__ode_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x); /* PF_ODE */
/* SDFLOW; draw_start: x_init was NULL and the start is drawn here (SDFLOW_OPT_START) */
sdflow_status sdflow__sdflow_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, int draw_start,
                                 double *x);
sdflow_status sdflow__ddim_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);   /* DDIM */
sdflow_status sdflow__dpmpp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);  /* DPMPP_* */
sdflow_status sdflow__edm_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);    /* EDM_HEUN */
/* INTERPOLANT: ODE (or SDE with interp_diffusion > 0) from plan->t_from to plan->t_to (interpolant.c) */
sdflow_status sdflow__interp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);

/* DSB: the whole run (validates its own arguments: the ends and the
 * means it needs differ from the diffusion samplers'), and the release of
 * its fitted state. */
sdflow_status sdflow__dsb_run(sdflow_sampler *s, size_t n, const double *x_init, double *x_out);
void sdflow__dsb_free(sdflow_sampler *s);

#endif
