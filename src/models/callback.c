/* SPDX-License-Identifier: MIT */
/* User callback models: the user's function gives outputs of a declared
 * kind; an optional JVP callback enables exact Jacobians and divergences. */
#include <string.h>
#include "model_internal.h"

typedef struct callback_model {
    sdflow_model_fn fn;
    void *user;
    sdflow_model_jvp_fn jvp;
    void *jvp_user;
} callback_model;

static sdflow_status cb_eval(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                             double *out)
{
    (void)p;
    const callback_model *cb = m->impl;
    int rc = cb->fn(n, m->d, x, t, out, cb->user);
    if (rc != 0)
        return sdflow__fail(m->ctx, SDFLOW_E_CALLBACK, "model callback returned %d", rc);
    return SDFLOW_OK;
}

static sdflow_status cb_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                 const double *t, double *jac)
{
    (void)p;
    const callback_model *cb = m->impl;
    size_t d = m->d;
    double *v = sdflow__calloc_array(m->ctx, n, d * sizeof(double), "JVP directions");
    double *jv = v ? sdflow__alloc_array(m->ctx, n, d * sizeof(double), "JVP results") : NULL;
    sdflow_status st = SDFLOW_OK;
    if (!jv) {
        sdflow__free(m->ctx, v);
        return SDFLOW_E_NOMEM;
    }
    for (size_t b = 0; b < d && !st; b++) { /* column b of every row's Jacobian */
        for (size_t i = 0; i < n; i++) {
            if (b)
                v[i * d + b - 1] = 0.0;
            v[i * d + b] = 1.0;
        }
        int rc = cb->jvp(n, d, x, t, v, jv, cb->jvp_user);
        if (rc != 0)
            st = sdflow__fail(m->ctx, SDFLOW_E_CALLBACK, "JVP callback returned %d", rc);
        for (size_t i = 0; i < n && !st; i++)
            for (size_t a = 0; a < d; a++)
                jac[i * d * d + a * d + b] = jv[i * d + a];
    }
    sdflow__free(m->ctx, v);
    sdflow__free(m->ctx, jv);
    return st;
}

/* One JVP call for all rows (Hutchinson probes need J v, not all of J). */
static sdflow_status cb_jvp(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                            const double *v, double *jv)
{
    (void)p;
    const callback_model *cb = m->impl;
    int rc = cb->jvp(n, m->d, x, t, v, jv, cb->jvp_user);
    if (rc != 0)
        return sdflow__fail(m->ctx, SDFLOW_E_CALLBACK, "JVP callback returned %d", rc);
    return SDFLOW_OK;
}

static void cb_destroy(sdflow_model *m) { sdflow__free(m->ctx, m->impl); }

static const sdflow__model_ops cb_ops = { .eval = cb_eval, .destroy = cb_destroy };
static const sdflow__model_ops cb_jvp_ops = { .eval = cb_eval, .jacobian = cb_jacobian, .destroy = cb_destroy,
                                               .jvp = cb_jvp };

sdflow_status sdflow_model_create_callback(sdflow_ctx *ctx, size_t d, sdflow_output produces, sdflow_model_fn fn,
                                           void *user_data, sdflow_model **out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, out, "out")))
        return st;
    *out = NULL;
    if ((st = sdflow__check_size(ctx, d, "d")) || (st = sdflow__check_ptr(ctx, (const void *)fn, "fn")))
        return st;
    if (produces < SDFLOW_OUT_SCORE || produces > SDFLOW_OUT_V)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "unknown output kind %d", (int)produces);
    callback_model *cb = sdflow__calloc_array(ctx, 1, sizeof *cb, "callback model");
    if (!cb)
        return SDFLOW_E_NOMEM;
    cb->fn = fn;
    cb->user = user_data;
    return sdflow__model_new(ctx, SDFLOW_MODEL_CALLBACK, d, produces, &cb_ops, cb, out);
}

sdflow_status sdflow_model_set_callback_jvp(sdflow_model *m, sdflow_model_jvp_fn fn, void *user_data)
{
    if (!m)
        return SDFLOW_E_INVALID;
    if (m->kind != SDFLOW_MODEL_CALLBACK)
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED, "JVP callbacks apply to callback models only");
    callback_model *cb = m->impl;
    cb->jvp = fn;
    cb->jvp_user = user_data;
    m->ops = fn ? &cb_jvp_ops : &cb_ops;
    return SDFLOW_OK;
}
