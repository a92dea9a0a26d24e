/* SPDX-License-Identifier: MIT */
/* Internal: the diffusion Schrodinger bridge shared by its chain
 * primitives (dsb_chain.c), the sampling run (dsb.c) and IPF (dsb_fit.c).
 *
 * Indexing: transition k (k = 0..N-1) joins steps k and k + 1 and has step
 * gam[k] = gamma_{k+1}. The forward mean of transition k is F_k(x_k), the
 * backward mean B_{k+1}(x_{k+1}); both are stored at index k.
 *
 * Means come from, in this order: a network bound to the role
 * (SDFLOW_ROLE_FORWARD / _BACKWARD; output = mean or residual mean - x by
 * SDFLOW_OPT_DSB_MEAN_MATCH), the exact per-step affine maps fitted by
 * sdflow_sampler_fit(), or for the forward side before any forward
 * half-bridge, the reference F^0_k(x) = x + gamma_{k+1} f(x). */
#ifndef SDFLOW_DSB_INTERNAL_H
#define SDFLOW_DSB_INTERNAL_H

#include "sampler_internal.h"

/* Noise of the backward chain: the reverse-SDE predictor's tag, with the
 * same step numbering (step j of the run goes from X_{N-j} to X_{N-j-1}),
 * so a DSB whose backward mean is an Euler-Maruyama step of a reverse SDE
 * reproduces that sampler on the same stream. */
#define TAG_BACKWARD 0x70726564ull /* "pred" */
#define TAG_FORWARD 0x66777264ull  /* "fwrd": noise of the forward chain */
#define TAG_INIT 0x696e6974ull     /* "init": start draws of a run (as sampler.c's prior draws) */
#define TAG_FIT 0x69706600ull      /* "ipf" + half-bridge number: chain noise of a fit */
#define TAG_FIT_START 0x69707300ull/* "ips" + half-bridge number: chain starts of a fit */

#define TAG_SGD 0x69706700ull      /* "ipg" + half-bridge number: minibatch draws of a network fit */

/* The DSB sampler's own options and state (s->priv; slot table in dsb.c).
 * Defaults: the reference code's 2-D ones (algorithms.md §14.1). */
typedef struct sdflow__dsb_opts {
    long schedule, reference, mean_match, time_input, direction, npar, batch;
    long train_steps, cache_refresh, lr_cosine;
    double gamma_min, gamma_max, prior_mean, prior_var, lr;
    struct sdflow__dsb *fit; /* fitted means, NULL until the first half-bridge (owned: sdflow__dsb_free) */
} sdflow__dsb_opts;
static inline sdflow__dsb_opts *sdflow__dsb_of(const sdflow_sampler *s) { return s->priv; }
/* The descriptor's free_priv: releases the fitted state. */
void sdflow__dsb_free(sdflow_sampler *s);

/* The fitted state of a DSB sampler (sdflow__dsb_of(s)->fit). */
struct sdflow__dsb {
    size_t d;
    long N;
    long halves;    /* half-bridges fitted: backward means exist from 1, forward from 2 */
    int nets;       /* the half-bridges trained the bound networks (no affine maps: fa == NULL) */
    double *fa, *fb; /* forward affine means F_k(x) = fa_k x + fb_k: N x d x d and N x d */
    double *ba, *bb; /* backward affine means B_{k+1}(x) = ba_k x + bb_k */
};

/* What one run or fit resolved: sizes, steps, time labels, a time buffer. */
typedef struct sdflow__dsb_work {
    sdflow_sampler *s;
    sdflow_ctx *ctx;
    size_t d;
    long N;
    double *gam;  /* N steps gamma_{k+1} */
    double *tlab; /* N time labels of the networks (SDFLOW_OPT_DSB_TIME_INPUT) */
    double *tv;   /* rows x 1 time buffer */
    int nt;
} sdflow__dsb_work;

/* The fitted state for a fit of networks (nets = 1) or affine maps; a
 * sampler keeps one kind (SDFLOW_E_STATE when asked to switch). */
sdflow_status sdflow__dsb_ensure_state(sdflow__dsb_work *w, int nets);
/* One half-bridge of network mean matching (dsb_net.c): the trajectory
 * cache, steps of the trainer's DSB_MEAN loss, restore of the weights on
 * failure or cancellation. */
sdflow_status sdflow__dsb_net_half(sdflow__dsb_work *w, int backward, long *done, long total);

/* Resolves the dimension, steps and time labels for rows-row batches. */
sdflow_status sdflow__dsb_work_init(sdflow_sampler *s, size_t rows, sdflow__dsb_work *w);
void sdflow__dsb_work_free(sdflow__dsb_work *w);
/* n rows of the end of role DATA or PRIOR keyed by (stream, first + i). */
sdflow_status sdflow__dsb_draw_end(sdflow__dsb_work *w, sdflow_role role, uint64_t stream, uint64_t first, size_t n,
                                   double *out);
/* F_k(x) and B_{k+1}(x) at n rows (out may not alias x). */
sdflow_status sdflow__dsb_forward_mean(sdflow__dsb_work *w, long k, size_t n, const double *x, double *out);
sdflow_status sdflow__dsb_backward_mean(sdflow__dsb_work *w, long k, size_t n, const double *x, double *out);
/* x = mean + sqrt(2 g) z, z keyed (seed, stream, first + i). */
void sdflow__dsb_add_noise(const sdflow__dsb_work *w, uint64_t stream, uint64_t first, size_t n, double g,
                           const double *mean, double *x);
/* SDFLOW_E_NUMERIC naming the chain and step when a row of x is not finite. */
sdflow_status sdflow__dsb_check_state(sdflow__dsb_work *w, const double *x, size_t n, long k, const char *what);

#endif
