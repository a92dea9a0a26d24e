/* SPDX-License-Identifier: MIT */
/* Gaussian and Gaussian-mixture models with the exact score, Jacobian and
 * log-density of the noised distribution p_t = sum_k w_k N(alpha mu_k, C_k),
 * C_k = alpha^2 S_k + sigma^2 I. Each S_k is eigendecomposed once at
 * creation, so C_k^{-1} and log det C_k cost O(d^2) per point at any t. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "model_internal.h"

typedef struct gmm {
    size_t k, d;
    double *logw;  /* k */
    double *mean;  /* k x d */
    double *lam;   /* k x d eigenvalues of S_k */
    double *vec;   /* k x d x d eigenvectors (columns) */
    double *vect;  /* the same transposed (rows), for contiguous products */
    double *chol;  /* k x d x d Cholesky factors, for sampling */
    double *cumw;  /* k cumulative weights, for sampling */
    double *w;     /* k weights and k x d x d covariances as given: a saved */
    double *cov;   /* file rebuilds the model bit for bit (io/model_file.c) */
} gmm;

/* What a call wants, as whole-batch arrays; NULL outputs are skipped.
 * q = v^T J v for the score Jacobian J and the nv directions v of a row. */
typedef struct row_out {
    double *score, *logp, *jac, *div;
    const double *v;
    double *q;
    size_t nv;
} row_out;

/* y = A^T v for a d x d row-major A, as axpys over the rows of A: contiguous
 * and vectorizable without reassociating any sum (each y_j adds its terms in
 * the order of a plain dot product). */
static inline void mat_t_vec(size_t d, const double *restrict A, const double *restrict v, double *restrict y)
{
    for (size_t j = 0; j < d; j++)
        y[j] = A[j] * v[0];
    for (size_t i = 1; i < d; i++) {
        const double *Ai = A + i * d, vi = v[i];
        for (size_t j = 0; j < d; j++)
            y[j] += Ai[j] * vi;
    }
}

/* Per-thread scratch: the time-dependent part (eigenvalues 1/c_kj of
 * C_k^{-1} and the log normalizers) is kept for the last time seen, as
 * fixed-step solvers evaluate every row at the same time. */
typedef struct row_work {
    double t;      /* time ic and lognorm belong to (NaN: none) */
    double *ic;    /* K x d: 1/c_kj, c_kj = alpha^2 lam_kj + sigma^2 */
    double *lognorm; /* K: log w_k - (d log 2 pi + log det C_k) / 2 */
    double *e;     /* K x d: e_k = C_k^{-1}(x - alpha mu_k) */
    double *logit; /* K */
    double *u;     /* d: U^T (x - alpha mu) / c, then the score */
    double *tmp;   /* d: x - alpha mu, then U^T v */
} row_work;

static size_t work_size(const gmm *g) { return 2 * g->k * g->d + 2 * g->k + 2 * g->d; }

static row_work row_work_at(const gmm *g, double *w)
{
    size_t K = g->k, d = g->d;
    row_work rw = { .t = NAN, .ic = w, .lognorm = w + K * d, .e = w + K * d + K };
    rw.logit = rw.e + K * d;
    rw.u = rw.logit + K;
    rw.tmp = rw.u + d;
    return rw;
}

static void time_part(const gmm *g, const sdflow__coef *c, double t, row_work *rw)
{
    size_t K = g->k, d = g->d;
    double a2 = c->alpha * c->alpha, s2 = c->sigma * c->sigma;
    for (size_t k = 0; k < K; k++) {
        /* log det as the log of running products: one log per ~d/2 factors
         * instead of one each (rows with many distinct times spend most of
         * their time here); a product leaving [1e-100, 1e100] is flushed
         * before it can overflow, and extreme factors are logged directly */
        double logdet = 0, prod = 1;
        for (size_t j = 0; j < d; j++) {
            double cj = a2 * g->lam[k * d + j] + s2;
            rw->ic[k * d + j] = 1.0 / cj;
            if (cj > 1e-100 && cj < 1e100) {
                prod *= cj;
                if (prod > 1e100 || prod < 1e-100) {
                    logdet += log(prod);
                    prod = 1;
                }
            } else {
                logdet += log(cj);
            }
        }
        logdet += log(prod);
        rw->lognorm[k] = g->logw[k] - 0.5 * ((double)d * log(2.0 * SDFLOW__PI) + logdet);
    }
    rw->t = t;
}

/* One row with the dimension as a parameter: gmm_row() below passes small
 * constants so the compiler emits fully unrolled copies for them. */
static SDFLOW__ALWAYS_INLINE void gmm_row_d(const gmm *g, const sdflow__coef *c, const double *x, const row_work *rw,
                                           row_out o, size_t d)
{
    size_t K = g->k;
    const double *ic = rw->ic;
    double *e = rw->e, *logit = rw->logit, *u = rw->u, *diff = rw->tmp;
    for (size_t k = 0; k < K; k++) {
        const double *mu = g->mean + k * d, *ick = ic + k * d;
        for (size_t i = 0; i < d; i++)
            diff[i] = x[i] - c->alpha * mu[i];
        mat_t_vec(d, g->vec + k * d * d, diff, u); /* u = U^T (x - alpha mu) */
        double maha = 0;
        for (size_t j = 0; j < d; j++) {
            maha += u[j] * u[j] * ick[j];
            u[j] *= ick[j];
        }
        logit[k] = rw->lognorm[k] - 0.5 * maha;
        mat_t_vec(d, g->vect + k * d * d, u, e + k * d); /* e = U u */
    }
    double mx = logit[0];
    for (size_t k = 1; k < K; k++)
        mx = logit[k] > mx ? logit[k] : mx;
    double z = 0;
    for (size_t k = 0; k < K; k++)
        z += (logit[k] = exp(logit[k] - mx)); /* logit now holds unnormalized r_k */
    for (size_t k = 0; k < K; k++)
        logit[k] /= z;
    const double *r = logit;
    if (o.logp)
        *o.logp = mx + log(z);
    double *s = u; /* reuse: score */
    for (size_t i = 0; i < d; i++) {
        double acc = 0;
        for (size_t k = 0; k < K; k++)
            acc -= r[k] * e[k * d + i];
        s[i] = acc;
    }
    if (o.score)
        memcpy(o.score, s, d * sizeof *s);
    if (o.div) {
        double acc = 0, ss = 0;
        for (size_t k = 0; k < K; k++) {
            double ee = 0, tr = 0;
            for (size_t j = 0; j < d; j++) {
                ee += e[k * d + j] * e[k * d + j];
                tr += ic[k * d + j];
            }
            acc += r[k] * (ee - tr);
        }
        for (size_t j = 0; j < d; j++)
            ss += s[j] * s[j];
        *o.div = acc - ss;
    }
    for (size_t p = 0; p < o.nv; p++) {
        /* sum_k r_k ((e_k . v)^2 - |diag(c_k)^(-1/2) U_k^T v|^2) - (s . v)^2: O(k d^2), no d x d matrix */
        const double *v = o.v + p * d;
        double sv = 0;
        for (size_t a = 0; a < d; a++)
            sv += s[a] * v[a];
        double acc = -sv * sv;
        for (size_t k = 0; k < K; k++) {
            const double *ek = e + k * d;
            double ev = 0, cv = 0, *uv = rw->tmp;
            for (size_t a = 0; a < d; a++)
                ev += ek[a] * v[a];
            mat_t_vec(d, g->vec + k * d * d, v, uv); /* U^T v */
            for (size_t j = 0; j < d; j++)
                cv += uv[j] * uv[j] * ic[k * d + j];
            acc += r[k] * (ev * ev - cv);
        }
        o.q[p] = acc;
    }
    if (o.jac) {
        /* sum_k r_k (e_k e_k^T - U_k diag(1/c_k) U_k^T) - s s^T */
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) {
                double acc = -s[a] * s[b];
                for (size_t k = 0; k < K; k++) {
                    const double *U = g->vec + k * d * d;
                    double cinv = 0;
                    for (size_t j = 0; j < d; j++)
                        cinv += U[a * d + j] * ic[k * d + j] * U[b * d + j];
                    acc += r[k] * (e[k * d + a] * e[k * d + b] - cinv);
                }
                o.jac[a * d + b] = acc;
            }
    }
}

static void gmm_row(const gmm *g, const sdflow__coef *c, const double *x, const row_work *rw, row_out o)
{
    switch (g->d) { /* the common low dimensions of examples and tests */
    case 1: gmm_row_d(g, c, x, rw, o, 1); break;
    case 2: gmm_row_d(g, c, x, rw, o, 2); break;
    case 3: gmm_row_d(g, c, x, rw, o, 3); break;
    default: gmm_row_d(g, c, x, rw, o, g->d); break;
    }
}

/* Runs gmm_row over all rows, in parallel with per-thread scratch. */
static sdflow_status gmm_rows(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                              row_out all)
{
    const gmm *g = m->impl;
    size_t d = g->d, ws = work_size(g);
    int nt = sdflow__threads_for(m->ctx, n);
    double *work = sdflow__alloc_array(m->ctx, (size_t)nt * ws, sizeof(double), "mixture workspace");
    if (!work)
        return SDFLOW_E_NOMEM;
#pragma omp parallel num_threads(nt)
    {
        row_work rw = row_work_at(g, work + (size_t)omp_get_thread_num() * ws);
        sdflow__coef c;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            if (!(t[i] == rw.t)) { /* rows of fixed-step solvers share their time */
                sdflow__process_coef(p, t[i], &c);
                time_part(g, &c, t[i], &rw);
            }
            row_out o = { all.score ? all.score + i * d : NULL, all.logp ? all.logp + i : NULL,
                          all.jac ? all.jac + i * d * d : NULL, all.div ? all.div + i : NULL,
                          all.v ? all.v + i * all.nv * d : NULL, all.q ? all.q + i * all.nv : NULL, all.nv };
            gmm_row(g, &c, x + i * d, &rw, o);
        }
    }
    sdflow__free(m->ctx, work);
    return SDFLOW_OK;
}

static sdflow_status gmm_eval(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                              double *out)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .score = out });
}

static sdflow_status gmm_logpdf(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                const double *t, double *logp)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .logp = logp });
}

static sdflow_status gmm_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *jac)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .jac = jac });
}

static sdflow_status gmm_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                    const double *t, double *div)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .div = div });
}

static sdflow_status gmm_eval_div(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *out, double *div)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .score = out, .div = div });
}

static sdflow_status gmm_eval_quadform(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                       const double *t, size_t K, const double *v, double *out, double *q)
{
    return gmm_rows(m, p, n, x, t, (row_out){ .score = out, .v = v, .q = q, .nv = K });
}

static sdflow_status gmm_sample(sdflow_model *m, uint64_t stream, uint64_t first_index, size_t n, double *out)
{
    const gmm *g = m->impl;
    size_t d = g->d;
    double *z = sdflow__alloc_array(m->ctx, d, sizeof *z, "noise row");
    if (!z)
        return SDFLOW_E_NOMEM;
    uint64_t pick_stream = sdflow__stream(stream, 0x6d697863ull /* "mixc" */, 0);
    for (size_t i = 0; i < n; i++) {
        double u;
        size_t k = 0;
        sdflow__rng_uniform_row(m->ctx->seed, pick_stream, first_index + i, 0, 1, &u);
        while (k + 1 < g->k && u >= g->cumw[k])
            k++;
        sdflow__rng_normal_row(m->ctx->seed, stream, first_index + i, 0, d, z);
        const double *L = g->chol + k * d * d;
        for (size_t a = 0; a < d; a++) {
            double acc = g->mean[k * d + a];
            for (size_t b = 0; b <= a; b++)
                acc += L[a * d + b] * z[b];
            out[i * d + a] = acc;
        }
    }
    sdflow__free(m->ctx, z);
    return SDFLOW_OK;
}

static void gmm_destroy(sdflow_model *m)
{
    gmm *g = m->impl;
    if (!g)
        return;
    sdflow__free(m->ctx, g->logw);
    sdflow__free(m->ctx, g->mean);
    sdflow__free(m->ctx, g->lam);
    sdflow__free(m->ctx, g->vec);
    sdflow__free(m->ctx, g->vect);
    sdflow__free(m->ctx, g->chol);
    sdflow__free(m->ctx, g->cumw);
    sdflow__free(m->ctx, g->w);
    sdflow__free(m->ctx, g->cov);
    sdflow__free(m->ctx, g);
}

static const sdflow__model_ops gmm_ops = { .eval = gmm_eval,
                                           .logpdf = gmm_logpdf,
                                           .jacobian = gmm_jacobian,
                                           .divergence = gmm_divergence,
                                           .sample = gmm_sample,
                                           .eval_div = gmm_eval_div,
                                           .eval_quadform = gmm_eval_quadform,
                                           .destroy = gmm_destroy };

static sdflow_status check_cov(sdflow_ctx *ctx, size_t k, size_t d, const double *cov, double *chol)
{
    double scale = 0;
    for (size_t i = 0; i < d; i++)
        scale = fmax(scale, fabs(cov[i * d + i]));
    for (size_t i = 0; i < d; i++)
        for (size_t j = i + 1; j < d; j++)
            if (fabs(cov[i * d + j] - cov[j * d + i]) > 1e-12 * scale)
                return sdflow__fail(ctx, SDFLOW_E_INVALID, "covariance %zu is not symmetric: [%zu][%zu]=%g vs [%zu][%zu]=%g",
                                    k, i, j, cov[i * d + j], j, i, cov[j * d + i]);
    memcpy(chol, cov, d * d * sizeof *chol);
    size_t bad = sdflow__cholesky(d, chol);
    if (bad)
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "covariance %zu is not positive definite (Cholesky pivot %zu is <= 0)", k, bad - 1);
    return SDFLOW_OK;
}

static sdflow_status create_mixture(sdflow_ctx *ctx, sdflow_model_kind kind, size_t k, size_t d,
                                    const double *weights, const double *means, const double *covs,
                                    sdflow_model **out)
{
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, out, "out")))
        return st;
    *out = NULL;
    if ((st = sdflow__check_size(ctx, k, "k")) || (st = sdflow__check_size(ctx, d, "d")))
        return st;
    if (!sdflow__size_ok(k, d * d) || d > 65536)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "k=%zu components of d=%zu are too large", k, d);
    if ((st = sdflow__check_finite(ctx, weights, k, 1, "weights")) ||
        (st = sdflow__check_finite(ctx, means, k, d, "means")) ||
        (st = sdflow__check_finite(ctx, covs, k, d * d, "covs")))
        return st;
    double wsum = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(weights[i] > 0))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "weights[%zu] = %g must be > 0", i, weights[i]);
        wsum += weights[i];
    }
    if (fabs(wsum - 1.0) > 1e-12 * (double)k)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "weights sum to %.17g, not 1", wsum);
    gmm *g = sdflow__calloc_array(ctx, 1, sizeof *g, "mixture model");
    if (!g)
        return SDFLOW_E_NOMEM;
    g->k = k;
    g->d = d;
    sdflow_model tmp = { .ctx = ctx, .kind = kind, .d = d, .ops = &gmm_ops, .impl = g };
    double *scratch = NULL;
    if (!(g->logw = sdflow__alloc_array(ctx, k, sizeof(double), "weights")) ||
        !(g->cumw = sdflow__alloc_array(ctx, k, sizeof(double), "weights")) ||
        !(g->mean = sdflow__alloc_array(ctx, k * d, sizeof(double), "means")) ||
        !(g->lam = sdflow__alloc_array(ctx, k * d, sizeof(double), "eigenvalues")) ||
        !(g->vec = sdflow__alloc_array(ctx, k * d, d * sizeof(double), "eigenvectors")) ||
        !(g->vect = sdflow__alloc_array(ctx, k * d, d * sizeof(double), "eigenvectors")) ||
        !(g->chol = sdflow__alloc_array(ctx, k * d, d * sizeof(double), "Cholesky factors")) ||
        !(g->w = sdflow__alloc_array(ctx, k, sizeof(double), "weights")) ||
        !(g->cov = sdflow__alloc_array(ctx, k * d, d * sizeof(double), "covariances")) ||
        !(scratch = sdflow__alloc_array(ctx, d, d * sizeof(double), "scratch"))) {
        gmm_destroy(&tmp);
        return SDFLOW_E_NOMEM;
    }
    double cum = 0;
    for (size_t i = 0; i < k; i++) {
        g->logw[i] = log(weights[i]);
        cum += weights[i] / wsum;
        g->cumw[i] = cum;
        const double *cov = covs + i * d * d;
        if ((st = check_cov(ctx, i, d, cov, g->chol + i * d * d))) {
            sdflow__free(ctx, scratch);
            gmm_destroy(&tmp);
            return st;
        }
        memcpy(scratch, cov, d * d * sizeof *scratch);
        const double *U = g->vec + i * d * d;
        sdflow__sym_eigen(d, scratch, g->lam + i * d, g->vec + i * d * d);
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++)
                g->vect[i * d * d + b * d + a] = U[a * d + b];
    }
    sdflow__free(ctx, scratch);
    memcpy(g->mean, means, k * d * sizeof(double));
    memcpy(g->w, weights, k * sizeof(double));
    memcpy(g->cov, covs, k * d * d * sizeof(double));
    return sdflow__model_new(ctx, kind, d, SDFLOW_OUT_SCORE, &gmm_ops, g, out);
}

sdflow_status sdflow_model_create_gmm(sdflow_ctx *ctx, size_t k, size_t d, const double *weights, const double *means,
                                      const double *covs, sdflow_model **out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    return create_mixture(ctx, SDFLOW_MODEL_GMM, k, d, weights, means, covs, out);
}

sdflow_status sdflow_model_create_gaussian(sdflow_ctx *ctx, size_t d, const double *mean, const double *cov,
                                           sdflow_model **out)
{
    static const double one = 1.0;
    if (!ctx)
        return SDFLOW_E_INVALID;
    return create_mixture(ctx, SDFLOW_MODEL_GAUSSIAN, 1, d, &one, mean, cov, out);
}

int sdflow__gmm_source(const sdflow_model *m, size_t *k, const double **weights, const double **means,
                       const double **covs)
{
    if (!m || (m->kind != SDFLOW_MODEL_GMM && m->kind != SDFLOW_MODEL_GAUSSIAN))
        return 0;
    const gmm *g = m->impl;
    *k = g->k;
    *weights = g->w;
    *means = g->mean;
    *covs = g->cov;
    return 1;
}
