/* SPDX-License-Identifier: MIT */
/* Internal check of the MLP's layer products (src/nn/mlp_gemm.c), linked
 * against the static library (the function is not exported). For every
 * shape m in {1..9, 16, 33, 128} x n in {1..13, 24, 64, 128} x k in {0, 1,
 * 2, 16, 66, 128} (every tile remainder of the 4 x 12 kernel), A plain and
 * transposed, C overwritten and accumulated:
 *   1. C against a long-double reference: |C - ref| <= (k + 2) u sum |a b|
 *      (+ u |C0| with acc), the bound of a k-term dot product with one
 *      rounding per FMA plus the final addition (u = 2^-53);
 *   2. the columns between n and ldc and the rows past m are not written
 *      (the masked tail stores);
 *   3. row independence, the determinism the samplers promise: each row of
 *      C computed alone (m = 1, the row's A at its own address) has the
 *      same bits as in the full call;
 *   4. 1 and 2 on the cblas_dgemm fallback too (3 is the kernel's own promise);
 *   5. the packed operand (sdflow__mlp_pack, from B and from its transpose,
 *      two threads' column ranges) with the first k of kp = k + 2 rows and
 *      n of ntot = n + 5 columns gives the same bits as the plain call.
 * Prints which path this CPU takes. Usage: gemm_check */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mlp_gemm.h"

static uint64_t st = 0x9e3779b97f4a7c15ull;
static double unif(void) /* [-1, 1), splitmix64 */
{
    uint64_t z = (st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return 2.0 * (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0 - 1.0;
}

static int fails;
enum { PAD = 3, SENT = 0 };
static const double sentinel = 12345.678;

typedef void (*gemm_fn)(int, size_t, size_t, size_t, const double *, size_t, const double *, size_t, double *,
                        size_t, int);

static void one(gemm_fn gemm, const char *path, int transa, int acc, size_t m, size_t n, size_t k)
{
    size_t lda = (transa ? m : k) + 1, ldb = n + 2, ldc = n + PAD, arows = transa ? k : m;
    double *A = malloc((arows ? arows : 1) * lda * sizeof *A), *B = malloc((k ? k : 1) * ldb * sizeof *B);
    double *C = malloc((m + 1) * ldc * sizeof *C), *C0 = malloc((m + 1) * ldc * sizeof *C0);
    double *row = malloc(ldc * sizeof *row);
    if (!A || !B || !C || !C0 || !row) {
        printf("gemm_check: out of memory\n");
        exit(1);
    }
    for (size_t q = 0; q < arows * lda; q++)
        A[q] = unif();
    for (size_t q = 0; q < k * ldb; q++)
        B[q] = unif();
    for (size_t q = 0; q < (m + 1) * ldc; q++)
        C0[q] = C[q] = (q % ldc) < n && q / ldc < m ? unif() : sentinel;
    gemm(transa, m, n, k, A, lda, B, ldb, C, ldc, acc);
    const double u = 0x1p-53;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            long double ref = acc ? C0[i * ldc + j] : 0.0L, mag = 0;
            for (size_t p = 0; p < k; p++) {
                double a = transa ? A[p * lda + i] : A[i * lda + p];
                ref += (long double)a * B[p * ldb + j];
                mag += fabsl((long double)a * B[p * ldb + j]);
            }
            double err = fabs((double)(C[i * ldc + j] - ref)),
                   tol = (double)((k + 2) * u * mag) + (acc ? u * fabs(C0[i * ldc + j]) : 0.0);
            if (!(err <= tol)) {
                if (fails++ < 10)
                    printf("FAIL %s transa=%d acc=%d m=%zu n=%zu k=%zu C[%zu,%zu]: err %.3g > %.3g\n", path, transa, acc, m,
                           n, k, i, j, err, tol);
            }
        }
    for (size_t q = 0; q < (m + 1) * ldc; q++)
        if (((q % ldc) >= n || q / ldc >= m) && C[q] != sentinel) {
            if (fails++ < 10)
                printf("FAIL %s transa=%d acc=%d m=%zu n=%zu k=%zu: wrote outside C at %zu\n", path, transa, acc, m, n, k, q);
            break;
        }
    /* each row alone: a transposed A's row i is column i, at A + i with the same lda */
    for (size_t i = 0; i < m && gemm == sdflow__mlp_gemm; i++) {
        memcpy(row, C0 + i * ldc, ldc * sizeof *row);
        sdflow__mlp_gemm(transa, 1, n, k, transa ? A + i : A + i * lda, lda, B, ldb, row, ldc, acc);
        if (memcmp(row, C + i * ldc, n * sizeof *row) != 0) {
            if (fails++ < 10)
                printf("FAIL %s transa=%d acc=%d m=%zu n=%zu k=%zu: row %zu alone differs\n", path, transa, acc, m, n, k, i);
            break;
        }
    }
    if (!transa && gemm == sdflow__mlp_gemm) {
        size_t kp = k + 2, nt = n + 5;
        double *Bb = malloc(kp * nt * sizeof *Bb), *Bt = malloc(kp * nt * sizeof *Bt), *P = malloc(kp * nt * sizeof *P);
        if (!Bb || !Bt || !P) {
            printf("gemm_check: out of memory\n");
            exit(1);
        }
        for (size_t q = 0; q < kp * nt; q++)
            Bb[q] = unif();
        for (size_t p = 0; p < kp; p++)
            for (size_t j = 0; j < nt; j++)
                Bt[j * kp + p] = Bb[p * nt + j];
        for (int from_t = 0; from_t < 2; from_t++) {
            size_t half = (nt + 11) / 12 / 2 * 12; /* a thread split at a strip boundary */
            const double *src = from_t ? Bt : Bb;
            size_t rs = from_t ? 1 : nt, cs = from_t ? kp : 1;
            sdflow__mlp_pack(kp, nt, src, rs, cs, P, 0, half);
            sdflow__mlp_pack(kp, nt, src, rs, cs, P, half, nt);
            memcpy(C, C0, (m + 1) * ldc * sizeof *C);
            double *ref = malloc((m + 1) * ldc * sizeof *ref);
            if (!ref) {
                printf("gemm_check: out of memory\n");
                exit(1);
            }
            memcpy(ref, C0, (m + 1) * ldc * sizeof *ref);
            sdflow__mlp_gemm(0, m, n, k, A, lda, Bb, nt, ref, ldc, acc);
            sdflow__mlp_gemm_packed(m, n, k, A, lda, P, kp, nt, C, ldc, acc);
            if (memcmp(C, ref, (m + 1) * ldc * sizeof *C) != 0 && fails++ < 10)
                printf("FAIL packed (from %s) acc=%d m=%zu n=%zu k=%zu: differs from the plain call\n",
                       from_t ? "B^T" : "B", acc, m, n, k);
            free(ref);
        }
        free(Bb), free(Bt), free(P);
    }
    free(A), free(B), free(C), free(C0), free(row);
}

int main(void)
{
    static const size_t ms[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33, 128 };
    static const size_t ns[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 24, 64, 128 };
    static const size_t ks[] = { 0, 1, 2, 16, 66, 128 };
    size_t cases = 0;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++)
                for (int ta = 0; ta < 2; ta++)
                    for (int acc = 0; acc < 2; acc++, cases++)
                        for (int path = 0; path < 2; path++)
                            one(path ? sdflow__mlp_gemm_blas : sdflow__mlp_gemm, path ? "blas" : "mlp_gemm", ta,
                                acc, ms[a], ns[b], ks[c]);
    printf("gemm_check: %zu shapes on both paths, this CPU takes %s: %s\n", cases,
           sdflow__mlp_gemm_native() ? "the library's AVX2+FMA kernel" : "cblas_dgemm (no AVX2+FMA)",
           fails ? "FAILED" : "ok");
    return fails != 0;
}
