/* SPDX-License-Identifier: MIT */
/* One half-bridge of network mean matching for the diffusion Schrodinger
 * bridge (algorithms.md §9, the reference code's ipf_step): a trajectory
 * cache of (k, X, target) for SDFLOW_OPT_DSB_NPAR chains simulated with
 * the other side's means, refilled every SDFLOW_OPT_DSB_CACHE_REFRESH
 * steps, and SDFLOW_OPT_DSB_TRAIN_STEPS Adam steps (PyTorch's update,
 * betas 0.9 / 0.999, eps 1e-8, state reset per half-bridge) on minibatches
 * of SDFLOW_OPT_DSB_BATCH cache entries drawn uniformly over chains and
 * steps (rate SDFLOW_OPT_DSB_LR, constant or cosine-decayed to 0 over the
 * half-bridge with SDFLOW_OPT_DSB_LR_COSINE), loss mean |net(X, t_k) - target|^2 over entries and coordinates
 * (F.mse_loss). The weights continue from the previous half-bridge (the
 * reference's use_prev_net); on failure or cancellation they are restored.
 *
 * Memory: the cache holds 2 N npar d doubles (X and target per chain and
 * step; k is the position), everything else O(batch d + parameters).
 *
 * This optimizer is local to the DSB until the trainer's DSB_MEAN loss
 * kind exists (docs/dsb.md). */
#include <math.h>
#include <string.h>
#include "dsb_internal.h"

typedef struct net_buf {
    sdflow_model *m;
    size_t P, npar, nb, B;
    double *theta0, *theta, *grad, *am, *av; /* P each */
    double *cx, *cy;                         /* cache: N x npar x d each, [k][chain][j] */
    double *x, *x1, *m0, *m1;                /* nb x d: chain simulation */
    double *bx, *by, *bf, *bt;               /* B x d (bt: B): a minibatch */
} net_buf;

/* Simulates npar chains with the other side's means into the cache (fill
 * number f of half-bridge h: chains keyed by rows 0..npar-1 of streams
 * that include f). */
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
            int mm = s->dsb_mean_match != 0;
            for (size_t i = 0; i < n * d; i++) { /* residual target F(X_k) - F(X_k+1); the mean adds X_k+1 */
                cx[i] = b->x1[i];
                cy[i] = b->m0[i] - b->m1[i] + (mm ? b->x1[i] : 0);
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

/* One Adam step on minibatch `it`; *loss gets its mean squared error. */
static sdflow_status sgd_step(sdflow__dsb_work *w, net_buf *b, long h, long it, double *loss)
{
    sdflow_sampler *s = w->s;
    sdflow_ctx *ctx = w->ctx;
    size_t d = w->d, B = b->B, npar = b->npar;
    uint64_t stream = sdflow__stream(s->stream, TAG_SGD + (uint64_t)h, (uint64_t)it);
    for (size_t r = 0; r < B; r++) {
        double u[2];
        sdflow__rng_uniform_row(ctx->seed, stream, r, 0, 2, u);
        size_t c = (size_t)(u[0] * (double)npar), k = (size_t)(u[1] * (double)w->N);
        c = c < npar ? c : npar - 1;
        k = k < (size_t)w->N ? k : (size_t)w->N - 1;
        memcpy(b->bx + r * d, b->cx + (k * npar + c) * d, d * sizeof *b->bx);
        memcpy(b->by + r * d, b->cy + (k * npar + c) * d, d * sizeof *b->by);
        b->bt[r] = w->tlab[k];
    }
    sdflow_status st = sdflow_model_eval(b->m, NULL, B, b->bx, b->bt, b->m->native, b->bf);
    if (st)
        return st;
    double acc = 0, scale = 2.0 / ((double)B * (double)d);
    for (size_t i = 0; i < B * d; i++) {
        double e = b->bf[i] - b->by[i];
        acc += e * e;
        b->bf[i] = scale * e; /* the weights of d loss / d output */
    }
    *loss = acc / ((double)B * (double)d);
    if ((st = sdflow_model_param_grad(b->m, NULL, B, b->bx, b->bt, b->bf, b->grad, NULL)))
        return st;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double lr = s->dsb_lr;
    if (s->dsb_lr_cosine) /* step it of M at lr (1 + cos(pi it / M)) / 2 */
        lr *= 0.5 * (1 + cos(SDFLOW__PI * (double)it / (double)s->dsb_train_steps));
    double c1 = 1 - pow(b1, (double)(it + 1)), c2 = 1 - pow(b2, (double)(it + 1));
    for (size_t i = 0; i < b->P; i++) {
        double g = b->grad[i];
        if (!isfinite(g))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "dsb fit: gradient entry %zu is not finite at SGD step %ld", i,
                                it);
        b->am[i] = b1 * b->am[i] + (1 - b1) * g;
        b->av[i] = b2 * b->av[i] + (1 - b2) * g * g;
        b->theta[i] -= lr * (b->am[i] / c1) / (sqrt(b->av[i] / c2) + eps);
    }
    return sdflow_model_set_params(b->m, b->P, b->theta);
}

sdflow_status sdflow__dsb_net_half(sdflow__dsb_work *w, int backward, long *done, long total)
{
    sdflow_sampler *s = w->s;
    sdflow_ctx *ctx = w->ctx;
    size_t d = w->d, N = (size_t)w->N;
    net_buf b = { .m = s->model[backward ? SDFLOW_ROLE_BACKWARD : SDFLOW_ROLE_FORWARD], .npar = (size_t)s->dsb_npar,
                  .B = (size_t)s->dsb_batch };
    b.nb = b.B < b.npar ? b.B : b.npar;
    long h = s->dsb->halves, M = s->dsb_train_steps, refresh = s->dsb_cache_refresh;
    sdflow_status st = sdflow_model_param_count(b.m, &b.P);
    if (st) { /* keep the model's reason (formatting ctx->err into itself would overlap) */
        char why[SDFLOW__ERRMAX];
        memcpy(why, ctx->err, sizeof why);
        why[sizeof why - 1] = 0;
        return sdflow__fail(ctx, st, "dsb fit: the %s network must be an MLP (trainable parameters): %s",
                            backward ? "backward" : "forward", why);
    }
    /* cache 2 N npar d, simulation 4 nb d, minibatch 3 B d + B, parameters 5 P */
    size_t ncache = 2 * N * b.npar, nsim = 4 * b.nb + 3 * b.B + 1;
    if (!sdflow__size_ok(ncache, d) || !sdflow__size_ok(ncache + nsim, d) ||
        !sdflow__size_ok((ncache + nsim) * d + b.B + 5 * b.P, 1))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: a cache of %zu chains x %zu steps x d=%zu does not fit",
                            b.npar, N, d);
    double *blk = sdflow__alloc_array(ctx, (ncache + nsim) * d + b.B + 5 * b.P, sizeof(double), "dsb trajectory cache");
    if (!blk)
        return SDFLOW_E_NOMEM;
    b.theta0 = blk;
    b.theta = b.theta0 + b.P;
    b.grad = b.theta + b.P;
    b.am = b.grad + b.P;
    b.av = b.am + b.P;
    b.cx = b.av + b.P;
    b.cy = b.cx + N * b.npar * d;
    b.x = b.cy + N * b.npar * d;
    b.x1 = b.x + b.nb * d;
    b.m0 = b.x1 + b.nb * d;
    b.m1 = b.m0 + b.nb * d;
    b.bx = b.m1 + b.nb * d;
    b.by = b.bx + b.B * d;
    b.bf = b.by + b.B * d;
    b.bt = b.bf + b.B * d;
    memset(b.am, 0, 2 * b.P * sizeof *b.am);
    if ((st = sdflow_model_get_params(b.m, b.P, b.theta0)))
        goto done;
    memcpy(b.theta, b.theta0, b.P * sizeof *b.theta);
    double run = 0, wsum = 0; /* loss over the last tenth of the steps */
    for (long it = 0; it < M && !st; it++) {
        if (it == 0 || (refresh > 0 && it % refresh == 0))
            if ((st = fill_cache(w, &b, backward, h, refresh > 0 ? it / refresh : 0, done, total)))
                break;
        double loss = 0;
        if ((st = sgd_step(w, &b, h, it, &loss)))
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
    s->dsb->halves++;
    s->stats[SDFLOW_STAT_HALF_BRIDGES] = (double)s->dsb->halves;
    s->stats[SDFLOW_STAT_FIT_MSE] = run / wsum;
done:
    sdflow__free(ctx, blk);
    return st;
}
