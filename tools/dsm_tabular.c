/* SPDX-License-Identifier: MIT */
/* The library side of the real-data comparison (issue 12, docs/training.md
 * "Real data"): trains the MLP score model with DSM on a standardized table
 * written by bench/make_tabular.py and prints the held-out NLL in nats per
 * dimension from the exact PF-ODE likelihood as one JSON line, with the
 * same fields as its PyTorch twin bench/torch_dsm_train.py. Both sides take
 * the same hyperparameters (defaults: the library trainer's defaults and
 * the twin's: MLP 3 x 128 SiLU, 32 frequencies, eps output, default VP,
 * eps loss with uniform t, Adam 1e-3 constant, EMA 0.999, batch 128,
 * 2000 steps).
 *
 *   dsm_tabular --train A.csv --test B.csv [--steps N] [--batch B] [--lr L]
 *               [--ema E] [--seed S] [--threads T] [--save-init F]
 *               [--save F] [--load F] [--per-point F] [--rtol R]
 *
 * --save-init writes the untrained network (the twin's --init reads it, so
 * both sides start from the same weights); --save writes the trained EMA
 * network, --load skips training and evaluates a model file (e.g. one the
 * twin exported): with both directions the two likelihood estimators can
 * be compared on the same network. --per-point writes the held-out NLL of
 * each row (nats, whole vector). Times are wall (and CPU) seconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sdflow.h"

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Numbers separated by commas, one row per line, every row as wide. */
static double *read_csv(const char *path, size_t *n, size_t *d)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0, rows = 0, cols = 0;
    double *x = malloc(cap * sizeof *x);
    char line[1 << 16];
    while (x && fgets(line, sizeof line, f)) {
        char *p = line, *end;
        size_t c = 0;
        for (;;) {
            double v = strtod(p, &end);
            if (end == p)
                break;
            if (len == cap) {
                double *y = realloc(x, 2 * cap * sizeof *x);
                if (!y) {
                    free(x);
                    x = NULL;
                    break;
                }
                x = y;
                cap *= 2;
            }
            x[len++] = v;
            c++;
            p = end;
            while (*p == ',' || *p == ' ')
                p++;
        }
        if (!x || c == 0)
            continue;
        if (cols && c != cols) {
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

static sdflow_ctx *ctx;

static void ck(sdflow_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "dsm_tabular: %s: %s\n", what, ctx ? sdflow_ctx_last_error(ctx) : "error");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    const char *trp = NULL, *tep = NULL, *save_init = NULL, *save = NULL, *load = NULL, *perp = NULL;
    long steps = 2000, batch = 128, threads = 1;
    double lr = 1e-3, ema = 0.999, rtol = 1e-5;
    unsigned long long seed = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--train"))
            trp = v;
        else if (!strcmp(k, "--test"))
            tep = v;
        else if (!strcmp(k, "--steps"))
            steps = atol(v);
        else if (!strcmp(k, "--batch"))
            batch = atol(v);
        else if (!strcmp(k, "--lr"))
            lr = atof(v);
        else if (!strcmp(k, "--ema"))
            ema = atof(v);
        else if (!strcmp(k, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--threads"))
            threads = atol(v);
        else if (!strcmp(k, "--rtol"))
            rtol = atof(v);
        else if (!strcmp(k, "--save-init"))
            save_init = v;
        else if (!strcmp(k, "--save"))
            save = v;
        else if (!strcmp(k, "--load"))
            load = v;
        else if (!strcmp(k, "--per-point"))
            perp = v;
        else
            return fprintf(stderr, "dsm_tabular: unknown option %s\n", k), 2;
    }
    if (!tep || (!trp && !load))
        return fprintf(stderr, "usage: dsm_tabular --train A.csv --test B.csv [options] (see the source)\n"), 2;
    size_t n = 0, d = 0, nt, dt;
    double *tr = trp ? read_csv(trp, &n, &d) : NULL, *te = read_csv(tep, &nt, &dt);
    if ((trp && !tr) || !te || (trp && d != dt))
        return fprintf(stderr, "dsm_tabular: cannot read the tables (or their widths differ)\n"), 2;
    d = dt;
    ck(sdflow_ctx_create(&ctx, NULL), "ctx");
    ck(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, seed), "seed");
    ck(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, threads), "threads");
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    double loss = NAN, t_train = 0, c_train = 0;
    if (load) {
        ck(sdflow_model_load(ctx, load, &m, &p), "loading the model");
        if (!p)
            ck(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), "process");
    } else {
        sdflow_trainer *t;
        ck(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), "process");
        ck(sdflow_model_create_mlp(ctx, d, &m), "mlp");
        if (save_init)
            ck(sdflow_model_save(m, p, save_init), "saving the initial model");
        ck(sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t), "trainer");
        ck(sdflow_trainer_set_model(t, m), "model");
        ck(sdflow_trainer_set_process(t, p), "process");
        ck(sdflow_trainer_set_data(t, n, d, tr), "data");
        ck(sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, batch), "batch");
        ck(sdflow_trainer_set_double(t, SDFLOW_TRAIN_LR, lr), "lr");
        ck(sdflow_trainer_set_double(t, SDFLOW_TRAIN_EMA_DECAY, ema), "ema");
        double w0 = wall(), c0 = cpu();
        ck(sdflow_trainer_fit(t, steps), "training");
        t_train = wall() - w0;
        c_train = cpu() - c0;
        ck(sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_RUNNING_LOSS, &loss), "loss");
        ck(sdflow_trainer_copy_ema(t, m), "EMA");
        sdflow_trainer_free(t);
        if (save)
            ck(sdflow_model_save(m, p, save), "saving the model");
    }
    sdflow_density *e;
    double *lp = malloc(nt * sizeof *lp);
    if (!lp)
        return 2;
    ck(sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, &e), "density");
    ck(sdflow_density_set_model(e, m), "density model");
    ck(sdflow_density_set_process(e, p), "density process");
    ck(sdflow_density_set_double(e, SDFLOW_OPT_RTOL, rtol), "rtol");
    ck(sdflow_density_set_double(e, SDFLOW_OPT_ATOL, rtol), "atol");
    double w0 = wall(), c0 = cpu();
    ck(sdflow_density_logpdf(e, nt, te, lp, NULL), "logpdf");
    double t_eval = wall() - w0, c_eval = cpu() - c0;
    double s = 0, s2 = 0;
    for (size_t i = 0; i < nt; i++) {
        double v = -lp[i] / (double)d;
        s += v;
        s2 += v * v;
    }
    double mean = s / (double)nt, se = sqrt((s2 - (double)nt * mean * mean) / (double)(nt - 1) / (double)nt);
    if (perp) {
        FILE *f = fopen(perp, "w");
        for (size_t i = 0; f && i < nt; i++)
            fprintf(f, "%.17g\n", -lp[i]);
        if (!f || fclose(f))
            return fprintf(stderr, "dsm_tabular: cannot write %s\n", perp), 2;
    }
    char loss_s[32] = "null"; /* JSON has no NaN: null when nothing was trained */
    if (!load)
        snprintf(loss_s, sizeof loss_s, "%.6g", loss);
    printf("{\"impl\": \"libsdflow\", \"workload\": \"dsm_train_nll\", \"d\": %zu, \"train_rows\": %zu, "
           "\"test_rows\": %zu, \"steps\": %ld, \"batch\": %ld, \"lr\": %g, \"ema\": %g, \"seed\": %llu, "
           "\"threads\": %ld, \"loaded\": %s, \"train_loss\": %s, \"nll_nats_per_dim\": %.6f, \"nll_se\": %.6f, "
           "\"t_train\": %.3f, \"cpu_train\": %.3f, \"t_eval\": %.3f, \"cpu_eval\": %.3f}\n",
           d, n, nt, load ? 0L : steps, batch, lr, ema, seed, threads, load ? "true" : "false", loss_s, mean, se,
           t_train, c_train, t_eval, c_eval);
    sdflow_density_free(e);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    free(tr);
    free(te);
    free(lp);
    return 0;
}
