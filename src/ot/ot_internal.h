/* SPDX-License-Identifier: MIT */
/* Internal: the OT solvers behind include/sdflow/coupling.h, without the
 * public argument checks, for the couplings of the interpolant trainer and
 * sampler tests. Inputs are valid and finite; work arrays come from ctx. */
#ifndef SDFLOW_OT_INTERNAL_H
#define SDFLOW_OT_INTERNAL_H

#include "ctx_internal.h"

/* Optimal assignment of the n x n cost (assignment.c): perm[i] = column of
 * row i; total = the minimum cost. SDFLOW_E_NOMEM only. */
sdflow_status sdflow__assignment(sdflow_ctx *ctx, size_t n, const double *cost, size_t *perm, double *total);

/* Log-domain Sinkhorn (sinkhorn.c) with uniform weights; the plan's rows
 * are exact after every iteration (the last update is the row potential).
 * *err = column-marginal L1 error reached; *iters = iterations run. */
sdflow_status sdflow__sinkhorn(sdflow_ctx *ctx, size_t n, size_t m, const double *cost, double eps, long max_iter,
                               double tol, double *plan, double *err, long *iters);

#endif
