/* SPDX-License-Identifier: MIT */
/* Score Difference flow (Weber 2023; algorithms.md section 10): particles
 * move along sigma^2 (grad log q_sigma - grad log p_sigma), written with the
 * kernel posterior means as m_Y(x) - m_X(x) so the x terms cancel exactly
 * and nothing of size 1/sigma^2 is ever formed. The target is a kernel
 * model (sample set) or any model; the source is the particles themselves
 * (kernel estimate, optionally leave-one-out) or a model. sigma runs
 * geometrically from sigma_max to sigma_min over `steps` levels with
 * `inner_steps` synchronous (Jacobi) updates each. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernel_internal.h"
#include "sampler_internal.h"

#define NN_ROWS 10000 /* rows used to estimate NN spacing and memorization */
#define LOO_GROWTH 1.5  /* leave-one-out runs fail once the particles drift this much farther off */
#define ADAPT_FLOOR_NN 0.25 /* adaptive schedules plan down to this x h_NN (copies form below) */

/* The SD flow's own options (s->priv); 0 for sigma_max / sigma_min /
 * sigma_min_nn: derived from the data (schedule()). */
typedef struct sdflow_opts {
    double sigma_max, sigma_min, sigma_min_nn;
    double step_frac, noise;
    long inner_steps, self_exclude, eval_noisy, block_q, block_y, start;
} sdflow_opts;

/* The slots (sdflow_options.def): key, field of sdflow_opts, default. */
#define SLOT(key, field, def) SDFLOW__PRIV_SLOT(sdflow_opts, key, SDFLOW__KIND_BIT(SDFLOW_SAMPLER_SDFLOW), field, def)
static const sdflow__opt_slot sdflow_slots[] = {
#include "sdflow_options.def"
};
static const sdflow__opt_store sdflow_store = { "sampler", sdflow_slots, sizeof sdflow_slots / sizeof sdflow_slots[0],
                                                NULL, NULL };

static const sdflow_opts *sdflow_of(const sdflow_sampler *s) { return s->priv; }

/* One side of the difference: a kernel set (mean), or a model (sigma^2 score). */
typedef struct side {
    const sdflow__kref *ref; /* kernel set, or NULL */
    sdflow_model *model;     /* model scored at t = sigma (p = NULL), if ref is NULL */
    long self_off;           /* leave-one-out offset, -1: none */
} side;

typedef struct run {
    sdflow_sampler *s;
    sdflow_ctx *ctx;
    size_t n, d, bq, by;
    int nt;
    sdflow__kref xref; /* current particles, when they are the source */
    double *xq, *q, *mx, *sum, *a, *b, *t, *work;
} run;

static void run_free(run *r)
{
    sdflow_ctx *ctx = r->ctx;
    sdflow__kref_free(ctx, &r->xref);
    double *bufs[] = { r->xq, r->q, r->mx, r->sum, r->a, r->b, r->t, r->work };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        sdflow__free(ctx, bufs[i]);
}

/* Kernel side: out = c + v / s, the posterior mean; model side: out =
 * sigma^2 score (a displacement). Returns whether out holds a mean. */
static sdflow_status side_eval(run *r, const side *sd, double sigma, double *out, int *is_mean)
{
    size_t n = r->n, d = r->d;
    if (sd->ref) {
        const sdflow__kref *k = sd->ref;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                r->q[i * d + j] = r->xq[i * d + j] - k->c[j];
        sdflow__kernel_sums(r->ctx, k, n, r->q, NULL, 1.0 / (sigma * sigma), sd->self_off, r->bq, r->by, r->nt,
                            r->work, r->mx, r->sum, out);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                out[i * d + j] = k->c[j] + out[i * d + j] / r->sum[i];
        *is_mean = 1;
        return SDFLOW_OK;
    }
    for (size_t i = 0; i < n; i++)
        r->t[i] = sigma;
    sdflow_status st = sdflow_model_score(sd->model, NULL, n, r->xq, r->t, out);
    if (st)
        return st;
    for (size_t i = 0; i < n * d; i++)
        out[i] *= sigma * sigma;
    *is_mean = 0;
    return SDFLOW_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median nearest-neighbour distance within the target set (h_NN), the mean
 * of the same leave-one-out distances (the scale of fresh data: a new draw
 * sees m targets, a left-out target m - 1 others), and the largest distance
 * seen, from up to NN_ROWS evenly spaced rows against all rows. */
static sdflow_status target_spacing(run *r, const sdflow__kref *y, double *h_nn, double *fresh, double *far)
{
    size_t m = y->m, d = y->d, ns = m < NN_ROWS ? m : NN_ROWS;
    double *pts = sdflow__alloc_array(r->ctx, ns, (d + 2) * sizeof(double), "nearest-neighbour rows");
    size_t *idx = sdflow__alloc_array(r->ctx, ns, sizeof(size_t), "nearest-neighbour indices");
    if (!pts || !idx) {
        sdflow__free(r->ctx, pts);
        sdflow__free(r->ctx, idx);
        return SDFLOW_E_NOMEM;
    }
    double *nn2 = pts + ns * d, *far2 = nn2 + ns;
    for (size_t i = 0; i < ns; i++) {
        idx[i] = (size_t)((double)i * (double)m / (double)ns);
        for (size_t k = 0; k < d; k++)
            pts[i * d + k] = sdflow__kref_at(y, idx[i], k) + y->c[k];
    }
    sdflow__kernel_nn(y, ns, pts, idx, sdflow__threads_for(r->ctx, ns), nn2, far2);
    double hi = 0, acc = 0;
    for (size_t i = 0; i < ns; i++) {
        hi = far2[i] > hi ? far2[i] : hi;
        acc += sqrt(nn2[i]);
    }
    qsort(nn2, ns, sizeof *nn2, cmp_double);
    *h_nn = m < 2 ? NAN : sqrt(ns % 2 ? nn2[ns / 2] : 0.5 * (nn2[ns / 2 - 1] + nn2[ns / 2]));
    *fresh = m < 2 ? NAN : acc / (double)ns;
    *far = sqrt(hi);
    sdflow__free(r->ctx, pts);
    sdflow__free(r->ctx, idx);
    return SDFLOW_OK;
}

/* Mean distance from up to NN_ROWS evenly spaced outputs to their nearest target. */
static sdflow_status mean_nn_distance(run *r, const sdflow__kref *y, const double *x, double *out)
{
    size_t n = r->n, d = r->d, ns = n < NN_ROWS ? n : NN_ROWS;
    double *pts = sdflow__alloc_array(r->ctx, ns, (d + 1) * sizeof(double), "memorization rows");
    if (!pts)
        return SDFLOW_E_NOMEM;
    double *nn2 = pts + ns * d, acc = 0;
    for (size_t i = 0; i < ns; i++)
        memcpy(pts + i * d, x + (size_t)((double)i * (double)n / (double)ns) * d, d * sizeof *pts);
    sdflow__kernel_nn(y, ns, pts, NULL, sdflow__threads_for(r->ctx, ns), nn2, NULL);
    for (size_t i = 0; i < ns; i++)
        acc += sqrt(nn2[i]);
    *out = acc / (double)ns;
    sdflow__free(r->ctx, pts);
    return SDFLOW_OK;
}

/* Root-mean-square coordinate standard deviation of the start particles. */
static double particle_std(const double *x, size_t n, size_t d)
{
    double acc = 0;
    for (size_t k = 0; k < d; k++) {
        double mu = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            mu += x[i * d + k];
        mu /= (double)n;
        for (size_t i = 0; i < n; i++)
            v += (x[i * d + k] - mu) * (x[i * d + k] - mu);
        acc += n > 1 ? v / (double)(n - 1) : 0;
    }
    return sqrt(acc / (double)d);
}

/* The resolved schedule: level l runs at smax * ratio^l, l < levels; with
 * adapt the run may stop earlier (see flow()). */
typedef struct sched {
    double smax, smin, ratio, h_nn, fresh;
    long levels;
    int adapt;
} sched;

/* Resolves sigma_max and sigma_min (options, or the data defaults). With a
 * kernel target and neither SIGMA_MIN nor SIGMA_MIN_NN set the schedule runs
 * down to ADAPT_FLOOR_NN x h_NN but stops at the first level whose particles
 * are, on average, no nearer to the targets than fresh data (flow()). */
static sdflow_status schedule(run *r, const sdflow__kref *tref, const double *x, sched *pl)
{
    sdflow_sampler *s = r->s;
    const sdflow_opts *o = sdflow_of(s);
    double far = NAN, scale, *smax = &pl->smax, *smin = &pl->smin;
    pl->h_nn = pl->fresh = NAN;
    pl->adapt = 0;
    if (tref) {
        sdflow_status st = target_spacing(r, tref, &pl->h_nn, &pl->fresh, &far);
        if (st)
            return st;
        *smax = o->sigma_max > 0 ? o->sigma_max : far;
        pl->adapt = !(o->sigma_min > 0) && !(o->sigma_min_nn > 0) && pl->fresh > 0;
        *smin = o->sigma_min > 0      ? o->sigma_min
                : o->sigma_min_nn > 0 ? o->sigma_min_nn * pl->h_nn
                                      : ADAPT_FLOOR_NN * pl->h_nn;
        if (pl->adapt && *smin > *smax) /* a user sigma_max below the floor: a flat schedule */
            *smin = *smax;
        scale = far;
    } else {
        scale = 3.0 * particle_std(x, r->n, r->d);
        *smax = o->sigma_max > 0 ? o->sigma_max : scale;
        *smin = o->sigma_min > 0 ? o->sigma_min : 1e-2 * *smax;
    }
    if (!(*smax > 0) || !(*smin > 0) || !isfinite(*smax))
        return sdflow__fail(r->ctx, SDFLOW_E_INVALID,
                            "cannot derive the sigma schedule from the data (sigma_max=%g, sigma_min=%g): set "
                            "SDFLOW_OPT_SIGMA_MAX and SDFLOW_OPT_SIGMA_MIN",
                            *smax, *smin);
    if (*smin > *smax)
        return sdflow__fail(r->ctx, SDFLOW_E_INVALID, "sigma_min=%g must be <= sigma_max=%g", *smin, *smax);
    if (scale > 0 && *smin < 1e-6 * scale) /* below this the weights lose all precision */
        return sdflow__fail(r->ctx, SDFLOW_E_INVALID, "sigma_min=%g is below 1e-6 x the data scale %g", *smin, scale);
    pl->levels = s->steps;
    pl->ratio = pl->levels > 1 ? pow(*smin / *smax, 1.0 / (double)(pl->levels - 1)) : 1.0;
    return SDFLOW_OK;
}

static sdflow_status run_alloc(run *r, int particles)
{
    size_t n = r->n, d = r->d;
    sdflow_ctx *ctx = r->ctx;
    if (particles) {
        sdflow_status st = sdflow__kref_init(ctx, &r->xref, n, d);
        if (st)
            return st;
    }
    r->xq = sdflow__alloc_array(ctx, n, d * sizeof(double), "SD-flow evaluation points");
    r->q = sdflow__alloc_array(ctx, n, d * sizeof(double), "SD-flow queries");
    r->a = sdflow__alloc_array(ctx, n, d * sizeof(double), "SD-flow target means");
    r->b = sdflow__alloc_array(ctx, n, d * sizeof(double), "SD-flow source means");
    r->mx = sdflow__alloc_array(ctx, n, sizeof(double), "SD-flow maxima");
    r->sum = sdflow__alloc_array(ctx, n, sizeof(double), "SD-flow sums");
    r->t = sdflow__alloc_array(ctx, n, sizeof(double), "SD-flow times");
    r->work = sdflow__alloc_array(ctx, sdflow__kernel_work_size(d, r->bq, r->by, r->nt), sizeof(double),
                                  "SD-flow kernel workspace");
    return r->xq && r->q && r->a && r->b && r->mx && r->sum && r->t && r->work ? SDFLOW_OK : SDFLOW_E_NOMEM;
}

/* Prefixes the step context to the message of a failure met inside a step. */
static sdflow_status step_fail(sdflow_ctx *ctx, sdflow_status st, long step, double sigma)
{
    char msg[SDFLOW__ERRMAX];
    memcpy(msg, ctx->err, sizeof msg);
    msg[sizeof msg - 1] = 0;
    return sdflow__fail(ctx, st, "SD flow step %ld (sigma = %g): %s", step, sigma, msg);
}

/* One synchronous step at sigma: x += step_frac (m_target - m_source), plus
 * noise x sigma x z when noise > 0. */
static sdflow_status flow_step(run *r, side *tgt, side *src, long step, double sigma, double noise, double *x)
{
    sdflow_sampler *s = r->s;
    const sdflow_opts *o = sdflow_of(s);
    sdflow_ctx *ctx = r->ctx;
    size_t n = r->n, d = r->d;
    double frac = o->step_frac;
    if (o->eval_noisy) { /* evaluate at x + sigma z, apply at x */
        uint64_t stream = sdflow__stream(s->stream, 0x65766e7aull /* "evnz" */, (uint64_t)step);
#pragma omp parallel for num_threads(r->nt) schedule(static)
        for (size_t i = 0; i < n; i++) {
            sdflow__rng_normal_row(ctx->seed, stream, s->first_index + i, 0, d, r->xq + i * d);
            for (size_t k = 0; k < d; k++)
                r->xq[i * d + k] = x[i * d + k] + sigma * r->xq[i * d + k];
        }
    } else {
        memcpy(r->xq, x, n * d * sizeof *x);
    }
    if (src->ref == &r->xref)
        sdflow__kref_set(&r->xref, x, r->nt);
    int ma, mb;
    sdflow_status st = side_eval(r, tgt, sigma, r->a, &ma);
    if (!st)
        st = side_eval(r, src, sigma, r->b, &mb);
    if (st)
        return step_fail(ctx, st, step, sigma);
    /* difference of two means, or of a mean and a displacement */
    for (size_t i = 0; i < n * d; i++) {
        double diff = ma == mb ? r->a[i] - r->b[i] : ma ? (r->a[i] - r->xq[i]) - r->b[i]
                                                        : r->a[i] - (r->b[i] - r->xq[i]);
        r->a[i] = x[i] + frac * diff;
    }
    if (noise > 0) {
        uint64_t stream = sdflow__stream(s->stream, 0x6e6f697aull /* "noiz" */, (uint64_t)step);
#pragma omp parallel for num_threads(r->nt) schedule(static)
        for (size_t i = 0; i < n; i++) {
            double *z = r->q + i * d;
            sdflow__rng_normal_row(ctx->seed, stream, s->first_index + i, 0, d, z);
            for (size_t k = 0; k < d; k++)
                r->a[i * d + k] += noise * sigma * z[k];
        }
    }
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(r->a[i]))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "SD flow step %ld (sigma = %g): particle %zu coordinate %zu is %s",
                                step, sigma, i / d, i % d, isnan(r->a[i]) ? "NaN" : "Inf");
    memcpy(x, r->a, n * d * sizeof *x);
    s->stats[SDFLOW_STAT_NFE] += 1;
    s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += (double)n;
    return SDFLOW_OK;
}

/* Runs the levels of the plan. Adaptive plans measure the particles' mean
 * NN distance to the targets after each level and stop at the first level
 * where it is at most the fresh-data scale: above it the particles are
 * still smoothed (in high dimension far from the data), below it they drift
 * toward copies. With noise > 0 a noise-free finishing level at the last
 * sigma follows, so no injected noise is left in the output. */
static sdflow_status flow(run *r, const sdflow__kref *tref, side *tgt, side *src, const sched *pl, double *x)
{
    sdflow_sampler *s = r->s;
    const sdflow_opts *o = sdflow_of(s);
    sdflow_ctx *ctx = r->ctx;
    long inner = o->inner_steps, finish = o->noise > 0 ? inner : 0, step = 0, lev;
    long total = pl->levels * inner + finish;
    double sigma = pl->smax, first = 0;
    int loo = src->self_off >= 0;
    sdflow_status st = SDFLOW_OK;
    for (lev = 0; lev < pl->levels; lev++) {
        sigma = lev == pl->levels - 1 ? pl->smin : pl->smax * pow(pl->ratio, (double)lev);
        s->stats[SDFLOW_STAT_LEVELS] = (double)(lev + 1);
        s->stats[SDFLOW_STAT_SIGMA_MIN] = sigma;
        for (long k = 0; k < inner; k++, step++)
            if ((st = flow_step(r, tgt, src, step, sigma, o->noise, x)) ||
                (st = sdflow__progress(ctx, step + 1, total, "SD flow")))
                return st;
        if ((pl->adapt && lev + 1 < pl->levels) || (loo && tref)) {
            double dist;
            if ((st = mean_nn_distance(r, tref, x, &dist)))
                return st;
            if (lev == 0)
                first = dist;
            /* the leave-one-out update is not contracting once sigma is below the
             * particle spacing: it measured NN-ratio 17 (d = 30) at step_frac 1, 4-5 at
             * 0.3 and 0.1; never more than the first level's distance in 2-D */
            if (loo && dist > LOO_GROWTH * first)
                return sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                                    "SD flow level %ld (sigma = %g): the leave-one-out source (self_exclude) "
                                    "diverges (mean distance to the targets %g, %g after the first level); it is "
                                    "unstable below the particle spacing, mostly in high dimension: use "
                                    "self_exclude = 0",
                                    lev, sigma, dist, first);
            if (pl->adapt && lev + 1 < pl->levels && dist <= pl->fresh)
                break;
        }
    }
    if (finish) {
        s->stats[SDFLOW_STAT_LEVELS] += 1;
        for (long k = 0; k < finish; k++, step++)
            if ((st = flow_step(r, tgt, src, step, sigma, 0.0, x)) ||
                (st = sdflow__progress(ctx, step + 1, total, "SD flow")))
                return st;
    }
    if (step < total) /* stopped early: the progress bar still ends full */
        st = sdflow__progress(ctx, total, total, "SD flow");
    return st;
}

/* The start when x_init is NULL (SDFLOW_OPT_START): N(mean, diag(var)) of
 * the target samples puts the particles where the data are whatever their
 * location and scale, N(0, I), or exact samples of the START model. */
static sdflow_status draw_start(run *r, const sdflow__kref *tref, double *x)
{
    sdflow_sampler *s = r->s;
    const sdflow_opts *o = sdflow_of(s);
    size_t n = r->n, d = r->d;
    uint64_t stream = sdflow__stream(s->stream, 0x696e6974ull /* "init" */, 0);
    if (o->start == SDFLOW_START_MODEL) {
        sdflow_model *m = s->model[SDFLOW_ROLE_START];
        if (!m)
            return sdflow__fail(r->ctx, SDFLOW_E_STATE,
                                "SDFLOW_START_MODEL needs a model bound as SDFLOW_ROLE_START");
        if (m->d != d)
            return sdflow__fail(r->ctx, SDFLOW_E_INVALID, "start model d=%zu differs from target d=%zu", m->d, d);
        return sdflow_model_sample(m, stream, s->first_index, n, x);
    }
    for (size_t i = 0; i < n; i++)
        sdflow__rng_normal_row(r->ctx->seed, stream, s->first_index + i, 0, d, x + i * d);
    if (o->start != SDFLOW_START_MATCHED || !tref || tref->m < 2)
        return SDFLOW_OK;
    for (size_t k = 0; k < d; k++) {
        double v = 0;
        for (size_t j = 0; j < tref->m; j++) /* rows are centred at their mean c */
            v += sdflow__kref_at(tref, j, k) * sdflow__kref_at(tref, j, k);
        double sd = sqrt(v / (double)(tref->m - 1));
        for (size_t i = 0; i < n; i++)
            x[i * d + k] = tref->c[k] + sd * x[i * d + k];
    }
    return SDFLOW_OK;
}

/* End-of-run diagnostic at info level, with the advice that fits. */
static void log_memorization(sdflow_ctx *ctx, double ratio, const sched *pl)
{
    const char *advice = ratio < 0.5   ? "outputs are close to copies of targets: raise sigma_min"
                         : ratio < 0.8 ? "outputs lean toward the targets: a larger sigma_min gives more novel samples"
                         : ratio <= 1.2 ? "outputs are as near the targets as fresh data"
                                        : "outputs are still smoothed or noisy: lower sigma_min or add levels";
    sdflow__log(ctx, SDFLOW_LOG_INFO,
                "SD flow: memorization ratio %.3g (1 = like fresh data), sigma_min %.3g = %.3g h_NN, %ld levels%s: %s",
                ratio, pl->smin, pl->smin / pl->h_nn, pl->levels, pl->adapt ? " (adaptive stop)" : "", advice);
}

sdflow_status sdflow__sdflow_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, int draw, double *x)
{
    (void)plan; /* sigma levels, not process times */
    sdflow_ctx *ctx = s->ctx;
    const sdflow_opts *o = sdflow_of(s);
    sdflow_model *tm = s->model[SDFLOW_ROLE_TARGET], *sm = s->model[SDFLOW_ROLE_SOURCE];
    const sdflow__kref *tref = sdflow__kernel_ref(tm);
    if (!sm && o->self_exclude && n < 2)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "self_exclude needs n >= 2 particles, got n=%zu", n);
    if (s->steps > 1000000000L / o->inner_steps / 2)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "steps=%ld x inner_steps=%ld is too many", s->steps,
                            o->inner_steps);
    run r = { .s = s, .ctx = ctx, .n = n, .d = tm->d, .bq = (size_t)o->block_q, .by = (size_t)o->block_y };
    r.nt = sdflow__threads_for(ctx, n);
    sched pl = { 0 };
    sdflow_status st = run_alloc(&r, !sm);
    if (!st && draw)
        st = draw_start(&r, tref, x);
    if (!st)
        st = schedule(&r, tref, x, &pl);
    if (st) {
        run_free(&r);
        return st;
    }
    s->stats[SDFLOW_STAT_SIGMA_MAX] = pl.smax;
    s->stats[SDFLOW_STAT_SIGMA_RATIO] = pl.ratio;
    s->stats[SDFLOW_STAT_H_NN] = pl.h_nn;
    s->stats[SDFLOW_STAT_FRESH_NN] = pl.fresh;
    s->stats[SDFLOW_STAT_MEMORIZATION_RATIO] = NAN;
    side tgt = { .ref = tref, .model = tm, .self_off = -1 };
    side src = { .ref = sm ? sdflow__kernel_ref(sm) : &r.xref, .model = sm,
                 .self_off = !sm && o->self_exclude ? 0 : -1 };
    st = flow(&r, tref, &tgt, &src, &pl, x);
    if (!st && tref && pl.fresh > 0) {
        double dist;
        if (!(st = mean_nn_distance(&r, tref, x, &dist))) {
            double ratio = dist / pl.fresh;
            s->stats[SDFLOW_STAT_MEMORIZATION_RATIO] = ratio;
            pl.smin = s->stats[SDFLOW_STAT_SIGMA_MIN];
            pl.levels = (long)s->stats[SDFLOW_STAT_LEVELS];
            log_memorization(ctx, ratio, &pl);
        }
    }
    run_free(&r);
    return st;
}

/* The source model, when bound, must match the target's dimension; the
 * sigma ends, when both are set, must be ordered. */
static sdflow_status sdflow_kind_check(sdflow_sampler *s, const sdflow_model *m, const double *x_in, int is_run,
                                       int phase)
{
    (void)x_in;
    (void)is_run;
    const sdflow_opts *o = sdflow_of(s);
    if (phase == SDFLOW__SK_CHECK_BIND && s->model[SDFLOW_ROLE_SOURCE] && s->model[SDFLOW_ROLE_SOURCE]->d != m->d)
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "source model d=%zu differs from target d=%zu",
                            s->model[SDFLOW_ROLE_SOURCE]->d, m->d);
    if (phase == SDFLOW__SK_CHECK_OPTIONS && o->sigma_min > 0 && o->sigma_max > 0 && o->sigma_min > o->sigma_max)
        return sdflow__fail(s->ctx, SDFLOW_E_INVALID, "sigma_min=%g must be <= sigma_max=%g", o->sigma_min,
                            o->sigma_max);
    return SDFLOW_OK;
}

static sdflow_status sdflow_kind_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    return sdflow__sdflow_run(s, plan, n, plan->draw_start, x);
}

/* No process: the flow runs on sigma levels and draws its own start. */
const sdflow__sampler_kind_ops sdflow__sdflow_kind = {
    .kind = SDFLOW_SAMPLER_SDFLOW, .name = "sdflow", .roles = SDFLOW__ROLE_RANGE(SDFLOW_ROLE_TARGET, SDFLOW_ROLE_START),
    .roles_hint = "use SDFLOW_ROLE_TARGET / SDFLOW_ROLE_SOURCE / SDFLOW_ROLE_START", .primary = SDFLOW_ROLE_TARGET,
    .primary_name = "target", .process = SDFLOW__SK_PROC_NONE, .flags = SDFLOW__SK_OWN_START,
    .check = sdflow_kind_check, .run = sdflow_kind_run, .opts = &sdflow_store, .priv_size = sizeof(sdflow_opts),
};
