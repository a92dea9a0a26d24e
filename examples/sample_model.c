/* SPDX-License-Identifier: MIT */
/* Loads any model file (docs/model-files.md) and writes n samples drawn by
 * the probability-flow ODE from the prior, with their log-densities (PF-ODE,
 * exact divergence), as CSV: x1,...,xd,logp. The file's process is used;
 * without one, VP with default options.
 *
 *   sample_model [MODEL.safetensors [N [OUT.csv]]]
 *
 * Without arguments it first saves a 2-D Gaussian mixture with its VP
 * process to gmm_model.safetensors and samples that (the `make check`
 * run), and checks the log-densities against the mixture's closed form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

static int fail(sdflow_ctx *ctx, const char *what, sdflow_status st)
{
    fprintf(stderr, "sample_model: %s failed: %s: %s\n", what, sdflow_strerror(st), sdflow_ctx_last_error(ctx));
    return 1;
}

/* The demo file: a 2-D mixture and the VP process it is noised by. */
static sdflow_status write_demo(sdflow_ctx *ctx, const char *path)
{
    const double w[3] = { 0.5, 0.3, 0.2 };
    const double mu[6] = { -2, 0, 2, 1, 0, -2.5 };
    const double cov[12] = { 1.0, 0.3, 0.3, 0.5, 0.4, -0.1, -0.1, 0.8, 0.2, 0.0, 0.0, 0.2 };
    sdflow_model *g = NULL;
    sdflow_process *vp = NULL;
    sdflow_status st = sdflow_model_create_gmm(ctx, 3, 2, w, mu, cov, &g);
    if (!st)
        st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp);
    if (!st)
        st = sdflow_model_save(g, vp, path);
    sdflow_model_free(g);
    sdflow_process_free(vp);
    return st;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "gmm_model.safetensors";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 200;
    const char *out_path = argc > 3 ? argv[3] : "model_samples.csv";
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "usage: sample_model [MODEL.safetensors [N [OUT.csv]]]\n");
        return 2;
    }
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return 1;
    sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 42);
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    sdflow_sampler *s = NULL;
    sdflow_density *e = NULL;
    double *x = NULL, *logp = NULL;
    int rc = 1;
    sdflow_status st;
    if (argc < 2 && (st = write_demo(ctx, path))) {
        rc = fail(ctx, "saving the demo model", st);
        goto done;
    }
    if ((st = sdflow_model_load(ctx, path, &m, &p))) {
        rc = fail(ctx, "sdflow_model_load", st);
        goto done;
    }
    if (!p && (st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p))) {
        rc = fail(ctx, "sdflow_process_create", st);
        goto done;
    }
    size_t d = sdflow_model_dim(m);
    x = malloc((size_t)n * d * sizeof *x);
    logp = malloc((size_t)n * sizeof *logp);
    if (!x || !logp) {
        fprintf(stderr, "sample_model: out of memory\n");
        goto done;
    }
    if ((st = sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s)) || (st = sdflow_sampler_set_process(s, p)) ||
        (st = sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m)) || (st = sdflow_sampler_run(s, (size_t)n, NULL, x))) {
        rc = fail(ctx, "PF-ODE sampling", st);
        goto done;
    }
    if ((st = sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, &e)) ||
        (st = sdflow_density_set_process(e, p)) || (st = sdflow_density_set_model(e, m)) ||

        (st = sdflow_density_logpdf(e, (size_t)n, x, logp, NULL))) {
        rc = fail(ctx, "PF-ODE log-density", st);
        goto done;
    }
    FILE *f = fopen(out_path, "w");
    if (!f) {
        perror(out_path);
        goto done;
    }
    for (size_t j = 0; j < d; j++)
        fprintf(f, "x%zu,", j + 1);
    fprintf(f, "logp\n");
    for (long i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            fprintf(f, "%.17g,", x[(size_t)i * d + j]);
        fprintf(f, "%.17g\n", logp[i]);
    }
    if (fclose(f)) {
        perror(out_path);
        goto done;
    }
    printf("%s: %s model, d = %zu, process %s; %ld samples and log-densities in %s\n", path,
           sdflow_model_kind_name(sdflow_model_get_kind(m)), d, sdflow_process_kind_name(sdflow_process_get_kind(p)),
           n, out_path);
    /* the demo mixture: the PF-ODE estimate at t_eps against the closed
     * form log p_{t_eps} (other files: no reference) */
    double *t = malloc((size_t)n * sizeof *t), *ref = malloc((size_t)n * sizeof *ref), t_eps;
    sdflow_process_time_range(p, &t_eps, NULL);
    for (long i = 0; t && i < n; i++)
        t[i] = t_eps;
    if (argc < 2 && t && ref && sdflow_model_logpdf(m, p, (size_t)n, x, t, ref) == SDFLOW_OK) {
        double err = 0, mx = 0;
        for (long i = 0; i < n; i++) {
            err += fabs(logp[i] - ref[i]) / (double)n;
            mx = fmax(mx, fabs(logp[i] - ref[i]));
        }
        printf("closed form: mean |logp - exact| = %.2e, max %.2e\n", err, mx);
        /* the PF-ODE estimate includes the prior mismatch log pi(x(T)) -
         * log p_T(x(T)) (~1e-3 for this mixture, examples/gmm_likelihood.c) */
        if (!(err < 1e-2)) {
            fprintf(stderr, "sample_model: log-densities disagree with the closed form\n");
            free(t);
            free(ref);
            goto done;
        }
    }
    free(t);
    free(ref);
    rc = 0;
done:
    free(x);
    free(logp);
    sdflow_density_free(e);
    sdflow_sampler_free(s);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return rc;
}
