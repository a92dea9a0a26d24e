/**
 * @file metrics.h
 * @brief Two-sample distances: energy distance, MMD, sliced Wasserstein.
 *
 * X is m x d, Y is n x d (row-major). All pairwise distances are computed in
 * blocks, so memory stays O(block^2) whatever m and n are. Each function
 * returns the statistic and, if @p std_out is not NULL, an estimate of its
 * standard deviation (plug-in formula, see docs/metrics.md).
 *
 * Thread safety: safe on a shared ctx, except for the error message on failure.
 */
#ifndef SDFLOW_METRICS_H
#define SDFLOW_METRICS_H

#include "ctx.h"

SDFLOW_BEGIN_DECLS

/** Unbiased energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistic; may be
 *  slightly negative). Needs m, n >= 2. */
SDFLOW_API sdflow_status sdflow_metric_energy(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                              const double *x, const double *y,
                                              double *value, double *std_out);
/** Unbiased squared MMD with Gaussian kernel exp(-|x-y|^2/(2 l^2)).
 *  @p bandwidth l > 0, or 0 for the median heuristic over the pooled sample
 *  (first 5000 points of each). Needs m, n >= 2. */
SDFLOW_API sdflow_status sdflow_metric_mmd2(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                            const double *x, const double *y, double bandwidth,
                                            double *value, double *std_out);
/** Sliced Wasserstein-p, (mean over L random directions of W_p^p)^(1/p).
 *  Directions come from (seed, @p stream). @p p >= 1, @p directions >= 1. */
SDFLOW_API sdflow_status sdflow_metric_sliced_wasserstein(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                                          const double *x, const double *y, double p,
                                                          long directions, uint64_t stream,
                                                          double *value, double *std_out);

SDFLOW_END_DECLS
#endif
