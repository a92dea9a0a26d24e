/* SPDX-License-Identifier: MIT */
/* Diffusion Schrodinger bridge fitting: iterative proportional fitting,
 * alternating backward and forward half-bridges of mean matching
 * (algorithms.md §9), with exact per-step affine regressions. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "dsb_internal.h"

typedef struct fit_buf {
    size_t nb;              /* batch rows */
    double *x, *x1, *m0, *m1, *xa, *y; /* nb x d each; xa: nb x (d + 1) */
    double *G, *R, *syy;    /* per transition: (d+1)^2 normal matrix, (d+1) x d moments, sum |y|^2 */
    double *na, *nbv;       /* the new maps: N x d x d, N x d */
    double *th;             /* d + 1: one column of the solution */
} fit_buf;

/* Solves G theta = R ((d+1) x (d+1) SPD, (d+1) x d) by Cholesky into the
 * map a (d x d), b (d); mse gets the mean squared residual per coordinate. */
static sdflow_status solve_step(sdflow__dsb_work *w, fit_buf *f, long k, double count, double *mse)
{
    size_t d = w->d, p = d + 1;
    double *G = f->G + (size_t)k * p * p, *R = f->R + (size_t)k * p * d;
    size_t bad = sdflow__cholesky(p, G);
    if (bad)
        return sdflow__fail(w->ctx, SDFLOW_E_NUMERIC,
                            "dsb fit: the least-squares matrix of transition %ld is singular at pivot %zu (too few "
                            "chains, SDFLOW_OPT_DSB_NPAR, or degenerate states)",
                            k, bad - 1);
    double fit = 0;
    for (size_t c = 0; c < d; c++) { /* column c of theta: L L^T th = R[:, c] */
        double *th = f->th;
        for (size_t i = 0; i < p; i++) {
            double acc = R[i * d + c];
            for (size_t j = 0; j < i; j++)
                acc -= G[i * p + j] * th[j];
            th[i] = acc / G[i * p + i];
        }
        for (size_t i = p; i-- > 0;) {
            double acc = th[i];
            for (size_t j = i + 1; j < p; j++)
                acc -= G[j * p + i] * th[j];
            th[i] = acc / G[i * p + i];
        }
        for (size_t j = 0; j < d; j++)
            f->na[(size_t)k * d * d + c * d + j] = th[j];
        f->nbv[(size_t)k * d + c] = th[d];
        for (size_t i = 0; i < p; i++) /* at the optimum sum |y - theta^T x|^2 = syy - tr(theta^T R) */
            fit += th[i] * R[i * d + c];
    }
    *mse = fmax(f->syy[k] - fit, 0) / (count * (double)d);
    return SDFLOW_OK;
}

/* Adds the batch's regressors [x, 1] and targets y to transition k's normal equations. */
static void accumulate(sdflow__dsb_work *w, fit_buf *f, long k, size_t n, const double *x, const double *y)
{
    size_t d = w->d, p = d + 1;
    double syy = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(f->xa + i * p, x + i * d, d * sizeof *x);
        f->xa[i * p + d] = 1;
        for (size_t j = 0; j < d; j++)
            syy += y[i * d + j] * y[i * d + j];
    }
    f->syy[k] += syy;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)p, (int)n, 1.0, f->xa, (int)p, f->xa, (int)p,
                1.0, f->G + (size_t)k * p * p, (int)p);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p, (int)d, (int)n, 1.0, f->xa, (int)p, y, (int)d, 1.0,
                f->R + (size_t)k * p * d, (int)d);
}

/* One half-bridge: backward (fits B from forward chains started at the
 * data) or forward (fits F from backward chains started at the prior end).
 * Targets (algorithms.md §9), at the chain's new state x1:
 *   backward: B_{k+1}(x_{k+1}) ~ x_{k+1} + F_k(x_k) - F_k(x_{k+1})
 *   forward:  F_k(x_k)         ~ x_k + B_{k+1}(x_{k+1}) - B_{k+1}(x_k) */
static sdflow_status half_bridge(sdflow__dsb_work *w, fit_buf *f, int backward, long *done, long total)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    size_t d = w->d, p = d + 1, npar = (size_t)o->npar;
    long N = w->N, h = o->fit->halves;
    memset(f->G, 0, (size_t)N * p * p * sizeof *f->G);
    memset(f->R, 0, (size_t)N * p * d * sizeof *f->R);
    memset(f->syy, 0, (size_t)N * sizeof *f->syy);
    sdflow_status st = SDFLOW_OK;
    for (size_t r0 = 0; r0 < npar && !st; r0 += f->nb) {
        size_t n = npar - r0 < f->nb ? npar - r0 : f->nb;
        st = sdflow__dsb_draw_end(w, backward ? SDFLOW_ROLE_DATA : SDFLOW_ROLE_PRIOR,
                      sdflow__stream(s->stream, TAG_FIT_START + (uint64_t)h, 0), r0, n, f->x);
        for (long j = 0; j < N && !st; j++) {
            long k = backward ? j : N - 1 - j;
            st = backward ? sdflow__dsb_forward_mean(w, k, n, f->x, f->m0) : sdflow__dsb_backward_mean(w, k, n, f->x, f->m0);
            if (st || (st = sdflow__dsb_check_state(w, f->m0, n, k, "fit")))
                break;
            sdflow__dsb_add_noise(w, sdflow__stream(s->stream, TAG_FIT + (uint64_t)h, (uint64_t)j), r0, n, w->gam[k], f->m0,
                      f->x1);
            st = backward ? sdflow__dsb_forward_mean(w, k, n, f->x1, f->m1) : sdflow__dsb_backward_mean(w, k, n, f->x1, f->m1);
            if (st || (st = sdflow__dsb_check_state(w, f->m1, n, k, "fit")))
                break;
            for (size_t i = 0; i < n * d; i++)
                f->y[i] = f->x1[i] + f->m0[i] - f->m1[i];
            accumulate(w, f, k, n, f->x1, f->y);
            double *t = f->x;
            f->x = f->x1;
            f->x1 = t;
        }
        if (!st)
            st = sdflow__progress(w->ctx, ++*done, total, "dsb fit");
    }
    double mse = 0;
    for (long k = 0; k < N && !st; k++) {
        double m = 0;
        st = solve_step(w, f, k, (double)npar, &m);
        mse += m / (double)N;
    }
    if (!st && ((st = sdflow__check_result(w->ctx, f->na, (size_t)N * d, d, "dsb fitted mean maps")) ||
                (st = sdflow__check_result(w->ctx, f->nbv, (size_t)N, d, "dsb fitted mean offsets"))))
        return st;
    if (st)
        return st;
    /* commit: the half-bridge is complete */
    memcpy(backward ? o->fit->ba : o->fit->fa, f->na, (size_t)N * d * d * sizeof *f->na);
    memcpy(backward ? o->fit->bb : o->fit->fb, f->nbv, (size_t)N * d * sizeof *f->nbv);
    o->fit->halves++;
    s->stats[SDFLOW_STAT_HALF_BRIDGES] = (double)o->fit->halves;
    s->stats[SDFLOW_STAT_FIT_MSE] = mse;
    return SDFLOW_OK;
}

sdflow_status sdflow_sampler_fit(sdflow_sampler *s, long iterations)
{
    if (!s)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = s->ctx;
    if (s->ops != &sdflow__dsb_kind)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "sdflow_sampler_fit needs a dsb sampler, not kind %d",
                            (int)s->kind);
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    if (iterations < 1 || iterations > 1000000)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: iterations=%ld must be in 1..1e6", iterations);
    int nets = s->model[SDFLOW_ROLE_FORWARD] || s->model[SDFLOW_ROLE_BACKWARD];
    if (nets && !(s->model[SDFLOW_ROLE_FORWARD] && s->model[SDFLOW_ROLE_BACKWARD]))
        return sdflow__fail(ctx, SDFLOW_E_STATE,
                            "dsb fit: bind both SDFLOW_ROLE_FORWARD and SDFLOW_ROLE_BACKWARD networks, or neither "
                            "(exact affine means)");
    size_t nb = (size_t)(o->batch < o->npar ? o->batch : o->npar);
    sdflow__dsb_work w;
    fit_buf f = { .nb = nb };
    double *blk = NULL;
    sdflow_status st = sdflow__dsb_work_init(s, nb, &w);
    if (st)
        goto done;
    size_t d = w.d, p = d + 1, N = (size_t)w.N;
    if (!s->model[SDFLOW_ROLE_DATA]) {
        st = sdflow__fail(ctx, SDFLOW_E_STATE, "dsb fit: no SDFLOW_ROLE_DATA model bound (the k = 0 end)");
        goto done;
    }
    if (nets) {
        if ((st = sdflow__dsb_ensure_state(&w, 1)))
            goto done;
        long cache_fills = o->cache_refresh > 0 ? (o->train_steps - 1) / o->cache_refresh + 1 : 1;
        long per = o->train_steps + cache_fills * (long)((o->npar + (long)nb - 1) / (long)nb);
        long done_n = 0, total = 2 * iterations * per;
        for (long it = 0; it < iterations && !st; it++) {
            st = sdflow__dsb_net_half(&w, 1, &done_n, total);
            if (!st)
                st = sdflow__dsb_net_half(&w, 0, &done_n, total);
        }
        goto done;
    }
    if (d > 65536) { /* the GEMMs take int sizes; the maps are N d^2 doubles anyway */
        st = sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: exact affine means need d <= 65536, got d=%zu", d);
        goto done;
    }
    if ((size_t)o->npar < p + 1) {
        st = sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: npar=%ld chains cannot fit d+1=%zu affine coefficients",
                          o->npar, p);
        goto done;
    }
    if ((st = sdflow__dsb_ensure_state(&w, 0)))
        goto done;
    /* batch buffers 5 nb d + nb (d+1); normal equations N ((d+1)^2 + (d+1) d + 1); new maps N (d^2 + d) */
    size_t nbatch = 6 * nb * p + p, nnorm = N * (p * p + p * d + 1), nmaps = N * d * p;
    if (!sdflow__size_ok(nbatch + nnorm, 1) || !sdflow__size_ok(nbatch + nnorm + nmaps, 1)) {
        st = sdflow__fail(ctx, SDFLOW_E_INVALID, "dsb fit: buffers for d=%zu, batch=%zu do not fit in memory", d, nb);
        goto done;
    }
    if (!(blk = sdflow__alloc_array(ctx, nbatch + nnorm + nmaps, sizeof(double), "dsb fit buffers"))) {
        st = SDFLOW_E_NOMEM;
        goto done;
    }
    f.x = blk;
    f.x1 = f.x + nb * d;
    f.m0 = f.x1 + nb * d;
    f.m1 = f.m0 + nb * d;
    f.y = f.m1 + nb * d;
    f.xa = f.y + nb * d;
    f.G = f.xa + nb * p;
    f.R = f.G + N * p * p;
    f.syy = f.R + N * p * d;
    f.na = f.syy + N;
    f.nbv = f.na + N * d * d;
    f.th = f.nbv + N * d;
    long per_half = (long)((o->npar + (long)nb - 1) / (long)nb), done_n = 0, total = 2 * iterations * per_half;
    for (long it = 0; it < iterations && !st; it++) {
        st = half_bridge(&w, &f, 1, &done_n, total);
        if (!st)
            st = half_bridge(&w, &f, 0, &done_n, total);
    }
done:
    sdflow__free(ctx, blk);
    sdflow__dsb_work_free(&w);
    return st;
}

