/* SPDX-License-Identifier: MIT */
/* Diffusion Schrodinger bridge mean matching (algorithms.md §9) as a
 * loss-table entry: the regression of one IPF half-bridge.
 *
 * A data row holds 2d + 1 values (s, x, y): the network's time input s
 * (the DSB sampler writes the transition's label, step index k + 1 or
 * cumulative time t_{k+1}, SDFLOW_OPT_DSB_TIME_INPUT), the chain state x
 * the network sees and the mean-matching target y, e.g. for a backward
 * half-bridge x = X_{k+1}, y = X_{k+1} + F_k(X_k) - F_k(X_{k+1}). The
 * network's native output N(x, s) is the residual, mean = x + N
 * (SDFLOW_TRAIN_DSB_MEAN_MATCH = 0, the reference code's default for 2-D
 * problems), or the mean itself (= 1). The row's loss is |mean - y|^2,
 * divided by d with SDFLOW_TRAIN_REDUCE_MEAN (F.mse_loss, as the
 * reference code); acc[LOSS] = acc[MAIN]. Its minimum over all means is
 * E tr Cov(y | x), the targets' irreducible noise (about 2 gamma per
 * coordinate for a DSB). The rows carry everything: the loss draws
 * nothing and needs no process, so the same rows give the same loss for
 * any split into ranks or calls. The network is evaluated as the DSB
 * sampler evaluates its means (without a process), hence the Fourier
 * features must be of the label itself (SDFLOW_OPT_MLP_TIME_INPUT = 0). */
#include <string.h>
#include "trainer_internal.h"

static size_t dsb_cols(size_t d) { return 2 * d + 1; }

static sdflow_status dsb_check(sdflow_trainer *t)
{
    long ti = 0;
    sdflow_model_get_int(t->model, SDFLOW_OPT_MLP_TIME_INPUT, &ti);
    if (ti)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID,
                            "DSB mean matching evaluates the network without a process: set "
                            "SDFLOW_OPT_MLP_TIME_INPUT = 0 (Fourier features of the time label)");
    return SDFLOW_OK;
}

static sdflow_status dsb_batch(sdflow_trainer *t, const sdflow__batch *b, double *grad, double *acc)
{
    sdflow_ctx *ctx = t->ctx;
    size_t n = b->rows, d = t->model->d, w = dsb_cols(d);
    double *buf = sdflow__alloc_array(ctx, n, (3 * d + 2) * sizeof(double), "DSB mean-matching work");
    if (!buf)
        return SDFLOW_E_NOMEM;
    double *x = buf, *out = x + n * d, *r = out + n * d, *tt = r + n * d, *s = tt + n;
    int mm = t->dsb_mean_match != 0;
    double c = 2.0 / ((t->reduce_mean ? (double)d : 1.0) * (double)b->B);
    for (size_t i = 0; i < n; i++) {
        const double *row = b->x0 + i * w;
        tt[i] = row[0];
        memcpy(x + i * d, row + 1, d * sizeof(double));
        /* d loss / d output = c (mean - y) = c N + c ((mm ? 0 : x) - y): affine in the output */
        s[i] = c;
        for (size_t j = 0; j < d; j++)
            r[i * d + j] = c * ((mm ? 0.0 : row[1 + j]) - row[1 + d + j]);
    }
    sdflow_status st = grad ? sdflow__tm_eval_grad_affine(t, n, x, tt, s, r, out, grad)
                            : sdflow__tm_eval(t, n, x, tt, out);
    for (size_t i = 0; i < n && !st; i++) {
        const double *row = b->x0 + i * w;
        double l = 0;
        for (size_t j = 0; j < d; j++) {
            double e = out[i * d + j] + (mm ? 0.0 : row[1 + j]) - row[1 + d + j];
            l += e * e;
        }
        l *= 0.5 * c;
        acc[SDFLOW__ACC_LOSS] += l;
        acc[SDFLOW__ACC_MAIN] += l;
    }
    sdflow__free(ctx, buf);
    return st;
}

const sdflow__loss_ops sdflow__loss_dsb_mean = {
    .name = "dsb_mean",
    .check = dsb_check,
    .batch = dsb_batch,
    .data_cols = dsb_cols,
    .no_process = 1,
};
