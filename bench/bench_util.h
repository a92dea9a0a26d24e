/* SPDX-License-Identifier: MIT */
/* Shared helpers of the bench programs: wall-clock timing and the JSON line
 * format {"impl":"sdflow","workload":...,"size":...,"t_med":...}. */
#ifndef SDFLOW_BENCH_UTIL_H
#define SDFLOW_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times fn(arg) reps times after one warm-up and prints one JSON line.
 * fn returns nonzero on failure, which aborts the bench program. */
static inline void bench_run(const char *workload, const char *size, int threads, int reps,
                             int (*fn)(void *), void *arg)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    if (fn(arg) != 0) {
        fprintf(stderr, "bench %s failed\n", workload);
        exit(1);
    }
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        if (fn(arg) != 0) {
            fprintf(stderr, "bench %s failed\n", workload);
            exit(1);
        }
        t[r] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], bench_cmp);
    printf("{\"impl\":\"sdflow\",\"workload\":\"%s\",\"size\":\"%s\",\"prec\":\"f64\",\"threads\":%d,\"reps\":%d,"
           "\"t_min\":%.6g,\"t_med\":%.6g,\"t_max\":%.6g}\n",
           workload, size, threads, reps, t[0], t[reps / 2], t[reps - 1]);
    fflush(stdout);
}

#endif
