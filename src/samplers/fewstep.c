/* SPDX-License-Identifier: MIT */
/* The shared frame of the few-step samplers (see fewstep_internal.h). */
#include <math.h>
#include <string.h>
#include <omp.h>
#include "fewstep_internal.h"
#include "ode_internal.h"

#define K_DDIM SDFLOW__KIND_BIT(SDFLOW_SAMPLER_DDIM)
#define K_DSDE (SDFLOW__KIND_BIT(SDFLOW_SAMPLER_DPMPP_2M_SDE) | SDFLOW__KIND_BIT(SDFLOW_SAMPLER_DPMPP_3M_SDE))
#define K_EDM SDFLOW__KIND_BIT(SDFLOW_SAMPLER_EDM_HEUN)
#define SLOT(key, kinds, field, def) SDFLOW__PRIV_SLOT(sdflow__fs_opts, key, kinds, field, def)
static const sdflow__opt_slot fs_slots[] = {
    /* k-diffusion's defaults: the SDE variants at eta = 1, DDIM deterministic */
    SLOT(SDFLOW_OPT_ETA, K_DDIM, eta, 0),
    SLOT(SDFLOW_OPT_ETA, K_DSDE, eta, 1),
    SLOT(SDFLOW_OPT_S_CHURN, K_EDM, s_churn, 0),
    SLOT(SDFLOW_OPT_S_TMIN, K_EDM, s_tmin, 0),
    SLOT(SDFLOW_OPT_S_TMAX, K_EDM, s_tmax, INFINITY),
    SLOT(SDFLOW_OPT_S_NOISE, K_DDIM | K_DSDE | K_EDM, s_noise, 1),
};
const sdflow__opt_store sdflow__fs_store = { "sampler", fs_slots, sizeof fs_slots / sizeof fs_slots[0], NULL, NULL };

sdflow_status sdflow__fs_open(sdflow__fs *w, sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, int nbuf)
{
    sdflow_ctx *ctx = s->ctx;
    memset(w, 0, sizeof *w);
    w->s = s;
    w->n = n;
    w->d = s->model[SDFLOW_ROLE_SCORE]->d;
    w->nt = sdflow__threads_for(ctx, n);
    w->what = plan->what;
    w->N = s->steps;
    w->grid = plan->grid;
    w->tv = sdflow__alloc_array(ctx, n, sizeof(double), "time buffer");
    w->z = sdflow__alloc_array(ctx, (size_t)w->nt, w->d * sizeof(double), "noise rows");
    /* zeroed: a model failing NUMERIC may leave its output unwritten before it is scanned */
    w->buf = sdflow__calloc_array(ctx, (size_t)nbuf * n, w->d * sizeof(double), "sampler work arrays");
    return w->tv && w->z && w->buf ? SDFLOW_OK : SDFLOW_E_NOMEM;
}

sdflow_status sdflow__fs_finish(sdflow__fs *w, const double *x, sdflow_status st)
{
    /* the last update is never evaluated again: check it here, so a run is
     * never OK with a non-finite sample */
    size_t bad = st || !w->buf ? w->n : sdflow__first_nonfinite_row(x, w->n, w->d);
    if (bad < w->n)
        return sdflow__fail(w->s->ctx, SDFLOW_E_NUMERIC, "%s sampler: state of sample %zu is non-finite after the last step",
                            w->what, bad);
    return st;
}

void sdflow__fs_close(sdflow__fs *w)
{
    sdflow_ctx *ctx = w->s->ctx;
    sdflow__free(ctx, w->tv);
    sdflow__free(ctx, w->z);
    sdflow__free(ctx, w->buf);
}

double *sdflow__fs_buf(const sdflow__fs *w, int b) { return w->buf ? w->buf + (size_t)b * w->n * w->d : NULL; }

sdflow_status sdflow__fs_denoised(sdflow__fs *w, const double *x, double t, long step, double *D)
{
    sdflow_sampler *s = w->s;
    sdflow_ctx *ctx = s->ctx;
    size_t n = w->n, d = w->d;
    const char *what = w->what;
    size_t bad = sdflow__first_nonfinite_row(x, n, d);
    if (bad < n)
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s sampler: state of sample %zu became non-finite at step %ld, t = %.17g",
                            what, bad, step, t);
    for (size_t i = 0; i < n; i++)
        w->tv[i] = t;
    sdflow_status st = sdflow_model_eval(s->model[SDFLOW_ROLE_SCORE], s->proc, n, x, w->tv, SDFLOW_OUT_X0, D);
    s->stats[SDFLOW_STAT_NFE] += (double)n;
    if (st != SDFLOW_E_NUMERIC)
        return st;
    bad = sdflow__first_nonfinite_row(D, n, d);
    if (bad < n)
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s sampler: model output is NaN/Inf for sample %zu at step %ld, t = %.17g",
                            what, bad, step, t);
    char why[SDFLOW__ERRMAX]; /* failed before producing outputs: keep its reason, add where */
    memcpy(why, ctx->err, sizeof why);
    why[sizeof why - 1] = 0;
    return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s sampler at step %ld, t = %.17g: %s", what, step, t, why);
}

sdflow_status sdflow__fs_step_begin(sdflow__fs *w, const double *x, long k, double *D, sdflow__coef *ct,
                                    sdflow__coef *cu)
{
    sdflow__process_coef(w->s->proc, w->grid[k], ct);
    sdflow__process_coef(w->s->proc, w->grid[k + 1], cu);
    return sdflow__fs_denoised(w, x, w->grid[k], k, D);
}

double *sdflow__fs_noise(const sdflow__fs *w, uint64_t tag, long step, size_t i)
{
    const sdflow_sampler *s = w->s;
    double *z = w->z + (size_t)omp_get_thread_num() * w->d;
    sdflow__rng_normal_row(s->ctx->seed, sdflow__stream(s->stream, tag, (uint64_t)step), s->first_index + i, 0, w->d,
                           z);
    return z;
}

sdflow_status sdflow__fs_step_done(sdflow__fs *w, long step)
{
    w->s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += (double)w->n;
    return sdflow__progress(w->s->ctx, step + 1, w->N, w->what);
}
