/* SPDX-License-Identifier: MIT */
/* Forward processes: closed forms, derivative identities, small-t accuracy,
 * prior, parameterization conversions, Euler-Maruyama simulation, perturb,
 * bad input and allocation failure. The reference formulas below are written
 * out from algorithms.md sections 1-2, independently of src/process. */
#include "testutil.h"

#define PI_2 1.5707963267948966192313216916398
#define EPS 2.220446049250313e-16

/* default parameters of options.h */
#define BMIN 0.1
#define BMAX 20.0
#define SMIN 0.01
#define SMAX 50.0
#define COS_S 0.008

typedef struct pcfg {
    sdflow_process_kind kind;
    int ve_exact;
    const char *name;
} pcfg;

static const pcfg cfgs[] = { { SDFLOW_PROCESS_VP, 0, "vp" },
                             { SDFLOW_PROCESS_VP_COSINE, 0, "vp_cosine" },
                             { SDFLOW_PROCESS_SUBVP, 0, "subvp" },
                             { SDFLOW_PROCESS_VE, 0, "ve" },
                             { SDFLOW_PROCESS_VE, 1, "ve_exact_std" } };
#define NCFG (sizeof cfgs / sizeof cfgs[0])

typedef struct ref_coef {
    double alpha, sigma, f, g2;
} ref_coef;

/* algorithms.md 1.1-1.3 (cosine: Nichol & Dhariwal), naive formulas on purpose. */
static ref_coef reference(const pcfg *c, double t)
{
    ref_coef r;
    double B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t, beta = BMIN + (BMAX - BMIN) * t;
    switch (c->kind) {
    case SDFLOW_PROCESS_VP:
        r.alpha = exp(-B / 2);
        r.sigma = sqrt(1 - exp(-B));
        r.f = -beta / 2;
        r.g2 = beta;
        break;
    case SDFLOW_PROCESS_SUBVP:
        r.alpha = exp(-B / 2);
        r.sigma = 1 - exp(-B);
        r.f = -beta / 2;
        r.g2 = beta * (1 - exp(-2 * B));
        break;
    case SDFLOW_PROCESS_VP_COSINE: {
        double th = PI_2 * (t + COS_S) / (1 + COS_S);
        r.alpha = cos(th) / cos(PI_2 * COS_S / (1 + COS_S));
        r.sigma = sqrt(1 - r.alpha * r.alpha);
        r.f = -PI_2 / (1 + COS_S) * tan(th);
        r.g2 = -2 * r.f; /* alpha^2 + sigma^2 = 1: g^2 = -2 f alpha^2 - 2 f sigma^2 */
        break;
    }
    default: {
        double sg = SMIN * pow(SMAX / SMIN, t);
        r.alpha = 1;
        r.f = 0;
        r.sigma = c->ve_exact ? sqrt(sg * sg - SMIN * SMIN) : sg;
        r.g2 = 2 * sg * sg * log(SMAX / SMIN);
        break;
    }
    }
    return r;
}

static sdflow_process *make_process(sdflow_ctx *ctx, const pcfg *c)
{
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, c->kind, &p), SDFLOW_OK);
    if (c->ve_exact)
        ck_assert_int_eq(sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_OK);
    return p;
}

static double tmax_of(const sdflow_process *p)
{
    double T;
    ck_assert_int_eq(sdflow_process_time_range(p, NULL, &T), SDFLOW_OK);
    return T;
}

static void coef(const sdflow_process *p, double t, ref_coef *r)
{
    double g;
    ck_assert_int_eq(sdflow_process_coefficients(p, 1, &t, &r->alpha, &r->sigma, &r->f, &g), SDFLOW_OK);
    r->g2 = g * g;
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(b), 1e-300); }

START_TEST(test_closed_forms)
{
    sdflow_ctx *ctx = test_ctx(1);
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        ck_assert_str_eq(sdflow_process_kind_name(cfgs[ci].kind), cfgs[ci].kind == SDFLOW_PROCESS_VE ? "ve"
                                                                                                     : cfgs[ci].name);
        double T = tmax_of(p);
        const double ts[] = { 1e-3, 0.01, 0.1, 0.37, 0.5, 0.77, 0.9, T };
        double tv[8], a[8], s[8], f[8], g[8];
        memcpy(tv, ts, sizeof tv);
        ck_assert_int_eq(sdflow_process_coefficients(p, 8, tv, a, s, f, g), SDFLOW_OK);
        for (int i = 0; i < 8; i++) {
            ref_coef r = reference(&cfgs[ci], tv[i]);
            /* The naive reference loses digits to cancellation in 1 - exp(-B) or 1 - alpha^2,
             * which are >= 4e-5 for t >= 1e-3: relative rounding <= 1e-16/4e-5 = 2.5e-12. */
            double tol = 1e-11;
            ck_assert_msg(close_rel(a[i], r.alpha, tol), "%s alpha(%g) = %.17g, want %.17g", cfgs[ci].name, tv[i],
                          a[i], r.alpha);
            ck_assert_msg(close_rel(s[i], r.sigma, tol), "%s sigma(%g) = %.17g, want %.17g", cfgs[ci].name, tv[i],
                          s[i], r.sigma);
            ck_assert_msg(fabs(f[i] - r.f) <= tol * fabs(r.f), "%s f(%g) = %.17g, want %.17g", cfgs[ci].name, tv[i],
                          f[i], r.f);
            ck_assert_msg(close_rel(g[i] * g[i], r.g2, tol), "%s g^2(%g) = %.17g, want %.17g", cfgs[ci].name,
                          tv[i], g[i] * g[i], r.g2);
        }
        /* t = 0 is allowed by sdflow_process_coefficients */
        double t0 = 0;
        ref_coef c0;
        coef(p, t0, &c0);
        ck_assert(c0.alpha == 1.0);
        ck_assert(c0.sigma == (cfgs[ci].kind == SDFLOW_PROCESS_VE && !cfgs[ci].ve_exact ? SMIN : 0.0));
        sdflow_process_free(p);
    }
    /* documented default horizons: T = 1, cosine T with alpha(T) = e^-5 */
    sdflow_process *p = make_process(ctx, &cfgs[1]);
    ref_coef cT;
    coef(p, tmax_of(p), &cT);
    ck_assert_msg(close_rel(cT.alpha, exp(-5.0), 1e-13), "cosine alpha(T) = %.17g", cT.alpha);
    ck_assert(tmax_of(p) < 1);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Central difference of F at t with step h, and a bound of its error:
 * truncation h^2/6 |F'''| (F''' from a wider third difference) plus rounding
 * ~ 2 eps max|F| / (2h) per evaluation; the tolerance is 10x that bound. */
typedef double (*scalar_fn)(const sdflow_process *p, double t);
static double log_alpha(const sdflow_process *p, double t)
{
    ref_coef c;
    coef(p, t, &c);
    return log(c.alpha);
}
static double sigma_sq(const sdflow_process *p, double t)
{
    ref_coef c;
    coef(p, t, &c);
    return c.sigma * c.sigma;
}

static double central_diff(const sdflow_process *p, scalar_fn F, double t, double h, double *tol)
{
    double fp = F(p, t + h), fm = F(p, t - h);
    double H = 1e-3; /* third difference: (F(t+2H) - 2F(t+H) + 2F(t-H) - F(t-2H)) / (2H^3) */
    double f3 = (F(p, t + 2 * H) - 2 * F(p, t + H) + 2 * F(p, t - H) - F(p, t - 2 * H)) / (2 * H * H * H);
    *tol = 10 * (h * h / 6 * fabs(f3) + 4 * EPS * fmax(fabs(fp), fabs(fm)) / (2 * h));
    return (fp - fm) / (2 * h);
}

START_TEST(test_derivative_identities)
{
    sdflow_ctx *ctx = test_ctx(1);
    double worst_f = 0, worst_g = 0;
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        double T = tmax_of(p), h = 1e-5;
        const double ts[] = { 0.05, 0.3, 0.6, 0.9, T - 3e-3 };
        for (int i = 0; i < 5; i++) {
            double t = ts[i], tol_f, tol_s;
            ref_coef c;
            coef(p, t, &c);
            double dla = central_diff(p, log_alpha, t, h, &tol_f);
            double ds2 = central_diff(p, sigma_sq, t, h, &tol_s);
            double g2fd = ds2 - 2 * c.f * c.sigma * c.sigma;
            double tol_g = tol_s + 2 * tol_f * c.sigma * c.sigma + 1e-14 * c.g2;
            tol_f += 1e-14 * fabs(c.f);
            ck_assert_msg(fabs(c.f - dla) <= tol_f, "%s t=%g: f = %.15g but d log alpha/dt = %.15g (tol %g)",
                          cfgs[ci].name, t, c.f, dla, tol_f);
            ck_assert_msg(fabs(c.g2 - g2fd) <= tol_g, "%s t=%g: g^2 = %.15g but d sigma^2/dt - 2 f sigma^2 = %.15g "
                          "(tol %g)", cfgs[ci].name, t, c.g2, g2fd, tol_g);
            /* the identity without the -2 f sigma^2 term must fail (except where f = 0) */
            if (c.f != 0)
                ck_assert(fabs(c.g2 - ds2) > tol_g);
            worst_f = fmax(worst_f, fabs(c.f - dla) / fmax(fabs(c.f), 1e-300));
            worst_g = fmax(worst_g, fabs(c.g2 - g2fd) / c.g2);
        }
        sdflow_process_free(p);
    }
    test_note("process FD (h=1e-5): max rel err f %.2e, g^2 %.2e", worst_f, worst_g);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_small_t)
{
    sdflow_ctx *ctx = test_ctx(1);
    const double t = 1e-7;
    double B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t;
    double om = B - B * B / 2 + B * B * B / 6; /* 1 - e^-B to O(B^4) = 1e-32 */
    double th0 = PI_2 * COS_S / (1 + COS_S), dl = PI_2 * t / (1 + COS_S);
    /* 1 - alpha = tan(th0) sin(dl) + 1 - cos(dl), to O(dl^4) = 6e-28 */
    double oma = tan(th0) * (dl - dl * dl * dl / 6) + dl * dl / 2;
    double L2 = 2 * t * log(SMAX / SMIN); /* sigma^2 - sigma_min^2 = sigma_min^2 expm1(L2) */
    double ve2 = SMIN * SMIN * (L2 + L2 * L2 / 2 + L2 * L2 * L2 / 6);
    const double want[NCFG] = { sqrt(om), sqrt(oma * (2 - oma)), om, SMIN * exp(L2 / 2), sqrt(ve2) };
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        ref_coef c;
        coef(p, t, &c);
        /* a few ulps: the series are exact to 1e-19 relative */
        ck_assert_msg(close_rel(c.sigma, want[ci], 1e-13), "%s sigma(1e-7) = %.17g, series %.17g (rel %.2e)",
                      cfgs[ci].name, c.sigma, want[ci], fabs(c.sigma - want[ci]) / want[ci]);
        test_note("small t %s: rel err %.2e vs series", cfgs[ci].name, fabs(c.sigma - want[ci]) / want[ci]);
        sdflow_process_free(p);
    }
    /* the same check rejects the naive formula sqrt(1 - exp(-B)) */
    ck_assert(!close_rel(sqrt(1 - exp(-B)), want[0], 1e-13));
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_prior)
{
    sdflow_ctx *ctx = test_ctx(21);
    const size_t n = 10000, d = 2, N = n * d;
    double *x = malloc(N * sizeof *x), *z = malloc(N * sizeof *z);
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        double s = cfgs[ci].kind != SDFLOW_PROCESS_VE ? 1.0 : cfgs[ci].ve_exact ? sqrt(SMAX * SMAX - SMIN * SMIN) : SMAX;
        ck_assert_int_eq(sdflow_process_prior_sample(p, 4 + ci, 100, n, d, x), SDFLOW_OK);
        /* row-keyed like sdflow_rng_normal, scaled by the prior std */
        ck_assert_int_eq(sdflow_rng_normal(ctx, 4 + ci, 100, n, d, z), SDFLOW_OK);
        for (size_t i = 0; i < N; i++) /* s of the library is sigma(T), within rounding of SMAX */
            ck_assert_msg(fabs(x[i] - z[i] * s) <= 4 * EPS * fabs(z[i] * s), "%s prior row %zu", cfgs[ci].name, i / d);
        /* moments: SE of the mean s/sqrt(N), of the variance s^2 sqrt(2/(N-1)) */
        double m = vec_mean(x, N, 1), v = vec_var(x, N, 1);
        double zm = m / (s / sqrt((double)N)), zv = (v - s * s) / (s * s * sqrt(2.0 / (double)(N - 1)));
        test_note("prior %s: z(mean)=%.2f z(var)=%.2f", cfgs[ci].name, zm, zv);
        ck_assert_msg(fabs(zm) < 4 && fabs(zv) < 4, "%s prior: mean %g var %g (std %g)", cfgs[ci].name, m, v, s);
        /* closed-form log-density -d/2 log(2 pi s^2) - |x|^2/(2 s^2) */
        double lp[3];
        ck_assert_int_eq(sdflow_process_prior_logpdf(p, 3, d, x, lp), SDFLOW_OK);
        for (int i = 0; i < 3; i++) {
            double q = x[2 * i] * x[2 * i] + x[2 * i + 1] * x[2 * i + 1];
            double want = -log(4 * PI_2 * s * s) - q / (2 * s * s);
            ck_assert_msg(close_rel(lp[i], want, 1e-13), "%s prior logpdf %.17g want %.17g", cfgs[ci].name, lp[i],
                          want);
        }
        ck_assert_status_msg(ctx, sdflow_process_prior_logpdf(p, 1, d, x, NULL), SDFLOW_E_INVALID, "logp is NULL");
        ck_assert_status_msg(ctx, sdflow_process_prior_sample(p, 0, 0, 1, 0, x), SDFLOW_E_INVALID, "d=0");
        sdflow_process_free(p);
    }
    free(x);
    free(z);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Conversion of a score s at (x, alpha, sigma, f, g2) into kind k by the
 * formulas of algorithms.md section 2; *mag = sum of |terms| (rounding scale). */
static double from_score_ref(sdflow_output k, const ref_coef *c, double x, double s, double *mag)
{
    double a = c->alpha, sg = c->sigma, t1, t2;
    switch (k) {
    case SDFLOW_OUT_SCORE: t1 = s; t2 = 0; break;
    case SDFLOW_OUT_EPS: t1 = -sg * s; t2 = 0; break;
    case SDFLOW_OUT_X0: t1 = x / a; t2 = sg * sg * s / a; break;
    case SDFLOW_OUT_VELOCITY: t1 = c->f * x; t2 = -0.5 * c->g2 * s; break;
    default: { /* v = alpha eps - sigma x0 */
        double eps = -sg * s, x0 = (x + sg * sg * s) / a;
        t1 = a * eps;
        t2 = -sg * x0;
        break;
    }
    }
    *mag = fabs(t1) + fabs(t2);
    return t1 + t2;
}

/* The inverse formulas of section 2, value of kind k -> score. */
static double to_score_ref(sdflow_output k, const ref_coef *c, double x, double v)
{
    double a = c->alpha, sg = c->sigma;
    switch (k) {
    case SDFLOW_OUT_SCORE: return v;
    case SDFLOW_OUT_EPS: return -v / sg;
    case SDFLOW_OUT_X0: return (a * v - x) / (sg * sg);
    case SDFLOW_OUT_VELOCITY: return (c->f * x - v) * 2 / c->g2;
    default: { /* eps_hat = (sigma x + alpha v)/(alpha^2 + sigma^2) */
        double eps = (sg * x + a * v) / (a * a + sg * sg);
        return -eps / sg;
    }
    }
}

START_TEST(test_conversions)
{
    sdflow_ctx *ctx = test_ctx(8);
    enum { N = 4, D = 3 };
    double worst_rt = 0, worst_ref = 0;
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        double T = tmax_of(p), t[N] = { 0.01, 0.2, 0.6, T }, x[N * D], s[N * D], out[N * D], back[N * D];
        ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, N, D, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_rng_normal(ctx, 2, 0, N, D, s), SDFLOW_OK);
        for (int i = 0; i < N; i++) { /* typical scales: x ~ alpha + sigma, score ~ 1/sigma */
            ref_coef c;
            coef(p, t[i], &c);
            for (int j = 0; j < D; j++) {
                x[i * D + j] *= c.alpha + c.sigma;
                s[i * D + j] /= c.sigma;
            }
        }
        for (int k = SDFLOW_OUT_SCORE; k <= SDFLOW_OUT_V; k++) {
            ck_assert_int_eq(sdflow_process_convert(p, N, D, x, t, SDFLOW_OUT_SCORE, s, (sdflow_output)k, out),
                             SDFLOW_OK);
            for (int i = 0; i < N; i++) {
                ref_coef c = reference(&cfgs[ci], t[i]);
                for (int j = 0; j < D; j++) {
                    double mag, want = from_score_ref((sdflow_output)k, &c, x[i * D + j], s[i * D + j], &mag);
                    double err = fabs(out[i * D + j] - want);
                    /* 1e-12 of the terms' magnitude: the reference coefficients themselves
                     * differ from the library's by <= 1e-11 relative at t >= 0.01 only where
                     * cancellation is present (see test_closed_forms); here t >= 0.01 keeps it < 1e-12 */
                    ck_assert_msg(err <= 1e-12 * mag, "%s score->%d t=%g: %.17g want %.17g", cfgs[ci].name, k,
                                  t[i], out[i * D + j], want);
                    worst_ref = fmax(worst_ref, err / mag);
                    /* and the inverse formula recovers the score */
                    double sb = to_score_ref((sdflow_output)k, &c, x[i * D + j], out[i * D + j]);
                    ck_assert_msg(close_rel(sb, s[i * D + j], 1e-10), "%s inverse formula %d", cfgs[ci].name, k);
                }
            }
            /* round trips k -> every other kind -> k, in place (out may alias in) */
            for (int k2 = SDFLOW_OUT_SCORE; k2 <= SDFLOW_OUT_V; k2++) {
                memcpy(back, out, sizeof back);
                ck_assert_int_eq(sdflow_process_convert(p, N, D, x, t, (sdflow_output)k, back, (sdflow_output)k2, back),
                                 SDFLOW_OK);
                ck_assert_int_eq(sdflow_process_convert(p, N, D, x, t, (sdflow_output)k2, back, (sdflow_output)k, back),
                                 SDFLOW_OK);
                for (int i = 0; i < N; i++) {
                    double num = 0, den = 0;
                    for (int j = 0; j < D; j++) {
                        num += (back[i * D + j] - out[i * D + j]) * (back[i * D + j] - out[i * D + j]);
                        den += out[i * D + j] * out[i * D + j];
                    }
                    double rel = sqrt(num / den);
                    worst_rt = fmax(worst_rt, rel);
                    ck_assert_msg(rel <= 1e-12, "%s round trip %d->%d->%d at t=%g: rel err %g", cfgs[ci].name, k, k2,
                                  k, t[i], rel);
                }
            }
        }
        sdflow_process_free(p);
    }
    test_note("conversions: max rel err vs section 2 formulas %.2e, round trips %.2e", worst_ref, worst_rt);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_simulate_gaussian)
{
    sdflow_ctx *ctx = test_ctx(77);
    const size_t n = 2500, d = 2, N = n * d;
    const double m = 1.5, sd = 0.5, t1 = 0.5;
    double *x = malloc(N * sizeof *x);
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        /* VE's g^2 grows like exp(2 ln(5000) t): the left-point rule needs more steps */
        long steps = cfgs[ci].kind == SDFLOW_PROCESS_VE ? 1200 : 600;
        ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, n, d, x), SDFLOW_OK);
        for (size_t i = 0; i < N; i++)
            x[i] = m + sd * x[i];
        ck_assert_int_eq(sdflow_process_simulate(p, 9, 0, n, d, x, 0.0, t1, steps, x), SDFLOW_OK);
        /* marginal of x_t1 given x_0 ~ N(m, sd^2) started at t = 0 (VE score_sde convention:
         * the process adds sigma(t1)^2 - sigma(0)^2) */
        ref_coef c1 = reference(&cfgs[ci], t1), c0 = reference(&cfgs[ci], 0);
        double mean = c1.alpha * m, var = c1.alpha * c1.alpha * sd * sd + c1.sigma * c1.sigma -
                                          c1.alpha * c1.alpha * c0.sigma * c0.sigma;
        /* Exact moments of the EM scheme itself (linear SDE): mean' = (1 + f h) mean,
         * var' = (1 + f h)^2 var + g^2 h. Their distance to the true marginal is the EM bias. */
        double h = t1 / (double)steps, em_m = m, em_v = sd * sd;
        for (long k = 0; k < steps; k++) {
            ref_coef c = reference(&cfgs[ci], (double)k * h);
            em_m *= 1 + c.f * h;
            em_v = (1 + c.f * h) * (1 + c.f * h) * em_v + c.g2 * h;
        }
        double se_m = sqrt(var / (double)N), se_v = var * sqrt(2.0 / (double)(N - 1));
        double bias_m = fabs(em_m - mean) / se_m, bias_v = fabs(em_v - var) / se_v;
        double sm = vec_mean(x, N, 1), sv = vec_var(x, N, 1);
        double zm = (sm - mean) / se_m, zv = (sv - var) / se_v;
        test_note("EM %s t1=%g steps=%ld N=%zu: z(mean)=%.2f z(var)=%.2f, EM bias/SE mean %.3f var %.3f",
                  cfgs[ci].name, t1, steps, N, zm, zv, bias_m, bias_v);
        /* EM bias well below the standard error, so the 4-SE test checks the process
         * (a bias of 0.15 SE raises the false-alarm rate of |z| < 4 from 6e-5 to < 1e-4) */
        ck_assert_msg(bias_m < 0.15 && bias_v < 0.15, "%s EM bias %g, %g SE", cfgs[ci].name, bias_m, bias_v);
        ck_assert_msg(fabs(zm) < 4, "%s mean %g want %g (SE %g)", cfgs[ci].name, sm, mean, se_m);
        ck_assert_msg(fabs(zv) < 4, "%s var %g want %g (SE %g)", cfgs[ci].name, sv, var, se_v);
        sdflow_process_free(p);
    }
    free(x);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_perturb)
{
    sdflow_ctx *ctx = test_ctx(3);
    enum { N = 6, D = 3 };
    for (size_t ci = 0; ci < NCFG; ci++) {
        sdflow_process *p = make_process(ctx, &cfgs[ci]);
        double te, T;
        ck_assert_int_eq(sdflow_process_time_range(p, &te, &T), SDFLOW_OK);
        ck_assert(te == 1e-5);
        double t[N] = { te, 0.1, 0.3, 0.5, 0.8, T }, x0[N * D], xt[N * D], xt2[N * D], eps[N * D], z[N * D];
        ck_assert_int_eq(sdflow_rng_normal(ctx, 50, 0, N, D, x0), SDFLOW_OK);
        ck_assert_int_eq(sdflow_process_perturb(p, 6, 40, N, D, x0, t, xt, eps), SDFLOW_OK);
        /* eps keyed by (seed, stream, first_index + i) */
        ck_assert_int_eq(sdflow_rng_normal(ctx, 6, 40, N, D, z), SDFLOW_OK);
        ck_assert(memcmp(eps, z, sizeof z) == 0);
        for (int i = 0; i < N; i++) {
            ref_coef c;
            coef(p, t[i], &c);
            for (int j = 0; j < D; j++) {
                double want = c.alpha * x0[i * D + j] + c.sigma * eps[i * D + j];
                double mag = fabs(c.alpha * x0[i * D + j]) + fabs(c.sigma * eps[i * D + j]);
                ck_assert_msg(fabs(xt[i * D + j] - want) <= 2 * EPS * mag, "%s perturb row %d", cfgs[ci].name, i);
            }
        }
        /* eps_out may be NULL; a sub-batch reproduces the same rows */
        ck_assert_int_eq(sdflow_process_perturb(p, 6, 40, N, D, x0, t, xt2, NULL), SDFLOW_OK);
        ck_assert(memcmp(xt, xt2, sizeof xt) == 0);
        ck_assert_int_eq(sdflow_process_perturb(p, 6, 42, 2, D, x0 + 2 * D, t + 2, xt2, NULL), SDFLOW_OK);
        ck_assert(memcmp(xt + 2 * D, xt2, 2 * D * sizeof(double)) == 0);
        sdflow_process_free(p);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_bad_input)
{
    sdflow_ctx *ctx = test_ctx(3);
    sdflow_process *p = NULL, *ve = NULL, *cs = NULL;
    double x[4] = { 0, 1, 2, 3 }, t[2] = { 0.5, 0.5 }, out[4], nan = NAN, inf = INFINITY, v;
    long iv;
    /* creation */
    ck_assert_int_eq(sdflow_process_create(NULL, SDFLOW_PROCESS_VP, &p), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_process_create(ctx, SDFLOW_PROCESS_VP, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_process_create(ctx, (sdflow_process_kind)9, &p), SDFLOW_E_INVALID,
                         "unknown process kind 9");
    ck_assert_ptr_null(p);
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &ve), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP_COSINE, &cs), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_get_kind(ve), SDFLOW_PROCESS_VE);
    ck_assert_int_eq(sdflow_process_get_kind(NULL), 0);
    ck_assert_ptr_null(sdflow_process_kind_name((sdflow_process_kind)9));
    sdflow_process_kind kk;
    ck_assert_int_eq(sdflow_process_kind_from_name("subvp", &kk), SDFLOW_OK);
    ck_assert_int_eq(kk, SDFLOW_PROCESS_SUBVP);
    ck_assert_int_eq(sdflow_process_kind_from_name("vq", &kk), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_process_kind_from_name(NULL, &kk), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_process_kind_from_name("vp", NULL), SDFLOW_E_INVALID);
    sdflow_process_free(NULL);

    /* NULL handles (no ctx to write a message into) */
    ck_assert_int_eq(sdflow_process_coefficients(NULL, 1, t, out, NULL, NULL, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_prior_sample(NULL, 0, 0, 1, 1, out), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_prior_logpdf(NULL, 1, 1, x, out), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_perturb(NULL, 0, 0, 1, 1, x, t, out, NULL), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_simulate(NULL, 0, 0, 1, 1, x, 0, 1, 1, out), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_convert(NULL, 1, 1, x, t, SDFLOW_OUT_SCORE, x, SDFLOW_OUT_EPS, out),
                     SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_time_range(NULL, &v, &v), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_set_double(NULL, SDFLOW_PROC_BETA_MIN, 1), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_PROC_BETA_MIN, NULL), SDFLOW_E_INVALID);

    /* NULL buffers */
    ck_assert_status_msg(ctx, sdflow_process_coefficients(p, 1, NULL, out, NULL, NULL, NULL), SDFLOW_E_INVALID,
                         "t is NULL");
    ck_assert_status_msg(ctx, sdflow_process_prior_sample(p, 0, 0, 1, 1, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_process_prior_logpdf(p, 1, 1, NULL, out), SDFLOW_E_INVALID, "x is NULL");
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 1, 2, NULL, t, out, NULL), SDFLOW_E_INVALID,
                         "x0 is NULL");
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 1, 2, x, NULL, out, NULL), SDFLOW_E_INVALID,
                         "t is NULL");
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 1, 2, x, t, NULL, NULL), SDFLOW_E_INVALID,
                         "xt is NULL");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 2, NULL, 0, 1, 1, out), SDFLOW_E_INVALID,
                         "x_in is NULL");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 2, x, 0, 1, 1, NULL), SDFLOW_E_INVALID,
                         "x_out is NULL");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 2, NULL, t, SDFLOW_OUT_SCORE, x, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "x is NULL");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 2, x, t, SDFLOW_OUT_SCORE, NULL, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "in is NULL");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 2, x, t, SDFLOW_OUT_SCORE, x, SDFLOW_OUT_EPS, NULL),
                         SDFLOW_E_INVALID, "out is NULL");

    /* n or d = 0 */
    ck_assert_status_msg(ctx, sdflow_process_coefficients(p, 0, t, out, NULL, NULL, NULL), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_process_prior_sample(p, 0, 0, 0, 1, out), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_process_prior_logpdf(p, 1, 0, x, out), SDFLOW_E_INVALID, "d=0");
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 0, 2, x, t, out, NULL), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 0, x, 0, 1, 1, out), SDFLOW_E_INVALID, "d=0");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 0, x, t, SDFLOW_OUT_SCORE, x, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "d=0");

    /* NaN / Inf inputs */
    double xb[4] = { 0, 1, 2, 3 }, tb[2] = { 0.5, 0.5 };
    xb[3] = nan;
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 2, 2, xb, t, out, NULL), SDFLOW_E_INVALID,
                         "x0[1][1] is NaN");
    ck_assert_status_msg(ctx, sdflow_process_prior_logpdf(p, 2, 2, xb, out), SDFLOW_E_INVALID, "x[1][1] is NaN");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 2, 2, xb, 0, 1, 1, out), SDFLOW_E_INVALID,
                         "x_in[1][1] is NaN");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 2, 2, x, t, SDFLOW_OUT_SCORE, xb, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "in[1][1] is NaN");
    tb[1] = inf;
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 2, 2, x, tb, out, NULL), SDFLOW_E_INVALID,
                         "t[1] is Inf");
    ck_assert_status_msg(ctx, sdflow_process_coefficients(p, 2, tb, out, NULL, NULL, NULL), SDFLOW_E_INVALID,
                         "t[1] is Inf");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 1, x, 0, nan, 1, out), SDFLOW_E_INVALID, "t1=nan");

    /* t outside the valid range */
    tb[1] = 0.0; /* below t_eps */
    ck_assert_status_msg(ctx, sdflow_process_perturb(p, 0, 0, 2, 2, x, tb, out, NULL), SDFLOW_E_INVALID,
                         "t[1] = 0 is outside the process's valid range [1e-05, 1]");
    tb[1] = 1.5;
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 2, 2, x, tb, SDFLOW_OUT_SCORE, x, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "t[1] = 1.5 is outside");
    tb[1] = -0.1;
    ck_assert_status_msg(ctx, sdflow_process_coefficients(p, 2, tb, out, NULL, NULL, NULL), SDFLOW_E_INVALID,
                         "t[1] = -0.1 is outside [0, T=1]");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 1, x, 0.5, 0.5, 1, out), SDFLOW_E_INVALID,
                         "t0 < t1");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 1, x, 0, 1.5, 1, out), SDFLOW_E_INVALID,
                         "t1 <= T=1");
    ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 1, x, 0, 1, 0, out), SDFLOW_E_INVALID,
                         "steps=0 must be >= 1");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 2, x, t, (sdflow_output)7, x, SDFLOW_OUT_EPS, out),
                         SDFLOW_E_INVALID, "unknown output kind 7");
    ck_assert_status_msg(ctx, sdflow_process_convert(p, 1, 2, x, t, SDFLOW_OUT_EPS, x, (sdflow_output)-1, out),
                         SDFLOW_E_INVALID, "unknown output kind -1");

    /* options: unknown, wrong type, out of bounds, inconsistent; each leaves the process unchanged */
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_OPT_SNR, 0.1), SDFLOW_E_UNSUPPORTED,
                         "does not apply to a process");
    ck_assert_status_msg(ctx, sdflow_process_set_int(p, (sdflow_option)9999, 1), SDFLOW_E_UNSUPPORTED, "9999");
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_CTX_SEED, &v), SDFLOW_E_UNSUPPORTED);
    ck_assert_status_msg(ctx, sdflow_process_set_int(p, SDFLOW_PROC_BETA_MIN, 1), SDFLOW_E_INVALID,
                         "beta_min is of type double, not int");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_E_INVALID,
                         "ve_exact_std is of type int");
    ck_assert_int_eq(sdflow_process_get_int(p, SDFLOW_PROC_T_MAX, &iv), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 2), SDFLOW_E_INVALID,
                         "ve_exact_std = 2 is outside [0, 1]");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_BETA_MAX, -1), SDFLOW_E_INVALID,
                         "beta_max = -1 is outside [1e-06, 10000]");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_T_EPS, nan), SDFLOW_E_INVALID, "t_eps");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_BETA_MIN, 30), SDFLOW_E_INVALID,
                         "beta_min=30 must be <= beta_max=20");
    ck_assert_status_msg(ctx, sdflow_process_set_double(ve, SDFLOW_PROC_SIGMA_MIN, 50), SDFLOW_E_INVALID,
                         "sigma_min=50 must be < sigma_max=50");
    ck_assert_status_msg(ctx, sdflow_process_set_double(ve, SDFLOW_PROC_SIGMA_MAX, 0.001), SDFLOW_E_INVALID,
                         "sigma_min=0.01 must be < sigma_max=0.001");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_T_EPS, 1), SDFLOW_E_INVALID,
                         "t_eps=1 must be < t_max=1");
    ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_T_MAX, 1e-5), SDFLOW_E_INVALID,
                         "t_eps=1e-05 must be < t_max=1e-05");
    ck_assert_status_msg(ctx, sdflow_process_set_double(cs, SDFLOW_PROC_T_MAX, 1), SDFLOW_E_INVALID,
                         "cosine schedule needs T < 1");
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_PROC_BETA_MIN, &v), SDFLOW_OK);
    ck_assert(v == BMIN);
    ck_assert_int_eq(sdflow_process_get_double(ve, SDFLOW_PROC_SIGMA_MIN, &v), SDFLOW_OK);
    ck_assert(v == SMIN);
    ck_assert_int_eq(sdflow_process_get_double(ve, SDFLOW_PROC_SIGMA_MAX, &v), SDFLOW_OK);
    ck_assert(v == SMAX);
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_PROC_T_EPS, &v), SDFLOW_OK);
    ck_assert(v == 1e-5);
    ck_assert_int_eq(sdflow_process_get_double(cs, SDFLOW_PROC_T_MAX, &v), SDFLOW_OK);
    ck_assert(v < 1);
    /* valid changes take effect */
    ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_BETA_MAX, 10), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_get_double(p, SDFLOW_PROC_BETA_MAX, &v), SDFLOW_OK);
    ck_assert(v == 10);
    ck_assert_int_eq(sdflow_process_set_int(ve, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_get_int(ve, SDFLOW_PROC_VE_EXACT_STD, &iv), SDFLOW_OK);
    ck_assert_int_eq(iv, 1);
    sdflow_process_free(p);
    sdflow_process_free(ve);
    sdflow_process_free(cs);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status process_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double x0[6] = { 1, 2, 3, 4, 5, 6 }, t[2] = { 0.3, 0.6 }, xt[6], eps[6];
    if (!(st = sdflow_process_create(ctx, SDFLOW_PROCESS_SUBVP, &p)) &&
        !(st = sdflow_process_set_double(p, SDFLOW_PROC_BETA_MAX, 15)) &&
        !(st = sdflow_process_perturb(p, 1, 0, 2, 3, x0, t, xt, eps)) &&
        !(st = sdflow_process_simulate(p, 1, 0, 2, 3, x0, 0.1, 0.5, 5, xt)) &&
        !(st = sdflow_process_prior_sample(p, 1, 0, 2, 3, xt)))
        st = sdflow_process_convert(p, 2, 3, x0, t, SDFLOW_OUT_EPS, eps, SDFLOW_OUT_V, xt);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_process_alloc_failures)
{
    check_all_alloc_failures(process_workload);
}
END_TEST

Suite *process_suite(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("process");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_closed_forms);
    tcase_add_test(tc, test_derivative_identities);
    tcase_add_test(tc, test_small_t);
    tcase_add_test(tc, test_prior);
    tcase_add_test(tc, test_conversions);
    tcase_add_test(tc, test_simulate_gaussian);
    tcase_add_test(tc, test_perturb);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_process_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
