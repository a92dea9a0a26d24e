/* SPDX-License-Identifier: MIT */
/* Writes the fuzzer's seed corpus: one small valid file of every model kind
 * with state (with and without a process, F64 and F32) into DIR.
 * Usage: make_corpus DIR */
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

static sdflow_ctx *ctx;

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
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_FILE_DTYPE, SDFLOW_DTYPE_F32);
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
