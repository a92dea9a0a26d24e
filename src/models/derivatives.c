/* SPDX-License-Identifier: MIT */
/* Derivatives of a model's score used by the density estimators: quadratic
 * forms v^T J v for Hutchinson probes and divergences, exact through the
 * model's JVP op or Jacobian, otherwise by central differences. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "model_internal.h"

size_t sdflow__deriv_block_rows(size_t n, size_t per_row)
{
    size_t b = ((size_t)1 << 20) / (per_row ? per_row : 1) + 1;
    return b < n ? b : n;
}

void sdflow__deriv_points(size_t d, size_t K, const double *x, const double *t, const double *v, size_t i0, size_t nb,
                          int fd, double *xr, double *tr, double *hs)
{
    const double c = cbrt(DBL_EPSILON);
    size_t nr = nb * K;
    for (size_t r = 0; r < nr; r++) {
        size_t i = i0 + r / K;
        const double *xi = x + i * d, *vr = v + (i0 * K + r) * d;
        tr[r] = tr[nr + r] = t[i];
        if (!fd) {
            memcpy(xr + r * d, xi, d * sizeof(double));
            continue;
        }
        double xm = 0, vm = 0;
        for (size_t j = 0; j < d; j++) {
            xm = fmax(xm, fabs(xi[j]));
            vm = fmax(vm, fabs(vr[j]));
        }
        double h = vm > 0 ? c * (1.0 + xm) / vm : 1.0;
        hs[r] = h;
        for (size_t j = 0; j < d; j++) {
            xr[r * d + j] = xi[j] + h * vr[j];
            xr[(nr + r) * d + j] = xi[j] - h * vr[j];
        }
    }
}

int sdflow__model_has_derivatives(const sdflow_model *m)
{
    return m->ops->jvp != NULL || m->ops->eval_quadform != NULL || m->ops->jacobian != NULL ||
           m->ops->divergence != NULL;
}

static sdflow_status check_method(sdflow_model *m, int method, int need_jvp_or_jac)
{
    if (method < SDFLOW_DIV_AUTO || method > SDFLOW_DIV_FINITE_DIFF)
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "unknown divergence method %d", method);
    int exact = need_jvp_or_jac ? (m->ops->jvp || m->ops->eval_quadform || m->ops->jacobian)
                                : sdflow__model_has_derivatives(m);
    if (method == SDFLOW_DIV_ANALYTIC && !exact)
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED,
                            "a %s model has no exact derivatives (give a callback model a JVP with "
                            "sdflow_model_set_callback_jvp, or use SDFLOW_DIV_FINITE_DIFF)",
                            sdflow_model_kind_name(m->kind));
    return SDFLOW_OK;
}

/* J_score v for rows of a model with a JVP op: a J_native v + b v. */
static sdflow_status jvp_score(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                               const double *t, const double *v, double *jv)
{
    sdflow_status st = m->ops->jvp(m, p, n, x, t, v, jv);
    size_t d = m->d;
    for (size_t i = 0; i < n && !st && m->native != SDFLOW_OUT_SCORE; i++) {
        sdflow__affine a;
        if ((st = sdflow__model_conversion_at(m, p, t[i], m->native, SDFLOW_OUT_SCORE, &a)))
            return st;
        for (size_t j = 0; j < d; j++)
            jv[i * d + j] = a.a * jv[i * d + j] + a.b * v[i * d + j];
    }
    return st ? st : sdflow__check_result(m->ctx, jv, n, d, "Jacobian-vector product");
}

/* Quadratic forms from full Jacobians, rows in blocks. */
static sdflow_status quadform_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                       const double *t, size_t K, const double *v, double *q)
{
    size_t d = m->d, block = sdflow__deriv_block_rows(n, d * d);
    double *jac = sdflow__alloc_array(m->ctx, block, d * d * sizeof(double), "Jacobian block");
    if (!jac)
        return SDFLOW_E_NOMEM;
    sdflow_status st = SDFLOW_OK;
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block;
        if ((st = sdflow_model_jacobian(m, p, nb, x + i0 * d, t + i0, jac)))
            break;
        int nt = sdflow__threads_for(m->ctx, nb);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < nb; i++) {
            const double *J = jac + i * d * d;
            for (size_t k = 0; k < K; k++) {
                const double *vk = v + ((i0 + i) * K + k) * d;
                double acc = 0;
                for (size_t a = 0; a < d; a++) {
                    double row = 0;
                    for (size_t b = 0; b < d; b++)
                        row += J[a * d + b] * vk[b];
                    acc += vk[a] * row;
                }
                q[(i0 + i) * K + k] = acc;
            }
        }
    }
    sdflow__free(m->ctx, jac);
    return st;
}

/* Quadratic forms through JVPs (exact) or central differences of the score
 * along each direction; the n K directions are evaluated as one batch. */
static sdflow_status quadform_directional(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                          const double *t, size_t K, const double *v, int fd, double *q)
{
    size_t d = m->d, block = sdflow__deriv_block_rows(n, 4 * K * d);
    size_t rows = block * K;
    double *xr = sdflow__alloc_array(m->ctx, rows, 2 * d * sizeof(double), "replicated points");
    double *tr = xr ? sdflow__alloc_array(m->ctx, rows, 2 * sizeof(double), "replicated times") : NULL;
    double *out = tr ? sdflow__alloc_array(m->ctx, rows, 2 * d * sizeof(double), "directional derivatives") : NULL;
    double *hs = out ? sdflow__alloc_array(m->ctx, rows, sizeof(double), "difference steps") : NULL;
    sdflow_status st = hs ? SDFLOW_OK : SDFLOW_E_NOMEM;
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block, nr = nb * K;
        sdflow__deriv_points(d, K, x, t, v, i0, nb, fd, xr, tr, hs);
        if (fd)
            st = sdflow_model_eval(m, p, 2 * nr, xr, tr, SDFLOW_OUT_SCORE, out);
        else
            st = jvp_score(m, p, nr, xr, tr, v + i0 * K * d, out);
        for (size_t r = 0; r < nr && !st; r++) {
            const double *vr = v + (i0 * K + r) * d;
            double acc = 0;
            for (size_t j = 0; j < d; j++)
                acc += vr[j] * (fd ? out[r * d + j] - out[(nr + r) * d + j] : out[r * d + j]);
            q[i0 * K + r] = fd ? acc / (2.0 * hs[r]) : acc;
        }
    }
    sdflow__free(m->ctx, xr);
    sdflow__free(m->ctx, tr);
    sdflow__free(m->ctx, out);
    sdflow__free(m->ctx, hs);
    return st;
}

/* score = a native + b x, so v^T J_score v = a v^T J_native v + b |v|^2 (and
 * the native output, when given, becomes the score). */
static sdflow_status quadform_to_score(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                       const double *t, size_t K, const double *v, double *out, double *q,
                                       const size_t *rows)
{
    size_t d = m->d;
    sdflow_status st = SDFLOW_OK;
    for (size_t i = 0; i < n && m->native != SDFLOW_OUT_SCORE; i++) {
        sdflow__affine a;
        if ((st = sdflow__model_conversion_at(m, p, t[i], m->native, SDFLOW_OUT_SCORE, &a)))
            return st;
        for (size_t j = 0; out && j < d; j++)
            out[i * d + j] = a.a * out[i * d + j] + a.b * x[i * d + j];
        for (size_t k = 0; k < K; k++) {
            const double *vk = v + (i * K + k) * d;
            double vv = 0;
            for (size_t j = 0; j < d; j++)
                vv += vk[j] * vk[j];
            q[i * K + k] = a.a * q[i * K + k] + a.b * vv;
        }
    }
    if (out && (st = sdflow__check_rows(m->ctx, out, n, d, rows, "model output")))
        return st;
    return sdflow__check_rows(m->ctx, q, n, K, rows, "score quadratic form");
}

sdflow_status sdflow__model_score_quadform(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                           const double *t, size_t K, const double *v, int method, double *q)
{
    sdflow_status st = check_method(m, method, 1);
    if (st)
        return st;
    if (method != SDFLOW_DIV_FINITE_DIFF && m->ops->eval_quadform) {
        if ((st = m->ops->eval_quadform(m, p, n, x, t, K, v, NULL, q)))
            return st;
        return quadform_to_score(m, p, n, x, t, K, v, NULL, q, NULL);
    }
    if (method != SDFLOW_DIV_FINITE_DIFF && m->ops->jvp)
        return quadform_directional(m, p, n, x, t, K, v, 0, q);
    if (method != SDFLOW_DIV_FINITE_DIFF && m->ops->jacobian)
        return quadform_jacobian(m, p, n, x, t, K, v, q);
    return quadform_directional(m, p, n, x, t, K, v, 1, q);
}

sdflow_status sdflow__model_score_and_quadform(sdflow_model *m, const sdflow_process *p, size_t n,
                                               const double *x, const double *t, size_t K, const double *v,
                                               int method, double *score, double *q, const size_t *rows)
{
    sdflow_status st = check_method(m, method, 1);
    if (st)
        return st;
    if (method == SDFLOW_DIV_FINITE_DIFF || !m->ops->eval_quadform) {
        st = sdflow__model_eval_rows(m, p, n, x, t, SDFLOW_OUT_SCORE, score, rows);
        return st ? st : sdflow__model_score_quadform(m, p, n, x, t, K, v, method, q);
    }
    if ((st = m->ops->eval_quadform(m, p, n, x, t, K, v, score, q)))
        return st;
    return quadform_to_score(m, p, n, x, t, K, v, score, q, rows);
}

/* Central differences along the d axes: one batch of 2 d rows per point. */
static sdflow_status divergence_fd(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                   const double *t, double *div)
{
    size_t d = m->d, block = sdflow__deriv_block_rows(n, 4 * d * d);
    size_t rows = block * 2 * d;
    double *xr = sdflow__alloc_array(m->ctx, rows, d * sizeof(double), "shifted points");
    double *tr = xr ? sdflow__alloc_array(m->ctx, rows, sizeof(double), "shifted times") : NULL;
    double *out = tr ? sdflow__alloc_array(m->ctx, rows, d * sizeof(double), "shifted scores") : NULL;
    sdflow_status st = out ? SDFLOW_OK : SDFLOW_E_NOMEM;
    const double c = cbrt(DBL_EPSILON);
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block;
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++)
                for (int sgn = 0; sgn < 2; sgn++) {
                    size_t r = (i * d + j) * 2 + (size_t)sgn;
                    const double *xi = x + (i0 + i) * d;
                    double h = c * (1.0 + fabs(xi[j]));
                    memcpy(xr + r * d, xi, d * sizeof(double));
                    xr[r * d + j] += sgn ? -h : h;
                    tr[r] = t[i0 + i];
                }
        st = sdflow_model_eval(m, p, nb * 2 * d, xr, tr, SDFLOW_OUT_SCORE, out);
        for (size_t i = 0; i < nb && !st; i++) {
            double acc = 0;
            for (size_t j = 0; j < d; j++) {
                size_t r = (i * d + j) * 2;
                double xj = x[(i0 + i) * d + j], h = c * (1.0 + fabs(xj));
                /* the step actually taken, so rounding of x +- h does not bias the quotient */
                acc += (out[r * d + j] - out[(r + 1) * d + j]) / ((xj + h) - (xj - h));
            }
            div[i0 + i] = acc;
        }
    }
    sdflow__free(m->ctx, xr);
    sdflow__free(m->ctx, tr);
    sdflow__free(m->ctx, out);
    return st;
}

sdflow_status sdflow__model_score_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                             const double *t, int method, double *div)
{
    sdflow_status st = check_method(m, method, 0);
    if (st)
        return st;
    if (method != SDFLOW_DIV_FINITE_DIFF && sdflow__model_has_derivatives(m))
        return sdflow_model_divergence(m, p, n, x, t, div);
    return divergence_fd(m, p, n, x, t, div);
}

sdflow_status sdflow__model_score_and_divergence(sdflow_model *m, const sdflow_process *p, size_t n,
                                                 const double *x, const double *t, int method, double *score,
                                                 double *div, const size_t *rows)
{
    sdflow_status st = check_method(m, method, 0);
    if (st)
        return st;
    if (method == SDFLOW_DIV_FINITE_DIFF || !m->ops->eval_div) {
        st = sdflow__model_eval_rows(m, p, n, x, t, SDFLOW_OUT_SCORE, score, rows);
        return st ? st : sdflow__model_score_divergence(m, p, n, x, t, method, div);
    }
    if ((st = m->ops->eval_div(m, p, n, x, t, score, div)))
        return st;
    size_t d = m->d;
    for (size_t i = 0; i < n && m->native != SDFLOW_OUT_SCORE; i++) {
        sdflow__affine a;
        if ((st = sdflow__model_conversion_at(m, p, t[i], m->native, SDFLOW_OUT_SCORE, &a)))
            return st;
        for (size_t j = 0; j < d; j++)
            score[i * d + j] = a.a * score[i * d + j] + a.b * x[i * d + j];
        div[i] = a.a * div[i] + a.b * (double)d;
    }
    if ((st = sdflow__check_rows(m->ctx, score, n, d, rows, "model output")))
        return st;
    return sdflow__check_rows(m->ctx, div, n, 1, rows, "divergence");
}
