/* SPDX-License-Identifier: MIT */
/* PF-ODE likelihood (algorithms.md §5): integrate the augmented state
 * (x, l) from t_min to T with dx/dt = v = f x - g^2/2 s and
 * dl/dt = div v = d f - g^2/2 div s; then log p(x) = log prior(x(T)) + l(T).
 * The exact estimator carries one accumulator l; the Hutchinson estimator
 * carries K (one per probe), so the state is d + K wide and the spread of
 * the K estimates gives the standard error. */
#include <math.h>
#include <string.h>
#include "density_internal.h"
#include "ode_internal.h"

typedef struct aug_rhs {
    sdflow_density *e;
    size_t d, L;        /* data dimension, number of accumulators */
    double *xs;         /* n x d compact positions */
    double *score;      /* n x d model scores */
    double *acc;        /* n x L: divergence of the score (exact) or probe quadratic forms */
    double *probes;     /* n_all x L x d (Hutchinson only), indexed by original row */
    double *pv;         /* n x L x d probes gathered for the rows of one call */
} aug_rhs;

/* dydt = (v, div v) with v = f x - g^2/2 s and div v = d f - g^2/2 div s
 * (or the probes' quadratic forms), formed by the process. The state was
 * checked by the solver; the model evaluation is the unchecked one and
 * names the caller's sample (rows) itself, as does the drift check. */
static sdflow_status aug_eval(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                              double *dydt)
{
    aug_rhs *u = user;
    sdflow_density *e = u->e;
    size_t d = u->d, L = u->L, dim = d + L;
    for (size_t i = 0; i < n; i++)
        memcpy(u->xs + i * d, y + i * dim, d * sizeof(double));
    sdflow_status st;
    if (!u->probes) {
        /* score and divergence in one model pass where the model offers it */
        st = sdflow__model_score_and_divergence(e->model, e->proc, n, u->xs, t, (int)e->divergence, u->score,
                                                u->acc, rows);
    } else {
        for (size_t i = 0; i < n; i++)
            memcpy(u->pv + i * L * d, u->probes + rows[i] * L * d, L * d * sizeof(double));
        st = sdflow__model_score_and_quadform(e->model, e->proc, n, u->xs, t, L, u->pv, (int)e->divergence,
                                              u->score, u->acc, rows);
    }
    if (st)
        return st;
    /* the linear part f x of the drift has the exact trace d f, so probes
     * only estimate the score part (lower variance) */
    size_t bad = sdflow__process_velocity_of_score(e->proc, n, d, t, u->xs, u->score, L, u->acc, dydt, dim);
    if (bad < n)
        return sdflow__fail(e->ctx, SDFLOW_E_NUMERIC, "right-hand side is NaN/Inf for sample %zu", rows[bad]);
    return SDFLOW_OK;
}

/* Probes of row i: K vectors keyed by (seed, stream, first_index + i). */
static void draw_probes(const sdflow_density *e, size_t n, size_t d, size_t K, double *probes)
{
    uint64_t stream = sdflow__stream(e->stream, 0x70726f62ull /* "prob" */, 0);
    uint64_t seed = e->ctx->seed;
    int nt = sdflow__threads_for(e->ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < K; k++) {
            double *v = probes + (i * K + k) * d;
            uint64_t row = e->first_index + i;
            if (e->probe_kind == SDFLOW_PROBE_GAUSSIAN)
                sdflow__rng_normal_row(seed, stream, row, k * ((d + 1) / 2), d, v);
            else
                sdflow__rng_rademacher_row(seed, stream, row, k * ((d + 127) / 128), d, v);
        }
}

sdflow_status sdflow__pf_ode_logpdf(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                                    double *logp, double *se)
{
    sdflow_ctx *ctx = e->ctx;
    size_t d = e->model->d;
    int hutch = e->kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON;
    size_t L = hutch ? (size_t)e->probes : 1, dim = d + L;
    if (!sdflow__size_ok(n, dim) || !sdflow__size_ok(n, L * d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu rows of %zu state entries overflow size_t", n, dim);
    aug_rhs u = { .e = e, .d = d, .L = L };
    double *y = sdflow__alloc_array(ctx, n, dim * sizeof(double), "augmented ODE state");
    double *prior = sdflow__alloc_array(ctx, n, sizeof(double), "prior log-density");
    double *xT = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE end points");
    u.xs = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE positions");
    u.score = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE scores");
    u.acc = sdflow__alloc_array(ctx, n, L * sizeof(double), "divergence accumulators");
    if (hutch) {
        u.probes = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "Hutchinson probes");
        u.pv = sdflow__alloc_array(ctx, n, L * d * sizeof(double), "gathered probes");
    }
    sdflow_status st = SDFLOW_OK;
    if (!y || !prior || !xT || !u.xs || !u.score || !u.acc || (hutch && (!u.probes || !u.pv)))
        st = SDFLOW_E_NOMEM;
    if (!st) {
        if (hutch)
            draw_probes(e, n, d, L, u.probes);
        for (size_t i = 0; i < n; i++) {
            memcpy(y + i * dim, x + i * d, d * sizeof(double));
            memset(y + i * dim + d, 0, L * sizeof(double));
        }
        sdflow__ode_opts o = { .solver = (int)e->solver, .steps = e->steps, .rtol = e->rtol, .atol = e->atol,
                               .h_init = e->h_init, .max_steps = e->max_steps,
                               .what = hutch ? "pf_ode_hutchinson likelihood" : "pf_ode_exact likelihood" };
        st = sdflow__ode_solve(ctx, &o, n, dim, plan->t_min, e->proc->t_max, y, aug_eval, &u, NULL);
    }
    if (!st) {
        for (size_t i = 0; i < n; i++)
            memcpy(xT + i * d, y + i * dim, d * sizeof(double));
        st = sdflow_process_prior_logpdf(e->proc, n, d, xT, prior);
    }
    for (size_t i = 0; i < n && !st; i++) {
        const double *l = y + i * dim + d;
        double mean = 0, ss = 0;
        for (size_t k = 0; k < L; k++)
            mean += l[k];
        mean /= (double)L;
        for (size_t k = 0; k < L; k++)
            ss += (l[k] - mean) * (l[k] - mean);
        logp[i] = prior[i] + mean;
        /* se = sd(probe estimates)/sqrt(K); K = 1 (and exact) gives 0 */
        if (se)
            se[i] = L > 1 ? sqrt(ss / (double)(L - 1) / (double)L) : 0.0;
        if (!isfinite(logp[i]))
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "log-density of sample %zu is %g", i, logp[i]);
    }
    sdflow__free(ctx, y);
    sdflow__free(ctx, prior);
    sdflow__free(ctx, xT);
    sdflow__free(ctx, u.xs);
    sdflow__free(ctx, u.score);
    sdflow__free(ctx, u.acc);
    sdflow__free(ctx, u.probes);
    sdflow__free(ctx, u.pv);
    return st;
}
