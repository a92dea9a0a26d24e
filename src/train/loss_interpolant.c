/* SPDX-License-Identifier: MIT */
/* The stochastic-interpolant velocity loss (algorithms.md §8) as a
 * loss-table entry. Convention: t = 0 base, t = 1 data.
 *
 * Row i (global index r) of a batch of data rows x1: t ~ U(0, 1) keyed by r,
 * a base draw x0 keyed by r -- N(0, I), or the bound base model's
 * sdflow_model_sample row r (gaussian, gmm), or a row of the base data
 * array drawn uniformly with replacement -- the latent z ~ N(0, I) when the
 * process has interp_eps > 0; the batch's (x0, x1) pairs are then coupled
 * (SDFLOW_OPT_COUPLING: independent, exact OT permutation of the slice, or
 * entropic OT; sdflow_coupling_pair). With
 *   x_t = a x0 + b x1 + gamma z,   dI = a' x0 + b' x1 + gamma' z
 * and v_hat the model's velocity at (x_t, t) the row's loss is reported as
 *   |v_hat|^2 - 2 dI . v_hat                      (acc[LOSS]; min -E|v|^2)
 * and |v_hat - dI|^2 as acc[MAIN]; both have the gradient 2 (v_hat - dI)
 * dv_hat/dtheta. Exact OT pairs within the rows of one call (per rank in
 * data-parallel training, as minibatch OT does per device). */
#include <math.h>
#include <string.h>
#include "trainer_internal.h"

#define TAG_T 0x745f69746cull  /* "t_itl" */
#define TAG_X0 0x78305f69746cull /* "x0_itl" */
#define TAG_Z 0x7a5f69746cull  /* "z_itl" */
#define TAG_C 0x635f69746cull  /* "c_itl" */

static sdflow_status itl_check(sdflow_trainer *t)
{
    if (!sdflow__process_is_interp(t->proc))
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "the interpolant loss needs an interpolant process, not %s",
                            sdflow_process_kind_name(t->proc->kind));
    if (sdflow__tm_native(t) != SDFLOW_OUT_VELOCITY)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID,
                            "the interpolant loss trains a velocity: set SDFLOW_OPT_MLP_OUTPUT = SDFLOW_OUT_VELOCITY");
    size_t db = t->base ? t->base->d : t->base_data ? t->d_base : t->model->d;
    if (db != t->model->d)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "the base has d=%zu but the model has d=%zu", db, t->model->d);
    return SDFLOW_OK;
}

/* Base draws x0 of the rows (keyed by their global index). */
static sdflow_status draw_base(sdflow_trainer *t, const sdflow__batch *b, double *x0)
{
    sdflow_ctx *ctx = t->ctx;
    size_t n = b->rows, d = t->d;
    uint64_t st_x = sdflow__stream(b->stream, TAG_X0, 0);
    if (t->base) {
        sdflow_status st = sdflow_model_sample(t->base, st_x, b->first, n, x0);
        if (st) {
            char why[SDFLOW__ERRMAX];
            memcpy(why, ctx->err, sizeof why);
            why[sizeof why - 1] = 0;
            return sdflow__fail(ctx, st, "interpolant base model: %s", why);
        }
        return sdflow__check_finite(ctx, x0, n, d, "base model draws");
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t r = b->first + i;
        if (t->base_data) {
            double u;
            sdflow__rng_uniform_row(ctx->seed, st_x, r, 0, 1, &u);
            size_t j = (size_t)(u * (double)t->n_base);
            j = j < t->n_base ? j : t->n_base - 1;
            memcpy(x0 + i * d, t->base_data + j * d, d * sizeof(double));
        } else {
            sdflow__rng_normal_row(ctx->seed, st_x, r, 0, d, x0 + i * d);
        }
    }
    return SDFLOW_OK;
}

static sdflow_status itl_batch(sdflow_trainer *t, const sdflow__batch *b, double *grad, double *acc)
{
    sdflow_ctx *ctx = t->ctx;
    size_t n = b->rows, d = t->d;
    double *buf = sdflow__alloc_array(ctx, n, (6 * d + 1) * sizeof(double), "interpolant work");
    size_t *pair = sdflow__alloc_array(ctx, n, sizeof(size_t), "coupling");
    if (!buf || !pair) {
        sdflow__free(ctx, buf);
        sdflow__free(ctx, pair);
        return SDFLOW_E_NOMEM;
    }
    double *x0 = buf, *z = x0 + n * d, *xt = z + n * d, *dI = xt + n * d, *vh = dI + n * d, *w = vh + n * d,
           *tt = w + n * d;
    uint64_t st_t = sdflow__stream(b->stream, TAG_T, 0), st_z = sdflow__stream(b->stream, TAG_Z, 0);
    int noisy = t->proc->interp_eps > 0;
    sdflow_status st = draw_base(t, b, x0);
    for (size_t i = 0; i < n && !st; i++) {
        uint64_t r = b->first + i;
        sdflow__rng_uniform_row(ctx->seed, st_t, r, 0, 1, &tt[i]);
        if (noisy)
            sdflow__rng_normal_row(ctx->seed, st_z, r, 0, d, z + i * d);
        else
            memset(z + i * d, 0, d * sizeof(double));
    }
    if (!st && t->coupling == SDFLOW_COUPLING_INDEPENDENT) {
        for (size_t i = 0; i < n; i++)
            pair[i] = i;
    } else if (!st) {
        st = sdflow_coupling_pair(ctx, (sdflow_coupling)t->coupling, n, d, x0, b->x0, t->coupling_eps,
                                  sdflow__stream(b->stream, TAG_C, 0), b->first, pair, NULL);
    }
    for (size_t i = 0; i < n && !st; i++) {
        sdflow__interp c;
        sdflow__process_interp(t->proc, tt[i], &c);
        const double *x1 = b->x0 + pair[i] * d;
        for (size_t j = 0; j < d; j++) {
            size_t q = i * d + j;
            xt[q] = c.a * x0[q] + c.b * x1[j] + c.gamma * z[q];
            dI[q] = c.da * x0[q] + c.db * x1[j] + c.dgamma * z[q];
        }
    }
    if (!st)
        st = sdflow__tm_eval(t, n, xt, tt, vh);
    double invB = 1.0 / (double)b->B;
    for (size_t i = 0; i < n && !st; i++) {
        double l = 0, mse = 0;
        for (size_t j = 0; j < d; j++) {
            size_t q = i * d + j;
            double r = vh[q] - dI[q];
            l += vh[q] * vh[q] - 2.0 * dI[q] * vh[q];
            mse += r * r;
            w[q] = 2.0 * r * invB;
        }
        acc[SDFLOW__ACC_LOSS] += l * invB;
        acc[SDFLOW__ACC_MAIN] += mse * invB;
    }
    if (!st && grad)
        st = sdflow__tm_grad(t, n, xt, tt, w, grad);
    sdflow__free(ctx, buf);
    sdflow__free(ctx, pair);
    return st;
}

const sdflow__loss_ops sdflow__loss_interpolant = {
    .name = "interpolant",
    .check = itl_check,
    .batch = itl_batch,
};
