/* SPDX-License-Identifier: MIT */
/* The QCSGM diagnostic (issue 12): how far a score model is from being a
 * gradient field, measured by the antisymmetric part of its Jacobian,
 * ||J - J^T||_F, and relative to ||J||_F.
 *
 * Exact form (probes = 0): the full Jacobian of every row.
 * Hutchinson form (probes K >= 2): with Rademacher v (E[v v^T] = I),
 *   ||J - J^T||_F^2 = 2 ||J||_F^2 - 2 tr(J J) = E[ 2 (|J v|^2 - v . J (J v)) ]
 * needs two Jacobian-vector products and no vector-Jacobian product, so it
 * works for every model with a JVP (MLP, kernel, callback with a JVP) and
 * costs 2 K JVPs per row instead of d. For a symmetric J the two terms are
 * the same number computed two ways, so the estimate is 0 to rounding, like
 * the exact form. ||J||_F^2 = E |J v|^2 from the same probes. */
#include <math.h>
#include <string.h>
#include "model_internal.h"

/* Score JVPs jv = J_score(x_r, t_r) v_r for nr rows: the model's JVP op
 * converted from its native output (score = a native + b x), else products
 * with its Jacobian. */
static sdflow_status score_jvp(sdflow_model *m, const sdflow_process *p, size_t nr, const double *x,
                               const double *t, const double *v, double *jv, double *jac)
{
    size_t d = m->d;
    sdflow_status st;
    if (m->ops->jvp) {
        if ((st = m->ops->jvp(m, p, nr, x, t, v, jv)))
            return st;
        for (size_t r = 0; r < nr && m->native != SDFLOW_OUT_SCORE; r++) {
            sdflow__affine a;
            if ((st = sdflow__model_conversion_at(m, p, t[r], m->native, SDFLOW_OUT_SCORE, &a)))
                return st;
            for (size_t j = 0; j < d; j++)
                jv[r * d + j] = a.a * jv[r * d + j] + a.b * v[r * d + j];
        }
    } else {
        if ((st = sdflow_model_jacobian(m, p, nr, x, t, jac)))
            return st;
        for (size_t r = 0; r < nr; r++)
            for (size_t a = 0; a < d; a++) {
                double acc = 0;
                for (size_t b = 0; b < d; b++)
                    acc += jac[(r * d + a) * d + b] * v[r * d + b];
                jv[r * d + a] = acc;
            }
    }
    return sdflow__check_result(m->ctx, jv, nr, d, "Jacobian-vector product");
}

/* Per-row sums for the estimate and its standard error. */
typedef struct acc {
    double sa, sb;       /* sum over rows of the row means of A and B */
    double va, vb, cab;  /* sum over rows of the variances / covariance of the row means */
} acc;

/* Exact per-row A = ||J - J^T||_F^2, B = ||J||_F^2 of nb rows. */
static void exact_rows(size_t nb, size_t d, const double *jac, acc *s)
{
    for (size_t r = 0; r < nb; r++) {
        const double *J = jac + r * d * d;
        double A = 0, B = 0;
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) {
                double u = J[a * d + b], w = u - J[b * d + a];
                A += w * w;
                B += u * u;
            }
        s->sa += A;
        s->sb += B;
    }
}

/* Hutchinson per-row means of the K probes and their variances (sample
 * variance / K: the variance of the row mean given the row). */
static void probe_rows(size_t nb, size_t K, size_t d, const double *v, const double *u, const double *w, acc *s)
{
    for (size_t r = 0; r < nb; r++) {
        double ma = 0, mb = 0, qaa = 0, qbb = 0, qab = 0;
        for (size_t k = 0; k < K; k++) {
            size_t o = (r * K + k) * d;
            double uu = 0, vw = 0;
            for (size_t j = 0; j < d; j++) {
                uu += u[o + j] * u[o + j];
                vw += v[o + j] * w[o + j];
            }
            double a = 2.0 * (uu - vw), b = uu;
            /* Welford updates of means and co-moments */
            double da = a - ma, db = b - mb;
            ma += da / (double)(k + 1);
            mb += db / (double)(k + 1);
            qaa += da * (a - ma);
            qbb += db * (b - mb);
            qab += da * (b - mb);
        }
        double f = 1.0 / ((double)(K - 1) * (double)K);
        s->sa += ma;
        s->sb += mb;
        s->va += qaa * f;
        s->vb += qbb * f;
        s->cab += qab * f;
    }
}

sdflow_status sdflow_model_asymmetry(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                     const double *t, size_t probes, uint64_t stream, double out[4])
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, out, "out");
    if (st)
        return st;
    sdflow_ctx *ctx = m->ctx;
    size_t d = m->d, K = probes;
    if (K == 1)
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "probes = 1: use 0 (exact) or at least 2 (the standard error needs two probes per row)");
    if (!m->ops->jvp && !m->ops->jacobian)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED,
                            "a %s model has no exact Jacobian-vector products (give a callback model a JVP with "
                            "sdflow_model_set_callback_jvp)",
                            sdflow_model_kind_name(m->kind));
    if (K > ((size_t)1 << 20))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "probes = %zu exceeds 2^20", K);
    int need_jac = K == 0 || !m->ops->jvp;
    /* rows per block: Jacobians (d x d per row) or 4 probe vectors of d per
     * (row, probe), plus a Jacobian per (row, probe) without a JVP op, within ~2^20 doubles */
    size_t per_row = K ? K * (4 * d + (need_jac ? d * d : 0)) : d * d;
    size_t block = ((size_t)1 << 20) / per_row + 1;
    if (block > n)
        block = n;
    size_t nr = block * (K ? K : 1);
    double *jac = NULL, *xr = NULL, *tr = NULL, *v = NULL, *u = NULL, *w = NULL;
    if (need_jac && !(jac = sdflow__alloc_array(ctx, K ? nr : block, d * d * sizeof(double), "Jacobian block")))
        return SDFLOW_E_NOMEM;
    if (K && (!(xr = sdflow__alloc_array(ctx, nr, d * sizeof(double), "replicated points")) ||
              !(tr = sdflow__alloc_array(ctx, nr, sizeof(double), "replicated times")) ||
              !(v = sdflow__alloc_array(ctx, nr, d * sizeof(double), "probes")) ||
              !(u = sdflow__alloc_array(ctx, nr, d * sizeof(double), "J v")) ||
              !(w = sdflow__alloc_array(ctx, nr, d * sizeof(double), "J J v"))))
        st = SDFLOW_E_NOMEM;
    acc s = { 0, 0, 0, 0, 0 };
    size_t words = (d + 127) / 128; /* Philox blocks per Rademacher vector */
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block;
        if (!K) {
            if (!(st = sdflow_model_jacobian(m, p, nb, x + i0 * d, t + i0, jac)))
                exact_rows(nb, d, jac, &s);
            continue;
        }
        for (size_t r = 0; r < nb; r++)
            for (size_t k = 0; k < K; k++) {
                size_t q = r * K + k;
                memcpy(xr + q * d, x + (i0 + r) * d, d * sizeof(double));
                tr[q] = t[i0 + r];
                /* probe k of row i depends only on (seed, stream, i, k) */
                sdflow__rng_rademacher_row(ctx->seed, stream, i0 + r, k * words, d, v + q * d);
            }
        size_t nq = nb * K;
        if ((st = score_jvp(m, p, nq, xr, tr, v, u, jac)) || (st = score_jvp(m, p, nq, xr, tr, u, w, jac)))
            break;
        probe_rows(nb, K, d, v, u, w, &s);
    }
    sdflow__free(ctx, jac);
    sdflow__free(ctx, xr);
    sdflow__free(ctx, tr);
    sdflow__free(ctx, v);
    sdflow__free(ctx, u);
    sdflow__free(ctx, w);
    if (st)
        return st;
    /* A2 = mean over rows of ||J - J^T||_F^2; R = sum A / sum B. The
     * Hutchinson A2 may come out slightly negative (an unbiased estimate of
     * a number near 0): the reported root is then 0. */
    double dn = (double)n, A2 = s.sa / dn, B2 = s.sb / dn;
    if (!isfinite(A2) || !isfinite(B2))
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "asymmetry: the Jacobian sums overflow");
    if (!(B2 > 0))
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                            "asymmetry: ||J||_F is 0 at every row, the normalized asymmetry is undefined");
    double R = A2 / B2;
    double seA2 = sqrt(s.va) / dn;
    /* delta method for the ratio of means: Var(R) = Var(A - R B) / B^2 */
    double varR = (s.va - 2.0 * R * s.cab + R * R * s.vb) / (dn * dn) / (B2 * B2);
    double asym = A2 > 0 ? sqrt(A2) : 0, nasym = R > 0 ? sqrt(R) : 0;
    /* SE of a square root: SE(sqrt y) = SE(y) / (2 sqrt y); at y = 0 the
     * delta method breaks down and the root of the SE bounds it instead */
    out[0] = asym;
    out[1] = asym > 0 ? seA2 / (2 * asym) : sqrt(seA2);
    out[2] = nasym;
    out[3] = nasym > 0 ? sqrt(fmax(varR, 0)) / (2 * nasym) : sqrt(sqrt(fmax(varR, 0)));
    return sdflow__check_result(ctx, out, 1, 4, "asymmetry");
}
