/* SPDX-License-Identifier: MIT */
/* The density-estimator handle: options, bindings, argument checks, bits
 * per dimension, and dispatch to the estimator of its kind. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "density_internal.h"

/* The shared options (density_options.def) apply to every kind. */
#define K_ALL SDFLOW__ALL_KINDS

/* The shared options: key, kinds that accept it, field, default. The
 * stream defaults to "dens" + kind. */
#define SLOT(key, kinds, field, ...) { key, kinds, offsetof(struct sdflow_density, field), __VA_ARGS__ }
static const sdflow__opt_slot slots[] = {
#include "density_options.def"
};
static const sdflow__opt_store store = { "estimator", slots, sizeof slots / sizeof slots[0], NULL, NULL };

/* The kinds' descriptors (density_kinds.def). */
#define SDFLOW__DENSITY_KIND(name) &name,
static const sdflow__density_kind_ops *const kinds[] = {
#include "density_kinds.def"
};
#undef SDFLOW__DENSITY_KIND
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* The descriptor of kind, or of the kind named name (name non-NULL). */
static const sdflow__density_kind_ops *find_kind(int kind, const char *name)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (name ? !strcmp(kinds[i]->name, name) : (int)kinds[i]->kind == kind)
            return kinds[i];
    return NULL;
}

const char *sdflow_density_kind_name(sdflow_density_kind kind)
{
    const sdflow__density_kind_ops *k = find_kind((int)kind, NULL);
    return k ? k->name : NULL;
}

sdflow_status sdflow_density_kind_from_name(const char *name, sdflow_density_kind *out)
{
    if (!out)
        return SDFLOW_E_INVALID;
    const sdflow__density_kind_ops *k = name ? find_kind(0, name) : NULL;
    if (!k)
        return SDFLOW_E_UNSUPPORTED;
    *out = k->kind;
    return SDFLOW_OK;
}

sdflow_status sdflow_density_create(sdflow_ctx *ctx, sdflow_density_kind kind, sdflow_density **out)
{
    if (out)
        *out = NULL;
    sdflow_status st;
    sdflow_density *e = sdflow__new_handle(ctx, out != NULL, sdflow_density_kind_name(kind), "density estimator",
                                           (int)kind, sizeof *e, &st);
    if (!e)
        return st;
    e->ctx = ctx;
    e->kind = kind;
    e->ops = find_kind((int)kind, NULL);
    if (e->ops->priv_size && !(e->priv = sdflow__calloc_array(ctx, 1, e->ops->priv_size, "estimator kind state"))) {
        sdflow__free(ctx, e);
        return SDFLOW_E_NOMEM;
    }
    sdflow__opt_defaults(&store, 1u << kind, e);
    if (e->ops->opts)
        sdflow__opt_defaults(e->ops->opts, 1u << kind, e->priv);
    e->stream = 0x64656e73ull /* "dens" */ + (uint64_t)kind;
    *out = e;
    return SDFLOW_OK;
}

void sdflow_density_free(sdflow_density *e)
{
    if (e) {
        sdflow__free(e->ctx, e->priv);
        sdflow__free(e->ctx, e);
    }
}

sdflow_status sdflow_density_set_process(sdflow_density *e, const sdflow_process *p)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(e->ctx, p ? p->ctx : NULL, "process");
    if (!st)
        e->proc = p;
    return st;
}

sdflow_status sdflow_density_set_model(sdflow_density *e, sdflow_model *m)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(e->ctx, m ? m->ctx : NULL, "model");
    if (!st)
        e->model = m;
    return st;
}

sdflow_status sdflow_density_set_base(sdflow_density *e, sdflow_model *base)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(e->ctx, base ? base->ctx : NULL, "base model");
    if (!st)
        e->base = base;
    return st;
}

/* The shared options, then the kind's own (ops->opts in e->priv). */
static sdflow__opt_bind bind(const sdflow_density *h) { return SDFLOW__KIND_BIND_PRIV(sdflow_density, h, store); }

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, u64, SDFLOW_TYPE_U64, uint64_t)

/* Bindings and option consistency, checked before any work; resolves the
 * plan of the call. */
static sdflow_status check_bound(sdflow_density *e, size_t n, const double *x, const double *logp,
                                 sdflow__density_plan *plan)
{
    sdflow_ctx *ctx = e->ctx;
    if (!e->model)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no model bound (sdflow_density_set_model)");
    if (!e->proc)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no process bound (sdflow_density_set_process)");
    sdflow_status st = sdflow__check_dims(ctx, n, e->model->d);
    if (st || (st = sdflow__check_ptr(ctx, x, "x")) || (st = sdflow__check_ptr(ctx, logp, "output")))
        return st;
    plan->interp = sdflow__process_is_interp(e->proc);
    const sdflow__density_kind_ops *k = e->ops;
    if (plan->interp && !k->interp_logpdf)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "%s", k->no_interp);
    if (e->base && e->base->d != e->model->d)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "base model d=%zu differs from model d=%zu", e->base->d,
                            e->model->d);
    return k->check ? k->check(e, plan) : SDFLOW_OK;
}

static sdflow_status dispatch(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                              double *logp, double *se)
{
    if (plan->interp)
        return e->ops->interp_logpdf(e, n, x, logp, se);
    return e->ops->logpdf(e, plan, n, x, logp, se);
}

sdflow_status sdflow_density_logpdf(sdflow_density *e, size_t n, const double *x, double *logp, double *std_err)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow__density_plan plan;
    sdflow_status st = check_bound(e, n, x, logp, &plan);
    if (st || (st = sdflow__check_finite(e->ctx, x, n, e->model->d, "x")))
        return st;
    return dispatch(e, &plan, n, x, logp, std_err);
}

sdflow_status sdflow_density_bits_per_dim(sdflow_density *e, size_t n, const double *x, double *bpd,
                                          double *std_err)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow__density_plan plan;
    sdflow_status st = check_bound(e, n, x, bpd, &plan);
    if (st)
        return st;
    sdflow_ctx *ctx = e->ctx;
    size_t d = e->model->d;
    for (size_t i = 0; i < n * d; i++)
        if (!(x[i] >= 0.0 && x[i] <= 255.0 && x[i] == floor(x[i])))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "x[%zu][%zu] = %g is not an integer level in 0..255", i / d,
                                i % d, x[i]);
    double *xm = sdflow__alloc_array(ctx, n, d * sizeof(double), "model-scale points");
    if (!xm)
        return SDFLOW_E_NOMEM;
    /* x_m = a ((k + u)/256 - 1/2), u keyed per sample and coordinate */
    double a = e->data_scale;
    uint64_t ustream = sdflow__stream(e->stream, 0x64657175ull /* "dequ" */, 0);
    for (size_t i = 0; i < n; i++) {
        double *row = xm + i * d;
        if (e->dequantize)
            sdflow__rng_uniform_row(ctx->seed, ustream, e->first_index + i, 0, d, row);
        for (size_t j = 0; j < d; j++)
            row[j] = a * ((x[i * d + j] + (e->dequantize ? row[j] : 0.5)) / 256.0 - 0.5);
    }
    st = dispatch(e, &plan, n, xm, bpd, std_err);
    sdflow__free(ctx, xm);
    if (st)
        return st;
    double scale = 1.0 / ((double)d * log(2.0)), offset = 8.0 - log2(a);
    for (size_t i = 0; i < n; i++) {
        bpd[i] = -bpd[i] * scale + offset;
        if (std_err)
            std_err[i] *= scale;
    }
    return SDFLOW_OK;
}
