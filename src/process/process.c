/* SPDX-License-Identifier: MIT */
/* Forward noising processes (VP, VP-cosine, sub-VP, VE), the interpolant
 * schedules (linear, trig; t = 0 base, t = 1 data) and the one place where
 * model parameterizations are converted into each other. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "process_internal.h"

#define HALF_PI 1.5707963267948966192313216916398

/* Cosine schedule: the T where alpha(T) = e^-5 (beta stays bounded; alpha(1) = 0). */
static double cosine_default_tmax(double s)
{
    double th0 = s / (1 + s) * HALF_PI;
    double th = acos(exp(-5.0) * cos(th0));
    return th / HALF_PI * (1 + s) - s;
}

static sdflow_status check_option(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed);

/* The options: every kind has every key (interp_eps is refused by the
 * consistency check on the diffusions); the interpolants run on the closed
 * [0, 1], where the velocity is finite (algorithms.md §8), so their t_eps is 0. */
#define K_INTERP ((1u << SDFLOW_PROCESS_INTERP_LINEAR) | (1u << SDFLOW_PROCESS_INTERP_TRIG))
#define SLOT(key, kinds, field, def) { key, kinds, offsetof(struct sdflow_process, field), def }
static const sdflow__opt_slot slots[] = {
    SLOT(SDFLOW_PROC_BETA_MIN, SDFLOW__ALL_KINDS, beta_min, 0.1),
    SLOT(SDFLOW_PROC_BETA_MAX, SDFLOW__ALL_KINDS, beta_max, 20.0),
    SLOT(SDFLOW_PROC_SIGMA_MIN, SDFLOW__ALL_KINDS, sigma_min, 0.01),
    SLOT(SDFLOW_PROC_SIGMA_MAX, SDFLOW__ALL_KINDS, sigma_max, 50.0),
    SLOT(SDFLOW_PROC_COSINE_S, SDFLOW__ALL_KINDS, cosine_s, 0.008),
    SLOT(SDFLOW_PROC_T_MAX, SDFLOW__ALL_KINDS, t_max, 1.0), /* cosine: cosine_default_tmax(cosine_s) */
    SLOT(SDFLOW_PROC_T_EPS, K_INTERP, t_eps, 0.0),
    SLOT(SDFLOW_PROC_T_EPS, ~K_INTERP, t_eps, 1e-5),
    SLOT(SDFLOW_PROC_VE_EXACT_STD, SDFLOW__ALL_KINDS, ve_exact_std, 0),
    SLOT(SDFLOW_PROC_INTERP_EPS, SDFLOW__ALL_KINDS, interp_eps, 0.0),
};
static const sdflow__opt_store store = { "process", slots, sizeof slots / sizeof slots[0], check_option, NULL };

static const sdflow__name kind_names[] = {
    { SDFLOW_PROCESS_VP, "vp" }, { SDFLOW_PROCESS_VP_COSINE, "vp_cosine" },
    { SDFLOW_PROCESS_SUBVP, "subvp" }, { SDFLOW_PROCESS_VE, "ve" },
    { SDFLOW_PROCESS_INTERP_LINEAR, "interp_linear" }, { SDFLOW_PROCESS_INTERP_TRIG, "interp_trig" }, { 0, NULL }
};

/* sdflow_process_kind_name() and sdflow_process_kind_from_name() */
SDFLOW__DEFINE_KIND_NAMES(sdflow_process, sdflow_process_kind, kind_names)

sdflow_status sdflow_process_create(sdflow_ctx *ctx, sdflow_process_kind kind, sdflow_process **out)
{
    if (out)
        *out = NULL;
    sdflow_status st;
    sdflow_process *p =
        sdflow__new_handle(ctx, out != NULL, sdflow_process_kind_name(kind), "process", (int)kind, sizeof *p, &st);
    if (!p)
        return st;
    p->ctx = ctx;
    p->kind = kind;
    sdflow__opt_defaults(&store, 1u << kind, p);
    if (kind == SDFLOW_PROCESS_VP_COSINE)
        p->t_max = cosine_default_tmax(p->cosine_s);
    *out = p;
    return SDFLOW_OK;
}

void sdflow_process_free(sdflow_process *p)
{
    if (p)
        sdflow__free(p->ctx, p);
}

sdflow_process_kind sdflow_process_get_kind(const sdflow_process *p) { return p ? p->kind : (sdflow_process_kind)0; }

int sdflow__process_is_interp(const sdflow_process *p)
{
    return p && (p->kind == SDFLOW_PROCESS_INTERP_LINEAR || p->kind == SDFLOW_PROCESS_INTERP_TRIG);
}

int sdflow_process_is_interpolant(const sdflow_process *p) { return sdflow__process_is_interp(p); }

void sdflow__process_interp(const sdflow_process *p, double t, sdflow__interp *c)
{
    if (p->kind == SDFLOW_PROCESS_INTERP_LINEAR) {
        c->a = 1.0 - t;
        c->b = t;
        c->da = -1.0;
        c->db = 1.0;
    } else {
        /* cos and sin of pi t/2 from the nearer end: b(1) = 1 and a(1) = 0 exactly */
        double th = HALF_PI * t;
        c->a = t <= 0.5 ? cos(th) : sin(HALF_PI * (1.0 - t));
        c->b = t <= 0.5 ? sin(th) : cos(HALF_PI * (1.0 - t));
        c->da = -HALF_PI * c->b;
        c->db = HALF_PI * c->a;
    }
    double g2 = p->interp_eps * t * (1.0 - t);
    c->gamma = g2 > 0 ? sqrt(g2) : 0.0;
    /* gamma' = eps (1 - 2t) / (2 gamma): infinite where gamma = 0 (documented 0 there) */
    c->dgamma = c->gamma > 0 ? p->interp_eps * (1.0 - 2.0 * t) / (2.0 * c->gamma) : 0.0;
}

/* The diffusion view of an interpolant with a N(0, I) base: x_t = b x1 +
 * sigma eps in law, sigma^2 = a^2 + gamma^2; f = b'/b, g^2 = d sigma^2/dt -
 * 2 f sigma^2 (negative: the noising runs toward t = 0), so that the
 * VELOCITY conversion f x - g^2/2 s is the interpolant velocity. */
static void interp_coef(const sdflow_process *p, double t, sdflow__coef *c)
{
    sdflow__interp q;
    sdflow__process_interp(p, t, &q);
    double s2 = q.a * q.a + p->interp_eps * t * (1.0 - t);
    double ds2 = 2.0 * q.a * q.da + p->interp_eps * (1.0 - 2.0 * t);
    c->alpha = q.b;
    c->sigma = sqrt(s2);
    c->f = q.b > 0 ? q.db / q.b : INFINITY;
    c->g2 = q.b > 0 ? ds2 - 2.0 * c->f * s2 : -INFINITY;
}

void sdflow__process_coef(const sdflow_process *p, double t, sdflow__coef *c)
{
    if (!p) {
        c->alpha = 1.0;
        c->sigma = t;
        c->f = 0.0;
        c->g2 = 2.0 * t;
        return;
    }
    switch (p->kind) {
    case SDFLOW_PROCESS_VP:
    case SDFLOW_PROCESS_SUBVP: {
        double db = p->beta_max - p->beta_min;
        double B = p->beta_min * t + 0.5 * db * t * t;
        double beta = p->beta_min + db * t;
        c->alpha = exp(-0.5 * B);
        c->f = -0.5 * beta;
        if (p->kind == SDFLOW_PROCESS_VP) {
            c->sigma = sqrt(-expm1(-B));
            c->g2 = beta;
        } else {
            c->sigma = -expm1(-B);
            c->g2 = beta * -expm1(-2.0 * B);
        }
        break;
    }
    case SDFLOW_PROCESS_VP_COSINE: {
        double s = p->cosine_s;
        double th0 = s / (1 + s) * HALF_PI, dth = t / (1 + s) * HALF_PI, th = th0 + dth;
        c->alpha = cos(th) / cos(th0);
        /* 1 - alpha^2 = (1 - alpha)(1 + alpha), 1 - alpha via a product of sines: no cancellation at
         * small t (th - th0 is formed from t directly: t + s would round t away at t << s) */
        double one_minus = 2.0 * sin(th0 + 0.5 * dth) * sin(0.5 * dth) / cos(th0);
        c->sigma = sqrt(one_minus * (1.0 + c->alpha));
        c->f = -tan(th) * HALF_PI / (1 + s);
        c->g2 = -2.0 * c->f;
        break;
    }
    case SDFLOW_PROCESS_VE: {
        double lr = log(p->sigma_max / p->sigma_min);
        double sg = p->sigma_min * exp(lr * t);
        c->alpha = 1.0;
        c->f = 0.0;
        c->g2 = 2.0 * sg * sg * lr;
        /* exact std: sigma^2 - sigma_min^2 = sigma_min^2 expm1(2 lr t), no cancellation at small t */
        c->sigma = p->ve_exact_std ? p->sigma_min * sqrt(expm1(2.0 * lr * t)) : sg;
        break;
    }
    case SDFLOW_PROCESS_INTERP_LINEAR:
    case SDFLOW_PROCESS_INTERP_TRIG: interp_coef(p, t, c); break;
    }
}

double sdflow__process_prior_std(const sdflow_process *p)
{
    if (p->kind != SDFLOW_PROCESS_VE)
        return 1.0;
    sdflow__coef c;
    sdflow__process_coef(p, p->t_max, &c);
    return c.sigma;
}

void sdflow__process_range(const sdflow_process *p, double *lo, double *hi)
{
    if (!p) {
        *lo = 0.0; /* exclusive */
        *hi = INFINITY;
        return;
    }
    *lo = p->t_eps;
    *hi = p->t_max;
}

sdflow_status sdflow__check_times(sdflow_ctx *ctx, const sdflow_process *p, size_t n, const double *t,
                                  const char *name)
{
    if (!t)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s is NULL", name);
    double lo, hi;
    sdflow__process_range(p, &lo, &hi);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t[i]))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu] is %s", name, i, isnan(t[i]) ? "NaN" : "Inf");
        if (!p && !(t[i] > 0))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu] = %g: the smoothing level must be > 0", name, i,
                                t[i]);
        if (p && (t[i] < lo || t[i] > hi))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu] = %g is outside the process's valid range [%g, %g]",
                                name, i, t[i], lo, hi);
    }
    return SDFLOW_OK;
}

/* Cross-option consistency; q is the candidate state. */
static sdflow_status check_consistent(sdflow_ctx *ctx, const sdflow_process *q)
{
    if (q->beta_min > q->beta_max)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "beta_min=%g must be <= beta_max=%g", q->beta_min, q->beta_max);
    if (q->sigma_min >= q->sigma_max)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "sigma_min=%g must be < sigma_max=%g", q->sigma_min,
                            q->sigma_max);
    if (q->t_eps >= q->t_max)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "t_eps=%g must be < t_max=%g", q->t_eps, q->t_max);
    if (sdflow__process_is_interp(q)) {
        /* t = 0 base, t = 1 data: the interval is fixed, and sigma(1) = 0 is
         * the data end, not a degenerate schedule */
        if (q->t_max != 1.0)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "t_max=%g: an interpolant runs on [0, 1] (t = 1 is the data)",
                                q->t_max);
        return SDFLOW_OK;
    }
    if (q->interp_eps != 0)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "interp_eps applies to the interpolant kinds, not %s",
                            sdflow_process_kind_name(q->kind));
    if (q->kind == SDFLOW_PROCESS_VP_COSINE && q->t_max >= 1.0)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "t_max=%g: the cosine schedule needs T < 1 (alpha(1) = 0)",
                            q->t_max);
    /* the coefficients are documented finite on [t_eps, T]: e.g. a VE
     * process with T = 100 has sigma(T) = Inf; they are monotone in t for
     * every schedule, so both ends decide */
    for (int e = 0; e < 2; e++) {
        sdflow__coef c;
        double t = e ? q->t_max : q->t_eps;
        sdflow__process_coef(q, t, &c);
        if (!isfinite(c.alpha) || !isfinite(c.sigma) || !isfinite(c.f) || !isfinite(c.g2) || !(c.sigma > 0))
            return sdflow__fail(ctx, SDFLOW_E_INVALID,
                                "coefficients at t=%g are not finite and positive (alpha=%g, sigma=%g, f=%g, g^2=%g)",
                                t, c.alpha, c.sigma, c.f, c.g2);
    }
    return SDFLOW_OK;
}

/* The store's check: the new value is in p. Choosing cosine_s moves the
 * cosine schedule's default T with it until T is set; int options (the VE
 * exact-std switch) keep every consistent state consistent. */
static sdflow_status check_option(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed)
{
    (void)owner;
    (void)changed;
    sdflow_process *p = obj;
    if (key == SDFLOW_PROC_VE_EXACT_STD)
        return SDFLOW_OK;
    double t_max = p->t_max;
    int t_max_set = p->t_max_set;
    p->t_max_set |= key == SDFLOW_PROC_T_MAX;
    if (key == SDFLOW_PROC_COSINE_S && p->kind == SDFLOW_PROCESS_VP_COSINE && !p->t_max_set)
        p->t_max = cosine_default_tmax(p->cosine_s);
    sdflow_status st = check_consistent(ctx, p);
    if (st) {
        p->t_max = t_max;
        p->t_max_set = t_max_set;
    }
    return st;
}

/* Messages say "a process": every kind accepts every key. */
static sdflow__opt_bind bind(const sdflow_process *p)
{
    if (!p)
        return (sdflow__opt_bind){ 0 };
    return (sdflow__opt_bind){ p->ctx, &store, NULL, 1u << p->kind, (void *)p, (void *)p, NULL, NULL };
}

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_process, sdflow_process, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_process, sdflow_process, bind, double, SDFLOW_TYPE_DOUBLE, double)

sdflow_status sdflow_process_time_range(const sdflow_process *p, double *t_eps, double *t_max)
{
    if (!p)
        return SDFLOW_E_INVALID;
    if (t_eps)
        *t_eps = p->t_eps;
    if (t_max)
        *t_max = p->t_max;
    return SDFLOW_OK;
}

sdflow_status sdflow_process_coefficients(const sdflow_process *p, size_t n, const double *t, double *alpha,
                                          double *sigma, double *f, double *g)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(p->ctx, n, 1);
    if (st || (st = sdflow__check_finite(p->ctx, t, n, 1, "t")))
        return st;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < 0 || t[i] > p->t_max)
            return sdflow__fail(p->ctx, SDFLOW_E_INVALID, "t[%zu] = %g is outside [0, T=%g]", i, t[i], p->t_max);
        if (sdflow__process_is_interp(p) && t[i] == 0 && (f || g))
            return sdflow__fail(p->ctx, SDFLOW_E_INVALID,
                                "t[%zu] = 0: f and g of an interpolant are infinite at the base end (b(0) = 0)", i);
    }
    for (size_t i = 0; i < n; i++) {
        sdflow__coef c;
        sdflow__process_coef(p, t[i], &c);
        if (alpha)
            alpha[i] = c.alpha;
        if (sigma)
            sigma[i] = c.sigma;
        if (f)
            f[i] = c.f;
        if (g) /* interpolants: g^2 < 0 in interpolant time, the noise of the SDE toward t = 0 */
            g[i] = sqrt(sdflow__process_is_interp(p) ? fmax(0.0, -c.g2) : c.g2);
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_process_interpolant(const sdflow_process *p, size_t n, const double *t, double *a, double *b,
                                         double *da, double *db, double *gamma, double *dgamma)
{
    if (!p)
        return SDFLOW_E_INVALID;
    if (!sdflow__process_is_interp(p))
        return sdflow__fail(p->ctx, SDFLOW_E_INVALID, "a %s process is not an interpolant",
                            sdflow_process_kind_name(p->kind));
    sdflow_status st = sdflow__check_dims(p->ctx, n, 1);
    if (st || (st = sdflow__check_finite(p->ctx, t, n, 1, "t")))
        return st;
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] > 1)
            return sdflow__fail(p->ctx, SDFLOW_E_INVALID, "t[%zu] = %g is outside [0, 1]", i, t[i]);
    for (size_t i = 0; i < n; i++) {
        sdflow__interp c;
        sdflow__process_interp(p, t[i], &c);
        double v[6] = { c.a, c.b, c.da, c.db, c.gamma, c.dgamma };
        double *o[6] = { a, b, da, db, gamma, dgamma };
        for (int k = 0; k < 6; k++)
            if (o[k])
                o[k][i] = v[k];
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_process_prior_sample(const sdflow_process *p, uint64_t stream, uint64_t first_index, size_t n,
                                          size_t d, double *out)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(p->ctx, n, d);
    if (st || (st = sdflow__check_ptr(p->ctx, out, "out")))
        return st;
    double s = sdflow__process_prior_std(p);
    for (size_t i = 0; i < n; i++) {
        sdflow__rng_normal_row(p->ctx->seed, stream, first_index + i, 0, d, out + i * d);
        for (size_t j = 0; j < d; j++)
            out[i * d + j] *= s;
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_process_prior_logpdf(const sdflow_process *p, size_t n, size_t d, const double *x,
                                          double *logp)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(p->ctx, n, d);
    if (st || (st = sdflow__check_finite(p->ctx, x, n, d, "x")) || (st = sdflow__check_ptr(p->ctx, logp, "logp")))
        return st;
    double s = sdflow__process_prior_std(p);
    double c = -0.5 * (double)d * log(2.0 * SDFLOW__PI * s * s);
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t j = 0; j < d; j++)
            q += x[i * d + j] * x[i * d + j];
        logp[i] = c - 0.5 * q / (s * s);
    }
    return sdflow__check_result(p->ctx, logp, n, 1, "prior log-density");
}

sdflow_status sdflow_process_perturb(const sdflow_process *p, uint64_t stream, uint64_t first_index, size_t n,
                                     size_t d, const double *x0, const double *t, double *xt, double *eps_out)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = p->ctx;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_finite(ctx, x0, n, d, "x0")) || (st = sdflow__check_times(ctx, p, n, t, "t")) ||
        (st = sdflow__check_ptr(ctx, xt, "xt")))
        return st;
    double *eps = sdflow__alloc_array(ctx, d, sizeof *eps, "noise row");
    if (!eps)
        return SDFLOW_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        sdflow__coef c;
        sdflow__process_coef(p, t[i], &c);
        sdflow__rng_normal_row(ctx->seed, stream, first_index + i, 0, d, eps);
        for (size_t j = 0; j < d; j++) {
            xt[i * d + j] = c.alpha * x0[i * d + j] + c.sigma * eps[j];
            if (eps_out)
                eps_out[i * d + j] = eps[j];
        }
    }
    sdflow__free(ctx, eps);
    return SDFLOW_OK;
}

sdflow_status sdflow_process_simulate(const sdflow_process *p, uint64_t stream, uint64_t first_index, size_t n,
                                      size_t d, const double *x_in, double t0, double t1, long steps, double *x_out)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = p->ctx;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_finite(ctx, x_in, n, d, "x_in")) || (st = sdflow__check_ptr(ctx, x_out, "x_out")))
        return st;
    if (sdflow__process_is_interp(p))
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED,
                            "an interpolant has no forward noising SDE in t (use sdflow_process_perturb)");
    if (!(t0 >= 0 && t0 < t1 && t1 <= p->t_max))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "need 0 <= t0 < t1 <= T=%g, got t0=%g t1=%g", p->t_max, t0, t1);
    if (steps < 1)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "steps=%ld must be >= 1", steps);
    double *z = sdflow__alloc_array(ctx, d, sizeof *z, "noise row");
    if (!z)
        return SDFLOW_E_NOMEM;
    if (x_out != x_in)
        memmove(x_out, x_in, n * d * sizeof *x_out);
    double h = (t1 - t0) / (double)steps;
    for (long k = 0; k < steps; k++) {
        sdflow__coef c;
        sdflow__process_coef(p, t0 + (double)k * h, &c);
        double gs = sqrt(c.g2 * h);
        uint64_t sk = sdflow__stream(stream, 0x73696d75ull /* "simu" */, (uint64_t)k);
        for (size_t i = 0; i < n; i++) {
            sdflow__rng_normal_row(ctx->seed, sk, first_index + i, 0, d, z);
            double *x = x_out + i * d;
            for (size_t j = 0; j < d; j++)
                x[j] += c.f * x[j] * h + gs * z[j];
        }
    }
    sdflow__free(ctx, z);
    return sdflow__check_result(ctx, x_out, n, d, "simulated state");
}

/* ---- parameterizations ---------------------------------------------------- */

#define TINY 1e-300

int sdflow__to_score(sdflow_output kind, const sdflow__coef *c, sdflow__affine *m)
{
    double a = c->alpha, s = c->sigma, s2 = s * s;
    if (kind == SDFLOW_OUT_VELOCITY && !(isfinite(c->f) && isfinite(c->g2)))
        return 0; /* interpolant at t = 0 */
    switch (kind) {
    case SDFLOW_OUT_SCORE: m->a = 1; m->b = 0; return 1;
    case SDFLOW_OUT_EPS: if (s < TINY) return 0; m->a = -1.0 / s; m->b = 0; return 1;
    case SDFLOW_OUT_X0: if (s2 < TINY) return 0; m->a = a / s2; m->b = -1.0 / s2; return 1;
    case SDFLOW_OUT_VELOCITY: if (c->g2 < TINY) return 0; m->a = -2.0 / c->g2; m->b = 2.0 * c->f / c->g2; return 1;
    case SDFLOW_OUT_V: {
        double r = a * a + s2;
        if (s < TINY || r < TINY) return 0;
        m->a = -a / (s * r); m->b = -1.0 / r; return 1;
    }
    }
    return 0;
}

int sdflow__from_score(sdflow_output kind, const sdflow__coef *c, sdflow__affine *m)
{
    double a = c->alpha, s = c->sigma, s2 = s * s;
    if (kind == SDFLOW_OUT_VELOCITY && !(isfinite(c->f) && isfinite(c->g2)))
        return 0; /* interpolant at t = 0 */
    switch (kind) {
    case SDFLOW_OUT_SCORE: m->a = 1; m->b = 0; return 1;
    case SDFLOW_OUT_EPS: m->a = -s; m->b = 0; return 1;
    case SDFLOW_OUT_X0: if (a < 1e-12) return 0; m->a = s2 / a; m->b = 1.0 / a; return 1;
    case SDFLOW_OUT_VELOCITY: m->a = -0.5 * c->g2; m->b = c->f; return 1;
    case SDFLOW_OUT_V: if (a < 1e-12) return 0; m->a = -(s / a) * (a * a + s2); m->b = -s / a; return 1;
    }
    return 0;
}

int sdflow__conversion(sdflow_output from, sdflow_output to, const sdflow__coef *c, sdflow__affine *m)
{
    sdflow__affine in, out;
    if (from == to) {
        m->a = 1;
        m->b = 0;
        return 1;
    }
    if (!sdflow__to_score(from, c, &in) || !sdflow__from_score(to, c, &out))
        return 0;
    m->a = out.a * in.a;
    m->b = out.a * in.b + out.b;
    return 1;
}

size_t sdflow__process_velocity_of_score(const sdflow_process *p, size_t n, size_t d, const double *t,
                                         const double *x, const double *s, size_t L, const double *ds, double *v,
                                         size_t ldv)
{
    sdflow__coef c;
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || !(t[i] == t[i - 1]))
            sdflow__process_coef(p, t[i], &c);
        double *vi = v + i * ldv;
        int ok = 1;
        for (size_t j = 0; j < d; j++) {
            vi[j] = c.f * x[i * d + j] - 0.5 * c.g2 * s[i * d + j];
            ok &= isfinite(vi[j]) != 0;
        }
        for (size_t k = 0; k < L; k++) {
            vi[d + k] = (double)d * c.f - 0.5 * c.g2 * ds[i * L + k];
            ok &= isfinite(vi[d + k]) != 0;
        }
        if (!ok && bad == n)
            bad = i;
    }
    return bad;
}

static int valid_output(sdflow_output k) { return k >= SDFLOW_OUT_SCORE && k <= SDFLOW_OUT_V; }

sdflow_status sdflow_process_convert(const sdflow_process *p, size_t n, size_t d, const double *x, const double *t,
                                     sdflow_output from, const double *in, sdflow_output to, double *out)
{
    if (!p)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = p->ctx;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_finite(ctx, x, n, d, "x")) || (st = sdflow__check_times(ctx, p, n, t, "t")) ||
        (st = sdflow__check_finite(ctx, in, n, d, "in")) || (st = sdflow__check_ptr(ctx, out, "out")))
        return st;
    if (!valid_output(from) || !valid_output(to))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "unknown output kind %d", valid_output(from) ? (int)to : (int)from);
    for (size_t i = 0; i < n; i++) {
        sdflow__coef c;
        sdflow__affine m;
        sdflow__process_coef(p, t[i], &c);
        if (!sdflow__conversion(from, to, &c, &m))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "conversion undefined at t[%zu] = %g (alpha=%g, sigma=%g)", i,
                                t[i], c.alpha, c.sigma);
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = m.a * in[i * d + j] + m.b * x[i * d + j];
    }
    return sdflow__check_result(ctx, out, n, d, "converted output");
}
