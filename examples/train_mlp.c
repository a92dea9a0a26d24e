/* SPDX-License-Identifier: MIT */
/* Trains an MLP score model on a CSV file (one row per sample, one column
 * per dimension, numbers separated by commas) with denoising score matching,
 * showing a progress bar on stderr, then draws samples with the
 * probability-flow ODE from the EMA weights and writes them as CSV. The
 * EMA model is saved with its process as a model file (docs/model-files.md;
 * examples/sample_model.c reads it back). The model lives in the
 * standardized coordinates: map its samples back with the column means and
 * standard deviations printed at the end.
 *
 *   train_mlp [in.csv [out.csv [steps [n_samples [model.safetensors]]]]]
 *
 * Without arguments it writes a small 2-D Gaussian-mixture data set to
 * train_data.csv first and trains on it for a few hundred steps (the quick
 * run of `make check`); samples go to train_samples.csv. The data are
 * standardized per column before training and the samples mapped back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

typedef struct bar {
    int shown;
} bar;

static int progress(void *user, long done, long total)
{
    bar *b = user;
    int pct = total > 0 ? (int)(100 * done / total) : 0, width = 40;
    if (pct == b->shown)
        return 0;
    b->shown = pct;
    fprintf(stderr, "\rtraining [");
    for (int i = 0; i < width; i++)
        fputc(i < pct * width / 100 ? '#' : ' ', stderr);
    fprintf(stderr, "] %3d%%%s", pct, done == total ? "\n" : "");
    return 0;
}

/* Reads a CSV of numbers: *n rows, *d columns (every row the same). A first
 * line that does not start with a number is a header; blank lines are skipped. */
static double *read_csv(const char *path, size_t *n, size_t *d)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1024, len = 0, cols = 0, rows = 0, lineno = 0;
    double *x = malloc(cap * sizeof *x);
    char line[65536];
    while (x && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line, *end;
        size_t c = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\n' || *p == '\r' || *p == 0)
            continue;
        for (;;) {
            double v = strtod(p, &end);
            if (end == p)
                break;
            if (len == cap) {
                double *y = realloc(x, 2 * cap * sizeof *x);
                if (!y)
                    break;
                x = y;
                cap *= 2;
            }
            x[len++] = v;
            c++;
            p = end;
            while (*p == ',' || *p == ' ' || *p == '\t')
                p++;
        }
        if (c == 0 && lineno == 1)
            continue; /* header */
        if (c == 0 || c != (cols ? cols : c) || (*p != '\n' && *p != '\r' && *p != 0)) {
            fprintf(stderr, "%s:%zu: expected %zu numbers\n", path, lineno, cols ? cols : c);
            free(x);
            x = NULL;
            break;
        }
        cols = c;
        rows++;
    }
    fclose(f);
    if (x && rows == 0) {
        free(x);
        x = NULL;
    }
    *n = rows;
    *d = cols;
    return x;
}

static int write_csv(const char *path, size_t n, size_t d, const double *x)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            fprintf(f, "%.17g%c", x[i * d + j], j + 1 < d ? ',' : '\n');
    return fclose(f) != 0;
}

static int fail(sdflow_ctx *ctx, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, ctx ? sdflow_ctx_last_error(ctx) : "out of memory");
    return 1;
}

int main(int argc, char **argv)
{
    const char *in = argc > 1 ? argv[1] : "train_data.csv";
    const char *out = argc > 2 ? argv[2] : "train_samples.csv";
    long steps = argc > 3 ? atol(argv[3]) : 300;
    size_t ns = argc > 4 ? (size_t)atol(argv[4]) : 1000;
    const char *model_path = argc > 5 ? argv[5] : "train_model.safetensors";
    if (sdflow_version() != SDFLOW_VERSION_NUMBER)
        return fprintf(stderr, "header/library version mismatch\n"), 1;
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return fail(NULL, "ctx");
    sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 1);
    if (argc <= 1) { /* demo data: a 2-D mixture of four Gaussians */
        static const double w[4] = { 0.1, 0.2, 0.3, 0.4 }, mu[4][2] = { { -2, -2 }, { 2, -2 }, { -2, 2 }, { 2, 2 } },
                            cov[4][4] = { { 0.3, 0, 0, 0.3 }, { 0.5, 0.2, 0.2, 0.3 }, { 0.2, 0, 0, 0.2 },
                                          { 0.4, -0.1, -0.1, 0.2 } };
        sdflow_model *g;
        double demo[2 * 4000];
        if (sdflow_model_create_gmm(ctx, 4, 2, w, &mu[0][0], &cov[0][0], &g) ||
            sdflow_model_sample(g, 7, 0, 4000, demo))
            return fail(ctx, "demo data");
        sdflow_model_free(g);
        if (write_csv(in, 4000, 2, demo))
            return fprintf(stderr, "cannot write %s\n", in), 1;
    }
    size_t n, d;
    double *x = read_csv(in, &n, &d);
    if (!x)
        return fprintf(stderr, "cannot read numbers from %s\n", in), 1;
    fprintf(stderr, "%s: %zu rows, %zu columns\n", in, n, d);
    /* standardize each column: the default VP process assumes data of unit scale */
    double *mean = calloc(d, sizeof *mean), *sd = calloc(d, sizeof *sd);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += x[i * d + j] / (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            sd[j] += (x[i * d + j] - mean[j]) * (x[i * d + j] - mean[j]) / (double)(n > 1 ? n - 1 : 1);
    for (size_t j = 0; j < d; j++)
        sd[j] = sd[j] > 0 ? sqrt(sd[j]) : 1.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (x[i * d + j] - mean[j]) / sd[j];

    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_trainer *t = NULL;
    long batch = n < 256 ? (long)n : 256;
    bar b = { -1 };
    if (sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p) || sdflow_model_create_mlp(ctx, d, &m) ||
        sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 64) || sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 8) ||
        sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t) || sdflow_trainer_set_model(t, m) ||
        sdflow_trainer_set_process(t, p) || sdflow_trainer_set_data(t, n, d, x) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, batch) ||
        sdflow_trainer_set_double(t, SDFLOW_TRAIN_LR, 3e-3) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_WARMUP, steps / 20) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_SCHEDULE, SDFLOW_LR_COSINE) ||
        sdflow_trainer_set_int(t, SDFLOW_TRAIN_STRATIFIED, 1) ||
        sdflow_trainer_set_double(t, SDFLOW_TRAIN_EMA_DECAY, 0.99) || sdflow_ctx_set_progress(ctx, progress, &b))
        return fail(ctx, "setup");
    if (sdflow_trainer_fit(t, steps))
        return fail(ctx, "training");
    double loss;
    sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_RUNNING_LOSS, &loss);
    fprintf(stderr, "running DSM loss after %ld steps: %.4f (per row, summed over %zu dims)\n", steps, loss, d);
    sdflow_ctx_set_progress(ctx, NULL, NULL);
    if (sdflow_trainer_copy_ema(t, m))
        return fail(ctx, "EMA");
    if (sdflow_model_save(m, p, model_path))
        return fail(ctx, "saving the model");
    fprintf(stderr, "saved the EMA model and its process to %s\n", model_path);

    sdflow_sampler *s = NULL;
    double *xs = malloc(ns * d * sizeof *xs);
    if (!xs || sdflow_sampler_create(ctx, SDFLOW_SAMPLER_PF_ODE, &s) ||
        sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m) || sdflow_sampler_set_process(s, p) ||
        sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4) ||
        sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 100) || sdflow_sampler_run(s, ns, NULL, xs))
        return fail(ctx, "sampling");
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < d; j++)
            xs[i * d + j] = xs[i * d + j] * sd[j] + mean[j];
    if (write_csv(out, ns, d, xs))
        return fprintf(stderr, "cannot write %s\n", out), 1;
    fprintf(stderr, "wrote %zu samples to %s\n", ns, out);
    /* a quick check against the data: per-column means and standard deviations */
    for (size_t j = 0; j < d && j < 8; j++) {
        double ms = 0, vs = 0;
        for (size_t i = 0; i < ns; i++)
            ms += xs[i * d + j] / (double)ns;
        for (size_t i = 0; i < ns; i++)
            vs += (xs[i * d + j] - ms) * (xs[i * d + j] - ms) / (double)(ns - 1);
        printf("column %zu: data mean %.3f sd %.3f, samples mean %.3f sd %.3f\n", j, mean[j], sd[j], ms, sqrt(vs));
    }
    sdflow_sampler_free(s);
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(xs);
    free(x);
    free(mean);
    free(sd);
    return 0;
}
