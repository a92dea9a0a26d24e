/* SPDX-License-Identifier: MIT */
/* Pairing of a batch of base draws x0 with data draws x1 (independent,
 * exact minibatch OT, entropic OT): the coupling step of interpolant
 * training (algorithms.md §8; Tong et al. 2023, Pooladian et al. 2023). */
#include <math.h>
#include "ot_internal.h"

/* Sinkhorn budget of the pairing: the rows of the plan are exact after every
 * iteration, so a plan whose columns have not converged still draws each
 * pair from the conditional of its x0 row; only the x1 marginal is off by the
 * reported column error. */
#define PAIR_SINKHORN_ITERS 2000
#define PAIR_SINKHORN_TOL 1e-6

sdflow_status sdflow_coupling_pair(sdflow_ctx *ctx, sdflow_coupling kind, size_t n, size_t d, const double *x0,
                                   const double *x1, double eps, uint64_t stream, uint64_t first_index, size_t *pair,
                                   double *cost_out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_finite(ctx, x0, n, d, "x0")) || (st = sdflow__check_finite(ctx, x1, n, d, "x1")) ||
        (st = sdflow__check_ptr(ctx, pair, "pair")))
        return st;
    if (kind != SDFLOW_COUPLING_INDEPENDENT && kind != SDFLOW_COUPLING_OT_EXACT && kind != SDFLOW_COUPLING_OT_SINKHORN)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "unknown coupling %d", (int)kind);
    if (kind == SDFLOW_COUPLING_OT_SINKHORN && (!(eps > 0) || !isfinite(eps)))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "Sinkhorn coupling: eps=%g must be finite and > 0", eps);
    if (kind == SDFLOW_COUPLING_INDEPENDENT) {
        for (size_t i = 0; i < n; i++)
            pair[i] = i;
    } else {
        if (!sdflow__size_ok(n, n))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu: the n x n cost matrix overflows size_t", n);
        double *c = sdflow__alloc_array(ctx, n, n * sizeof(double), "OT cost matrix");
        double *plan = kind == SDFLOW_COUPLING_OT_SINKHORN && c
                           ? sdflow__alloc_array(ctx, n, n * sizeof(double), "Sinkhorn plan")
                           : NULL;
        if (!c || (kind == SDFLOW_COUPLING_OT_SINKHORN && !plan)) {
            sdflow__free(ctx, c);
            return SDFLOW_E_NOMEM;
        }
        /* squared distances from differences (no |x|^2 + |y|^2 - 2 x.y cancellation) */
        double mean = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double s = 0;
                for (size_t k = 0; k < d; k++) {
                    double z = x0[i * d + k] - x1[j * d + k];
                    s += z * z;
                }
                c[i * n + j] = s;
                mean += s;
            }
        mean /= (double)n * (double)n;
        if (!isfinite(mean))
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "coupling: squared distances overflow");
        else if (kind == SDFLOW_COUPLING_OT_EXACT)
            st = sdflow__assignment(ctx, n, c, pair, NULL);
        else {
            double e;
            long it;
            /* eps relative to the mean cost: the same eps works at any data scale */
            double ea = eps * (mean > 0 ? mean : 1.0);
            st = sdflow__sinkhorn(ctx, n, n, c, ea, PAIR_SINKHORN_ITERS, PAIR_SINKHORN_TOL, plan, &e, &it);
            for (size_t i = 0; i < n && !st; i++) {
                double u, s = 0, acc = 0;
                sdflow__rng_uniform_row(ctx->seed, stream, first_index + i, 0, 1, &u);
                const double *row = plan + i * n;
                for (size_t j = 0; j < n; j++)
                    s += row[j];
                /* inverse CDF of the row's conditional; the last column takes any rounding remainder */
                pair[i] = n - 1;
                for (size_t j = 0; j < n; j++) {
                    acc += row[j];
                    if (u * s < acc) {
                        pair[i] = j;
                        break;
                    }
                }
            }
        }
        sdflow__free(ctx, c);
        sdflow__free(ctx, plan);
        if (st)
            return st;
    }
    if (cost_out) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < d; k++) {
                double z = x0[i * d + k] - x1[pair[i] * d + k];
                s += z * z;
            }
        *cost_out = s / (double)n;
        if (!isfinite(*cost_out))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "coupling: mean paired cost overflows");
    }
    return SDFLOW_OK;
}
