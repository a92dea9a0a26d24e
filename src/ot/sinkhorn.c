/* SPDX-License-Identifier: MIT */
/* Entropic OT between uniform weights by Sinkhorn iterations on the dual
 * potentials in the log domain (Peyre & Cuturi 2019, §4.4): every update is
 * a log-sum-exp, so small eps relative to the costs neither under- nor
 * overflows, unlike the scaling form K = exp(-C/eps). */
#include <math.h>
#include "ot_internal.h"

/* -eps log sum_k exp((w_k - c_k)/eps) over k with strides: a soft minimum. */
static double soft_min(size_t len, const double *w, const double *c, size_t cstride, double eps)
{
    double mx = -INFINITY;
    for (size_t k = 0; k < len; k++)
        mx = fmax(mx, (w[k] - c[k * cstride]) / eps);
    double s = 0;
    for (size_t k = 0; k < len; k++)
        s += exp((w[k] - c[k * cstride]) / eps - mx);
    return -eps * (mx + log(s));
}

sdflow_status sdflow__sinkhorn(sdflow_ctx *ctx, size_t n, size_t m, const double *cost, double eps, long max_iter,
                               double tol, double *plan, double *err, long *iters)
{
    double *f = sdflow__calloc_array(ctx, n, sizeof(double), "row potentials");
    double *g = sdflow__calloc_array(ctx, m, sizeof(double), "column potentials");
    if (!f || !g) {
        sdflow__free(ctx, f);
        sdflow__free(ctx, g);
        return SDFLOW_E_NOMEM;
    }
    /* P_ij = exp((f_i + g_j - C_ij)/eps); the potentials absorb log a, log b */
    double la = log((double)n), lb = log((double)m), e = INFINITY;
    long it = 0;
    while (it < max_iter && !(e <= tol)) {
        it++;
        for (size_t j = 0; j < m; j++)
            g[j] = soft_min(n, f, cost + j, m, eps) - eps * lb;
        for (size_t i = 0; i < n; i++)
            f[i] = soft_min(m, g, cost + i * m, 1, eps) - eps * la;
        /* rows are exact now; the columns measure convergence (every 8th
         * iteration and the last: the check costs as much as an update) */
        if (it % 8 != 0 && it != max_iter && it != 1)
            continue;
        e = 0;
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += exp((f[i] + g[j] - cost[i * m + j]) / eps);
            e += fabs(s - 1.0 / (double)m);
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++)
            plan[i * m + j] = exp((f[i] + g[j] - cost[i * m + j]) / eps);
    sdflow__free(ctx, f);
    sdflow__free(ctx, g);
    *err = e;
    *iters = it;
    return SDFLOW_OK;
}

sdflow_status sdflow_sinkhorn(sdflow_ctx *ctx, size_t n, size_t m, const double *cost, double eps, long max_iter,
                              double tol, double *plan, double *marginal_err)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, m);
    if (st || (st = sdflow__check_finite(ctx, cost, n, m, "cost")) || (st = sdflow__check_ptr(ctx, plan, "plan")))
        return st;
    if (!(eps > 0) || !isfinite(eps))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "eps=%g must be finite and > 0", eps);
    if (max_iter < 1)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "max_iter=%ld must be >= 1", max_iter);
    if (!(tol >= 0) || !isfinite(tol))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "tol=%g must be finite and >= 0", tol);
    double e;
    long it;
    if ((st = sdflow__sinkhorn(ctx, n, m, cost, eps, max_iter, tol, plan, &e, &it)))
        return st;
    if (marginal_err)
        *marginal_err = e;
    if ((st = sdflow__check_result(ctx, plan, n, m, "Sinkhorn plan")))
        return st;
    if (!(e <= tol))
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "Sinkhorn: marginal error %g > tol=%g after %ld iterations", e,
                            tol, it);
    return SDFLOW_OK;
}
