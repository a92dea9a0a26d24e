/* SPDX-License-Identifier: MIT */
/* One half-bridge of network mean matching for the diffusion Schrodinger
 * bridge (algorithms.md §9, the reference code's ipf_step): a trajectory
 * cache of (k, X, target) for SDFLOW_OPT_DSB_NPAR chains simulated with
 * the other side's means, refilled every SDFLOW_OPT_DSB_CACHE_REFRESH
 * steps, and SDFLOW_OPT_DSB_TRAIN_STEPS steps of the trainer's
 * SDFLOW_LOSS_DSB_MEAN regression (Adam, PyTorch's update, betas 0.9 /
 * 0.999, eps 1e-8, state reset per half-bridge, no EMA) on minibatches of
 * SDFLOW_OPT_DSB_BATCH cache entries drawn uniformly over chains and steps
 * by the trainer's batch callback (rate SDFLOW_OPT_DSB_LR, constant or the
 * trainer's cosine schedule to 0 over the half-bridge with
 * SDFLOW_OPT_DSB_LR_COSINE), loss mean |mean_hat(X, t_k) - target|^2 over
 * entries and coordinates (SDFLOW_TRAIN_REDUCE_MEAN, F.mse_loss). The
 * weights continue from the previous half-bridge (the reference's
 * use_prev_net); on failure or cancellation they are restored.
 *
 * Memory: the cache holds 2 N npar d doubles (X and the mean target per
 * chain and step; k is the position, its time label is written into the
 * trainer's rows), everything else O(batch d + parameters). */
#include <math.h>
#include <string.h>
#include "dsb_internal.h"
#include "sdflow/trainer.h"

typedef struct net_buf {
    sdflow_model *m;
    size_t P, npar, nb, B;
    long h;                                  /* half-bridge number */
    double *theta0;                          /* P: the weights the half-bridge started from */
    double *cx, *cy;                         /* cache: N x npar x d each, [k][chain][j] */
    double *x, *x1, *m0, *m1;                /* nb x d: chain simulation */
    sdflow__dsb_work *w;
} net_buf;

/* Simulates npar chains with the other side's means into the cache (fill
 * number f of half-bridge h: chains keyed by rows 0..npar-1 of streams
 * that include f). The target stored is the mean X_{k+1} + F_k(X_k) -
 * F_k(X_{k+1}) (forward: X_k + B_{k+1}(X_{k+1}) - B_{k+1}(X_k)); the
 * trainer's DSB_MEAN loss subtracts the state for a residual network. */
static sdflow_status fill_cache(sdflow__dsb_work *w, net_buf *b, int backward, long h, long f, long *done, long total)
{
    sdflow_sampler *s = w->s;
    size_t d = w->d, npar = b->npar;
    long N = w->N;
    sdflow_status st = SDFLOW_OK;
    for (size_t r0 = 0; r0 < npar && !st; r0 += b->nb) {
        size_t n = npar - r0 < b->nb ? npar - r0 : b->nb;
        st = sdflow__dsb_draw_end(w, backward ? SDFLOW_ROLE_DATA : SDFLOW_ROLE_PRIOR,
                                  sdflow__stream(s->stream, TAG_FIT_START + (uint64_t)h, (uint64_t)f), r0, n, b->x);
        for (long j = 0; j < N && !st; j++) {
            long k = backward ? j : N - 1 - j;
            st = backward ? sdflow__dsb_forward_mean(w, k, n, b->x, b->m0) : sdflow__dsb_backward_mean(w, k, n, b->x, b->m0);
            if (st || (st = sdflow__dsb_check_state(w, b->m0, n, k, "fit")))
                break;
            sdflow__dsb_add_noise(w, sdflow__stream(s->stream, TAG_FIT + (uint64_t)h, (uint64_t)(f * N + j)), r0, n,
                                  w->gam[k], b->m0, b->x1);
            st = backward ? sdflow__dsb_forward_mean(w, k, n, b->x1, b->m1)
                          : sdflow__dsb_backward_mean(w, k, n, b->x1, b->m1);
            if (st || (st = sdflow__dsb_check_state(w, b->m1, n, k, "fit")))
                break;
            double *cx = b->cx + ((size_t)k * npar + r0) * d, *cy = b->cy + ((size_t)k * npar + r0) * d;
            for (size_t i = 0; i < n * d; i++) {
                cx[i] = b->x1[i];
                cy[i] = b->x1[i] + (b->m0[i] - b->m1[i]);
            }
            double *t = b->x;
            b->x = b->x1;
            b->x1 = t;
        }
        if (!st)
            st = sdflow__progress(w->ctx, ++*done, total, "dsb fit");
    }
    return st;
}

/* The trainer's batch callback: rows (t_k, X, target) of 2d + 1 values,
 * row r of SGD step `step` drawn uniformly over chains and steps with
 * (seed, stream of the half-bridge and step, r). */
static int cache_rows(long step, uint64_t first_row, size_t rows, size_t cols, double *out, void *user)
{
    net_buf *b = user;
    sdflow__dsb_work *w = b->w;
    size_t d = w->d, npar = b->npar;
    if (cols != 2 * d + 1)
        return 1;
    uint64_t stream = sdflow__stream(w->s->stream, TAG_SGD + (uint64_t)b->h, (uint64_t)step);
    for (size_t i = 0; i < rows; i++) {
        double u[2];
        sdflow__rng_uniform_row(w->ctx->seed, stream, first_row + i, 0, 2, u);
        size_t c = (size_t)(u[0] * (double)npar), k = (size_t)(u[1] * (double)w->N);
        c = c < npar ? c : npar - 1;
        k = k < (size_t)w->N ? k : (size_t)w->N - 1;
        double *row = out + i * cols;
        row[0] = w->tlab[k];
        memcpy(row + 1, b->cx + (k * npar + c) * d, d * sizeof *row);
        memcpy(row + 1 + d, b->cy + (k * npar + c) * d, d * sizeof *row);
    }
    return 0;
}

/* A DSB_MEAN trainer for the network of this half-bridge (fresh optimizer state). */
static sdflow_status make_trainer(sdflow__dsb_work *w, net_buf *b, sdflow_trainer **out)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    sdflow_trainer *t = NULL;
    sdflow_status st = sdflow_trainer_create(w->ctx, SDFLOW_LOSS_DSB_MEAN, &t);
    if (!st)
        st = sdflow_trainer_set_model(t, b->m);
    if (!st)
        st = sdflow_trainer_set_batch_fn(t, 2 * w->d + 1, cache_rows, b);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, (long)b->B);
    if (!st)
        st = sdflow_trainer_set_double(t, SDFLOW_TRAIN_LR, o->lr);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_REDUCE_MEAN, 1);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_DSB_MEAN_MATCH, o->mean_match != 0);
    if (!st)
        st = sdflow_trainer_set_double(t, SDFLOW_TRAIN_EMA_DECAY, 0);
    if (!st && o->lr_cosine) /* step it of M at lr (1 + cos(pi it / M)) / 2 */
        if (!(st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_SCHEDULE, SDFLOW_LR_COSINE)))
            st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_TOTAL_STEPS, o->train_steps);
    if (st) {
        sdflow_trainer_free(t);
        t = NULL;
    }
    *out = t;
    return st;
}

sdflow_status sdflow__dsb_net_half(sdflow__dsb_work *w, int backward, long *done, long total)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    sdflow_ctx *ctx = w->ctx;
    size_t d = w->d, N = (size_t)w->N;
    net_buf b = { .m = s->model[backward ? SDFLOW_ROLE_BACKWARD : SDFLOW_ROLE_FORWARD], .npar = (size_t)o->npar,
                  .B = (size_t)o->batch, .h = o->fit->halves, .w = w };
    b.nb = b.B < b.npar ? b.B : b.npar;
    long M = o->train_steps, refresh = o->cache_refresh;
    sdflow_trainer *tr = NULL;
    sdflow_status st = sdflow_model_param_count(b.m, &b.P);
    if (st) { /* keep the model's reason (formatting ctx->err into itself would overlap) */
        char why[SDFLOW__ERRMAX];
        memcpy(why, ctx->err, sizeof why);
        why[sizeof why - 1] = 0;
        return sdflow__fail(ctx, st, "dsb fit: the %s network must be an MLP (trainable parameters): %s",
                            backward ? "backward" : "forward", why);
    }
    /* cache 2 N npar d, simulation 4 nb d, parameters P (the trainer holds its minibatch and Adam state) */
    size_t ncache = 2 * N * b.npar, nsim = 4 * b.nb;
    if (!sdflow__size_ok(ncache, d) || !sdflow__size_ok(ncache + nsim, d) ||
        !sdflow__size_ok((ncache + nsim) * d + b.P, 1))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: a cache of %zu chains x %zu steps x d=%zu does not fit",
                            b.npar, N, d);
    double *blk = sdflow__alloc_array(ctx, (ncache + nsim) * d + b.P, sizeof(double), "dsb trajectory cache");
    if (!blk)
        return SDFLOW_E_NOMEM;
    b.theta0 = blk;
    b.cx = b.theta0 + b.P;
    b.cy = b.cx + N * b.npar * d;
    b.x = b.cy + N * b.npar * d;
    b.x1 = b.x + b.nb * d;
    b.m0 = b.x1 + b.nb * d;
    b.m1 = b.m0 + b.nb * d;
    if ((st = sdflow_model_get_params(b.m, b.P, b.theta0)) || (st = make_trainer(w, &b, &tr)))
        goto done;
    double run = 0, wsum = 0; /* loss over the last tenth of the steps */
    for (long it = 0; it < M && !st; it++) {
        if (it == 0 || (refresh > 0 && it % refresh == 0))
            if ((st = fill_cache(w, &b, backward, b.h, refresh > 0 ? it / refresh : 0, done, total)))
                break;
        double loss = 0;
        if ((st = sdflow_trainer_step(tr)) || (st = sdflow_trainer_get_stat(tr, SDFLOW_TRAIN_STAT_LOSS, &loss)))
            break;
        if (it >= M - (M + 9) / 10) {
            run += loss;
            wsum += 1;
        }
        st = sdflow__progress(ctx, ++*done, total, "dsb fit");
    }
    if (st) { /* keep the weights of the last finished half-bridge */
        char why[SDFLOW__ERRMAX];
        memcpy(why, ctx->err, sizeof why);
        why[sizeof why - 1] = 0;
        if (sdflow_model_set_params(b.m, b.P, b.theta0) == SDFLOW_OK)
            sdflow__fail(ctx, st, "%s", why);
        goto done;
    }
    o->fit->halves++;
    s->stats[SDFLOW_STAT_HALF_BRIDGES] = (double)o->fit->halves;
    s->stats[SDFLOW_STAT_FIT_MSE] = run / wsum;
done:
    sdflow_trainer_free(tr);
    sdflow__free(ctx, blk);
    return st;
}
