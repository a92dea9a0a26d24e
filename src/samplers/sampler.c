/* SPDX-License-Identifier: MIT */
/* The sampler handle: options, bindings, argument checks and dispatch to
 * the algorithm of its kind. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "sampler_internal.h"

/* Which kinds accept a shared option (sampler_options.def). */
#define K_SDE (1u << SDFLOW_SAMPLER_REVERSE_SDE)
#define K_PC (1u << SDFLOW_SAMPLER_PC)
#define K_ODE (1u << SDFLOW_SAMPLER_PF_ODE)
#define K_SDF (1u << SDFLOW_SAMPLER_SDFLOW)
#define K_DDIM (1u << SDFLOW_SAMPLER_DDIM)
#define K_DSDE ((1u << SDFLOW_SAMPLER_DPMPP_2M_SDE) | (1u << SDFLOW_SAMPLER_DPMPP_3M_SDE))
#define K_EDM (1u << SDFLOW_SAMPLER_EDM_HEUN)
#define K_FEW (K_DDIM | (1u << SDFLOW_SAMPLER_DPMPP_2M) | (1u << SDFLOW_SAMPLER_DPMPP_3M) | K_DSDE | K_EDM)
#define K_DIFF (K_SDE | K_PC | K_ODE | K_FEW)
#define K_DSB (1u << SDFLOW_SAMPLER_DSB)
#define K_INT (1u << SDFLOW_SAMPLER_INTERPOLANT)
#define K_ALL (K_DIFF | K_SDF | K_DSB | K_INT)

static double resolved_t_min(const sdflow_sampler *s);
static double resolved_t_start(const sdflow_sampler *s);
/* The resolved defaults: t_min and t_start of the bound process. */
static void resolve_option(const void *owner, sdflow_option key, void *value)
{
    const sdflow_sampler *s = owner;
    if (key == SDFLOW_OPT_T_MIN && s->proc)
        *(double *)value = resolved_t_min(s);
    if (key == SDFLOW_OPT_T_START && s->proc)
        *(double *)value = resolved_t_start(s);
}

/* The options: key, kinds that accept it, field, default. A key whose
 * default depends on the kind has one row per default; the last row of a
 * key is also what kinds that do not accept it hold. NaN: resolved from
 * the bound process (resolve_option). The stream defaults to the kind. */
#define SLOT(key, kinds, field, ...) { key, kinds, offsetof(struct sdflow_sampler, field), __VA_ARGS__ }
static const sdflow__opt_slot slots[] = {
#include "sampler_options.def"
};
static const sdflow__opt_store store = { "sampler", slots, sizeof slots / sizeof slots[0], NULL, resolve_option };

/* The kinds' descriptors (sampler_kinds.def). */
#define SDFLOW__SAMPLER_KIND(name) &name,
static const sdflow__sampler_kind_ops *const kinds[] = {
#include "sampler_kinds.def"
};
#undef SDFLOW__SAMPLER_KIND

static const sdflow__sampler_kind_ops *find_kind(int kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if ((int)kinds[i]->kind == kind)
            return kinds[i];
    return NULL;
}

const char *sdflow_sampler_kind_name(sdflow_sampler_kind kind)
{
    const sdflow__sampler_kind_ops *k = find_kind((int)kind);
    return k ? k->name : NULL;
}

sdflow_status sdflow_sampler_kind_from_name(const char *name, sdflow_sampler_kind *out)
{
    if (!out)
        return SDFLOW_E_INVALID;
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i]->name, name)) {
            *out = kinds[i]->kind;
            return SDFLOW_OK;
        }
    return SDFLOW_E_UNSUPPORTED;
}

sdflow_status sdflow_sampler_create(sdflow_ctx *ctx, sdflow_sampler_kind kind, sdflow_sampler **out)
{
    if (out)
        *out = NULL;
    sdflow_status st;
    sdflow_sampler *s =
        sdflow__new_handle(ctx, out != NULL, sdflow_sampler_kind_name(kind), "sampler", (int)kind, sizeof *s, &st);
    if (!s)
        return st;
    s->ctx = ctx;
    s->kind = kind;
    s->ops = find_kind((int)kind);
    if (s->ops->priv_size && !(s->priv = sdflow__calloc_array(ctx, 1, s->ops->priv_size, "sampler kind state"))) {
        sdflow__free(ctx, s);
        return SDFLOW_E_NOMEM;
    }
    sdflow__opt_defaults(&store, 1u << kind, s);
    if (s->ops->opts)
        sdflow__opt_defaults(s->ops->opts, 1u << kind, s->priv);
    s->stream = (uint64_t)kind;
    *out = s;
    return SDFLOW_OK;
}

void sdflow_sampler_free(sdflow_sampler *s)
{
    if (s) {
        if (s->ops->free_priv)
            s->ops->free_priv(s);
        sdflow__free(s->ctx, s->priv);
        sdflow__free(s->ctx, s->custom);
        sdflow__free(s->ctx, s);
    }
}

sdflow_status sdflow_sampler_set_time_grid(sdflow_sampler *s, size_t n, const double *times)
{
    if (!s)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = s->ctx;
    sdflow_status st = sdflow__check_ptr(ctx, times, "times");
    if (st)
        return st;
    if (n < 2 || n > 1000000001u)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "a custom time grid needs 2 .. 1e9+1 times, got %zu", n);
    if ((st = sdflow__check_finite(ctx, times, n, 1, "times")))
        return st;
    /* strictly monotone: a repeated time would make a zero step (h = 0 in
     * the multistep ratios) and shift every later step index */
    int up = times[1] > times[0];
    for (size_t k = 1; k < n; k++)
        if (up ? !(times[k] > times[k - 1]) : !(times[k] < times[k - 1]))
            return sdflow__fail(ctx, SDFLOW_E_INVALID,
                                "custom time grid is not strictly monotone: times[%zu] = %.17g, times[%zu] = %.17g",
                                k - 1, times[k - 1], k, times[k]);
    double *c = sdflow__alloc_array(ctx, n, sizeof(double), "custom time grid");
    if (!c)
        return SDFLOW_E_NOMEM;
    for (size_t k = 0; k < n; k++)
        c[k] = times[up ? n - 1 - k : k];
    sdflow__free(ctx, s->custom);
    s->custom = c;
    s->ncustom = n;
    s->time_grid = SDFLOW_GRID_CUSTOM;
    s->steps = (long)(n - 1);
    return SDFLOW_OK;
}

sdflow_status sdflow_sampler_set_process(sdflow_sampler *s, const sdflow_process *p)
{
    if (!s)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(s->ctx, p ? p->ctx : NULL, "process");
    if (!st)
        s->proc = p;
    return st;
}

sdflow_status sdflow_sampler_set_model(sdflow_sampler *s, sdflow_role role, sdflow_model *m)
{
    if (!s)
        return SDFLOW_E_INVALID;
    if (role < SDFLOW_ROLE_SCORE || role >= SDFLOW__NROLES)
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "unknown model role %d", (int)role);
    if (!(s->ops->roles & SDFLOW__ROLE_BIT(role)))
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "role %d does not apply to a %s sampler (%s)", (int)role,
                            s->ops->name, s->ops->roles_hint);
    sdflow_status st = sdflow__check_same_ctx(s->ctx, m ? m->ctx : NULL, "model");
    if (!st)
        s->model[role] = m;
    return st;
}

/* Resolved t_min / t_start of the bound process. */
static double resolved_t_min(const sdflow_sampler *s)
{
    if (s->time_grid == SDFLOW_GRID_CUSTOM && s->custom)
        return s->custom[s->ncustom - 1];
    if (!isnan(s->t_min))
        return s->t_min;
    double t = sdflow_process_get_kind(s->proc) == SDFLOW_PROCESS_VE ? 1e-5 : 1e-3;
    return t < s->proc->t_eps ? s->proc->t_eps : t;
}

static double resolved_t_start(const sdflow_sampler *s)
{
    if (s->time_grid == SDFLOW_GRID_CUSTOM && s->custom)
        return s->custom[0];
    return isnan(s->t_start) ? s->proc->t_max : s->t_start;
}

/* The shared options, then the kind's own (ops->opts in s->priv). */
static sdflow__opt_bind bind(const sdflow_sampler *h) { return SDFLOW__KIND_BIND_PRIV(sdflow_sampler, h, store); }

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_sampler, sdflow_sampler, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_sampler, sdflow_sampler, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_sampler, sdflow_sampler, bind, u64, SDFLOW_TYPE_U64, uint64_t)

sdflow_status sdflow_sampler_get_stat(const sdflow_sampler *s, sdflow_stat stat, double *value)
{
    if (!s || !value)
        return SDFLOW_E_INVALID;
    if ((int)stat < 0 || (int)stat >= SDFLOW__NSTATS)
        return sdflow__fail(s->ctx, SDFLOW_E_UNSUPPORTED, "unknown statistic %d", (int)stat);
    *value = s->stats[stat];
    return SDFLOW_OK;
}

/* Checks bindings, sizes and inputs common to run and transport. */
static sdflow_status check_run(sdflow_sampler *s, size_t n, const double *x_in, double *x_out, size_t *d,
                               int run)
{
    sdflow_ctx *ctx = s->ctx;
    const sdflow__sampler_kind_ops *k = s->ops;
    sdflow_model *m = s->model[k->primary];
    if (!m)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no %s model bound (sdflow_sampler_set_model)", k->primary_name);
    int itp = k->process == SDFLOW__SK_PROC_INTERP;
    if (k->process != SDFLOW__SK_PROC_NONE && !s->proc)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no process bound (sdflow_sampler_set_process)");
    /* t = 0 base, t = 1 data for interpolants: the diffusion samplers' time maths does not apply */
    if (k->process != SDFLOW__SK_PROC_NONE && itp != sdflow__process_is_interp(s->proc))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "a %s sampler needs %s process, not %s", k->name,
                            itp ? "an interpolant" : "a diffusion", sdflow_process_kind_name(s->proc->kind));
    sdflow_status st;
    if (k->check && (st = k->check(s, m, x_in, run, SDFLOW__SK_CHECK_BIND)))
        return st;
    *d = m->d;
    st = sdflow__check_dims(ctx, n, *d);
    if (st || (st = sdflow__check_ptr(ctx, x_out, "x_out")))
        return st;
    if (x_in && (st = sdflow__check_finite(ctx, x_in, n, *d, "x_init")))
        return st;
    if (k->check && (st = k->check(s, m, x_in, run, SDFLOW__SK_CHECK_INPUT)))
        return st;
    if (k->process == SDFLOW__SK_PROC_DIFFUSION && run) { /* t_min and t_start are run's interval; transport gets its own */
        double lo = s->proc->t_eps, hi = s->proc->t_max, t0 = resolved_t_min(s), t1 = resolved_t_start(s);
        if (t0 < lo || t1 > hi || !(t0 < t1))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "need t_eps=%g <= t_min=%g < t_start=%g <= T=%g", lo, t0, t1,
                                hi);
    }
    if (s->time_grid == SDFLOW_GRID_CUSTOM && (!s->custom || (size_t)s->steps + 1 != s->ncustom))
        return sdflow__fail(ctx, SDFLOW_E_STATE,
                            s->custom ? "custom time grid has %zu times but steps = %ld (need steps = times - 1)"
                                      : "time_grid = custom but no grid was set (sdflow_sampler_set_time_grid)",
                            s->ncustom, s->steps);
    if (k->check && (st = k->check(s, m, x_in, run, SDFLOW__SK_CHECK_OPTIONS)))
        return st;
    memset(s->stats, 0, sizeof s->stats);
    if (run && k->check)
        return k->check(s, m, x_in, run, SDFLOW__SK_CHECK_START);
    return SDFLOW_OK;
}

/* Resolves the times of a run or transport from t_from to t_to; the grid
 * (freed by the caller) is built for the kinds that step on one. */
static sdflow_status make_plan(sdflow_sampler *s, double t_from, double t_to, sdflow__sampler_plan *plan,
                               double **grid)
{
    plan->what = s->ops->name;
    plan->t_from = t_from;
    plan->t_to = t_to;
    plan->grid = *grid = NULL;
    plan->draw_start = 0;
    int stepped = (s->ops->flags & SDFLOW__SK_STEPPED) && (!s->ops->uses_grid || s->ops->uses_grid(s));
    if (!stepped)
        return SDFLOW_OK;
    long N = s->steps;
    double *g = *grid = sdflow__alloc_array(s->ctx, (size_t)N + 1, sizeof(double), "time grid");
    if (!g)
        return SDFLOW_E_NOMEM;
    if (s->time_grid == SDFLOW_GRID_CUSTOM || s->time_grid == SDFLOW_GRID_KARRAS) {
        /* built from the larger time down (check_run / transport: a custom
         * grid's ends are t_from and t_to), reversed for an encoding */
        if (s->time_grid == SDFLOW_GRID_CUSTOM)
            memcpy(g, s->custom, ((size_t)N + 1) * sizeof *g);
        else
            sdflow__process_karras_grid(s->proc, N, fmax(t_from, t_to), fmin(t_from, t_to), s->rho, g);
        for (long k = 0; t_from < t_to && k < N - k; k++) {
            double tmp = g[k];
            g[k] = g[N - k];
            g[N - k] = tmp;
        }
    } else {
        sdflow__process_time_grid(s->proc, (int)s->time_grid, N, t_from, t_to, g);
    }
    plan->grid = g;
    return SDFLOW_OK;
}

/* Final Tweedie step x0 = (x + sigma^2 score)/alpha at t_min, i.e. the
 * model's X0 output; in place, so x keeps its state if it fails. */
static sdflow_status denoise(sdflow_sampler *s, size_t n, size_t d, double *x)
{
    sdflow_ctx *ctx = s->ctx;
    double *t = sdflow__alloc_array(ctx, n, sizeof(double), "denoise times");
    double *x0 = sdflow__alloc_array(ctx, n, d * sizeof(double), "denoised samples");
    sdflow_status st = SDFLOW_E_NOMEM;
    if (t && x0) {
        double tm = resolved_t_min(s);
        for (size_t i = 0; i < n; i++)
            t[i] = tm;
        st = sdflow_model_eval(s->model[SDFLOW_ROLE_SCORE], s->proc, n, x, t, SDFLOW_OUT_X0, x0);
        s->stats[SDFLOW_STAT_NFE] += (double)n;
        if (!st)
            memcpy(x, x0, n * d * sizeof *x);
    }
    sdflow__free(ctx, t);
    sdflow__free(ctx, x0);
    return st;
}

sdflow_status sdflow_sampler_run(sdflow_sampler *s, size_t n, const double *x_init, double *x_out)
{
    if (!s)
        return SDFLOW_E_INVALID;
    const sdflow__sampler_kind_ops *k = s->ops;
    if (k->flags & SDFLOW__SK_WHOLE_RUN)
        return k->whole_run(s, n, x_init, x_out);
    size_t d;
    sdflow_status st = check_run(s, n, x_init, x_out, &d, 1);
    if (st)
        return st;
    sdflow__sampler_plan plan;
    double *grid;
    if (k->flags & SDFLOW__SK_OWN_START) { /* no process times: the kind's own levels */
        plan = (sdflow__sampler_plan){ k->name, 0, 0, NULL, !x_init };
        if (x_init && x_out != x_init)
            memmove(x_out, x_init, n * d * sizeof *x_out);
        return k->run(s, &plan, n, x_out);
    }
    if (x_init) {
        if (x_out != x_init)
            memmove(x_out, x_init, n * d * sizeof *x_out);
    } else if (k->start_role != SDFLOW_ROLE_SCORE && s->model[k->start_role]) {
        if ((st = sdflow_model_sample(s->model[k->start_role], sdflow__stream(s->stream, 0x696e6974ull, 0),
                                      s->first_index, n, x_out)))
            return st;
    } else if ((st = sdflow_process_prior_sample(s->proc, sdflow__stream(s->stream, 0x696e6974ull, 0),
                                                 s->first_index, n, d, x_out))) {
        return st;
    }
    double t_from, t_to;
    if (k->run_times) {
        k->run_times(s, &t_from, &t_to);
    } else {
        t_from = resolved_t_start(s);
        t_to = resolved_t_min(s);
    }
    if ((st = make_plan(s, t_from, t_to, &plan, &grid)))
        return st;
    st = k->run(s, &plan, n, x_out);
    sdflow__free(s->ctx, grid);
    if (!st && s->denoise)
        st = denoise(s, n, d, x_out);
    return st;
}

sdflow_status sdflow_sampler_transport(sdflow_sampler *s, size_t n, double t_from, double t_to, const double *x_in,
                                       double *x_out)
{
    if (!s)
        return SDFLOW_E_INVALID;
    if (!s->ops->transport)
        return sdflow__fail(s->ctx, SDFLOW_E_UNSUPPORTED, "transport needs a pf_ode or interpolant sampler, not %s",
                            s->ops->name);
    size_t d;
    sdflow_status st = check_run(s, n, x_in, x_out, &d, 0);
    if (st || (st = sdflow__check_ptr(s->ctx, x_in, "x_in")))
        return st;
    double lo = s->proc->t_eps, hi = s->proc->t_max;
    if (!(t_from >= lo && t_from <= hi && t_to >= lo && t_to <= hi) || t_from == t_to)
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "t_from=%g and t_to=%g must differ and lie in [%g, %g]", t_from,
                            t_to, lo, hi);
    if (s->time_grid == SDFLOW_GRID_CUSTOM && s->solver != SDFLOW_SOLVER_DOPRI5 &&
        !(fmax(t_from, t_to) == s->custom[0] && fmin(t_from, t_to) == s->custom[s->ncustom - 1]))
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "transport from %g to %g: the custom time grid runs from %g to %g",
                            t_from, t_to, s->custom[0], s->custom[s->ncustom - 1]);
    sdflow__sampler_plan plan;
    double *grid;
    if ((st = make_plan(s, t_from, t_to, &plan, &grid)))
        return st;
    if (x_out != x_in)
        memmove(x_out, x_in, n * d * sizeof *x_out);
    st = s->ops->run(s, &plan, n, x_out);
    sdflow__free(s->ctx, grid);
    return st;
}
