/* SPDX-License-Identifier: MIT */
/* Li-Yan score-based density formula in log-SNR form (algorithms.md §6):
 *   log p_0(x) = -d/2 log(2 pi e) - 1/2 int ( E|eps_hat - eps|^2 - d sigmoid(lambda) ) dlambda
 * with X = alpha x + sigma eps at the process time t(lambda). Any linear
 * process is used through its VP-equivalent rescaling (X / sqrt(alpha^2 +
 * sigma^2) has the VP coefficients of the same log-SNR), under which
 * eps_hat = -sigma(t) score(X, t): the model's EPS output at the process's
 * own time. Estimator: K stratified lambda points (one uniform jitter per
 * stratum and sample), J antithetic pairs (eps, -eps) per point. Tails
 * outside [lambda_min, lambda_max] (and outside the process's log-SNR range)
 * are dropped: the bias is O(d e^-lambda_max) above and O(d sigmoid(lambda_min))
 * below. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "density_internal.h"

/* Li-Yan's own options (e->priv). */
typedef struct liyan_opts {
    long times, draws;             /* K lambda points, J antithetic pairs per point */
    double lambda_min, lambda_max; /* the integration range in log-SNR */
} liyan_opts;

#define SLOT(key, field, def) SDFLOW__PRIV_SLOT(liyan_opts, key, SDFLOW__KIND_BIT(SDFLOW_DENSITY_LIYAN), field, def)
static const sdflow__opt_slot liyan_slots[] = {
    SLOT(SDFLOW_OPT_LIYAN_TIMES, times, 256),
    SLOT(SDFLOW_OPT_LIYAN_DRAWS, draws, 1),
    SLOT(SDFLOW_OPT_LAMBDA_MIN, lambda_min, -15.0),
    SLOT(SDFLOW_OPT_LAMBDA_MAX, lambda_max, 15.0),
};
static const sdflow__opt_store liyan_store = { "estimator", liyan_slots, sizeof liyan_slots / sizeof liyan_slots[0],
                                               NULL, NULL };

static const liyan_opts *liyan_of(const sdflow_density *e) { return e->priv; }

typedef struct ly_work {
    double *xr, *tr, *eps, *out; /* rows x d, rows, rows x d, rows x d */
    double *a2;                  /* per sample of the block: VP-equivalent alpha^2 */
} ly_work;

static sdflow_status liyan_logpdf(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                                  double *logp, double *se)
{
    (void)plan; /* log-SNR range from the options */
    sdflow_ctx *ctx = e->ctx;
    const liyan_opts *opt = liyan_of(e);
    const sdflow_process *p = e->proc;
    size_t d = e->model->d, K = (size_t)opt->times, J = (size_t)opt->draws, R = 2 * J;
    double l_T = sdflow__process_log_snr(p, p->t_max), l_eps = sdflow__process_log_snr(p, p->t_eps);
    double lo = fmax(opt->lambda_min, l_T), hi = fmin(opt->lambda_max, l_eps);
    if (!(lo < hi))
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "lambda range [%g, %g] misses the process's log-SNR range [%g, %g]", opt->lambda_min,
                            opt->lambda_max, l_T, l_eps);
    if (lo > opt->lambda_min || hi < opt->lambda_max)
        sdflow__log(ctx, SDFLOW_LOG_INFO, "liyan: integrating lambda over [%g, %g], the part of [%g, %g] the "
                    "process reaches; the tails are dropped", lo, hi, opt->lambda_min, opt->lambda_max);
    if (!sdflow__size_ok(R, d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "liyan_draws=%zu with d=%zu overflow size_t", J, d);
    /* samples per block: about 2^18 rows of d entries in each temporary */
    size_t block = ((size_t)1 << 18) / (R * d) + 1;
    if (block > n)
        block = n;
    size_t rows = block * R;
    ly_work w = { 0 };
    w.xr = sdflow__alloc_array(ctx, rows, d * sizeof(double), "noised points");
    w.tr = sdflow__alloc_array(ctx, rows, sizeof(double), "noise times");
    w.eps = sdflow__alloc_array(ctx, rows, d * sizeof(double), "noise draws");
    w.out = sdflow__alloc_array(ctx, rows, d * sizeof(double), "predicted noise");
    w.a2 = sdflow__alloc_array(ctx, block, sizeof(double), "signal fractions");
    double *sum = sdflow__calloc_array(ctx, n, sizeof(double), "integrand sums");
    double *prev = sdflow__alloc_array(ctx, n, sizeof(double), "previous stratum values");
    double *pair = sdflow__calloc_array(ctx, n, sizeof(double), "paired-strata variances");
    sdflow_status st = SDFLOW_OK;
    if (!w.xr || !w.tr || !w.eps || !w.out || !w.a2 || !sum || !prev || !pair)
        st = SDFLOW_E_NOMEM;
    uint64_t seed = ctx->seed;
    uint64_t ustream = sdflow__stream(e->stream, 0x6c796c6dull /* "lylm" */, 0);
    uint64_t estream = sdflow__stream(e->stream, 0x6c796570ull /* "lyep" */, 0);
    double width = hi - lo;
    for (size_t k = 0; k < K && !st; k++) {
        for (size_t i0 = 0; i0 < n && !st; i0 += block) {
            size_t nb = n - i0 < block ? n - i0 : block;
            int nt = sdflow__threads_for(ctx, nb);
#pragma omp parallel for num_threads(nt) schedule(static)
            for (size_t i = 0; i < nb; i++) {
                uint64_t row = e->first_index + i0 + i;
                double u;
                sdflow__rng_uniform_row(seed, ustream, row, k, 1, &u);
                double lam = lo + ((double)k + 1.0 - u) / (double)K * width; /* stratum k */
                double t = sdflow__process_time_of_log_snr(p, lam);
                sdflow__coef c;
                sdflow__process_coef(p, t, &c);
                w.a2[i] = c.alpha * c.alpha / (c.alpha * c.alpha + c.sigma * c.sigma);
                for (size_t j = 0; j < J; j++) {
                    double *ep = w.eps + (i * R + 2 * j) * d, *em = ep + d;
                    double *xp = w.xr + (i * R + 2 * j) * d, *xm = xp + d;
                    sdflow__rng_normal_row(seed, estream, row, (k * J + j) * ((d + 1) / 2), d, ep);
                    for (size_t a = 0; a < d; a++) {
                        em[a] = -ep[a];
                        xp[a] = c.alpha * x[(i0 + i) * d + a] + c.sigma * ep[a];
                        xm[a] = c.alpha * x[(i0 + i) * d + a] - c.sigma * ep[a];
                    }
                    w.tr[i * R + 2 * j] = w.tr[i * R + 2 * j + 1] = t;
                }
            }
            st = sdflow_model_eval(e->model, p, nb * R, w.xr, w.tr, SDFLOW_OUT_EPS, w.out);
            if (st == SDFLOW_E_NUMERIC)
                for (size_t r = 0; r < nb * R * d; r++)
                    if (!isfinite(w.out[r])) {
                        st = sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                                          "liyan: model output for sample %zu at t = %g is not finite", i0 + r / d / R,
                                          w.tr[r / d]);
                        break;
                    }
            if (st)
                break;
            for (size_t i = 0; i < nb; i++) {
                /* F = mean_r |eps_hat - eps|^2 - a2 |eps|^2: the control variate
                 * a2 |eps|^2 has the mean d a2 of the formula but cancels the
                 * chi-square noise of |eps|^2 where eps_hat ~ 0 (small noise);
                 * subtracted per coordinate, as the terms nearly cancel */
                double F = 0;
                for (size_t r = 0; r < R; r++) {
                    const double *o = w.out + (i * R + r) * d, *ep = w.eps + (i * R + r) * d;
                    for (size_t a = 0; a < d; a++)
                        F += (o[a] - ep[a]) * (o[a] - ep[a]) - w.a2[i] * ep[a] * ep[a];
                }
                F /= (double)R;
                size_t g = i0 + i;
                sum[g] += F;
                if (k % 2 == 1) /* collapsed strata: pairs (0,1), (2,3), ... */
                    pair[g] += (F - prev[g]) * (F - prev[g]);
                else if (k == K - 1 && K > 1) /* odd K: the last stratum is paired with its neighbour */
                    pair[g] += 0.5 * (F - prev[g]) * (F - prev[g]);
                prev[g] = F;
            }
        }
        if (!st)
            st = sdflow__progress(ctx, (long)k + 1, (long)K, "liyan likelihood");
    }
    double base = -0.5 * (double)d * (log(2.0 * SDFLOW__PI) + 1.0);
    for (size_t i = 0; i < n && !st; i++) {
        logp[i] = base - 0.5 * width * sum[i] / (double)K;
        /* Var(mean_k F_k) ~ sum over pairs (F_a - F_b)^2 / K^2: conservative by the
         * squared change of E F across a stratum pair */
        if (se)
            se[i] = 0.5 * width * sqrt(pair[i]) / (double)K;
        if (!isfinite(logp[i]))
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "log-density of sample %zu is %g", i, logp[i]);
    }
    sdflow__free(ctx, w.xr);
    sdflow__free(ctx, w.tr);
    sdflow__free(ctx, w.eps);
    sdflow__free(ctx, w.out);
    sdflow__free(ctx, w.a2);
    sdflow__free(ctx, sum);
    sdflow__free(ctx, prev);
    sdflow__free(ctx, pair);
    return st;
}

static sdflow_status liyan_check(const sdflow_density *e, const sdflow__density_plan *plan)
{
    (void)plan;
    const liyan_opts *o = liyan_of(e);
    if (!(o->lambda_min < o->lambda_max))
        return sdflow__fail(e->ctx, SDFLOW_E_INVALID, "lambda_min=%g must be < lambda_max=%g", o->lambda_min,
                            o->lambda_max);
    return SDFLOW_OK;
}

const sdflow__density_kind_ops sdflow__liyan_kind = {
    .kind = SDFLOW_DENSITY_LIYAN, .name = "liyan", .check = liyan_check, .logpdf = liyan_logpdf,
    .no_interp = "the Li-Yan estimator needs a diffusion process (interpolants: the pf_ode kinds)",
    .opts = &liyan_store, .priv_size = sizeof(liyan_opts),
};
