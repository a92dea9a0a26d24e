/* SPDX-License-Identifier: MIT */
/* Velocity fields and their derivatives (divergence, probe quadratic forms)
 * for interpolant flows: a velocity-native model directly, valid on the
 * closed interval of an interpolant, else the score through the process. */
#include <math.h>
#include <string.h>
#include "model_internal.h"

/* q[i K + k] = u_ik^T J u_ik of the native output along K directions per row:
 * through the JVP op, the Jacobian op, or central differences (fd). */
static sdflow_status native_quadform(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                     const double *t, size_t K, const double *u, int fd, double *q)
{
    sdflow_ctx *ctx = m->ctx;
    size_t d = m->d;
    int jac = !fd && !m->ops->jvp;
    size_t block = sdflow__deriv_block_rows(n, jac ? d * d : 4 * K * d), rows = jac ? block : block * K;
    double *xr = sdflow__alloc_array(ctx, rows, 2 * d * sizeof(double), "replicated points");
    double *tr = xr ? sdflow__alloc_array(ctx, rows, 2 * sizeof(double), "replicated times") : NULL;
    double *out = tr ? sdflow__alloc_array(ctx, rows, (jac ? d * d : 2 * d) * sizeof(double), "directional derivatives")
                     : NULL;
    double *hs = out ? sdflow__alloc_array(ctx, rows, sizeof(double), "difference steps") : NULL;
    sdflow_status st = hs ? SDFLOW_OK : SDFLOW_E_NOMEM;
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block, nr = nb * K;
        if (jac) {
            if ((st = m->ops->jacobian(m, p, nb, x + i0 * d, t + i0, out)))
                break;
            for (size_t i = 0; i < nb; i++)
                for (size_t k = 0; k < K; k++) {
                    const double *J = out + i * d * d, *uk = u + ((i0 + i) * K + k) * d;
                    double acc = 0;
                    for (size_t a = 0; a < d; a++) {
                        double row = 0;
                        for (size_t b = 0; b < d; b++)
                            row += J[a * d + b] * uk[b];
                        acc += uk[a] * row;
                    }
                    q[(i0 + i) * K + k] = acc;
                }
            continue;
        }
        sdflow__deriv_points(d, K, x, t, u, i0, nb, fd, xr, tr, hs); /* the steps of derivatives.c */
        if (fd)
            st = sdflow_model_eval(m, p, 2 * nr, xr, tr, m->native, out);
        else if (!(st = m->ops->jvp(m, p, nr, xr, tr, u + i0 * K * d, out)))
            st = sdflow__check_result(ctx, out, nr, d, "Jacobian-vector product");
        for (size_t r = 0; r < nr && !st; r++) {
            const double *ur = u + (i0 * K + r) * d;
            double acc = 0;
            for (size_t j = 0; j < d; j++)
                acc += ur[j] * (fd ? out[r * d + j] - out[(nr + r) * d + j] : out[r * d + j]);
            q[i0 * K + r] = fd ? acc / (2.0 * hs[r]) : acc;
        }
    }
    sdflow__free(ctx, xr);
    sdflow__free(ctx, tr);
    sdflow__free(ctx, out);
    sdflow__free(ctx, hs);
    return st;
}

static int has_exact(const sdflow_model *m, int div)
{
    return m->ops->jvp || m->ops->jacobian || m->ops->eval_quadform || (div && (m->ops->eval_div || m->ops->divergence));
}

static sdflow_status check_method(sdflow_model *m, int method, int div)
{
    if (method < SDFLOW_DIV_AUTO || method > SDFLOW_DIV_FINITE_DIFF)
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "unknown divergence method %d", method);
    if (method == SDFLOW_DIV_ANALYTIC && !has_exact(m, div))
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED,
                            "a %s model has no exact derivatives (give a callback model a JVP with "
                            "sdflow_model_set_callback_jvp, or use SDFLOW_DIV_FINITE_DIFF)",
                            sdflow_model_kind_name(m->kind));
    return SDFLOW_OK;
}

/* Score-like models: v = f x - g^2/2 s with the coefficients of each row's time. */
static sdflow_status coef_at(sdflow_model *m, const sdflow_process *p, double t, sdflow__coef *c)
{
    sdflow__process_coef(p, t, c);
    if (!isfinite(c->f) || !isfinite(c->g2))
        return sdflow__fail(m->ctx, SDFLOW_E_NUMERIC,
                            "the velocity of a %s model (native output %d) is undefined at t = %g (f or g^2 infinite: "
                            "an interpolant's base end); start at t > 0 or use a velocity model",
                            sdflow_model_kind_name(m->kind), (int)m->native, t);
    return SDFLOW_OK;
}

sdflow_status sdflow__model_velocity_and_divergence(sdflow_model *m, const sdflow_process *p, size_t n,
                                                    const double *x, const double *t, int method, double *v,
                                                    double *div)
{
    sdflow_status st = check_method(m, method, 1);
    if (st)
        return st;
    size_t d = m->d;
    if (m->native != SDFLOW_OUT_VELOCITY) {
        if ((st = sdflow__model_score_and_divergence(m, p, n, x, t, method, v, div, NULL)))
            return st;
        for (size_t i = 0; i < n; i++) {
            sdflow__coef c;
            if ((st = coef_at(m, p, t[i], &c)))
                return st;
            for (size_t j = 0; j < d; j++)
                v[i * d + j] = c.f * x[i * d + j] - 0.5 * c.g2 * v[i * d + j];
            div[i] = (double)d * c.f - 0.5 * c.g2 * div[i];
        }
        if ((st = sdflow__check_result(m->ctx, v, n, d, "velocity")))
            return st;
        return sdflow__check_result(m->ctx, div, n, 1, "velocity divergence");
    }
    int fd = method == SDFLOW_DIV_FINITE_DIFF || !has_exact(m, 1);
    if (!fd && m->ops->eval_div) {
        if ((st = sdflow__model_check_eval_args(m, p, n, x, t, v, "velocity")) ||
            (st = m->ops->eval_div(m, p, n, x, t, v, div)))
            return st;
    } else {
        if ((st = sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_VELOCITY, v)))
            return st;
        if (!fd && m->ops->divergence) {
            st = m->ops->divergence(m, p, n, x, t, div);
        } else {
            /* trace as the sum of e_j^T J e_j over the d axes */
            if (!sdflow__size_ok(n, d * d))
                return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "n=%zu rows of d=%zu overflow size_t", n, d);
            double *e = sdflow__calloc_array(m->ctx, n, d * d * sizeof(double), "unit directions");
            double *q = e ? sdflow__alloc_array(m->ctx, n, d * sizeof(double), "axis derivatives") : NULL;
            st = q ? SDFLOW_OK : SDFLOW_E_NOMEM;
            if (!st) {
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < d; j++)
                        e[(i * d + j) * d + j] = 1.0;
                st = native_quadform(m, p, n, x, t, d, e, fd, q);
                for (size_t i = 0; i < n && !st; i++) {
                    double s = 0;
                    for (size_t j = 0; j < d; j++)
                        s += q[i * d + j];
                    div[i] = s;
                }
            }
            sdflow__free(m->ctx, e);
            sdflow__free(m->ctx, q);
        }
        if (st)
            return st;
    }
    if ((st = sdflow__check_result(m->ctx, v, n, d, "velocity")))
        return st;
    return sdflow__check_result(m->ctx, div, n, 1, "velocity divergence");
}

sdflow_status sdflow__model_velocity_and_quadform(sdflow_model *m, const sdflow_process *p, size_t n,
                                                  const double *x, const double *t, size_t K, const double *u,
                                                  int method, double *v, double *q)
{
    sdflow_status st = check_method(m, method, 0);
    if (st)
        return st;
    size_t d = m->d;
    if (m->native != SDFLOW_OUT_VELOCITY) {
        if ((st = sdflow__model_score_and_quadform(m, p, n, x, t, K, u, method, v, q, NULL)))
            return st;
        for (size_t i = 0; i < n; i++) {
            sdflow__coef c;
            if ((st = coef_at(m, p, t[i], &c)))
                return st;
            for (size_t j = 0; j < d; j++)
                v[i * d + j] = c.f * x[i * d + j] - 0.5 * c.g2 * v[i * d + j];
            for (size_t k = 0; k < K; k++) {
                const double *uk = u + (i * K + k) * d;
                double uu = 0;
                for (size_t j = 0; j < d; j++)
                    uu += uk[j] * uk[j];
                q[i * K + k] = c.f * uu - 0.5 * c.g2 * q[i * K + k];
            }
        }
    } else if (method != SDFLOW_DIV_FINITE_DIFF && m->ops->eval_quadform) {
        if ((st = sdflow__model_check_eval_args(m, p, n, x, t, v, "velocity")) ||
            (st = m->ops->eval_quadform(m, p, n, x, t, K, u, v, q)))
            return st;
    } else {
        if ((st = sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_VELOCITY, v)))
            return st;
        int fd = method == SDFLOW_DIV_FINITE_DIFF || !(m->ops->jvp || m->ops->jacobian);
        if ((st = native_quadform(m, p, n, x, t, K, u, fd, q)))
            return st;
    }
    if ((st = sdflow__check_result(m->ctx, v, n, d, "velocity")))
        return st;
    return sdflow__check_result(m->ctx, q, n, K, "velocity quadratic form");
}
