/* SPDX-License-Identifier: MIT */
/* The generic model handle: validation, dispatch to the kind, conversion of
 * outputs through the process, and result checks. */
#include <math.h>
#include <string.h>
#include "model_internal.h"

static const sdflow__name kind_names[] = {
    { SDFLOW_MODEL_GAUSSIAN, "gaussian" }, { SDFLOW_MODEL_GMM, "gmm" }, { SDFLOW_MODEL_KERNEL, "kernel" },
    { SDFLOW_MODEL_MLP, "mlp" }, { SDFLOW_MODEL_CALLBACK, "callback" }, { 0, NULL }
};

/* sdflow_model_kind_name() and sdflow_model_kind_from_name() */
SDFLOW__DEFINE_KIND_NAMES(sdflow_model, sdflow_model_kind, kind_names)

sdflow_status sdflow__model_new(sdflow_ctx *ctx, sdflow_model_kind kind, size_t d, sdflow_output native,
                                const sdflow__model_ops *ops, void *impl, sdflow_model **out)
{
    /* Jacobians are d x d per row: refuse a d whose d x d doubles overflow */
    int big = !sdflow__size_ok(d, d);
    sdflow_model *m = big ? NULL : sdflow__alloc(ctx, sizeof *m);
    if (!m) {
        sdflow_model tmp = { .ctx = ctx, .kind = kind, .d = d, .native = native, .ops = ops, .impl = impl };
        ops->destroy(&tmp);
        return big ? sdflow__fail(ctx, SDFLOW_E_INVALID, "d=%zu: d x d doubles overflow size_t", d) : SDFLOW_E_NOMEM;
    }
    m->ctx = ctx;
    m->kind = kind;
    m->d = d;
    m->native = native;
    m->ops = ops;
    m->impl = impl;
    *out = m;
    return SDFLOW_OK;
}

void sdflow_model_free(sdflow_model *m)
{
    if (!m)
        return;
    m->ops->destroy(m);
    sdflow__free(m->ctx, m);
}

sdflow_model_kind sdflow_model_get_kind(const sdflow_model *m) { return m ? m->kind : (sdflow_model_kind)0; }
size_t sdflow_model_dim(const sdflow_model *m) { return m ? m->d : 0; }

/* Every typed option accessor goes through these two: the store of the
 * kind (slots in impl), or the empty one of a kind without options. */
static const sdflow__opt_store no_options = { "model", NULL, 0, NULL, NULL };

static sdflow__opt_bind bind(const sdflow_model *m)
{
    if (!m)
        return (sdflow__opt_bind){ 0 };
    const sdflow__opt_store *store = m->ops->options ? m->ops->options : &no_options;
    return (sdflow__opt_bind){ m->ctx, store, sdflow_model_kind_name(m->kind), 1, (void *)m, m->impl, NULL, NULL };
}

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_model, sdflow_model, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_model, sdflow_model, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_model, sdflow_model, bind, u64, SDFLOW_TYPE_U64, uint64_t)

sdflow_status sdflow__model_check_eval_args(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                           const double *t, const void *out, const char *out_name)
{
    if (!m)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = m->ctx;
    sdflow_status st = sdflow__check_size(ctx, n, "n");
    if (st)
        return st;
    if (!sdflow__size_ok(m->d, m->d) || !sdflow__size_ok(n, m->d * m->d)) /* d x d first: d * d cannot wrap */
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu rows of d=%zu overflow size_t", n, m->d);
    if ((st = sdflow__check_finite(ctx, x, n, m->d, "x")) || (st = sdflow__check_times(ctx, p, n, t, "t")))
        return st;
    return sdflow__check_ptr(ctx, out, out_name);
}

sdflow_status sdflow__model_conversion_at(sdflow_model *m, const sdflow_process *p, double t, sdflow_output from,
                                         sdflow_output to, sdflow__affine *a)
{
    sdflow__coef c;
    sdflow__process_coef(p, t, &c);
    if (!sdflow__conversion(from, to, &c, a))
        return sdflow__fail(m->ctx, SDFLOW_E_NUMERIC, "conversion from %d to %d undefined at t = %g", (int)from,
                            (int)to, t);
    return SDFLOW_OK;
}

/* ops->eval, then the conversion to kind (coefficients once per run of
 * equal times); no checks of inputs or outputs. */
static sdflow_status eval_as(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                             sdflow_output kind, double *out)
{
    sdflow_status st = m->ops->eval(m, p, n, x, t, out);
    if (st || kind == m->native)
        return st;
    size_t d = m->d;
    sdflow__affine a;
    for (size_t i = 0; i < n; i++) {
        if ((i == 0 || !(t[i] == t[i - 1])) && (st = sdflow__model_conversion_at(m, p, t[i], m->native, kind, &a)))
            return st;
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = a.a * out[i * d + j] + a.b * x[i * d + j];
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_model_eval(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                                sdflow_output kind, double *out)
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, out, "out");
    if (st)
        return st;
    if (kind < SDFLOW_OUT_SCORE || kind > SDFLOW_OUT_V)
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "unknown output kind %d", (int)kind);
    if ((st = eval_as(m, p, n, x, t, kind, out)))
        return st;
    return sdflow__check_result(m->ctx, out, n, m->d, "model output");
}

sdflow_status sdflow__model_eval_rows(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                      const double *t, sdflow_output kind, double *out, const size_t *rows)
{
    sdflow_status st = eval_as(m, p, n, x, t, kind, out);
    return st ? st : sdflow__check_rows(m->ctx, out, n, m->d, rows, "model output");
}

sdflow_status sdflow_model_score(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                                 double *score)
{
    return sdflow_model_eval(m, p, n, x, t, SDFLOW_OUT_SCORE, score);
}

static sdflow_status unsupported(sdflow_model *m, const char *what)
{
    return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED, "a %s model has no %s", sdflow_model_kind_name(m->kind), what);
}

sdflow_status sdflow_model_logpdf(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *logp)
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, logp, "logp");
    if (st)
        return st;
    if (!m->ops->logpdf)
        return unsupported(m, "closed-form log-density");
    if ((st = m->ops->logpdf(m, p, n, x, t, logp)))
        return st;
    return sdflow__check_result(m->ctx, logp, n, 1, "log-density");
}

sdflow_status sdflow_model_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                    const double *t, double *jac)
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, jac, "jac");
    if (st)
        return st;
    if (!m->ops->jacobian)
        return unsupported(m, "Jacobian (a callback model needs sdflow_model_set_callback_jvp)");
    if ((st = m->ops->jacobian(m, p, n, x, t, jac)))
        return st;
    size_t d = m->d;
    if (m->native != SDFLOW_OUT_SCORE)
        for (size_t i = 0; i < n; i++) {
            /* score = a * native + b * x  =>  J_score = a J_native + b I */
            sdflow__affine a;
            if ((st = sdflow__model_conversion_at(m, p, t[i], m->native, SDFLOW_OUT_SCORE, &a)))
                return st;
            double *J = jac + i * d * d;
            for (size_t k = 0; k < d * d; k++)
                J[k] *= a.a;
            for (size_t k = 0; k < d; k++)
                J[k * d + k] += a.b;
        }
    return sdflow__check_result(m->ctx, jac, n, d * d, "Jacobian");
}

sdflow_status sdflow_model_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                      const double *t, double *div)
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, div, "div");
    if (st)
        return st;
    size_t d = m->d;
    if (m->ops->divergence) {
        if ((st = m->ops->divergence(m, p, n, x, t, div)))
            return st;
        for (size_t i = 0; i < n && m->native != SDFLOW_OUT_SCORE; i++) {
            sdflow__affine a;
            if ((st = sdflow__model_conversion_at(m, p, t[i], m->native, SDFLOW_OUT_SCORE, &a)))
                return st;
            div[i] = a.a * div[i] + a.b * (double)d;
        }
        return sdflow__check_result(m->ctx, div, n, 1, "divergence");
    }
    if (!m->ops->jacobian)
        return unsupported(m, "divergence (no Jacobian)");
    /* rows in blocks so the d x d Jacobians stay within ~8 MB */
    size_t block = (1u << 20) / (d * d) + 1;
    if (block > n)
        block = n;
    double *jac = sdflow__alloc_array(m->ctx, block, d * d * sizeof(double), "Jacobian block");
    if (!jac)
        return SDFLOW_E_NOMEM;
    for (size_t i0 = 0; i0 < n && !st; i0 += block) {
        size_t nb = n - i0 < block ? n - i0 : block;
        st = sdflow_model_jacobian(m, p, nb, x + i0 * d, t + i0, jac);
        for (size_t i = 0; i < nb && !st; i++) {
            double tr = 0;
            for (size_t k = 0; k < d; k++)
                tr += jac[i * d * d + k * d + k];
            div[i0 + i] = tr;
        }
    }
    sdflow__free(m->ctx, jac);
    return st;
}

sdflow_status sdflow_model_sample(sdflow_model *m, uint64_t stream, uint64_t first_index, size_t n, double *out)
{
    if (!m)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(m->ctx, n, m->d);
    if (st || (st = sdflow__check_ptr(m->ctx, out, "out")))
        return st;
    if (!m->ops->sample)
        return unsupported(m, "exact sampler");
    return m->ops->sample(m, stream, first_index, n, out);
}
