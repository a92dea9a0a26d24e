/* SPDX-License-Identifier: MIT */
/* Internal: the shared frame of the few-step samplers (ddim.c, dpmpp.c,
 * edm.c): the time grid, the data prediction D(x, t) (the model's X0
 * output, so every model output kind works through the process
 * conversions), noise rows keyed by (seed, stream, sample, step), and the
 * work buffers. All rows of a step share one time, so a row's result never
 * depends on its batch mates: split and thread invariance. */
#ifndef SDFLOW_FEWSTEP_INTERNAL_H
#define SDFLOW_FEWSTEP_INTERNAL_H

#include "sampler_internal.h"

/* The few-step kinds' own options (s->priv; fewstep.c's slot table
 * sdflow__fs_store): ddim, the dpmpp_*_sde and edm_heun have the block,
 * dpmpp_2m / dpmpp_3m none (deterministic: eta = 0, no noise). */
typedef struct sdflow__fs_opts {
    double eta;                     /* ddim, dpmpp_*_sde */
    double s_churn, s_tmin, s_tmax; /* edm_heun */
    double s_noise;                 /* all of them */
} sdflow__fs_opts;
extern const sdflow__opt_store sdflow__fs_store;
/* The block of s (NULL for dpmpp_2m / dpmpp_3m). */
static inline const sdflow__fs_opts *sdflow__fs_opts_of(const sdflow_sampler *s) { return s->priv; }

typedef struct sdflow__fs {
    sdflow_sampler *s;
    const char *what; /* the kind's name (plan) */
    size_t n, d;
    int nt;         /* threads for n rows */
    long N;         /* steps */
    const double *grid; /* the plan's N + 1 times, grid[0] = t_start > ... > grid[N] = t_min */
    double *tv;     /* n times of one model evaluation */
    double *z;      /* one noise row per thread, nt x d */
    double *buf;    /* nbuf work arrays of n x d */
} sdflow__fs;

/* Allocates the frame with nbuf n x d work arrays on the plan's grid. */
sdflow_status sdflow__fs_open(sdflow__fs *w, sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, int nbuf);
void sdflow__fs_close(sdflow__fs *w);
/* st, or SDFLOW_E_NUMERIC naming the sample when st is OK but the final
 * state x holds a NaN/Inf. */
sdflow_status sdflow__fs_finish(sdflow__fs *w, const double *x, sdflow_status st);
/* Work array b (0 <= b < nbuf). */
double *sdflow__fs_buf(const sdflow__fs *w, int b);
/* D = x0 prediction of the model at (x, t) for all rows; a NaN/Inf in x or
 * in the output is SDFLOW_E_NUMERIC naming the sampler, step, time and
 * sample. Counts n evaluations in SDFLOW_STAT_NFE. */
sdflow_status sdflow__fs_denoised(sdflow__fs *w, const double *x, double t, long step, double *D);
/* Step k's start: coefficients at grid[k] (ct) and grid[k + 1] (cu) and
 * D at (x, grid[k]). */
sdflow_status sdflow__fs_step_begin(sdflow__fs *w, const double *x, long k, double *D, sdflow__coef *ct,
                                    sdflow__coef *cu);
/* Standard normal row of sample i (batch row) for the step and tag, into
 * the calling thread's noise row, which is returned. */
double *sdflow__fs_noise(const sdflow__fs *w, uint64_t tag, long step, size_t i);
/* Ends a step: counts it for every row and reports progress. */
sdflow_status sdflow__fs_step_done(sdflow__fs *w, long step);

#endif
