/* SPDX-License-Identifier: MIT */
/* Interrupting and resuming a training run with a trainer checkpoint
 * (docs/model-files.md, "Trainer checkpoints"). Run A trains an MLP score
 * model for STEPS steps in one go. Run B trains AT steps, writes a
 * checkpoint to CKPT and ends (everything freed, as if the process had
 * stopped); then a new ctx rebuilds the trainer, the model and the process
 * from the checkpoint alone, binds the same data and trains the remaining
 * STEPS - AT steps. The weights, the EMA weights and the final checkpoints
 * of A and B must be equal byte for byte; the program says so and exits 0,
 * or exits 1 naming what differs.
 *
 *   train_resume [steps [at [ckpt]]]     (defaults 120, 50, train_resume.ckpt)
 *
 * Options that make the schedule depend on the horizon (the cosine decay)
 * need SDFLOW_TRAIN_TOTAL_STEPS: a fit of AT steps would otherwise end its
 * own cosine at AT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

#define N 2000
#define D 2

static int fail(sdflow_ctx *ctx, const char *what)
{
    fprintf(stderr, "train_resume: %s: %s\n", what, ctx ? sdflow_ctx_last_error(ctx) : "out of memory");
    return 1;
}

static sdflow_ctx *new_ctx(void)
{
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) || sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 2026))
        return NULL;
    return ctx;
}

/* A configured trainer on a fresh model and process (run A, and B's first half). */
static int setup(sdflow_ctx *ctx, const double *x, long steps, sdflow_process **p, sdflow_model **m,
                 sdflow_trainer **t)
{
    return sdflow_process_create(ctx, SDFLOW_PROCESS_VP, p) || sdflow_model_create_mlp(ctx, D, m) ||
           sdflow_model_set_int(*m, SDFLOW_OPT_MLP_WIDTH, 32) || sdflow_model_set_int(*m, SDFLOW_OPT_MLP_FREQS, 4) ||
           sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, t) || sdflow_trainer_set_model(*t, *m) ||
           sdflow_trainer_set_process(*t, *p) || sdflow_trainer_set_data(*t, N, D, x) ||
           sdflow_trainer_set_int(*t, SDFLOW_TRAIN_BATCH, 128) ||
           sdflow_trainer_set_double(*t, SDFLOW_TRAIN_LR, 3e-3) ||
           sdflow_trainer_set_int(*t, SDFLOW_TRAIN_WARMUP, steps / 10) ||
           sdflow_trainer_set_int(*t, SDFLOW_TRAIN_SCHEDULE, SDFLOW_LR_COSINE) ||
           sdflow_trainer_set_int(*t, SDFLOW_TRAIN_TOTAL_STEPS, steps) ||
           sdflow_trainer_set_int(*t, SDFLOW_TRAIN_OPTIMIZER, SDFLOW_OPTIM_ADAMW) ||
           sdflow_trainer_set_double(*t, SDFLOW_TRAIN_WEIGHT_DECAY, 1e-4) ||
           sdflow_trainer_set_double(*t, SDFLOW_TRAIN_CLIP_NORM, 1.0) ||
           sdflow_trainer_set_double(*t, SDFLOW_TRAIN_EMA_DECAY, 0.99);
}

/* The final state of a run: weights, EMA weights and the whole checkpoint. */
typedef struct result {
    double *w, *ema;
    size_t np;
    unsigned char *ckpt;
    size_t size;
    double loss;
} result;

static int collect(sdflow_ctx *ctx, sdflow_trainer *t, sdflow_model *m, result *r)
{
    if (sdflow_model_param_count(m, &r->np))
        return fail(ctx, "parameter count");
    r->w = malloc(r->np * sizeof *r->w);
    r->ema = malloc(r->np * sizeof *r->ema);
    if (!r->w || !r->ema || sdflow_model_get_params(m, r->np, r->w) ||
        sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_RUNNING_LOSS, &r->loss) ||
        sdflow_trainer_checkpoint_save_buffer(t, NULL, 0, &r->size))
        return fail(ctx, "final state");
    r->ckpt = malloc(r->size);
    if (!r->ckpt || sdflow_trainer_checkpoint_save_buffer(t, r->ckpt, r->size, &r->size))
        return fail(ctx, "final checkpoint");
    /* the EMA weights: copied into the model (its own weights were saved above) */
    if (sdflow_trainer_copy_ema(t, m) || sdflow_model_get_params(m, r->np, r->ema))
        return fail(ctx, "EMA");
    return 0;
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 120, at = argc > 2 ? atol(argv[2]) : 50;
    const char *path = argc > 3 ? argv[3] : "train_resume.ckpt";
    if (sdflow_version() != SDFLOW_VERSION_NUMBER)
        return fprintf(stderr, "header/library version mismatch\n"), 1;
    if (steps < 2 || at < 1 || at >= steps)
        return fprintf(stderr, "usage: train_resume [steps >= 2 [1 <= at < steps [ckpt]]]\n"), 2;
    /* the data: a 2-D mixture of four Gaussians */
    static double x[N * D];
    static const double w4[4] = { 0.1, 0.2, 0.3, 0.4 }, mu[8] = { -2, -2, 2, -2, -2, 2, 2, 2 },
                        cov[16] = { 0.3, 0, 0, 0.3, 0.5, 0.2, 0.2, 0.3, 0.2, 0, 0, 0.2, 0.4, -0.1, -0.1, 0.2 };
    sdflow_ctx *ctx = new_ctx();
    sdflow_model *g = NULL;
    if (!ctx)
        return fail(NULL, "ctx");
    if (sdflow_model_create_gmm(ctx, 4, D, w4, mu, cov, &g) || sdflow_model_sample(g, 7, 0, N, x))
        return fail(ctx, "data");
    sdflow_model_free(g);

    /* run A: uninterrupted */
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_trainer *t = NULL;
    result a = { 0 }, b = { 0 };
    if (setup(ctx, x, steps, &p, &m, &t) || sdflow_trainer_fit(t, steps) || collect(ctx, t, m, &a))
        return fail(ctx, "run A");
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    printf("run A: %ld steps in one go, running loss %.6f\n", steps, a.loss);

    /* run B, first part: AT steps, a checkpoint, and the "process" ends */
    if (!(ctx = new_ctx()))
        return fail(NULL, "ctx");
    if (setup(ctx, x, steps, &p, &m, &t) || sdflow_trainer_fit(t, at) || sdflow_trainer_checkpoint_save(t, path))
        return fail(ctx, "run B, first part");
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    printf("run B: %ld steps, checkpoint written to %s\n", at, path);

    /* run B, resumed: trainer, model and process from the checkpoint alone; the data bound again */
    if (!(ctx = new_ctx()))
        return fail(NULL, "ctx");
    if (sdflow_trainer_checkpoint_load(ctx, path, &t, &m, &p))
        return fail(ctx, "loading the checkpoint");
    double k;
    sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_STEP, &k);
    if (sdflow_trainer_set_data(t, N, D, x) || sdflow_trainer_fit(t, steps - at) || collect(ctx, t, m, &b))
        return fail(ctx, "run B, resumed");
    printf("run B: resumed at step %.0f, %ld more steps, running loss %.6f\n", k, steps - at, b.loss);
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);

    int same_w = a.np == b.np && !memcmp(a.w, b.w, a.np * sizeof *a.w);
    int same_ema = a.np == b.np && !memcmp(a.ema, b.ema, a.np * sizeof *a.ema);
    int same_ck = a.size == b.size && !memcmp(a.ckpt, b.ckpt, a.size);
    printf("resume vs uninterrupted: weights %s, EMA %s, final checkpoint (moments, counts, statistics) %s\n",
           same_w ? "identical" : "DIFFER", same_ema ? "identical" : "DIFFER", same_ck ? "identical" : "DIFFERS");
    free(a.w), free(a.ema), free(a.ckpt), free(b.w), free(b.ema), free(b.ckpt);
    return same_w && same_ema && same_ck ? 0 : 1;
}
