/* SPDX-License-Identifier: MIT */
/* Shared helpers of the bench programs: wall-clock timing and the JSON line
 *   {"impl":"sdflow","workload":...,"size":...,"prec":"f64","threads":T,"reps":R,
 *    "t_min":...,"t_med":...,"t_max":...,"flops":F,"exps":E,"bound":B,"ratio":t_med/B}
 * flops = GEMM-class flops, exps = exp-class calls of the workload (counted as
 * docs/benchmarks.md says); bound = flops / DGEMM rate + exps / vectorized-exp
 * rate at the same thread count, with the rates bench_machine measured earlier
 * in the same `make bench` run and wrote to $SDFLOW_BENCH_MACHINE (default
 * build/bench/machine.json). Without that file bound and ratio are null. */
#ifndef SDFLOW_BENCH_UTIL_H
#define SDFLOW_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The number after "key": in a JSON line, or -1 when absent. */
static inline double bench_json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1.0;
}

/* The machine's rate for a calibration workload at a thread count, from the
 * calibration file: "gflops" (GFLOP/s) or "gexps" (G exp/s); 0 when absent.
 * For exp the faster of the measured vectorized exps counts (workload names
 * starting with prefix), since the bound is the cheapest way to do the work. */
static inline double bench_machine_rate(const char *prefix, const char *key, int threads)
{
    const char *path = getenv("SDFLOW_BENCH_MACHINE");
    FILE *f = fopen(path && *path ? path : "build/bench/machine.json", "r");
    if (!f)
        return 0.0;
    char line[512], pat[96];
    snprintf(pat, sizeof pat, "\"workload\":\"%s", prefix);
    double best = 0.0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, pat) && (int)bench_json_num(line, "threads") == threads) {
            double r = bench_json_num(line, key);
            best = r > best ? r : best;
        }
    }
    fclose(f);
    return best;
}

/* Lower bound in seconds of a workload of flops GEMM-class flops and exps
 * exp-class calls at a thread count; 0 when the machine was not calibrated. */
static inline double bench_bound(double flops, double exps, int threads)
{
    double g = bench_machine_rate("dgemm_2048", "gflops", threads);
    double e = bench_machine_rate("exp_", "gexps", threads);
    if (!(g > 0.0) || !(e > 0.0))
        return 0.0;
    return flops / (g * 1e9) + exps / (e * 1e9);
}

/* Prints the JSON line of a workload from its reps sorted times. */
static inline void bench_report(const char *workload, const char *size, int threads, int reps, const double *t,
                                double flops, double exps)
{
    double tmed = t[reps / 2], bound = bench_bound(flops, exps, threads);
    char b[96];
    if (bound > 0.0)
        snprintf(b, sizeof b, "\"bound\":%.6g,\"ratio\":%.4g", bound, tmed / bound);
    else
        snprintf(b, sizeof b, "\"bound\":null,\"ratio\":null");
    /* the OpenMP wait policy the line ran under (libgomp reads it at start): "default" when unset */
    const char *pol = getenv("OMP_WAIT_POLICY");
    if (!pol || !*pol)
        pol = "default";
    printf("{\"impl\":\"sdflow\",\"workload\":\"%s\",\"size\":\"%s\",\"prec\":\"f64\",\"threads\":%d,\"reps\":%d,"
           "\"t_min\":%.6g,\"t_med\":%.6g,\"t_max\":%.6g,\"flops\":%.6g,\"exps\":%.6g,%s,\"omp_wait\":\"%.16s\"}\n",
           workload, size, threads, reps, t[0], tmed, t[reps - 1], flops, exps, b, pol);
    fflush(stdout);
}

/* Times fn(arg) reps times after one warm-up and prints one JSON line with
 * the workload's flops and exps (see above). fn returns nonzero on failure,
 * which aborts the bench program. */
#define BENCH_WARMUP_S 0.25

static inline void bench_run(const char *workload, const char *size, int threads, int reps, int (*fn)(void *),
                             void *arg, double flops, double exps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    /* warm-up: calls for at least BENCH_WARMUP_S seconds (one call for long
     * workloads). One call was too little for millisecond workloads: the
     * first ~20 ms of a 1 ms forward ran 1.3-1.6x slower (page faults in
     * fresh scratch, the idle core clocking up), which moved the minimum of
     * 21 reps from 0.80 to 1.31 ms. The PyTorch twins use the same rule
     * (bench_bound.timed). */
    double w0 = bench_now();
    do {
        if (fn(arg) != 0) {
            fprintf(stderr, "bench %s failed\n", workload);
            exit(1);
        }
    } while (bench_now() - w0 < BENCH_WARMUP_S);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        if (fn(arg) != 0) {
            fprintf(stderr, "bench %s failed\n", workload);
            exit(1);
        }
        t[r] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], bench_cmp);
    bench_report(workload, size, threads, reps, t, flops, exps);
}

#endif
