/* SPDX-License-Identifier: MIT */
/**
 * @file coupling.h
 * @brief Couplings of two batches (x0 from the base, x1 from the data) for
 *        interpolant training: independent, exact minibatch optimal
 *        transport (linear assignment) and entropic OT (log-domain Sinkhorn).
 *
 * An exact OT plan between two batches of equal size with uniform weights is
 * a permutation (Birkhoff): sdflow_coupling_pair() returns it directly, so
 * every x0 and every x1 row is used exactly once. (Sampling index pairs from
 * that plan with replacement, as torchcfm's OTPlanSampler does, duplicates
 * some pairs and drops others.) The entropic plan is not a permutation; its
 * pairs draw, for each x0 row i, one x1 row from the plan's row i (so x0 rows
 * are still used once and the pair law is the plan).
 *
 * Costs are squared Euclidean distances |x0_i - x1_j|^2. Assignment is
 * O(n^3) time and O(n^2) memory (Jonker-Volgenant shortest augmenting
 * paths); Sinkhorn is O(n m) per iteration.
 *
 * Thread safety: the functions keep no state; they are safe on a shared ctx
 * except for the error message on failure.
 */
#ifndef SDFLOW_COUPLING_H
#define SDFLOW_COUPLING_H

#include "ctx.h"

SDFLOW_BEGIN_DECLS

/** How x0 and x1 rows of a batch are paired (sdflow_coupling_pair, and the
 *  interpolant trainer option of the same name). */
typedef enum sdflow_coupling {
    SDFLOW_COUPLING_INDEPENDENT = 0, /**< pair[i] = i: the product coupling (default) */
    SDFLOW_COUPLING_OT_EXACT = 1,    /**< minibatch OT: the optimal permutation of the batch */
    SDFLOW_COUPLING_OT_SINKHORN = 2  /**< entropic OT plan, one x1 row drawn per x0 row */
} sdflow_coupling;

/** Exact linear assignment: the permutation @p perm (n entries) minimizing
 *  sum_i cost[i * n + perm[i]] over all permutations, for a finite n x n
 *  cost matrix; @p total (may be NULL) receives that minimum. Ties resolve
 *  deterministically. O(n^3). */
SDFLOW_API sdflow_status sdflow_assignment(sdflow_ctx *ctx, size_t n, const double *cost, size_t *perm,
                                           double *total);

/** Entropic OT between uniform weights on n rows and m columns of the finite
 *  cost matrix (n x m): the plan P (n x m, sum 1) minimizing
 *  <P, C> - eps H(P), by Sinkhorn iterations on the dual potentials in the
 *  log domain (stable for any eps > 0 relative to the costs). Iterates until
 *  the row-marginal L1 error is <= @p tol or @p max_iter iterations (then
 *  SDFLOW_E_NUMERIC with the error reached; the plan is still written).
 *  @p marginal_err (may be NULL) receives the final L1 error. */
SDFLOW_API sdflow_status sdflow_sinkhorn(sdflow_ctx *ctx, size_t n, size_t m, const double *cost, double eps,
                                         long max_iter, double tol, double *plan, double *marginal_err);

/** Pairs the rows of x0 (n x d) with rows of x1 (n x d): x0 row i goes with
 *  x1 row pair[i]. INDEPENDENT: identity; OT_EXACT: the assignment of the
 *  squared-distance costs (a permutation); OT_SINKHORN: pair[i] drawn from
 *  row i of the entropic plan with regularization @p eps times the mean
 *  cost (scale-free; 0.05 is a common choice), the draw of row i keyed by
 *  (ctx seed, @p stream, @p first_index + i). @p eps is ignored by the other
 *  kinds. @p cost_out (may be NULL) receives the mean paired cost
 *  (1/n) sum_i |x0_i - x1_pair[i]|^2. */
SDFLOW_API sdflow_status sdflow_coupling_pair(sdflow_ctx *ctx, sdflow_coupling kind, size_t n, size_t d,
                                              const double *x0, const double *x1, double eps, uint64_t stream,
                                              uint64_t first_index, size_t *pair, double *cost_out);

SDFLOW_END_DECLS
#endif
