/* SPDX-License-Identifier: MIT */
/* One IPF iteration of the diffusion Schrodinger bridge with exact affine
 * means (docs/dsb.md): a backward and a forward half-bridge of npar = 10^4
 * chains x N = 20 steps in d = 64, Gaussian data N(0.5, 0.5 I + 0.1 11^T/d)
 * <-> the OU reference's prior N(0, I). The first call fits the backward
 * half-bridge on the reference; every timed call is a full iteration with
 * affine means on both sides. ctx THREADS = 2. */
#include <stdio.h>
#include <stdlib.h>
#include "bench_util.h"
#include "sdflow.h"

enum { NPAR = 10000, NSTEPS = 20, D = 64, THREADS = 2 };

static int run(void *arg)
{
    return sdflow_sampler_fit(arg, 1) != SDFLOW_OK;
}

int main(void)
{
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return 1;
    sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, THREADS);
    double *mu = malloc(D * sizeof *mu), *cov = malloc(D * D * sizeof *cov);
    for (int a = 0; a < D; a++) {
        mu[a] = 0.5;
        for (int b = 0; b < D; b++)
            cov[a * D + b] = (a == b ? 0.5 : 0.0) + 0.1 / D;
    }
    sdflow_model *data = NULL;
    sdflow_sampler *s = NULL;
    if (sdflow_model_create_gaussian(ctx, D, mu, cov, &data) != SDFLOW_OK ||
        sdflow_sampler_create(ctx, SDFLOW_SAMPLER_DSB, &s) != SDFLOW_OK ||
        sdflow_sampler_set_model(s, SDFLOW_ROLE_DATA, data) != SDFLOW_OK ||
        sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, NSTEPS) != SDFLOW_OK ||
        sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_NPAR, NPAR) != SDFLOW_OK) {
        fprintf(stderr, "%s\n", sdflow_ctx_last_error(ctx));
        return 1;
    }
    /* Work per iteration (2 half-bridges) and chain step: two affine means
     * (2 d^2 flops each), the normal equations [x 1]^T [x 1] and [x 1]^T y
     * (2 (d+1)^2 + 2 (d+1) d flops, GEMM-class), d normals (1.5 exp-class
     * calls each, as bench_density counts them). */
    double per = (double)NPAR * NSTEPS * 2.0, dd = (double)D;
    double flops = per * (4 * dd * dd + 2 * (dd + 1) * (dd + 1) + 2 * (dd + 1) * dd), exps = per * 1.5 * dd;
    char size[96];
    snprintf(size, sizeof size, "npar=%d N=%d d=%d affine, 2 half-bridges", NPAR, NSTEPS, D);
    bench_run("dsb_ipf_iteration", size, THREADS, 3, run, s, flops, exps);
    sdflow_sampler_free(s);
    sdflow_model_free(data);
    free(mu);
    free(cov);
    sdflow_ctx_free(ctx);
    return 0;
}
