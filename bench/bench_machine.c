/* SPDX-License-Identifier: MIT */
/* Machine calibration of `make bench` (runs first; its lines go to stdout and
 * to build/bench/machine.json, which bench_util.h reads for the bounds):
 *   dgemm_2048     DGEMM 2048 x 2048 x 2048 (OpenBLAS)
 *   dgemm_mlp      DGEMM 512 x 128 x 128, the MLP layer shape
 *   dgemm_inner2   DGEMM 4096 x 4096 x 2, inner size 2 (small-d kernel logits)
 *   exp_sdflow     sdflow_kernel_exp, the library's vectorizable exp, f64
 *   exp_libmvec    glibc libmvec exp (this file is built with -ffast-math so
 *                  GCC calls the vector variant), f64
 * at 1 and 2 threads. The rates ("gflops", "gexps" in G/s) come from the best
 * of the reps: the machine's capability; other load only slows a rep down.
 * t_med is printed too. The exp arguments lie in [-30, 0] like softmax logits. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

void openblas_set_num_threads(int num_threads);

enum { REPS = 5, EXP_N = 1 << 16 };

static void line(const char *workload, const char *size, int threads, const double *t, const char *key,
                 double work)
{
    printf("{\"impl\":\"machine\",\"workload\":\"%s\",\"size\":\"%s\",\"prec\":\"f64\",\"threads\":%d,\"reps\":%d,"
           "\"t_min\":%.6g,\"t_med\":%.6g,\"%s\":%.4g}\n",
           workload, size, threads, REPS, t[0], t[REPS / 2], key, work / t[0] * 1e-9);
    fflush(stdout);
}

/* Times `inner` back-to-back C = A B products (one rep), REPS reps. */
static void dgemm(const char *workload, int m, int n, int k, int inner, int threads)
{
    double *a = malloc((size_t)m * k * sizeof *a), *b = malloc((size_t)k * n * sizeof *b),
           *c = malloc((size_t)m * n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_machine: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = sin((double)i);
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = cos((double)i);
    openblas_set_num_threads(threads);
    double t[REPS];
    for (int r = -1; r < REPS; r++) {
        double t0 = bench_now();
        for (int i = 0; i < inner; i++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, k, b, n, 0.0, c, n);
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
    qsort(t, REPS, sizeof t[0], bench_cmp);
    char size[64];
    snprintf(size, sizeof size, "%dx%dx%d x%d", m, n, k, inner);
    line(workload, size, threads, t, "gflops", 2.0 * m * n * k * (double)inner);
    free(a);
    free(b);
    free(c);
}

/* libmvec: with -ffast-math and OpenMP, glibc's math.h declares exp as an
 * OpenMP simd function and this loop calls _ZGV*_exp. */
static void mvec_exp(size_t n, const double *restrict x, double *restrict y)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = exp(x[i]);
}

/* Each thread exps its own EXP_N-vector `inner` times (stays in L2). */
static void vexp(const char *workload, int use_mvec, int threads, int inner)
{
    double *x = malloc((size_t)threads * EXP_N * sizeof *x), *y = malloc((size_t)threads * EXP_N * sizeof *y);
    if (!x || !y) {
        fprintf(stderr, "bench_machine: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)threads * EXP_N; i++)
        x[i] = -30.0 * (double)(i % 1000) / 1000.0;
    double t[REPS], sink = 0;
    for (int r = -1; r < REPS; r++) {
        double t0 = bench_now();
#pragma omp parallel num_threads(threads)
        {
            size_t off = (size_t)omp_get_thread_num() * EXP_N;
            for (int i = 0; i < inner; i++) {
                if (use_mvec)
                    mvec_exp(EXP_N, x + off, y + off);
                else
                    sdflow_kernel_exp(EXP_N, x + off, y + off);
            }
        }
        if (r >= 0)
            t[r] = bench_now() - t0;
        sink += y[EXP_N / 2];
    }
    if (!(sink >= 0)) /* keeps the results live */
        fprintf(stderr, "bench_machine: exp returned %g\n", sink);
    qsort(t, REPS, sizeof t[0], bench_cmp);
    char size[64];
    snprintf(size, sizeof size, "n=%d x%d per thread", EXP_N, inner);
    line(workload, size, threads, t, "gexps", (double)threads * EXP_N * inner);
    free(x);
    free(y);
}

int main(void)
{
    for (int threads = 1; threads <= 2; threads++) {
        dgemm("dgemm_2048", 2048, 2048, 2048, 1, threads);
        dgemm("dgemm_mlp", 512, 128, 128, 200, threads);
        dgemm("dgemm_inner2", 4096, 4096, 2, 4, threads);
        vexp("exp_sdflow", 0, threads, 200);
        vexp("exp_libmvec", 1, threads, 200);
    }
    return 0;
}
