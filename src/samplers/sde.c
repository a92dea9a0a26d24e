/* SPDX-License-Identifier: MIT */
/* Reverse-time SDE samplers: Euler-Maruyama (algorithms.md §4.2) and the
 * predictor-corrector sampler with a Langevin corrector (§4.3). */
#include <math.h>
#include <string.h>
#include <omp.h>
#include "ode_internal.h"
#include "sampler_internal.h"

#define TAG_PREDICT 0x70726564ull /* "pred": noise of the EM predictor */
#define TAG_CORRECT 0x636f7272ull /* "corr": noise of the Langevin corrector */

/* PC's own options (s->priv); reverse_sde has none (no block): no corrector. */
typedef struct pc_opts {
    double snr;
    long corrector_steps;
} pc_opts;

#define K_PC SDFLOW__KIND_BIT(SDFLOW_SAMPLER_PC)
static const sdflow__opt_slot pc_slots[] = {
    SDFLOW__PRIV_SLOT(pc_opts, SDFLOW_OPT_SNR, K_PC, snr, 0.16),
    SDFLOW__PRIV_SLOT(pc_opts, SDFLOW_OPT_CORRECTOR_STEPS, K_PC, corrector_steps, 1),
};
static const sdflow__opt_store pc_store = { "sampler", pc_slots, sizeof pc_slots / sizeof pc_slots[0], NULL, NULL };

/* NULL for reverse_sde. */
static const pc_opts *pc_of(const sdflow_sampler *s) { return s->priv; }

typedef struct sde_work {
    sdflow_sampler *s;
    const char *what; /* kind name from the plan */
    size_t n, d;
    double *score; /* n x d */
    double *tv;    /* n times, all equal */
    double *z;     /* per-thread noise row, nthreads x d */
    int nt;
} sde_work;

/* Score at (x, t) for all rows; NaN/Inf in the state or the model output
 * becomes SDFLOW_E_NUMERIC naming the step, the time and the sample (row of
 * x). The model evaluation is the unchecked one: the run's inputs were
 * validated by the dispatcher, the state is scanned here once, the output
 * once by the model. */
static sdflow_status score_at(sde_work *w, const double *x, double t, long step)
{
    sdflow_sampler *s = w->s;
    sdflow_ctx *ctx = s->ctx;
    for (size_t i = 0; i < w->n; i++)
        w->tv[i] = t;
    size_t bad = sdflow__first_nonfinite_row(x, w->n, w->d);
    if (bad < w->n)
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s sampler: state of sample %zu became non-finite at step %ld, t = %.17g",
                            w->what, bad, step, t);
    sdflow_status st = sdflow__model_eval_rows(s->model[SDFLOW_ROLE_SCORE], s->proc, w->n, x, w->tv,
                                               SDFLOW_OUT_SCORE, w->score, NULL);
    s->stats[SDFLOW_STAT_NFE] += (double)w->n;
    if (st == SDFLOW_E_NUMERIC)
        return sdflow__fail_prefix(ctx, st, "%s sampler at step %ld, t = %.17g: ", w->what, step, t);
    return st;
}

/* Langevin step size factor a: 1 - beta_i of the discrete VP chain for
 * VP-like processes (score_sde's alphas table, beta_i = beta(t_i) T/N with
 * beta = -2 f), 1 for VE. */
static double corrector_a(const sdflow_sampler *s, double t)
{
    if (sdflow_process_get_kind(s->proc) == SDFLOW_PROCESS_VE)
        return 1;
    double T = s->proc->t_max, N = (double)s->steps;
    double ti = N > 1 ? floor(t * (N - 1) / T) * T / (N - 1) : T;
    sdflow__coef c;
    sdflow__process_coef(s->proc, ti, &c);
    double a = 1 + 2 * c.f * T / N;
    return a > 0 ? a : 0;
}

/* One Langevin corrector step targeting p_t:
 *   x <- x + eps score + sqrt(2 eps) z,   eps = 2 a snr^2 sigma(t)^2.
 * The step is the SNR rule eps = 2 a (snr |z| / |score|)^2 (§4.3) with the
 * norm ratio replaced by its high-dimensional value |z| / |score| ~ sigma(t)
 * (annealed Langevin, Song & Ermon 2019). A step that depends on the
 * sample's own |z| and |score| (per-sample norms) makes the noise
 * non-Gaussian and the step position-dependent, which biases the chain in
 * low dimension; the batch-mean norms of score_sde would make samples
 * depend on their batch mates. This step is the same for every sample. */
static sdflow_status correct(sde_work *w, double *x, double t, long step, long j)
{
    sdflow_sampler *s = w->s;
    sdflow_status st = score_at(w, x, t, step);
    if (st)
        return st;
    size_t d = w->d;
    uint64_t stream = sdflow__stream(s->stream, TAG_CORRECT, (uint64_t)step);
    uint64_t off = (uint64_t)j * ((d + 1) / 2);
    sdflow__coef c;
    sdflow__process_coef(s->proc, t, &c);
    double snr = pc_of(s)->snr, eps = 2 * corrector_a(s, t) * snr * snr * c.sigma * c.sigma, sq = sqrt(2 * eps);
#pragma omp parallel for num_threads(w->nt) schedule(static)
    for (size_t i = 0; i < w->n; i++) {
        double *z = w->z + (size_t)omp_get_thread_num() * d, *xi = x + i * d;
        const double *g = w->score + i * d;
        sdflow__rng_normal_row(s->ctx->seed, stream, s->first_index + i, off, d, z);
        for (size_t k = 0; k < d; k++)
            xi[k] += eps * g[k] + sq * z[k];
    }
    return SDFLOW_OK;
}

/* Euler-Maruyama step from t to t - h; the last step returns x_mean. */
static sdflow_status predict(sde_work *w, double *x, double t, double h, long step, int last)
{
    sdflow_sampler *s = w->s;
    sdflow_status st = score_at(w, x, t, step);
    if (st)
        return st;
    size_t d = w->d;
    sdflow__coef c;
    sdflow__process_coef(s->proc, t, &c);
    double noise = last ? 0 : sqrt(c.g2 * h);
    uint64_t stream = sdflow__stream(s->stream, TAG_PREDICT, (uint64_t)step);
#pragma omp parallel for num_threads(w->nt) schedule(static)
    for (size_t i = 0; i < w->n; i++) {
        double *z = w->z + (size_t)omp_get_thread_num() * d, *xi = x + i * d;
        const double *g = w->score + i * d;
        if (!last)
            sdflow__rng_normal_row(s->ctx->seed, stream, s->first_index + i, 0, d, z);
        for (size_t k = 0; k < d; k++) {
            double mean = xi[k] - h * (c.f * xi[k] - c.g2 * g[k]);
            xi[k] = last ? mean : mean + noise * z[k];
        }
    }
    s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += (double)w->n;
    return SDFLOW_OK;
}

sdflow_status sdflow__sde_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow_ctx *ctx = s->ctx;
    size_t d = s->model[SDFLOW_ROLE_SCORE]->d;
    long N = s->steps;
    long corr = pc_of(s) ? pc_of(s)->corrector_steps : 0;
    sde_work w = { .s = s, .what = plan->what, .n = n, .d = d, .nt = sdflow__threads_for(ctx, n) };
    w.score = sdflow__alloc_array(ctx, n, d * sizeof(double), "score buffer");
    w.tv = sdflow__alloc_array(ctx, n, sizeof(double), "time buffer");
    w.z = sdflow__alloc_array(ctx, (size_t)w.nt, d * sizeof(double), "noise rows");
    const double *grid = plan->grid;
    /* PC: the state at the start of the step, restored when a later model
     * call of the step fails, so x holds the last completed step */
    double *x_step = corr > 0 ? sdflow__alloc_array(ctx, n, d * sizeof(double), "step start state") : NULL;
    sdflow_status st = SDFLOW_OK;
    if (!w.score || !w.tv || !w.z || (corr > 0 && !x_step)) {
        st = SDFLOW_E_NOMEM;
        goto done;
    }
    for (long k = 0; k < N && !st; k++) {
        double t = grid[k], h = grid[k] - grid[k + 1];
        if (x_step)
            memcpy(x_step, x, n * d * sizeof *x);
        for (long j = 0; j < corr && !st; j++)
            st = correct(&w, x, t, k, j);
        if (!st)
            st = predict(&w, x, t, h, k, k == N - 1);
        if (st && x_step)
            memcpy(x, x_step, n * d * sizeof *x);
        if (!st)
            st = sdflow__progress(ctx, k + 1, N, plan->what);
    }
    /* the last step's mean can overflow even from finite scores */
    if (!st)
        st = sdflow__check_result(ctx, x, n, d, "reverse SDE final state");
done:
    sdflow__free(ctx, x_step);
    sdflow__free(ctx, w.score);
    sdflow__free(ctx, w.tv);
    sdflow__free(ctx, w.z);
    return st;
}

const sdflow__sampler_kind_ops sdflow__reverse_sde_kind =
    SDFLOW__SCORE_GRID_KIND(SDFLOW_SAMPLER_REVERSE_SDE, "reverse_sde", sdflow__sde_run);

const sdflow__sampler_kind_ops sdflow__pc_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_PC, "pc", sdflow__sde_run, &pc_store, sizeof(pc_opts), NULL);
