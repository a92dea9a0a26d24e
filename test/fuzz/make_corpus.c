/* SPDX-License-Identifier: MIT */
/* Writes the fuzzer's seed corpus: one small valid file of every model kind
 * with state (with and without a process, F64 and F32) and small trainer
 * checkpoints (DSM, DSM + QCSGM with learned frequencies, an energy MLP,
 * the interpolant loss; *.ckpt, each loaded back here) into DIR.
 * Usage: make_corpus DIR */
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

static sdflow_ctx *ctx;

/* A checkpoint of a tiny trainer after two steps, written and loaded back
 * (from the file alone). kind 0 DSM, 1 QCSGM + learned frequencies, 2 energy, 3 interpolant. */
static int checkpoint(const char *dir, const char *name, int kind)
{
    static const double x[16] = { 0.1, -0.3, 1.2, 0.5, -0.8, 0.9, 0.0, 0.4, -1.1, 0.7, 0.3, -0.2, 0.6, 1.4, -0.5, 0.2 };
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_trainer *t = NULL;
    int bad = sdflow_process_create(ctx, kind == 3 ? SDFLOW_PROCESS_INTERP_LINEAR : SDFLOW_PROCESS_VP, &p) ||
              sdflow_model_create_mlp(ctx, 1, &m) || sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 1) ||
              sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 2) ||
              sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, kind == 1 ? 1 : 0) ||
              (kind == 1 && sdflow_model_set_int(m, SDFLOW_OPT_MLP_LEARN_FREQS, 1)) ||
              (kind == 2 && sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY)) ||
              (kind == 3 && sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY)) ||
              sdflow_trainer_create(ctx, kind == 3 ? SDFLOW_LOSS_INTERPOLANT : SDFLOW_LOSS_DSM, &t) ||
              sdflow_trainer_set_model(t, m) || sdflow_trainer_set_process(t, p) ||
              sdflow_trainer_set_data(t, 16, 1, x) || sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, 4) ||
              (kind == 1 && sdflow_trainer_set_double(t, SDFLOW_TRAIN_QCSGM_WEIGHT, 0.5)) ||
              sdflow_trainer_step(t) || sdflow_trainer_step(t);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.ckpt", dir, name);
    bad = bad || sdflow_trainer_checkpoint_save(t, path);
    sdflow_trainer *lt = NULL;
    sdflow_model *lm = NULL;
    sdflow_process *lp = NULL;
    bad = bad || sdflow_trainer_checkpoint_load(ctx, path, &lt, &lm, &lp) || sdflow_trainer_set_data(lt, 16, 1, x) ||
          sdflow_trainer_step(lt);
    if (bad)
        fprintf(stderr, "make_corpus: %s: %s\n", path, sdflow_ctx_last_error(ctx));
    sdflow_trainer_free(lt);
    sdflow_model_free(lm);
    sdflow_process_free(lp);
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
    return bad;
}

static int save(sdflow_model *m, const sdflow_process *p, const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    if (sdflow_model_save(m, p, path) != SDFLOW_OK) {
        fprintf(stderr, "make_corpus: %s: %s\n", path, sdflow_ctx_last_error(ctx));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    if (sdflow_ctx_create(&ctx, NULL))
        return 1;
    const double mu[2] = { 0.5, -1 }, cov[4] = { 1, 0.2, 0.2, 0.5 }, w[2] = { 0.25, 0.75 };
    const double mus[4] = { -1, 0, 1, 1 }, covs[8] = { 1, 0, 0, 1, 0.5, 0.1, 0.1, 0.3 };
    const double y[8] = { 0, 1, 2, 3, -1, 0.5, 4, 2 };
    sdflow_model *g, *gm, *k, *mlp, *mlp2;
    sdflow_process *vp, *ve;
    int bad = sdflow_model_create_gaussian(ctx, 2, mu, cov, &g) || sdflow_model_create_gmm(ctx, 2, 2, w, mus, covs, &gm) ||
              sdflow_model_create_kernel(ctx, 4, 2, y, &k) || sdflow_model_create_mlp(ctx, 2, &mlp) ||
              sdflow_model_create_mlp(ctx, 1, &mlp2) || sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp) ||
              sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &ve);
    bad = bad || sdflow_model_set_int(mlp, SDFLOW_OPT_MLP_DEPTH, 1) || sdflow_model_set_int(mlp, SDFLOW_OPT_MLP_WIDTH, 3) ||
          sdflow_model_set_int(mlp, SDFLOW_OPT_MLP_FREQS, 1);
    bad = bad || sdflow_model_set_int(mlp2, SDFLOW_OPT_MLP_DEPTH, 3) || /* residual blocks: odd depth */
          sdflow_model_set_int(mlp2, SDFLOW_OPT_MLP_WIDTH, 2) || sdflow_model_set_int(mlp2, SDFLOW_OPT_MLP_FREQS, 0) ||
          sdflow_model_set_int(mlp2, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_MLP_ENERGY) ||
          sdflow_model_set_int(mlp2, SDFLOW_OPT_MLP_RESIDUAL, 1);
    if (bad) {
        fprintf(stderr, "make_corpus: %s\n", sdflow_ctx_last_error(ctx));
        return 1;
    }
    const char *dir = argv[1];
    bad = save(g, NULL, dir, "gaussian") || save(gm, vp, dir, "gmm_vp") || save(k, NULL, dir, "kernel") ||
          save(k, ve, dir, "kernel_ve") || save(mlp, vp, dir, "mlp_vp") || save(mlp2, NULL, dir, "mlp_energy");
    bad = bad || checkpoint(dir, "ckpt_dsm", 0) || checkpoint(dir, "ckpt_qcsgm", 1) ||
          checkpoint(dir, "ckpt_energy", 2) || checkpoint(dir, "ckpt_interpolant", 3);
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_FILE_DTYPE, SDFLOW_DTYPE_F32); /* checkpoints stay F64 */
    bad = bad || save(gm, NULL, dir, "gmm_f32") || save(mlp, ve, dir, "mlp_ve_f32");
    sdflow_model_free(g);
    sdflow_model_free(gm);
    sdflow_model_free(k);
    sdflow_model_free(mlp);
    sdflow_model_free(mlp2);
    sdflow_process_free(vp);
    sdflow_process_free(ve);
    sdflow_ctx_free(ctx);
    return bad;
}
