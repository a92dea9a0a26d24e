/* SPDX-License-Identifier: MIT */
/* The MLP's layer products C (m x n) (+)= A (m x k) B (k x n): row blocks of
 * 16 rows against a 128 x 128 layer (docs/mlp.md, "Performance").
 *
 * Why not cblas_dgemm for these: OpenBLAS 0.3.21 has a small-matrix path
 * (no packing) on SkylakeX only. Elsewhere (measured on AMD Zen, AVX2) every
 * 16 x 128 x 128 call packs the 128 x 128 weight panel again, which cost as
 * much as a third of the multiply: 21.7 GFLOP/s for the call against 43.2
 * for the register-blocked loop below on one core (bench: OpenBLAS's DSM
 * step spent 15 % of its time in dgemm_itcopy). Larger row blocks would
 * amortize the packing but cross OpenBLAS's threading threshold
 * (m n k > 2^18), where its pool starts competing with the ctx's threads.
 *
 * The AVX2 + FMA kernel keeps a 4 x 12 tile of C in 12 registers and runs
 * the whole inner dimension over it, in order p = 0..k-1, one FMA per
 * term, starting from zero; with acc the sum is then added to C (as a BLAS
 * with beta = 1 does). So every element of C is the same function of its
 * row of A and column of B wherever the row sits in a batch and whichever
 * thread runs it: the determinism the samplers promise holds by
 * construction, not by a BLAS's choice of kernel. Chosen by the CPU at the
 * call (the same on every call of one machine); without AVX2 and FMA the
 * products go to cblas_dgemm. */
#include <cblas.h>
#include "mlp_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SDFLOW__GEMM_AVX2 1

/* One MR x 4 NV tile (MR <= 4 rows, NV <= 3 vectors of 4 columns; with
 * masked, the last vector holds only mask's lanes): always inlined with
 * constant MR and NV, so the arrays below live in registers. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile(int MR, int NV, int masked, __m256i mask, size_t k, const double *a, size_t rsa, size_t csa, const double *b,
     size_t ldb, double *c, size_t ldc, int acc)
{
    __m256d s[4][3];
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            s[i][v] = _mm256_setzero_pd();
    for (size_t p = 0; p < k; p++, a += csa, b += ldb) {
        __m256d bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            bv[v] = masked && v == NV - 1 ? _mm256_maskload_pd(b + 4 * v, mask) : _mm256_loadu_pd(b + 4 * v);
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            __m256d x = _mm256_broadcast_sd(a + (size_t)i * rsa);
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++)
                s[i][v] = _mm256_fmadd_pd(x, bv[v], s[i][v]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) {
            double *cp = c + (size_t)i * ldc + 4 * v;
            int part = masked && v == NV - 1;
            __m256d r = s[i][v];
            if (acc)
                r = _mm256_add_pd(part ? _mm256_maskload_pd(cp, mask) : _mm256_loadu_pd(cp), r);
            if (part)
                _mm256_maskstore_pd(cp, mask, r);
            else
                _mm256_storeu_pd(cp, r);
        }
}

/* The rows of one column strip (NV vectors wide) in tiles of 4, then 1. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
strip(int NV, int masked, __m256i mask, size_t m, size_t k, const double *A, size_t rsa, size_t csa, const double *b,
      size_t ldb, double *c, size_t ldc, int acc)
{
    size_t i = 0;
    for (; i + 4 <= m; i += 4)
        tile(4, NV, masked, mask, k, A + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, acc);
    for (; i < m; i++)
        tile(1, NV, masked, mask, k, A + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, acc);
}

/* Columns 0..w-1 (w <= 12) of a strip of B (ldb) for the m rows of A: 12
 * columns as one 3-vector strip, else 8 and/or 4 columns and a masked
 * rest. The one place the column tails are split. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
cols(size_t m, size_t w, size_t k, const double *A, size_t rsa, size_t csa, const double *b, size_t ldb, double *c,
     size_t ldc, int acc)
{
    const __m256i all = _mm256_set1_epi64x(-1);
    if (w == 12) {
        strip(3, 0, all, m, k, A, rsa, csa, b, ldb, c, ldc, acc);
        return;
    }
    size_t o = 0;
    if (w >= 8) {
        strip(2, 0, all, m, k, A, rsa, csa, b, ldb, c, ldc, acc);
        o = 8;
    } else if (w >= 4) {
        strip(1, 0, all, m, k, A, rsa, csa, b, ldb, c, ldc, acc);
        o = 4;
    }
    if (o < w) {
        size_t r = w - o;
        __m256i mask = _mm256_setr_epi64x(-1, r > 1 ? -1 : 0, r > 2 ? -1 : 0, 0);
        strip(1, 1, mask, m, k, A, rsa, csa, b + o, ldb, c + o, ldc, acc);
    }
}

/* Two loop orders, the same arithmetic per element. With a B larger than
 * L1 (a layer's weights, 128 KB) each 12-column strip of B is kept hot
 * while every row tile passes over it. With a small B (the weight
 * gradients' 16-row activation block) the row tiles go outer, so C (the
 * 128 x 128 gradient, too big for L1) is walked row by row, in order,
 * where the hardware prefetcher follows it; column strips down C were
 * 1 KB-strided and stalled on it. */
__attribute__((target("avx2,fma"))) static void gemm_avx2(size_t m, size_t n, size_t k, const double *A, size_t rsa,
                                                         size_t csa, const double *B, size_t ldb, double *C,
                                                         size_t ldc, int acc)
{
    if (k * n * sizeof(double) <= 16384) {
        for (size_t i = 0; i < m;) {
            size_t mr = m - i >= 4 ? 4 : 1;
            for (size_t j = 0; j < n; j += 12)
                cols(mr, n - j < 12 ? n - j : 12, k, A + i * rsa, rsa, csa, B + j, ldb, C + i * ldc + j, ldc, acc);
            i += mr;
        }
        return;
    }
    for (size_t j = 0; j < n; j += 12)
        cols(m, n - j < 12 ? n - j : 12, k, A, rsa, csa, B + j, ldb, C + j, ldc, acc);
}

/* C (m x n) (+)= A B with B packed by sdflow__mlp_pack (kp rows, ntot
 * columns): strip j0 of 12 columns is kp x min(12, ntot - j0) contiguous at
 * P + j0 kp, so a strip stays in L1 while every row tile passes over it
 * (rows of a layer's weights 1 KB apart did not: measured +15 % on
 * 16 x 120 x 128 with the weights out of cache). n <= ntot columns, k <= kp
 * rows are used. */
__attribute__((target("avx2,fma"))) static void gemm_avx2_packed(size_t m, size_t n, size_t k, const double *A,
                                                                size_t lda, const double *P, size_t kp,
                                                                size_t ntot, double *C, size_t ldc, int acc)
{
    for (size_t j = 0; j < n; j += 12)
        cols(m, n - j < 12 ? n - j : 12, k, A, lda, 1, P + j * kp, ntot - j < 12 ? ntot - j : 12, C + j, ldc, acc);
}
#endif

int sdflow__mlp_gemm_native(void)
{
#ifdef SDFLOW__GEMM_AVX2
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void sdflow__mlp_gemm_blas(int transa, size_t m, size_t n, size_t k, const double *A, size_t lda, const double *B,
                           size_t ldb, double *C, size_t ldc, int acc)
{
    if (m == 0 || n == 0)
        return;
    cblas_dgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, A,
                (int)lda, B, (int)ldb, acc ? 1.0 : 0.0, C, (int)ldc);
}

void sdflow__mlp_gemm(int transa, size_t m, size_t n, size_t k, const double *A, size_t lda, const double *B,
                      size_t ldb, double *C, size_t ldc, int acc)
{
#ifdef SDFLOW__GEMM_AVX2
    if (sdflow__mlp_gemm_native()) {
        gemm_avx2(m, n, k, A, transa ? 1 : lda, transa ? lda : 1, B, ldb, C, ldc, acc);
        return;
    }
#endif
    sdflow__mlp_gemm_blas(transa, m, n, k, A, lda, B, ldb, C, ldc, acc);
}

void sdflow__mlp_pack(size_t k, size_t n, const double *src, size_t rs, size_t cs, double *P, size_t j_lo, size_t j_hi)
{
    if (j_hi > n)
        j_hi = n;
    if (!sdflow__mlp_gemm_native()) { /* the fallback's operand: B row-major, ld n */
        for (size_t p = 0; p < k; p++)
            for (size_t j = j_lo; j < j_hi; j++)
                P[p * n + j] = src[p * rs + j * cs];
        return;
    }
    for (size_t j0 = j_lo; j0 < j_hi; j0 += 12) {
        size_t lds = n - j0 < 12 ? n - j0 : 12;
        double *s = P + j0 * k;
        if (cs == 1)
            for (size_t p = 0; p < k; p++)
                for (size_t jj = 0; jj < lds; jj++)
                    s[p * lds + jj] = src[p * rs + j0 + jj];
        else /* from the transpose: read along src's rows (jj), write 12 strided streams */
            for (size_t jj = 0; jj < lds; jj++)
                for (size_t p = 0; p < k; p++)
                    s[p * lds + jj] = src[p * rs + (j0 + jj) * cs];
    }
}

void sdflow__mlp_gemm_packed(size_t m, size_t n, size_t k, const double *A, size_t lda, const double *P, size_t kp,
                             size_t ntot, double *C, size_t ldc, int acc)
{
    if (m == 0 || n == 0)
        return;
#ifdef SDFLOW__GEMM_AVX2
    if (sdflow__mlp_gemm_native()) {
        gemm_avx2_packed(m, n, k, A, lda, P, kp, ntot, C, ldc, acc);
        return;
    }
#endif
    (void)kp;
    sdflow__mlp_gemm_blas(0, m, n, k, A, lda, P, ntot, C, ldc, acc);
}
