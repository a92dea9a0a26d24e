/* SPDX-License-Identifier: MIT */
/* Trainer checkpoints (trainer.h, docs/model-files.md "Trainer
 * checkpoints"): N + M steps uninterrupted equal N steps, a checkpoint, and
 * M steps of a fresh trainer in a new ctx restored from it -- parameters,
 * Adam moments, EMA, counts and statistics bit for bit (the whole
 * checkpoint of both runs is compared with memcmp, and the weights and EMA
 * separately) -- for DSM, DSM + QCSGM, an energy MLP and the interpolant
 * loss, resumed with 1 and 2 threads, through a buffer, a file and the
 * file-alone loader. Every documented mismatch is refused with
 * SDFLOW_E_INVALID naming it and leaves the trainer as it was; the
 * hostile-input checks of the model files (every truncation, every bit
 * flipped, a counting allocator that must end empty) and allocation
 * failure at every allocation of save, restore and load. */
#include <stdio.h>
#include <unistd.h>
#include "testutil.h"

enum { CASE_DSM = 0, CASE_QCSGM = 1, CASE_ENERGY = 2, CASE_INTERP = 3, NCASES = 4 };
static const char *const case_names[NCASES] = { "dsm", "dsm+qcsgm", "energy", "interpolant" };

enum { NROWS = 256, D = 2, NSTEP = 5, MSTEP = 5 };

typedef struct run {
    sdflow_ctx *ctx;
    sdflow_model *m;
    sdflow_process *p;
    sdflow_trainer *t;
} run;

static double g_data[NROWS * D], g_val[32 * D];

static void make_data(void)
{
    sdflow_ctx *ctx = test_ctx(5);
    sdflow_model *g = tu_gmm4(ctx, 0.0);
    ck_assert_int_eq(sdflow_model_sample(g, 3, 0, NROWS, g_data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_sample(g, 4, 0, 32, g_val), SDFLOW_OK);
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}

static sdflow_model *case_model(sdflow_ctx *ctx, int c, long width)
{
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, D, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, width), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 2), SDFLOW_OK);
    if (c == CASE_ENERGY)
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY), SDFLOW_OK);
    if (c == CASE_INTERP)
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY), SDFLOW_OK);
    if (c == CASE_QCSGM) /* learned frequencies: the time_embed.freqs tensor is a parameter */
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, 1), SDFLOW_OK);
    return m;
}

/* The options a resume must reproduce: a cosine schedule with warmup over
 * a fixed horizon, AdamW with decay, clipping, EMA with warm-up. */
static void configure(sdflow_trainer *t, int c)
{
    ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, 64), SDFLOW_OK); /* 64 rows: threads start */
    ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_LR, 5e-3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_SCHEDULE, SDFLOW_LR_COSINE), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_WARMUP, 3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_TOTAL_STEPS, NSTEP + MSTEP), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_OPTIMIZER, SDFLOW_OPTIM_ADAMW), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_WEIGHT_DECAY, 0.01), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_CLIP_NORM, 2.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_EMA_DECAY, 0.9), SDFLOW_OK);
    if (c != CASE_INTERP)
        ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_STRATIFIED, 1), SDFLOW_OK);
    if (c == CASE_QCSGM)
        ck_assert_int_eq(sdflow_trainer_set_double(t, SDFLOW_TRAIN_QCSGM_WEIGHT, 0.5), SDFLOW_OK);
    if (c == CASE_INTERP)
        ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_OPT_COUPLING, SDFLOW_COUPLING_OT_EXACT), SDFLOW_OK);
}

static run make_run(int c, int threads, long width)
{
    run r = { 0 };
    r.ctx = test_ctx(41);
    ck_assert_int_eq(sdflow_ctx_set_int(r.ctx, SDFLOW_CTX_THREADS, threads), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_create(r.ctx, c == CASE_INTERP ? SDFLOW_PROCESS_INTERP_LINEAR : SDFLOW_PROCESS_VP,
                                           &r.p),
                     SDFLOW_OK);
    r.m = case_model(r.ctx, c, width);
    ck_assert_int_eq(sdflow_trainer_create(r.ctx, c == CASE_INTERP ? SDFLOW_LOSS_INTERPOLANT : SDFLOW_LOSS_DSM, &r.t),
                     SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_model(r.t, r.m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_process(r.t, r.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_data(r.t, NROWS, D, g_data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_validation(r.t, 32, D, g_val), SDFLOW_OK);
    configure(r.t, c);
    return r;
}

static void free_run(run *r)
{
    sdflow_trainer_free(r->t);
    sdflow_model_free(r->m);
    sdflow_process_free(r->p);
    sdflow_ctx_free(r->ctx);
}

static void steps(sdflow_trainer *t, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(sdflow_trainer_step(t), SDFLOW_OK);
}

static unsigned char *save_ckpt(sdflow_trainer *t, size_t *size)
{
    ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(t, NULL, 0, size), SDFLOW_OK);
    unsigned char *b = malloc(*size);
    ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(t, b, *size, size), SDFLOW_OK);
    return b;
}

/* Weights and EMA of a run, concatenated. */
static double *weights(run *r, size_t *np)
{
    ck_assert_int_eq(sdflow_model_param_count(r->m, np), SDFLOW_OK);
    double *w = malloc(2 * *np * sizeof *w);
    ck_assert_int_eq(sdflow_model_get_params(r->m, *np, w), SDFLOW_OK);
    /* the EMA through the bound model itself, its weights put back after */
    double *save = malloc(*np * sizeof *save);
    memcpy(save, w, *np * sizeof *w);
    ck_assert_int_eq(sdflow_trainer_copy_ema(r->t, r->m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_get_params(r->m, *np, w + *np), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_params(r->m, *np, save), SDFLOW_OK);
    free(save);
    return w;
}

static void assert_same_state(run *a, run *b, const char *what)
{
    size_t na, nb, sa, sb;
    double *wa = weights(a, &na), *wb = weights(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(!memcmp(wa, wb, 2 * na * sizeof *wa), "%s: weights or EMA differ", what);
    double va, vb;
    ck_assert_int_eq(sdflow_trainer_validate(a->t, &va), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_validate(b->t, &vb), SDFLOW_OK);
    ck_assert_msg(!memcmp(&va, &vb, sizeof va), "%s: validation loss %.17g vs %.17g", what, va, vb);
    for (int s = SDFLOW_TRAIN_STAT_STEP; s <= SDFLOW_TRAIN_STAT_PENALTY; s++) {
        ck_assert_int_eq(sdflow_trainer_get_stat(a->t, (sdflow_train_stat)s, &va), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_get_stat(b->t, (sdflow_train_stat)s, &vb), SDFLOW_OK);
        ck_assert_msg(!memcmp(&va, &vb, sizeof va), "%s: statistic %d: %.17g vs %.17g", what, s, va, vb);
    }
    /* everything else (moments, counts, options): the checkpoints are the same bytes */
    unsigned char *ca = save_ckpt(a->t, &sa), *cb = save_ckpt(b->t, &sb);
    ck_assert_msg(sa == sb && !memcmp(ca, cb, sa), "%s: checkpoints differ (%zu vs %zu bytes)", what, sa, sb);
    free(ca);
    free(cb);
    free(wa);
    free(wb);
}

/* ---- bit-identical resume --------------------------------------------------- */

START_TEST(test_checkpoint_resume_bitwise)
{
    make_data();
    char path[64];
    snprintf(path, sizeof path, "/tmp/sdflow_ckpt_%ld.safetensors", (long)getpid());
    for (int c = 0; c < NCASES; c++) {
        /* the reference: N + M steps in one go, one thread, validated after N as the resumed runs are */
        run ref = make_run(c, 1, 8);
        double v;
        steps(ref.t, NSTEP);
        ck_assert_int_eq(sdflow_trainer_validate(ref.t, &v), SDFLOW_OK);
        steps(ref.t, MSTEP);
        /* the same, with a checkpoint taken after N (saving changes nothing) */
        run a = make_run(c, 1, 8);
        steps(a.t, NSTEP);
        ck_assert_int_eq(sdflow_trainer_validate(a.t, &v), SDFLOW_OK);
        size_t size;
        unsigned char *ck = save_ckpt(a.t, &size);
        ck_assert_int_eq(sdflow_trainer_checkpoint_save(a.t, path), SDFLOW_OK);
        steps(a.t, MSTEP);
        assert_same_state(&ref, &a, "saving");
        for (int threads = 1; threads <= 2; threads++) {
            char what[96];
            /* a fresh trainer and model (another initialization: width 8 from another seed is
             * overwritten) in a new ctx, restored from the buffer */
            run b = make_run(c, threads, 8);
            ck_assert_int_eq(sdflow_trainer_checkpoint_restore_buffer(b.t, ck, size), SDFLOW_OK);
            double st;
            ck_assert_int_eq(sdflow_trainer_get_stat(b.t, SDFLOW_TRAIN_STAT_STEP, &st), SDFLOW_OK);
            ck_assert(st == NSTEP);
            steps(b.t, MSTEP);
            snprintf(what, sizeof what, "%s, buffer, %d threads", case_names[c], threads);
            assert_same_state(&ref, &b, what);
            free_run(&b);
            /* from the file into a configured trainer */
            b = make_run(c, threads, 8);
            ck_assert_int_eq(sdflow_trainer_checkpoint_restore(b.t, path), SDFLOW_OK);
            steps(b.t, MSTEP);
            snprintf(what, sizeof what, "%s, file, %d threads", case_names[c], threads);
            assert_same_state(&ref, &b, what);
            free_run(&b);
            /* from the file alone: the trainer, model and process rebuilt; only the data bound */
            run l = { 0 };
            l.ctx = test_ctx(41);
            ck_assert_int_eq(sdflow_ctx_set_int(l.ctx, SDFLOW_CTX_THREADS, threads), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_checkpoint_load(l.ctx, path, &l.t, &l.m, &l.p), SDFLOW_OK);
            ck_assert_ptr_nonnull(l.p);
            ck_assert_int_eq(sdflow_trainer_set_data(l.t, NROWS, D, g_data), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_set_validation(l.t, 32, D, g_val), SDFLOW_OK);
            steps(l.t, MSTEP);
            snprintf(what, sizeof what, "%s, file alone, %d threads", case_names[c], threads);
            assert_same_state(&ref, &l, what);
            free_run(&l);
        }
        /* the test can fail: resuming without the moments (a model file's weights only) diverges */
        run w = make_run(c, 1, 8);
        run tmp = make_run(c, 1, 8);
        ck_assert_int_eq(sdflow_trainer_checkpoint_restore_buffer(tmp.t, ck, size), SDFLOW_OK);
        size_t np;
        double *th = weights(&tmp, &np);
        ck_assert_int_eq(sdflow_model_set_params(w.m, np, th), SDFLOW_OK);
        steps(w.t, MSTEP);
        double *wr = weights(&ref, &np), *ww = weights(&w, &np);
        ck_assert_msg(memcmp(wr, ww, np * sizeof *wr) != 0, "%s: weights alone resumed identically", case_names[c]);
        free(th);
        free(wr);
        free(ww);
        free_run(&w);
        free_run(&tmp);
        test_note("checkpoint %s: %zu-byte checkpoint after %d steps; %d more steps from buffer, file and file alone "
                  "at 1 and 2 threads equal the uninterrupted run bit for bit",
                  case_names[c], size, NSTEP, MSTEP);
        free(ck);
        free_run(&a);
        free_run(&ref);
    }
    remove(path);
}
END_TEST

/* A checkpoint taken from the progress callback inside fit (total steps 0:
 * the horizon is the fit's end) resumes with step() on that horizon. */
typedef struct grab {
    sdflow_trainer *t;
    long at;
    unsigned char *buf;
    size_t size;
} grab;

static int grab_progress(void *user, long done, long total)
{
    grab *g = user;
    (void)total;
    if (done == g->at) {
        ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(g->t, NULL, 0, &g->size), SDFLOW_OK);
        g->buf = malloc(g->size);
        ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(g->t, g->buf, g->size, &g->size), SDFLOW_OK);
    }
    return 0;
}

START_TEST(test_checkpoint_inside_fit)
{
    make_data();
    run ref = make_run(CASE_DSM, 1, 8), b = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_trainer_set_int(ref.t, SDFLOW_TRAIN_TOTAL_STEPS, 0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(b.t, SDFLOW_TRAIN_TOTAL_STEPS, 0), SDFLOW_OK);
    grab g = { ref.t, 4, NULL, 0 };
    ck_assert_int_eq(sdflow_ctx_set_progress(ref.ctx, grab_progress, &g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_fit(ref.t, 9), SDFLOW_OK);
    ck_assert_ptr_nonnull(g.buf);
    ck_assert_int_eq(sdflow_trainer_checkpoint_restore_buffer(b.t, g.buf, g.size), SDFLOW_OK);
    steps(b.t, 5); /* the cosine horizon of the fit (9) came with the checkpoint */
    /* fit validated at its end; the statistics must match, so validate b too */
    double v;
    ck_assert_int_eq(sdflow_trainer_validate(b.t, &v), SDFLOW_OK);
    size_t na, nb;
    double *wa = weights(&ref, &na), *wb = weights(&b, &nb);
    ck_assert(na == nb && !memcmp(wa, wb, 2 * na * sizeof *wa));
    free(wa);
    free(wb);
    free(g.buf);
    free_run(&ref);
    free_run(&b);
}
END_TEST

/* ---- mismatches ------------------------------------------------------------- */

/* Restoring ck into r must fail with status and message want, and leave the
 * trainer (its checkpoint: state, options, statistics) and model unchanged. */
static void expect_refusal(run *r, const unsigned char *ck, size_t size, sdflow_status status, const char *want)
{
    size_t s0, s1;
    unsigned char *before = save_ckpt(r->t, &s0);
    ck_assert_status_msg(r->ctx, sdflow_trainer_checkpoint_restore_buffer(r->t, ck, size), status, want);
    unsigned char *after = save_ckpt(r->t, &s1);
    ck_assert_msg(s0 == s1 && !memcmp(before, after, s0), "a refused restore (%s) changed the trainer", want);
    free(before);
    free(after);
}

START_TEST(test_checkpoint_mismatch)
{
    make_data();
    run a = make_run(CASE_DSM, 1, 8);
    steps(a.t, 3);
    size_t size;
    unsigned char *ck = save_ckpt(a.t, &size);
    run r;
    /* each a configuration the resume would not reproduce */
    r = make_run(CASE_DSM, 1, 8);
    steps(r.t, 1); /* a trainer with state of its own: it must survive the refusals */
    ck_assert_int_eq(sdflow_trainer_set_double(r.t, SDFLOW_TRAIN_LR, 4e-3), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "option train_lr is 0.0050000000000000001 in the checkpoint");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_trainer_set_int(r.t, SDFLOW_TRAIN_BATCH, 32), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "option train_batch");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_trainer_set_u64(r.t, SDFLOW_OPT_STREAM, 99), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "option stream");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_trainer_set_double(r.t, SDFLOW_TRAIN_QCSGM_WEIGHT, 0.1), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "option train_qcsgm_weight");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_ctx_set_u64(r.ctx, SDFLOW_CTX_SEED, 42), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "SDFLOW_CTX_SEED is 41 in the checkpoint, 42");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 9); /* architecture */
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "model option mlp_width is 8 in the checkpoint, 9");
    free_run(&r);
    r = make_run(CASE_ENERGY, 1, 8);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "model option mlp_output");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8); /* process */
    ck_assert_int_eq(sdflow_process_set_double(r.p, SDFLOW_PROC_BETA_MAX, 19.0), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "process option beta_max");
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8);
    sdflow_process *ve = NULL;
    ck_assert_int_eq(sdflow_process_create(r.ctx, SDFLOW_PROCESS_VE, &ve), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_process(r.t, ve), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "the process kind is vp in the checkpoint, ve");
    sdflow_process_free(ve);
    free_run(&r);
    r = make_run(CASE_DSM, 1, 8); /* data */
    double other[NROWS * D];
    memcpy(other, g_data, sizeof other);
    other[17] = nextafter(other[17], 1e9);
    ck_assert_int_eq(sdflow_trainer_set_data(r.t, NROWS, D, other), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "the data array is 256 rows");
    ck_assert_int_eq(sdflow_trainer_set_data(r.t, NROWS - 1, D, g_data), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "the data array");
    free_run(&r);
    /* the loss kind: an interpolant trainer on the same model and process */
    r = make_run(CASE_DSM, 1, 8);
    sdflow_trainer *it = NULL;
    ck_assert_int_eq(sdflow_trainer_create(r.ctx, SDFLOW_LOSS_INTERPOLANT, &it), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_model(it, r.m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_process(it, r.p), SDFLOW_OK);
    ck_assert_status_msg(r.ctx, sdflow_trainer_checkpoint_restore_buffer(it, ck, size), SDFLOW_E_INVALID,
                         "the loss kind is dsm in the checkpoint, interpolant");
    sdflow_trainer_free(it);
    free_run(&r);
    /* rank is not part of it: each rank of a run restores the same file */
    r = make_run(CASE_DSM, 1, 8);
    ck_assert_int_eq(sdflow_trainer_set_int(r.t, SDFLOW_TRAIN_WORLD_SIZE, 2), SDFLOW_OK);
    expect_refusal(&r, ck, size, SDFLOW_E_INVALID, "option train_world_size");
    free_run(&r);
    /* state and form: no model bound, a model file, a file-alone load under another seed */
    sdflow_ctx *ctx = test_ctx(41);
    sdflow_trainer *t = NULL;
    ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_trainer_checkpoint_restore_buffer(t, ck, size), SDFLOW_E_STATE, "no model");
    ck_assert_status_msg(ctx, sdflow_trainer_checkpoint_save_buffer(t, NULL, 0, &size), SDFLOW_E_STATE, "no model");
    sdflow_trainer_free(t);
    size_t ms;
    ck_assert_int_eq(sdflow_model_save_buffer(a.m, a.p, NULL, 0, &ms), SDFLOW_OK);
    unsigned char *mf = malloc(ms);
    ck_assert_int_eq(sdflow_model_save_buffer(a.m, a.p, mf, ms, &ms), SDFLOW_OK);
    r = make_run(CASE_DSM, 1, 8);
    expect_refusal(&r, mf, ms, SDFLOW_E_FORMAT, "not a trainer checkpoint");
    /* and a checkpoint is not a model file */
    sdflow_model *lm = NULL;
    ck_assert_status_msg(r.ctx, sdflow_model_load_buffer(r.ctx, ck, size, &lm, NULL), SDFLOW_E_FORMAT, "byte ");
    ck_assert_ptr_null(lm);
    free_run(&r);
    free(mf);
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 7), SDFLOW_OK);
    t = (sdflow_trainer *)ctx;
    ck_assert_status_msg(ctx, sdflow_trainer_checkpoint_load_buffer(ctx, ck, size, &t, &m, &p), SDFLOW_E_INVALID,
                         "SDFLOW_CTX_SEED = 41");
    ck_assert(!t && !m && !p);
    /* API errors */
    ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(NULL, NULL, 0, &size), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_trainer_checkpoint_save_buffer(a.t, NULL, 0, NULL), SDFLOW_E_INVALID);
    unsigned char small[16];
    ck_assert_status_msg(a.ctx, sdflow_trainer_checkpoint_save_buffer(a.t, small, sizeof small, &size),
                         SDFLOW_E_INVALID, "too small");
    ck_assert_int_eq(sdflow_trainer_checkpoint_save(a.t, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_trainer_checkpoint_restore(NULL, "x"), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_trainer_checkpoint_restore_buffer(a.t, NULL, 5), SDFLOW_E_INVALID);
    ck_assert_status_msg(a.ctx, sdflow_trainer_checkpoint_restore(a.t, "/nonexistent/ckpt"), SDFLOW_E_IO,
                         "cannot open");
    ck_assert_status_msg(a.ctx, sdflow_trainer_checkpoint_save(a.t, "/nonexistent/ckpt"), SDFLOW_E_IO,
                         "cannot open");
    ck_assert_int_eq(sdflow_trainer_checkpoint_load_buffer(NULL, ck, size, &t, &m, &p), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_trainer_checkpoint_load_buffer(ctx, ck, size, NULL, &m, &p), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_trainer_checkpoint_load(ctx, NULL, &t, &m, &p), SDFLOW_E_INVALID);
    sdflow_ctx_free(ctx);
    free(ck);
    free_run(&a);
}
END_TEST

/* ---- the hostile loader ---------------------------------------------------------- */

static unsigned char *g_ck;
static size_t g_cksize;

/* A tiny DSM trainer on a counting allocator. */
static run tiny_run(const sdflow_allocator *a)
{
    run r = { 0 };
    ck_assert_int_eq(sdflow_ctx_create(&r.ctx, a), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_set_u64(r.ctx, SDFLOW_CTX_SEED, 41), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_create(r.ctx, SDFLOW_PROCESS_VP, &r.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_mlp(r.ctx, 1, &r.m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(r.m, SDFLOW_OPT_MLP_DEPTH, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(r.m, SDFLOW_OPT_MLP_WIDTH, 2), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(r.m, SDFLOW_OPT_MLP_FREQS, 0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_create(r.ctx, SDFLOW_LOSS_DSM, &r.t), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_model(r.t, r.m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_process(r.t, r.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_data(r.t, 8, 1, g_data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_trainer_set_int(r.t, SDFLOW_TRAIN_BATCH, 4), SDFLOW_OK);
    return r;
}

/* Recomputes the checksum of a (damaged) checkpoint, as a forger would, so
 * that the checks behind it are reached: FNV-1a 64 of the file with the 16
 * digits read as zeros. 0 when the digits are not found (damaged themselves). */
static int resign(unsigned char *b, size_t size)
{
    static const char key[] = "\"sdflow.train.checksum\"";
    size_t k = sizeof key - 1, i = 0;
    while (i + k < size && memcmp(b + i, key, k))
        i++;
    if (i + k >= size)
        return 0;
    i += k;
    while (i < size && b[i] != '"')
        i++;
    if (i + 18 > size)
        return 0;
    unsigned char *dig = b + i + 1;
    memset(dig, '0', 16);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t j = 0; j < size; j++) {
        h ^= b[j];
        h *= 0x100000001b3ull;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    memcpy(dig, hex, 16);
    return 1;
}

START_TEST(test_checkpoint_truncated_and_flipped)
{
    make_data();
    run a = tiny_run(NULL);
    steps(a.t, 2);
    size_t size;
    unsigned char *ck = save_ckpt(a.t, &size);
    /* the trainer that meets every damaged file, with state of its own */
    failalloc f = { -1, 0, 0 };
    sdflow_allocator al = { fa_alloc, NULL, fa_free, &f };
    run r = tiny_run(&al);
    steps(r.t, 1);
    size_t s0;
    unsigned char *before = save_ckpt(r.t, &s0), *c = malloc(size);
    long live = f.live;
    for (size_t k = 0; k < size; k++) {
        sdflow_status st = sdflow_trainer_checkpoint_restore_buffer(r.t, ck, k);
        ck_assert_msg(st == SDFLOW_E_FORMAT, "truncated at %zu of %zu: status %d", k, size, st);
        ck_assert_msg(strstr(sdflow_ctx_last_error(r.ctx), "byte ") != NULL, "%s", sdflow_ctx_last_error(r.ctx));
        ck_assert_msg(f.live == live, "truncated at %zu: %ld blocks leaked", k, f.live - live);
    }
    /* every bit flipped, as found (the checksum refuses each), then re-signed
     * (so the metadata and tensor checks behind it must hold) */
    long ok = 0, invalid = 0, format = 0, unsigned_refused = 0;
    for (int sign = 0; sign < 2; sign++)
        for (size_t k = 0; k < size; k++)
            for (int bit = 0; bit < 8; bit++) {
                memcpy(c, ck, size);
                c[k] ^= (unsigned char)(1u << bit);
                if (sign && !resign(c, size))
                    continue;
                sdflow_status st = sdflow_trainer_checkpoint_restore_buffer(r.t, c, size);
                ck_assert_msg(st == SDFLOW_E_FORMAT || st == SDFLOW_E_INVALID || st == SDFLOW_OK,
                              "byte %zu bit %d: status %d", k, bit, st);
                ck_assert_msg(f.live == live, "byte %zu bit %d: %ld blocks leaked", k, bit, f.live - live);
                if (!sign) {
                    ck_assert_msg(st == SDFLOW_E_FORMAT, "byte %zu bit %d: unsigned damage accepted (%d)", k, bit,
                                  st);
                    unsigned_refused++;
                }
                if (st == SDFLOW_OK) { /* still a consistent checkpoint (a statistic's digit, ...): it steps */
                    ok++;
                    /* a damaged weight or moment can be huge yet finite: the step then reports the overflow */
                    sdflow_status s2 = sdflow_trainer_step(r.t);
                    ck_assert_msg(s2 == SDFLOW_OK || s2 == SDFLOW_E_NUMERIC, "byte %zu bit %d: step %d (%s)", k, bit,
                                  s2, sdflow_ctx_last_error(r.ctx));
                    ck_assert_int_eq(sdflow_trainer_checkpoint_restore_buffer(r.t, before, s0), SDFLOW_OK);
                    live = f.live;
                    continue;
                }
                if (sign)
                    invalid += st == SDFLOW_E_INVALID, format += st == SDFLOW_E_FORMAT;
                size_t s1;
                unsigned char *after = save_ckpt(r.t, &s1);
                ck_assert_msg(s1 == s0 && !memcmp(before, after, s0),
                              "byte %zu bit %d: failed restore changed the trainer", k, bit);
                free(after);
            }
    test_note("checkpoint: %zu-byte file: %zu truncations refused; %ld bit flips all refused by the checksum; "
              "re-signed: %ld still valid, %ld refused as mismatches, %ld as malformed; the trainer unchanged by "
              "each refusal",
              size, size, unsigned_refused, ok, invalid, format);
    free(before);
    free(c);
    free(ck);
    free_run(&r);
    ck_assert_msg(f.live == 0, "%ld blocks leaked", f.live);
    free_run(&a);
}
END_TEST

/* ---- allocation failure ---------------------------------------------------------- */

static sdflow_status restore_workload(const sdflow_allocator *al)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, al);
    if (st)
        return st;
    sdflow_trainer *t = NULL;
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 41), SDFLOW_OK);
    st = sdflow_trainer_checkpoint_load_buffer(ctx, g_ck, g_cksize, &t, &m, &p);
    if (!st) {
        size_t size;
        unsigned char *b = malloc(g_cksize);
        st = sdflow_trainer_set_data(t, 8, 1, g_data);
        if (!st)
            st = sdflow_trainer_checkpoint_save_buffer(t, b, g_cksize, &size);
        if (!st)
            ck_assert_msg(size == g_cksize && !memcmp(b, g_ck, size), "re-saved checkpoint differs");
        /* restoring into the rebuilt trainer itself */
        if (!st)
            st = sdflow_trainer_checkpoint_restore_buffer(t, g_ck, g_cksize);
        free(b);
    } else {
        ck_assert(!t && !m && !p);
    }
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_checkpoint_alloc_failures)
{
    make_data();
    run a = tiny_run(NULL);
    steps(a.t, 2);
    g_ck = save_ckpt(a.t, &g_cksize);
    check_all_alloc_failures(restore_workload);
    free(g_ck);
    free_run(&a);
}
END_TEST

Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_checkpoint_resume_bitwise);
    tcase_add_test(tc, test_checkpoint_inside_fit);
    tcase_add_test(tc, test_checkpoint_mismatch);
    tcase_add_test(tc, test_checkpoint_truncated_and_flipped);
    tcase_add_test(tc, test_checkpoint_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
