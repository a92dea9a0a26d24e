/* SPDX-License-Identifier: MIT */
/* Diffusion Schrodinger bridge chain primitives (algorithms.md §9): the
 * reference chain X_{k+1} = X_k + gamma_{k+1} f(X_k) + sqrt(2 gamma_{k+1}) Z,
 * the step schedule, the ends, and the forward and backward transition
 * means (dsb_internal.h says where they come from). */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include <omp.h>
#include "dsb_internal.h"
#include "kernel_internal.h"
#include "ode_internal.h"

void sdflow__dsb_free(sdflow_sampler *s)
{
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    if (!o->fit)
        return;
    sdflow__free(s->ctx, o->fit->fa); /* one block: fa, fb, ba, bb (NULL for networks) */
    sdflow__free(s->ctx, o->fit);
    o->fit = NULL;
}

/* The step sizes of the reference code's get_gammas (ipf.py): a constant
 * step, or a ramp over N/2 steps and its mirror image. */
static sdflow_status make_gammas(sdflow__dsb_work *w)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    long N = w->N, h = N / 2;
    double lo = o->gamma_min, hi = o->gamma_max;
    if (o->schedule == SDFLOW_DSB_CONSTANT) {
        for (long k = 0; k < N; k++)
            w->gam[k] = hi;
    } else {
        if (N % 2)
            return sdflow__fail(w->ctx, SDFLOW_E_INVALID,
                                "dsb: a symmetric gamma schedule needs an even number of steps, got %ld", N);
        for (long j = 0; j < h; j++) {
            double u = h > 1 ? (double)j / (double)(h - 1) : 0;
            double g = o->schedule == SDFLOW_DSB_SYMMETRIC_LINEAR ? lo + (hi - lo) * u : lo * pow(hi / lo, u);
            w->gam[j] = w->gam[N - 1 - j] = g;
        }
    }
    double t = 0;
    for (long k = 0; k < N; k++) {
        t += w->gam[k];
        w->tlab[k] = o->time_input == SDFLOW_DSB_TIME_INDEX ? (double)(k + 1) : t;
    }
    if (!isfinite(t))
        return sdflow__fail(w->ctx, SDFLOW_E_INVALID, "dsb: the horizon T = sum of the steps is not finite");
    return SDFLOW_OK;
}

/* Dimension from the fitted state and the bound models, which must agree. */
static sdflow_status resolve_dim(sdflow_sampler *s, size_t *d)
{
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    *d = o->fit ? o->fit->d : 0;
    static const sdflow_role roles[] = { SDFLOW_ROLE_DATA, SDFLOW_ROLE_PRIOR, SDFLOW_ROLE_BACKWARD,
                                         SDFLOW_ROLE_FORWARD };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        sdflow_model *m = s->model[roles[i]];
        if (!m)
            continue;
        if (*d && m->d != *d)
            return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "dsb: model of role %d has d=%zu, expected d=%zu",
                                (int)roles[i], m->d, *d);
        *d = m->d;
    }
    if (!*d)
        return sdflow__fail(s->ctx, SDFLOW_E_STATE,
                            "dsb: dimension unknown: bind a SDFLOW_ROLE_DATA (or _PRIOR, _BACKWARD) model");
    if (o->fit && (o->fit->N != s->steps || o->fit->d != *d))
        return sdflow__fail(s->ctx, SDFLOW_E_STATE,
                            "dsb: the fitted means are for N=%ld steps, d=%zu; steps is now %ld (set it back or "
                            "create a new sampler)",
                            o->fit->N, o->fit->d, s->steps);
    return SDFLOW_OK;
}

sdflow_status sdflow__dsb_work_init(sdflow_sampler *s, size_t rows, sdflow__dsb_work *w)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->ctx = s->ctx;
    w->N = s->steps;
    sdflow_status st = resolve_dim(s, &w->d);
    if (st)
        return st;
    w->nt = sdflow__threads_for(s->ctx, rows);
    w->gam = sdflow__alloc_array(s->ctx, (size_t)w->N * 2 + rows, sizeof(double), "dsb steps");
    if (!w->gam)
        return SDFLOW_E_NOMEM;
    w->tlab = w->gam + w->N;
    w->tv = w->tlab + w->N;
    return make_gammas(w);
}

void sdflow__dsb_work_free(sdflow__dsb_work *w)
{
    sdflow__free(w->ctx, w->gam);
}

/* n rows of an end distribution (role DATA or PRIOR) keyed by (stream,
 * first + i): exact samples of a gaussian/gmm model, rows of a kernel
 * model drawn uniformly with replacement, or the Gaussian prior for an
 * unbound PRIOR. */
sdflow_status sdflow__dsb_draw_end(sdflow__dsb_work *w, sdflow_role role, uint64_t stream, uint64_t first, size_t n, double *out)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    sdflow_model *m = s->model[role];
    size_t d = w->d;
    if (!m) {
        if (role == SDFLOW_ROLE_DATA)
            return sdflow__fail(w->ctx, SDFLOW_E_STATE, "dsb: no SDFLOW_ROLE_DATA model bound (the k = 0 end)");
        double sd = sqrt(o->prior_var), mu = o->prior_mean;
        for (size_t i = 0; i < n; i++) {
            sdflow__rng_normal_row(w->ctx->seed, stream, first + i, 0, d, out + i * d);
            for (size_t j = 0; j < d; j++)
                out[i * d + j] = mu + sd * out[i * d + j];
        }
        return sdflow__check_result(w->ctx, out, n, d, "dsb prior draws");
    }
    const sdflow__kref *r = sdflow__kernel_ref(m);
    if (r) {
        for (size_t i = 0; i < n; i++) {
            double u;
            sdflow__rng_uniform_row(w->ctx->seed, stream, first + i, 0, 1, &u);
            size_t j = (size_t)(u * (double)r->m);
            j = j < r->m ? j : r->m - 1;
            for (size_t k = 0; k < d; k++)
                out[i * d + k] = r->c[k] + sdflow__kref_at(r, j, k);
        }
        return SDFLOW_OK;
    }
    if (!m->ops->sample)
        return sdflow__fail(w->ctx, SDFLOW_E_UNSUPPORTED,
                            "dsb: the %s model of role %d cannot be sampled (use gaussian, gmm or kernel)",
                            sdflow_model_kind_name(m->kind), (int)role);
    return sdflow_model_sample(m, stream, first, n, out);
}

/* Network mean of transition k at n rows (out may not alias x). */
static sdflow_status net_mean(sdflow__dsb_work *w, sdflow_model *m, long k, const char *side, size_t n, const double *x,
                              double *out)
{
    for (size_t i = 0; i < n; i++)
        w->tv[i] = w->tlab[k];
    sdflow_status st = sdflow_model_eval(m, NULL, n, x, w->tv, m->native, out);
    if (st) {
        char why[SDFLOW__ERRMAX];
        memcpy(why, w->ctx->err, sizeof why);
        why[sizeof why - 1] = 0;
        return sdflow__fail(w->ctx, st, "dsb: %s network at transition %ld: %s", side, k, why);
    }
    if (!sdflow__dsb_of(w->s)->mean_match)
        for (size_t i = 0; i < n * w->d; i++)
            out[i] += x[i];
    return SDFLOW_OK;
}

/* out = a x + b per row, a d x d row-major: out = 1 b^T + x a^T as one
 * GEMM (a scalar loop was 2/3 of a d = 64 fit). */
static void affine_rows(const sdflow__dsb_work *w, const double *a, const double *b, size_t n, const double *x,
                        double *out)
{
    size_t d = w->d;
    if (!n)
        return;
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * d, b, d * sizeof *out);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d, (int)d, 1.0, x, (int)d, a, (int)d, 1.0, out,
                (int)d);
}

static int forward_fitted(const sdflow_sampler *s)
{
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    return o->fit && o->fit->halves >= 2;
}

/* F_k(x): network, fitted affine map or (before any forward half-bridge) the reference. */
sdflow_status sdflow__dsb_forward_mean(sdflow__dsb_work *w, long k, size_t n, const double *x, double *out)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    size_t d = w->d;
    if (forward_fitted(s) && s->model[SDFLOW_ROLE_FORWARD])
        return net_mean(w, s->model[SDFLOW_ROLE_FORWARD], k, "forward", n, x, out);
    if (forward_fitted(s)) {
        if (!o->fit->fa)
            return sdflow__fail(w->ctx, SDFLOW_E_STATE,
                                "dsb: the forward means were fitted as a network: bind it to SDFLOW_ROLE_FORWARD");
        affine_rows(w, o->fit->fa + (size_t)k * d * d, o->fit->fb + (size_t)k * d, n, x, out);
        return SDFLOW_OK;
    }
    double g = w->gam[k];
    if (o->reference == SDFLOW_DSB_BROWNIAN) {
        memcpy(out, x, n * d * sizeof *out);
    } else { /* f = grad log N(mu, v I) = -(x - mu)/v (reference code grad_gauss) */
        double mu = o->prior_mean, c = g / o->prior_var;
        for (size_t i = 0; i < n * d; i++)
            out[i] = x[i] - c * (x[i] - mu);
    }
    return SDFLOW_OK;
}

/* B_{k+1}(x): network or fitted affine map. */
sdflow_status sdflow__dsb_backward_mean(sdflow__dsb_work *w, long k, size_t n, const double *x, double *out)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    size_t d = w->d;
    if (s->model[SDFLOW_ROLE_BACKWARD])
        return net_mean(w, s->model[SDFLOW_ROLE_BACKWARD], k, "backward", n, x, out);
    if (!o->fit || o->fit->halves < 1)
        return sdflow__fail(w->ctx, SDFLOW_E_STATE,
                            "dsb: no backward means yet: run sdflow_sampler_fit or bind SDFLOW_ROLE_BACKWARD");
    if (!o->fit->ba)
        return sdflow__fail(w->ctx, SDFLOW_E_STATE,
                            "dsb: the backward means were fitted as a network: bind it to SDFLOW_ROLE_BACKWARD");
    affine_rows(w, o->fit->ba + (size_t)k * d * d, o->fit->bb + (size_t)k * d, n, x, out);
    return SDFLOW_OK;
}

/* x = mean + sqrt(2 gamma) z, z keyed (seed, stream, first + i). */
void sdflow__dsb_add_noise(const sdflow__dsb_work *w, uint64_t stream, uint64_t first, size_t n, double g, const double *mean,
                      double *x)
{
    size_t d = w->d;
    double sq = sqrt(2 * g);
    uint64_t seed = w->ctx->seed;
#pragma omp parallel for num_threads(w->nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        double *xi = x + i * d;
        sdflow__rng_normal_row(seed, stream, first + i, 0, d, xi);
        for (size_t j = 0; j < d; j++)
            xi[j] = mean[i * d + j] + sq * xi[j];
    }
}

sdflow_status sdflow__dsb_check_state(sdflow__dsb_work *w, const double *x, size_t n, long k, const char *what)
{
    size_t bad = sdflow__first_nonfinite_row(x, n, w->d);
    if (bad < n)
        return sdflow__fail(w->ctx, SDFLOW_E_NUMERIC, "dsb %s: state of chain %zu became non-finite at step %ld", what,
                            bad, k);
    return SDFLOW_OK;
}


sdflow_status sdflow__dsb_ensure_state(sdflow__dsb_work *w, int nets)
{
    sdflow_sampler *s = w->s;
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    if (o->fit && o->fit->halves > 0 && o->fit->nets != nets)
        return sdflow__fail(w->ctx, SDFLOW_E_STATE,
                            "dsb fit: the %ld half-bridges so far fitted %s; this fit would fit %s (bind or unbind "
                            "the networks as before, or create a new sampler)",
                            o->fit->halves, o->fit->nets ? "networks" : "affine means", nets ? "networks" : "affine means");
    if (!o->fit) {
        struct sdflow__dsb *st = sdflow__alloc(w->ctx, sizeof *st);
        if (!st)
            return SDFLOW_E_NOMEM;
        *st = (struct sdflow__dsb){ .d = w->d, .N = w->N };
        o->fit = st;
    }
    o->fit->nets = nets;
    if (nets || o->fit->fa)
        return SDFLOW_OK;
    size_t d = w->d, N = (size_t)w->N;
    if (!sdflow__size_ok(N * 2, d * (d + 1)))
        return sdflow__fail(w->ctx, SDFLOW_E_INVALID, "dsb: N=%zu steps of d=%zu maps do not fit in memory", N, d);
    double *blk = sdflow__alloc_array(w->ctx, 2 * N * d, (d + 1) * sizeof(double), "dsb fitted means");
    if (!blk)
        return SDFLOW_E_NOMEM;
    struct sdflow__dsb *st = o->fit;
    st->fa = blk;
    st->fb = st->fa + N * d * d;
    st->ba = st->fb + N * d;
    st->bb = st->ba + N * d * d;
    return SDFLOW_OK;
}
