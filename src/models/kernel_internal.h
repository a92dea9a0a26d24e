/* SPDX-License-Identifier: MIT */
/* Internal: the blocked kernel-sum engine behind the kernel model, shared
 * with the SD-flow sampler (which needs m_Y(x) - m_X(x) directly, never two
 * separately formed scores). See algorithms.md section 11. */
#ifndef SDFLOW_KERNEL_INTERNAL_H
#define SDFLOW_KERNEL_INTERNAL_H

#include "model_internal.h"

/* From this dimension up the cross terms go through cblas_dgemm; below it a
 * fused direct loop is faster (a GEMM with inner size 2 runs at 3 GFLOP/s;
 * measured crossover between d = 16 and 24 on 2 cores). */
#define SDFLOW__KERNEL_GEMM_D 12

/* A reference set prepared for kernel sums, its rows centred at c (centring
 * keeps the GEMM expansion |x|^2 + |y|^2 - 2 x.y accurate). */
typedef struct sdflow__kref {
    size_t m, d;
    double *c;  /* d: centre (mean of the rows) */
    double *y;  /* m x d centred rows (GEMM path, d >= SDFLOW__KERNEL_GEMM_D), else NULL */
    double *hy; /* m: |y_j|^2 / 2 (GEMM path), else NULL */
    double *yt; /* d x m centred, transposed (fused path, d < SDFLOW__KERNEL_GEMM_D), else NULL */
} sdflow__kref;

/* Allocates the buffers of an m x d reference set (zeroed struct on failure). */
sdflow_status sdflow__kref_init(sdflow_ctx *ctx, sdflow__kref *r, size_t m, size_t d);
/* Fills r from m x d rows; the centre is their mean. */
void sdflow__kref_set(sdflow__kref *r, const double *rows, int nt);
/* Fills r from m x d rows already centred at centre (d): no recentring, so
 * a saved reference set is restored bit for bit. */
void sdflow__kref_set_centred(sdflow__kref *r, const double *centre, const double *rows, int nt);
void sdflow__kref_free(sdflow_ctx *ctx, sdflow__kref *r);
/* Centred coordinate k of reference j. */
static inline double sdflow__kref_at(const sdflow__kref *r, size_t j, size_t k)
{
    return r->yt ? r->yt[k * r->m + j] : r->y[j * r->d + k];
}

/* Doubles of workspace sdflow__kernel_sums needs for these sizes. */
size_t sdflow__kernel_work_size(size_t d, size_t bq, size_t by, int nt);

/* Partial sums of n queries q (n x d, centred by r->c) against all of r:
 * with logits l_ij = -beta_i |q_i - y_j|^2 / 2 (beta_i = beta[i], or beta0
 * when beta is NULL) it writes mx[i] = max_j l_ij, s[i] = sum_j e^(l_ij - mx),
 * v[i] = sum_j e^(l_ij - mx) y_j (d, centred frame). self_off >= 0 skips the
 * pair j = i + self_off (leave-one-out). Rows are independent and summed in
 * a fixed order, so results do not depend on nt. GEMMs (d >= 12) follow
 * the BLAS policy of ctx (SDFLOW_CTX_BLAS_POOL). */
void sdflow__kernel_sums(const sdflow_ctx *ctx, const sdflow__kref *r, size_t n, const double *q, const double *beta,
                         double beta0, long self_off, size_t bq, size_t by, int nt, double *work, double *mx, double *s,
                         double *v);

/* Nearest and farthest squared distances from n points x (n x d, data
 * coordinates) to the references of r; self_idx (NULL: none) names for each
 * point a reference to skip. Blocked direct loops, parallel over rows.
 * far2 may be NULL. */
void sdflow__kernel_nn(const sdflow__kref *r, size_t n, const double *x, const size_t *self_idx, int nt, double *nn2,
                       double *far2);

/* A kernel model from m x d rows yc centred at centre (d), as a file saved
 * them (sdflow__kref_at gives them back): evaluates bit-identically to the
 * model that was saved. Same checks as sdflow_model_create_kernel. */
sdflow_status sdflow__model_create_kernel_centred(sdflow_ctx *ctx, size_t m, size_t d, const double *centre,
                                                  const double *yc, sdflow_model **out);
/* The kernel model's reference set, or NULL when m is not a kernel model. */
const sdflow__kref *sdflow__kernel_ref(const sdflow_model *m);

/* Vectorizable exp: <= 2 ulp on [-708, 709], 0 below -708 (and for -inf). */
double sdflow__kernel_exp1(double x);

#endif
