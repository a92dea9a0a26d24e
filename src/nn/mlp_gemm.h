/* SPDX-License-Identifier: MIT */
/* The MLP's layer products (mlp_gemm.c). */
#ifndef SDFLOW_MLP_GEMM_H
#define SDFLOW_MLP_GEMM_H
#include <stddef.h>

/* C (m x n, row-major, ldc) = A B, or C += A B with acc; B row-major k x n
 * (ldb); A row-major m x k (lda) or, with transa, stored as its transpose
 * k x m (A(i, p) = A[p lda + i]). Each element of C sums its k products in
 * order from zero (then adds C with acc): its bits do not depend on m, on
 * the element's position or on the thread. k = 0 gives C = 0 (or C). */
void sdflow__mlp_gemm(int transa, size_t m, size_t n, size_t k, const double *A, size_t lda, const double *B,
                      size_t ldb, double *C, size_t ldc, int acc);

/* The same product through cblas_dgemm (the fallback; also for the check). */
void sdflow__mlp_gemm_blas(int transa, size_t m, size_t n, size_t k, const double *A, size_t lda, const double *B,
                           size_t ldb, double *C, size_t ldc, int acc);

/* B (k x n, B(p, j) = src[p rs + j cs]) packed for sdflow__mlp_gemm_packed
 * into P (k n doubles): strips of 12 columns, each k x min(12, n - j0)
 * contiguous at P + j0 k (row-major B, ld n, on the cblas fallback). Only
 * columns [j_lo, j_hi) (j_lo a multiple of 12), so threads can share it. */
void sdflow__mlp_pack(size_t k, size_t n, const double *src, size_t rs, size_t cs, double *P, size_t j_lo,
                      size_t j_hi);

/* C (m x n) (+)= A B, A row-major (lda), B packed by sdflow__mlp_pack with
 * kp rows and ntot columns; uses its first k <= kp rows and n <= ntot
 * columns. The same sums as sdflow__mlp_gemm (the bits do not depend on
 * the packing). */
void sdflow__mlp_gemm_packed(size_t m, size_t n, size_t k, const double *A, size_t lda, const double *P, size_t kp,
                             size_t ntot, double *C, size_t ldc, int acc);

/* 1 when this CPU runs the library's own kernel (AVX2 + FMA), 0 when the
 * products go to cblas_dgemm. */
int sdflow__mlp_gemm_native(void);

#endif
