/* SPDX-License-Identifier: MIT */
/* The density-estimator handle: options, bindings, argument checks, bits
 * per dimension, and dispatch to the estimator of its kind. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "density_internal.h"

/* Which kinds accept an option, and where it lives. */
#define K_EX (1u << SDFLOW_DENSITY_PF_ODE_EXACT)
#define K_HU (1u << SDFLOW_DENSITY_PF_ODE_HUTCHINSON)
#define K_LY (1u << SDFLOW_DENSITY_LIYAN)
#define K_ODE (K_EX | K_HU)
#define K_ALL (K_ODE | K_LY)

static double resolved_t_min(const sdflow_density *e);

/* The resolved default: t_min of the bound process. */
static void resolve_option(const void *owner, sdflow_option key, void *value)
{
    const sdflow_density *e = owner;
    if (key == SDFLOW_OPT_T_MIN && e->proc)
        *(double *)value = resolved_t_min(e);
}

/* The options: key, kinds that accept it, field, default (NaN: resolved
 * from the bound process). The stream defaults to "dens" + kind. */
#define SLOT(key, kinds, field, ...) { key, kinds, offsetof(struct sdflow_density, field), __VA_ARGS__ }
static const sdflow__opt_slot slots[] = {
#include "density_options.def"
};
static const sdflow__opt_store store = { "estimator", slots, sizeof slots / sizeof slots[0], NULL, resolve_option };

static const sdflow__name kind_names[] = { { SDFLOW_DENSITY_PF_ODE_EXACT, "pf_ode_exact" },
                                           { SDFLOW_DENSITY_PF_ODE_HUTCHINSON, "pf_ode_hutchinson" },
                                           { SDFLOW_DENSITY_LIYAN, "liyan" },
                                           { 0, NULL } };

/* sdflow_density_kind_name() and sdflow_density_kind_from_name() */
SDFLOW__DEFINE_KIND_NAMES(sdflow_density, sdflow_density_kind, kind_names)

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
    sdflow__opt_defaults(&store, 1u << kind, e);
    e->stream = 0x64656e73ull /* "dens" */ + (uint64_t)kind;
    *out = e;
    return SDFLOW_OK;
}

void sdflow_density_free(sdflow_density *e)
{
    if (e)
        sdflow__free(e->ctx, e);
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

/* Resolved start time of the PF-ODE estimators. */
static double resolved_t_min(const sdflow_density *e)
{
    if (!isnan(e->t_min))
        return e->t_min;
    if (sdflow__process_is_interp(e->proc))
        return 0.0; /* interpolants: down to the base end */
    return e->proc->t_eps > 1e-5 ? e->proc->t_eps : 1e-5; /* score_sde likelihood eps */
}

static sdflow__opt_bind bind(const sdflow_density *h) { return SDFLOW__KIND_BIND(sdflow_density, h, store); }

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_density, sdflow_density, bind, u64, SDFLOW_TYPE_U64, uint64_t)

/* Bindings and option consistency, checked before any work. */
static sdflow_status check_bound(sdflow_density *e, size_t n, const double *x, const double *logp)
{
    sdflow_ctx *ctx = e->ctx;
    if (!e->model)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no model bound (sdflow_density_set_model)");
    if (!e->proc)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no process bound (sdflow_density_set_process)");
    sdflow_status st = sdflow__check_dims(ctx, n, e->model->d);
    if (st || (st = sdflow__check_ptr(ctx, x, "x")) || (st = sdflow__check_ptr(ctx, logp, "output")))
        return st;
    int itp = sdflow__process_is_interp(e->proc);
    if (itp && e->kind == SDFLOW_DENSITY_LIYAN)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED,
                            "the Li-Yan estimator needs a diffusion process (interpolants: the pf_ode kinds)");
    if (e->base && e->base->d != e->model->d)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "base model d=%zu differs from model d=%zu", e->base->d,
                            e->model->d);
    if (e->kind == SDFLOW_DENSITY_LIYAN) {
        if (!(e->lambda_min < e->lambda_max))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "lambda_min=%g must be < lambda_max=%g", e->lambda_min,
                                e->lambda_max);
    } else {
        double lo = e->proc->t_eps, hi = e->proc->t_max, t0 = resolved_t_min(e);
        if (!itp && !(t0 >= lo && t0 < hi))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "t_min=%g must lie in [t_eps=%g, T=%g)", t0, lo, hi);
        if (e->solver != SDFLOW_SOLVER_DOPRI5 && e->solver != SDFLOW_SOLVER_RK4)
            return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED,
                                "solver %ld: density estimators use SDFLOW_SOLVER_DOPRI5 or SDFLOW_SOLVER_RK4",
                                e->solver);
    }
    return SDFLOW_OK;
}

static sdflow_status dispatch(sdflow_density *e, size_t n, const double *x, double *logp, double *se)
{
    sdflow__density_plan plan = { .t_min = resolved_t_min(e) };
    if (sdflow__process_is_interp(e->proc))
        return sdflow__interp_logpdf(e, n, x, logp, se);
    if (e->kind == SDFLOW_DENSITY_LIYAN)
        return sdflow__liyan_logpdf(e, &plan, n, x, logp, se);
    return sdflow__pf_ode_logpdf(e, &plan, n, x, logp, se);
}

sdflow_status sdflow_density_logpdf(sdflow_density *e, size_t n, const double *x, double *logp, double *std_err)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow_status st = check_bound(e, n, x, logp);
    if (st || (st = sdflow__check_finite(e->ctx, x, n, e->model->d, "x")))
        return st;
    return dispatch(e, n, x, logp, std_err);
}

sdflow_status sdflow_density_bits_per_dim(sdflow_density *e, size_t n, const double *x, double *bpd,
                                          double *std_err)
{
    if (!e)
        return SDFLOW_E_INVALID;
    sdflow_status st = check_bound(e, n, x, bpd);
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
    st = dispatch(e, n, xm, bpd, std_err);
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
