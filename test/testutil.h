/* SPDX-License-Identifier: MIT */
/* Shared test helpers: a fault-injecting allocator, context set-up and
 * statistics used by several suites. Header-only, static functions. */
#ifndef SDFLOW_TESTUTIL_H
#define SDFLOW_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

/* Fails allocation number fail_at (0-based); counts live blocks. */
typedef struct failalloc {
    long fail_at, count, live;
} failalloc;

static inline void *fa_alloc(void *u, size_t n)
{
    failalloc *f = u;
    if (f->count++ == f->fail_at)
        return NULL;
    f->live++;
    return malloc(n);
}

static inline void fa_free(void *u, void *p)
{
    failalloc *f = u;
    if (p) {
        f->live--;
        free(p);
    }
}

/* Runs workload(alloc) failing the k-th allocation for every k it reaches:
 * each run must return SDFLOW_E_NOMEM (or OK once k passes the last
 * allocation) and free everything it allocated. */
typedef sdflow_status (*alloc_workload)(const sdflow_allocator *a);
static inline void check_all_alloc_failures(alloc_workload workload)
{
    for (long k = 0;; k++) {
        failalloc f = { k, 0, 0 };
        sdflow_allocator a = { fa_alloc, NULL, fa_free, &f };
        sdflow_status st = workload(&a);
        ck_assert_msg(f.live == 0, "allocation %ld failed: %ld blocks leaked", k, f.live);
        if (f.count <= k) {
            ck_assert_msg(st == SDFLOW_OK, "no failure injected at %ld but status %d", k, st);
            ck_assert_msg(k > 0, "workload allocated nothing");
            break;
        }
        ck_assert_msg(st == SDFLOW_E_NOMEM, "allocation %ld failed but status %d (%s)", k, st, sdflow_strerror(st));
    }
}

static inline sdflow_ctx *test_ctx(uint64_t seed)
{
    sdflow_ctx *ctx = NULL;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, seed), SDFLOW_OK);
    return ctx;
}

/* Asserts status st and that the ctx message contains substring want. */
#define ck_assert_status_msg(ctx, call, status, want)                                                              \
    do {                                                                                                           \
        sdflow_status st_ = (call);                                                                                \
        ck_assert_msg(st_ == (status), "%s: status %d, want %d (%s)", #call, st_, (status),                        \
                      sdflow_ctx_last_error(ctx));                                                                 \
        ck_assert_msg(strstr(sdflow_ctx_last_error(ctx), (want)) != NULL, "%s: message '%s' lacks '%s'", #call,     \
                      sdflow_ctx_last_error(ctx), (want));                                                         \
    } while (0)

static inline double vec_mean(const double *a, size_t n, size_t stride)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i * stride];
    return s / (double)n;
}

static inline double vec_var(const double *a, size_t n, size_t stride)
{
    double m = vec_mean(a, n, stride), s = 0;
    for (size_t i = 0; i < n; i++)
        s += (a[i * stride] - m) * (a[i * stride] - m);
    return s / (double)(n - 1);
}

/* Prints measured test quantities (errors, z-scores) to stderr when the
 * environment variable SDFLOW_TEST_VERBOSE is set; silent otherwise. */
#include <stdarg.h>
#include <stdio.h>
static inline void test_note(const char *fmt, ...)
{
    if (!getenv("SDFLOW_TEST_VERBOSE"))
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


/* ---- the 2-D, 4-component GMM of the two-sample tests ---------------------
 * (test_sampler.c, test_fewstep.c). Means shifted by `shift` along x0 give
 * the "wrong model" that a two-sample test must reject. */
#define TU_GK 4
#define TU_GMM4_W { 0.1, 0.2, 0.3, 0.4 }
#define TU_GMM4_MU { { -2, -2 }, { 2, -2 }, { -2, 2 }, { 2, 2 } }
#define TU_GMM4_COV { { 0.3, 0, 0, 0.3 }, { 0.5, 0.2, 0.2, 0.3 }, { 0.2, 0, 0, 0.2 }, { 0.4, -0.1, -0.1, 0.2 } }
static inline sdflow_model *tu_gmm4(sdflow_ctx *ctx, double shift)
{
    static const double w[TU_GK] = TU_GMM4_W, mu0[TU_GK][2] = TU_GMM4_MU, cov[TU_GK][4] = TU_GMM4_COV;
    double mu[TU_GK][2];
    for (int k = 0; k < TU_GK; k++) {
        mu[k][0] = mu0[k][0] + shift;
        mu[k][1] = mu0[k][1];
    }
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, TU_GK, 2, w, &mu[0][0], &cov[0][0], &m), SDFLOW_OK);
    return m;
}

/* Energy-distance two-sample test (§13.2): mean + 5 std of E_u between
 * `reps` pairs of independent exact samples of size n (streams seed0 + 2r,
 * seed0 + 2r + 1; reps <= 64). Under H0 E_u is a weighted sum of centred
 * chi-squares; its 5-sigma tail has probability well below 1e-3 (Cantelli's
 * distribution-free bound is 1/26), so each check's false-alarm rate is < 1e-3. */
static inline double tu_energy_null(sdflow_ctx *ctx, sdflow_model *truth, size_t n, int reps, uint64_t seed0,
                                    double *mean_out, double *sd_out)
{
    double *a = malloc(2 * n * sizeof *a), *b = malloc(2 * n * sizeof *b), e[64];
    ck_assert(a && b && reps <= 64);
    for (int r = 0; r < reps; r++) {
        ck_assert_int_eq(sdflow_model_sample(truth, seed0 + 2 * (uint64_t)r, 0, n, a), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(truth, seed0 + 1 + 2 * (uint64_t)r, 0, n, b), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, n, n, 2, a, b, &e[r], NULL), SDFLOW_OK);
    }
    free(a);
    free(b);
    double mean = vec_mean(e, (size_t)reps, 1), sd = sqrt(vec_var(e, (size_t)reps, 1));
    if (mean_out)
        *mean_out = mean;
    if (sd_out)
        *sd_out = sd;
    return mean + 5 * sd;
}

#endif
