/* SPDX-License-Identifier: MIT */
/* Samples a 2-D Gaussian mixture with the probability-flow ODE (adaptive
 * Dormand-Prince) and with the reverse-time SDE (Euler-Maruyama), using the
 * mixture's exact noised score, and compares the sample mean, covariance and
 * energy distance with the exact mixture. A progress bar goes to stderr.
 *
 *   gmm_sample [pf_ode|reverse_sde] [n]      (default: both, n = 2000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

#define K 4
static const double weights[K] = { 0.1, 0.2, 0.3, 0.4 };
static const double means[K][2] = { { -2, -2 }, { 2, -2 }, { -2, 2 }, { 2, 2 } };
static const double covs[K][4] = { { 0.3, 0, 0, 0.3 }, { 0.5, 0.2, 0.2, 0.3 }, { 0.2, 0, 0, 0.2 },
                                   { 0.4, -0.1, -0.1, 0.2 } };

typedef struct bar {
    const char *what;
    int shown; /* last percentage drawn, -1 before the first */
} bar;

static int progress(void *user, long done, long total)
{
    bar *b = user;
    int pct = total > 0 ? (int)(100 * done / total) : 0, width = 40;
    if (pct == b->shown)
        return 0;
    b->shown = pct;
    fprintf(stderr, "\r%-12s [", b->what);
    for (int i = 0; i < width; i++)
        fputc(i < pct * width / 100 ? '#' : ' ', stderr);
    fprintf(stderr, "] %3d%%%s", pct, done == total ? "\n" : "");
    return 0; /* nonzero would cancel the run (SDFLOW_E_CANCELLED) */
}

/* Sample mean and covariance of n x 2 points. */
static void moments(size_t n, const double *x, double mean[2], double cov[3])
{
    mean[0] = mean[1] = cov[0] = cov[1] = cov[2] = 0;
    for (size_t i = 0; i < n; i++) {
        mean[0] += x[2 * i] / (double)n;
        mean[1] += x[2 * i + 1] / (double)n;
    }
    for (size_t i = 0; i < n; i++) {
        double a = x[2 * i] - mean[0], b = x[2 * i + 1] - mean[1];
        cov[0] += a * a / (double)(n - 1);
        cov[1] += a * b / (double)(n - 1);
        cov[2] += b * b / (double)(n - 1);
    }
}

static int fail(sdflow_ctx *ctx, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, ctx ? sdflow_ctx_last_error(ctx) : "out of memory");
    return 1;
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 2000;
    if (n < 2 || (only && strcmp(only, "pf_ode") != 0 && strcmp(only, "reverse_sde") != 0)) {
        fprintf(stderr, "usage: gmm_sample [pf_ode|reverse_sde] [n >= 2]\n");
        return 2;
    }
    if (sdflow_version() != SDFLOW_VERSION_NUMBER)
        return fail(NULL, "header and library versions differ");

    sdflow_ctx *ctx = NULL;
    sdflow_process *proc = NULL;
    sdflow_model *gmm = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return fail(NULL, "sdflow_ctx_create");
    sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 42);
    if (sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &proc) ||
        sdflow_model_create_gmm(ctx, K, 2, weights, &means[0][0], &covs[0][0], &gmm))
        return fail(ctx, "setup");

    /* exact mixture moments and an exact reference sample */
    double m_ex[2] = { 0, 0 }, c_ex[3] = { 0, 0, 0 };
    for (int k = 0; k < K; k++) {
        m_ex[0] += weights[k] * means[k][0];
        m_ex[1] += weights[k] * means[k][1];
    }
    for (int k = 0; k < K; k++) {
        double a = means[k][0] - m_ex[0], b = means[k][1] - m_ex[1];
        c_ex[0] += weights[k] * (covs[k][0] + a * a);
        c_ex[1] += weights[k] * (covs[k][1] + a * b);
        c_ex[2] += weights[k] * (covs[k][3] + b * b);
    }
    double *x = malloc(n * 2 * sizeof *x), *ref = malloc(n * 2 * sizeof *ref);
    if (!x || !ref)
        return fail(NULL, "malloc");
    if (sdflow_model_sample(gmm, 1, 0, n, ref))
        return fail(ctx, "sdflow_model_sample");
    printf("exact        mean (%6.3f, %6.3f)  cov [%6.3f %6.3f; %6.3f]\n", m_ex[0], m_ex[1], c_ex[0], c_ex[1], c_ex[2]);

    static const sdflow_sampler_kind kinds[2] = { SDFLOW_SAMPLER_PF_ODE, SDFLOW_SAMPLER_REVERSE_SDE };
    for (int r = 0; r < 2; r++) {
        const char *name = sdflow_sampler_kind_name(kinds[r]);
        if (only && strcmp(only, name) != 0)
            continue;
        sdflow_sampler *s = NULL;
        if (sdflow_sampler_create(ctx, kinds[r], &s) || sdflow_sampler_set_process(s, proc) ||
            sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, gmm))
            return fail(ctx, "sampler setup");
        if (kinds[r] == SDFLOW_SAMPLER_REVERSE_SDE)
            sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 500);
        bar b = { name, -1 };
        sdflow_ctx_set_progress(ctx, progress, &b);
        if (sdflow_sampler_run(s, n, NULL, x) != SDFLOW_OK)
            return fail(ctx, name);
        sdflow_ctx_set_progress(ctx, NULL, NULL);
        double m[2], c[3], nfe, e, e_std;
        moments(n, x, m, c);
        sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe);
        if (sdflow_metric_energy(ctx, n, n, 2, x, ref, &e, &e_std))
            return fail(ctx, "sdflow_metric_energy");
        printf("%-12s mean (%6.3f, %6.3f)  cov [%6.3f %6.3f; %6.3f]  NFE/sample %.1f  energy distance %.4f (std %.4f)\n",
               name, m[0], m[1], c[0], c[1], c[2], nfe / (double)n, e, e_std);
        sdflow_sampler_free(s);
    }
    free(x);
    free(ref);
    sdflow_model_free(gmm);
    sdflow_process_free(proc);
    sdflow_ctx_free(ctx);
    return 0;
}
