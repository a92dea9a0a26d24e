/* SPDX-License-Identifier: MIT */
/**
 * @file metrics.h
 * @brief Two-sample distances: energy distance, MMD, sliced Wasserstein.
 *
 * X is m x d, Y is n x d (row-major). All pairwise distances are computed in
 * 256 x 256 tiles, so memory stays O(tile^2) per thread plus O(m + n) row
 * sums, whatever m and n are. Each function returns the statistic and, if
 * @p std_out is not NULL, an estimate of its standard deviation (plug-in
 * formulas, see docs/metrics.md). Results are invariant to the order of the
 * rows (up to rounding) and bit-identical for any SDFLOW_CTX_THREADS.
 *
 * All functions need m, n >= 2, d >= 1 and finite x, y; they fail with
 * SDFLOW_E_INVALID naming the bad argument, SDFLOW_E_NOMEM, or
 * SDFLOW_E_NUMERIC when the result overflows (inputs near DBL_MAX).
 */
#ifndef SDFLOW_METRICS_H
#define SDFLOW_METRICS_H

#include "ctx.h"

SDFLOW_BEGIN_DECLS

/** Unbiased energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistic; may be
 *  slightly negative when the distributions are equal). The std combines the
 *  leading term under P != Q and the exact term under P = Q.
 *  Cost O((m + n)^2 d). Thread safety: safe on a shared ctx, except for the
 *  error message on failure. */
SDFLOW_API sdflow_status sdflow_metric_energy(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                              const double *x, const double *y,
                                              double *value, double *std_out);
/** Unbiased squared MMD with Gaussian kernel exp(-|x-y|^2/(2 l^2)).
 *  @p bandwidth l > 0, or 0 for the median heuristic: l = the lower median of
 *  the pairwise distances of the pooled first 5000 rows of each sample
 *  (computed exactly; SDFLOW_E_NUMERIC if more than half of the pairs
 *  coincide). Std as for the energy distance. Cost O((m + n)^2 d), plus about
 *  two passes over the pooled pairs for the median.
 *  Thread safety: safe on a shared ctx, except for the error message on failure. */
SDFLOW_API sdflow_status sdflow_metric_mmd2(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                            const double *x, const double *y, double bandwidth,
                                            double *value, double *std_out);
/** Sliced Wasserstein-p, (mean over L random directions of W_p^p)^(1/p), with
 *  W_p^p of the projections integrated exactly over the merged quantile
 *  breakpoints (any m, n). Direction l is keyed by (seed, @p stream, l).
 *  @p p >= 1, @p directions >= 1 (>= 2 when @p std_out is requested: the std
 *  is the Monte Carlo error of the direction average, not the sampling error
 *  of X and Y). Cost O(L (m + n)(d + log(m + n))).
 *  Thread safety: safe on a shared ctx, except for the error message on failure. */
SDFLOW_API sdflow_status sdflow_metric_sliced_wasserstein(sdflow_ctx *ctx, size_t m, size_t n, size_t d,
                                                          const double *x, const double *y, double p,
                                                          long directions, uint64_t stream,
                                                          double *value, double *std_out);

SDFLOW_END_DECLS
#endif
