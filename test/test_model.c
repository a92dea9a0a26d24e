/* SPDX-License-Identifier: MIT */
/* Analytic and callback models: the noised GMM log-density, score, Jacobian
 * and divergence against an independent implementation (own Cholesky) and
 * finite differences, output kinds, exact sampling, callback semantics,
 * bad input, thread invariance and allocation failure. Oracles: algorithms.md
 * section 12.a (p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)). */
#include "testutil.h"

#define LOG_2PI 1.8378770664093454835606594728112

/* ---- test mixtures ------------------------------------------------------ */

typedef struct mixture {
    size_t k, d;
    double *w, *mu, *S; /* k, k x d, k x d x d */
} mixture;

/* S_k = A A^T / d + 0.5 I with A standard normal: full, non-diagonal, eigenvalues >= 0.5. */
static mixture make_mixture(sdflow_ctx *ctx, size_t k, size_t d, uint64_t stream)
{
    mixture m = { k, d, malloc(k * sizeof(double)), malloc(k * d * sizeof(double)),
                  malloc(k * d * d * sizeof(double)) };
    double *A = malloc(d * d * sizeof *A), wsum = 0;
    for (size_t c = 0; c < k; c++) {
        m.w[c] = (double)(c + 1);
        wsum += m.w[c];
        ck_assert_int_eq(sdflow_rng_normal(ctx, stream, 2 * c, 1, d, m.mu + c * d), SDFLOW_OK);
        for (size_t j = 0; j < d; j++)
            m.mu[c * d + j] *= 2.0;
        ck_assert_int_eq(sdflow_rng_normal(ctx, stream, 2 * c + 1, d, d, A), SDFLOW_OK);
        double *S = m.S + c * d * d;
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) {
                double acc = a == b ? 0.5 : 0.0;
                for (size_t j = 0; j < d; j++)
                    acc += A[a * d + j] * A[b * d + j] / (double)d;
                S[a * d + b] = acc;
            }
    }
    for (size_t c = 0; c < k; c++)
        m.w[c] /= wsum;
    /* renormalize exactly enough for the 1e-12 sum check */
    free(A);
    return m;
}

static void free_mixture(mixture *m)
{
    free(m->w);
    free(m->mu);
    free(m->S);
}

static sdflow_model *model_of(sdflow_ctx *ctx, const mixture *m)
{
    sdflow_model *g = NULL;
    if (m->k == 1)
        ck_assert_int_eq(sdflow_model_create_gaussian(ctx, m->d, m->mu, m->S, &g), SDFLOW_OK);
    else
        ck_assert_int_eq(sdflow_model_create_gmm(ctx, m->k, m->d, m->w, m->mu, m->S, &g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_get_kind(g), m->k == 1 ? SDFLOW_MODEL_GAUSSIAN : SDFLOW_MODEL_GMM);
    ck_assert_uint_eq(sdflow_model_dim(g), m->d);
    return g;
}

/* ---- independent oracle: Cholesky of C_k = alpha^2 S_k + sigma^2 I ------ */

static void chol(size_t d, double *a)
{
    for (size_t j = 0; j < d; j++) {
        for (size_t i = j; i < d; i++) {
            double v = a[i * d + j];
            for (size_t k = 0; k < j; k++)
                v -= a[i * d + k] * a[j * d + k];
            a[i * d + j] = i == j ? sqrt(v) : v / a[j * d + j];
        }
        for (size_t k = j + 1; k < d; k++)
            a[j * d + k] = 0;
    }
}

typedef struct oracle {
    double logp, div, divmag; /* divmag: sum of |terms| of the divergence (rounding scale) */
    double score[16], jac[256];
} oracle;

/* log p_t, score, Jacobian and divergence at x by 12.a.1-3 (d <= 16). */
static oracle mixture_oracle(const mixture *m, double alpha, double sigma, const double *x)
{
    size_t d = m->d, K = m->k;
    double L[256], Li[256], e[8][16], Ci[8][256], logit[8] = { 0 }, tr[8] = { 0 };
    for (size_t c = 0; c < K; c++) {
        for (size_t i = 0; i < d * d; i++)
            L[i] = alpha * alpha * m->S[c * d * d + i];
        for (size_t i = 0; i < d; i++)
            L[i * d + i] += sigma * sigma;
        chol(d, L);
        /* Li = L^{-1} (lower), column by column by forward substitution */
        memset(Li, 0, sizeof Li);
        for (size_t col = 0; col < d; col++)
            for (size_t i = col; i < d; i++) {
                double v = i == col ? 1.0 : 0.0;
                for (size_t k = col; k < i; k++)
                    v -= L[i * d + k] * Li[k * d + col];
                Li[i * d + col] = v / L[i * d + i];
            }
        double y[16], maha = 0, logdet = 0;
        tr[c] = 0;
        for (size_t i = 0; i < d; i++) {
            double v = 0;
            for (size_t k = 0; k <= i; k++)
                v += Li[i * d + k] * (x[k] - alpha * m->mu[c * d + k]);
            y[i] = v;
            maha += v * v;
            logdet += 2 * log(L[i * d + i]);
        }
        for (size_t a = 0; a < d; a++) { /* C^{-1} = Li^T Li, e = Li^T y */
            double v = 0;
            for (size_t i = a; i < d; i++)
                v += Li[i * d + a] * y[i];
            e[c][a] = v;
            for (size_t b = 0; b < d; b++) {
                double acc = 0;
                for (size_t i = 0; i < d; i++)
                    acc += Li[i * d + a] * Li[i * d + b];
                Ci[c][a * d + b] = acc;
            }
            tr[c] += Ci[c][a * d + a];
        }
        logit[c] = log(m->w[c]) - 0.5 * ((double)d * LOG_2PI + logdet + maha);
    }
    double mx = logit[0], z = 0;
    for (size_t c = 1; c < K; c++)
        mx = fmax(mx, logit[c]);
    for (size_t c = 0; c < K; c++)
        z += exp(logit[c] - mx);
    oracle o;
    o.logp = mx + log(z);
    double r[8];
    for (size_t c = 0; c < K; c++)
        r[c] = exp(logit[c] - o.logp);
    double ss = 0, acc = 0, mag = 0;
    for (size_t a = 0; a < d; a++) {
        double v = 0;
        for (size_t c = 0; c < K; c++)
            v -= r[c] * e[c][a];
        o.score[a] = v;
        ss += v * v;
    }
    for (size_t c = 0; c < K; c++) {
        double ee = 0;
        for (size_t a = 0; a < d; a++)
            ee += e[c][a] * e[c][a];
        acc += r[c] * (ee - tr[c]);
        mag += r[c] * (ee + tr[c]);
    }
    o.div = acc - ss;
    o.divmag = mag + ss;
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < d; b++) {
            double v = -o.score[a] * o.score[b];
            for (size_t c = 0; c < K; c++)
                v += r[c] * (e[c][a] * e[c][b] - Ci[c][a * d + b]);
            o.jac[a * d + b] = v;
        }
    return o;
}

/* ---- processes ------------------------------------------------------------ */

typedef struct pcase {
    sdflow_process_kind kind; /* 0: p == NULL (alpha = 1, sigma = t) */
    int ve_exact;
    const char *name;
} pcase;

static const pcase pcases[] = { { SDFLOW_PROCESS_VP, 0, "vp" },       { SDFLOW_PROCESS_SUBVP, 0, "subvp" },
                                { SDFLOW_PROCESS_VE, 0, "ve" },       { SDFLOW_PROCESS_VE, 1, "ve_exact" },
                                { SDFLOW_PROCESS_VP_COSINE, 0, "cos" }, { 0, 0, "none" } };
#define NPC (sizeof pcases / sizeof pcases[0])

static sdflow_process *process_of(sdflow_ctx *ctx, const pcase *c)
{
    sdflow_process *p = NULL;
    if (!c->kind)
        return NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, c->kind, &p), SDFLOW_OK);
    if (c->ve_exact)
        ck_assert_int_eq(sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1), SDFLOW_OK);
    return p;
}

static void alpha_sigma(const sdflow_process *p, double t, double *a, double *s)
{
    if (!p) {
        *a = 1;
        *s = t;
        return;
    }
    ck_assert_int_eq(sdflow_process_coefficients(p, 1, &t, a, s, NULL, NULL), SDFLOW_OK);
}

/* Three times per process; 3 points per time: near component 0, near the last
 * component, and between components 0 and 1 (mixed responsibilities). */
#define NT 3
#define NPT (3 * NT)
static void make_points(sdflow_ctx *ctx, const mixture *m, const sdflow_process *p, double *x, double *t)
{
    double T = 4.0;
    if (p)
        ck_assert_int_eq(sdflow_process_time_range(p, NULL, &T), SDFLOW_OK);
    const double ts[NT] = { p ? 0.05 : 0.2, p ? 0.4 : 1.0, p ? 0.9 * T : 3.0 };
    size_t d = m->d, last = m->k - 1, other = m->k > 1 ? 1 : 0;
    double z[16];
    for (int i = 0; i < NPT; i++) {
        double a, s;
        t[i] = ts[i / 3];
        alpha_sigma(p, t[i], &a, &s);
        ck_assert_int_eq(sdflow_rng_normal(ctx, 77, (uint64_t)i, 1, d, z), SDFLOW_OK);
        for (size_t j = 0; j < d; j++) {
            const double *mu0 = m->mu, *mul = m->mu + last * d, *mu1 = m->mu + other * d;
            double c = i % 3 == 0 ? a * mu0[j] : i % 3 == 1 ? a * mul[j] : 0.5 * a * (mu0[j] + mu1[j]);
            x[i * d + j] = c + sqrt(0.7 * a * a + s * s) * z[j];
        }
    }
}

static double norm2(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

static double diff2(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

/* ---- the analytic models against the oracle and finite differences ------ */

typedef struct mixcase {
    size_t k, d;
} mixcase;
static const mixcase mixcases[] = { { 1, 2 }, { 1, 8 }, { 3, 2 }, { 4, 8 } };
#define NMC (sizeof mixcases / sizeof mixcases[0])

START_TEST(test_gmm_oracle)
{
    sdflow_ctx *ctx = test_ctx(11);
    double w_lp = 0, w_s = 0, w_j = 0, w_div = 0;
    for (size_t mc = 0; mc < NMC; mc++) {
        mixture mx = make_mixture(ctx, mixcases[mc].k, mixcases[mc].d, 100 + mc);
        sdflow_model *g = model_of(ctx, &mx);
        size_t d = mx.d;
        for (size_t pc = 0; pc < NPC; pc++) {
            sdflow_process *p = process_of(ctx, &pcases[pc]);
            double x[NPT * 8], t[NPT], lp[NPT], s[NPT * 8], J[NPT * 64], dv[NPT];
            make_points(ctx, &mx, p, x, t);
            ck_assert_int_eq(sdflow_model_logpdf(g, p, NPT, x, t, lp), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_score(g, p, NPT, x, t, s), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(g, p, NPT, x, t, J), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_divergence(g, p, NPT, x, t, dv), SDFLOW_OK);
            for (int i = 0; i < NPT; i++) {
                double a, sg;
                alpha_sigma(p, t[i], &a, &sg);
                oracle o = mixture_oracle(&mx, a, sg, x + i * d);
                /* Both sides are backward-stable O(d^2) computations of well-conditioned
                 * quantities (cond(C) <= (alpha^2 lmax + sigma^2)/(alpha^2 0.5 + sigma^2) < 100):
                 * 1e-12 relative leaves a margin of > 100 over rounding. */
                double elp = fabs(lp[i] - o.logp) / (1 + fabs(o.logp));
                double es = diff2(s + i * d, o.score, d) / norm2(o.score, d);
                double ej = diff2(J + i * d * d, o.jac, d * d) / norm2(o.jac, d * d);
                double ed = fabs(dv[i] - o.div) / o.divmag;
                w_lp = fmax(w_lp, elp);
                w_s = fmax(w_s, es);
                w_j = fmax(w_j, ej);
                w_div = fmax(w_div, ed);
                ck_assert_msg(elp < 1e-12, "k=%zu d=%zu %s t=%g: logp %.17g oracle %.17g", mx.k, d, pcases[pc].name,
                              t[i], lp[i], o.logp);
                ck_assert_msg(es < 1e-10, "k=%zu d=%zu %s t=%g: score rel err %g", mx.k, d, pcases[pc].name, t[i], es);
                ck_assert_msg(ej < 1e-10, "k=%zu d=%zu %s t=%g: Jacobian rel err %g", mx.k, d, pcases[pc].name, t[i],
                              ej);
                ck_assert_msg(ed < 1e-12, "k=%zu d=%zu %s t=%g: divergence %.17g oracle %.17g", mx.k, d,
                              pcases[pc].name, t[i], dv[i], o.div);
                if (i == 0) { /* the oracle tells a 1e-6 change of sigma apart at these tolerances */
                    oracle o2 = mixture_oracle(&mx, a, sg * (1 + 1e-6), x + i * d);
                    ck_assert(fabs(o2.logp - o.logp) / (1 + fabs(o.logp)) > 1e-12 ||
                              diff2(o2.score, o.score, d) / norm2(o.score, d) > 1e-10);
                }
                /* divergence = trace of the Jacobian */
                double tr = 0;
                for (size_t j = 0; j < d; j++)
                    tr += J[i * d * d + j * d + j];
                ck_assert_msg(fabs(tr - dv[i]) <= 1e-12 * o.divmag, "trace %.17g vs divergence %.17g", tr, dv[i]);
            }
            sdflow_process_free(p);
        }
        sdflow_model_free(g);
        free_mixture(&mx);
    }
    test_note("model oracle: max rel err logp %.2e score %.2e Jacobian %.2e divergence %.2e", w_lp, w_s, w_j, w_div);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Covariance scales far apart (1e-60 .. 1e250): the log-determinant of the
 * noised covariance is built from running products that must be flushed
 * before they overflow or underflow. Diagonal covariance: the oracle is a sum
 * of 1-D normal log-densities, each exact to rounding, so 1e-12 relative. */
START_TEST(test_gaussian_logdet_wide_scales)
{
    sdflow_ctx *ctx = test_ctx(5);
    enum { D = 24 };
    double mean[D], cov[D * D] = { 0 }, x[D], lp;
    for (int a = 0; a < D; a++) {
        mean[a] = 0.1 * a;
        cov[a * D + a] = pow(10.0, -60 + 310.0 * a / (D - 1)); /* factors < 1e-100 and > 1e208 */
        x[a] = mean[a] + 0.3;
    }
    cov[0] = 1e99; /* a product just below the flush point times a huge factor */
    cov[1 * D + 1] = 1e250;
    sdflow_model *g = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, D, mean, cov, &g), SDFLOW_OK);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &p), SDFLOW_OK);
    double ts[] = { 1e-3, 0.5, 1.0 };
    for (int i = 0; i < 3; i++) {
        double a, sg;
        alpha_sigma(p, ts[i], &a, &sg);
        ck_assert_int_eq(sdflow_model_logpdf(g, p, 1, x, &ts[i], &lp), SDFLOW_OK);
        double want = 0;
        for (int j = 0; j < D; j++) {
            double c = a * a * cov[j * D + j] + sg * sg, r = x[j] - a * mean[j];
            want += -0.5 * (log(2 * 3.14159265358979323846 * c) + r * r / c);
        }
        ck_assert_msg(fabs(lp - want) <= 1e-12 * (1 + fabs(want)), "t=%g: logp %.17g, oracle %.17g", ts[i], lp, want);
    }
    sdflow_process_free(p);
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}
END_TEST

/* 4-point central difference of F along coordinate j: error h^4/30 |F^(5)| + ~eps|F|/h. */
typedef void (*vec_fn)(sdflow_model *g, const sdflow_process *p, const double *x, double t, double *out);
static void fn_logp(sdflow_model *g, const sdflow_process *p, const double *x, double t, double *out)
{
    ck_assert_int_eq(sdflow_model_logpdf(g, p, 1, x, &t, out), SDFLOW_OK);
}
static void fn_score(sdflow_model *g, const sdflow_process *p, const double *x, double t, double *out)
{
    ck_assert_int_eq(sdflow_model_score(g, p, 1, x, &t, out), SDFLOW_OK);
}

/* Column j of the derivative of F (m outputs) at x. */
static void fd_column(sdflow_model *g, const sdflow_process *p, vec_fn F, size_t m, const double *x0, double t,
                      size_t j, double h, double *col)
{
    size_t d = sdflow_model_dim(g);
    double x[8], f1[8], f2[8], f3[8], f4[8];
    memcpy(x, x0, d * sizeof *x);
    x[j] = x0[j] + h;
    F(g, p, x, t, f1);
    x[j] = x0[j] - h;
    F(g, p, x, t, f2);
    x[j] = x0[j] + 2 * h;
    F(g, p, x, t, f3);
    x[j] = x0[j] - 2 * h;
    F(g, p, x, t, f4);
    for (size_t i = 0; i < m; i++)
        col[i] = (8 * (f1[i] - f2[i]) - (f3[i] - f4[i])) / (12 * h);
}

START_TEST(test_gmm_finite_differences)
{
    sdflow_ctx *ctx = test_ctx(11);
    double w_s = 0, w_j = 0, w_sym = 0;
    for (size_t mc = 0; mc < NMC; mc++) {
        mixture mx = make_mixture(ctx, mixcases[mc].k, mixcases[mc].d, 100 + mc);
        sdflow_model *g = model_of(ctx, &mx);
        size_t d = mx.d;
        for (size_t pc = 0; pc < NPC; pc++) {
            sdflow_process *p = process_of(ctx, &pcases[pc]);
            double x[NPT * 8], t[NPT], s[NPT * 8], J[NPT * 64];
            make_points(ctx, &mx, p, x, t);
            ck_assert_int_eq(sdflow_model_score(g, p, NPT, x, t, s), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(g, p, NPT, x, t, J), SDFLOW_OK);
            for (int i = 0; i < NPT; i++) {
                double a, sg;
                alpha_sigma(p, t[i], &a, &sg);
                /* step 1e-3 of the smallest std sqrt(0.5 alpha^2 + sigma^2): truncation
                 * h^4/30 |F^(5)| ~ 1e-13 relative, rounding eps |log p| / h ~ 1e-12 */
                double h = 1e-3 * sqrt(0.5 * a * a + sg * sg), fd[8], fdj[64];
                for (size_t j = 0; j < d; j++) {
                    fd_column(g, p, fn_logp, 1, x + i * d, t[i], j, h, fd + j);
                    double col[8];
                    fd_column(g, p, fn_score, d, x + i * d, t[i], j, h, col);
                    for (size_t r = 0; r < d; r++)
                        fdj[r * d + j] = col[r];
                }
                const double *Ji = J + i * d * d;
                double es = diff2(s + i * d, fd, d) / norm2(s + i * d, d);
                double ej = diff2(Ji, fdj, d * d) / norm2(Ji, d * d);
                double asym = 0;
                for (size_t r = 0; r < d; r++)
                    for (size_t c = 0; c < d; c++)
                        asym = fmax(asym, fabs(Ji[r * d + c] - Ji[c * d + r]));
                asym /= norm2(Ji, d * d);
                w_s = fmax(w_s, es);
                w_j = fmax(w_j, ej);
                w_sym = fmax(w_sym, asym);
                ck_assert_msg(es < 1e-6, "k=%zu d=%zu %s t=%g point %d: score vs FD of logp rel err %g", mx.k, d,
                              pcases[pc].name, t[i], i, es);
                ck_assert_msg(ej < 1e-6, "k=%zu d=%zu %s t=%g point %d: Jacobian vs FD of score rel err %g", mx.k, d,
                              pcases[pc].name, t[i], i, ej);
                ck_assert_msg(asym < 1e-14, "Jacobian not symmetric: %g", asym);
                if (i == 0) { /* a score at a time 1% off is caught by the same check */
                    double s2[8], t2 = t[i] * (1 + 1e-2);
                    fn_score(g, p, x, t2, s2);
                    ck_assert(diff2(s2, fd, d) / norm2(s2, d) > 1e-6);
                }
            }
            sdflow_process_free(p);
        }
        sdflow_model_free(g);
        free_mixture(&mx);
    }
    test_note("model FD: max rel err score vs grad logp %.2e, Jacobian vs FD %.2e, asymmetry %.2e", w_s, w_j, w_sym);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_output_kinds)
{
    sdflow_ctx *ctx = test_ctx(12);
    mixture mx = make_mixture(ctx, 3, 2, 300);
    sdflow_model *g = model_of(ctx, &mx);
    enum { D = 2 };
    for (size_t pc = 0; pc < NPC; pc++) {
        sdflow_process *p = process_of(ctx, &pcases[pc]);
        double x[NPT * D], t[NPT], s[NPT * D], out[NPT * D], want[NPT * D];
        make_points(ctx, &mx, p, x, t);
        ck_assert_int_eq(sdflow_model_score(g, p, NPT, x, t, s), SDFLOW_OK);
        for (int k = SDFLOW_OUT_SCORE; k <= SDFLOW_OUT_V; k++) {
            ck_assert_int_eq(sdflow_model_eval(g, p, NPT, x, t, (sdflow_output)k, out), SDFLOW_OK);
            if (p) {
                ck_assert_int_eq(sdflow_process_convert(p, NPT, D, x, t, SDFLOW_OUT_SCORE, s, (sdflow_output)k, want),
                                 SDFLOW_OK);
            } else { /* alpha = 1, sigma = t, f = 0, g^2 = 2t (model.h) */
                for (int i = 0; i < NPT * D; i++) {
                    double tt = t[i / D], sc = s[i], xx = x[i];
                    double eps = -tt * sc, x0 = xx + tt * tt * sc;
                    want[i] = k == 0 ? sc : k == 1 ? eps : k == 2 ? x0 : k == 3 ? -tt * sc : eps - tt * x0;
                }
            }
            for (int i = 0; i < NPT * D; i++) /* same affine map; a few ulps of the terms */
                ck_assert_msg(fabs(out[i] - want[i]) <= 1e-14 * (fabs(want[i]) + fabs(x[i]) + fabs(s[i]) * 1e4),
                              "%s kind %d entry %d: %.17g vs %.17g", pcases[pc].name, k, i, out[i], want[i]);
        }
        sdflow_process_free(p);
    }
    sdflow_model_free(g);
    free_mixture(&mx);
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_gmm_sample)
{
    sdflow_ctx *ctx = test_ctx(13);
    const size_t n = 20000;
    for (int which = 0; which < 2; which++) {
        mixture mx = make_mixture(ctx, which ? 4 : 3, which ? 8 : 2, 400 + which);
        sdflow_model *g = model_of(ctx, &mx);
        size_t d = mx.d;
        double *x = malloc(n * d * sizeof *x), part[5 * 8];
        ck_assert_int_eq(sdflow_model_sample(g, 3, 0, n, x), SDFLOW_OK);
        /* rows keyed by (seed, stream, first_index + i) */
        ck_assert_int_eq(sdflow_model_sample(g, 3, 100, 5, part), SDFLOW_OK);
        ck_assert(memcmp(part, x + 100 * d, 5 * d * sizeof(double)) == 0);
        /* exact moments: m = sum w mu, Cov = sum w (S + mu mu^T) - m m^T */
        double m[8] = { 0 }, C[64] = { 0 };
        for (size_t c = 0; c < mx.k; c++)
            for (size_t a = 0; a < d; a++) {
                m[a] += mx.w[c] * mx.mu[c * d + a];
                for (size_t b = 0; b < d; b++)
                    C[a * d + b] += mx.w[c] * (mx.S[c * d * d + a * d + b] + mx.mu[c * d + a] * mx.mu[c * d + b]);
            }
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++)
                C[a * d + b] -= m[a] * m[b];
        double zmax_m = 0, zmax_c = 0;
        for (size_t a = 0; a < d; a++) {
            double sm = vec_mean(x + a, n, d), z = (sm - m[a]) / sqrt(C[a * d + a] / (double)n);
            zmax_m = fmax(zmax_m, fabs(z));
            ck_assert_msg(fabs(z) < 4, "d=%zu mean[%zu] = %g want %g (z %g)", d, a, sm, m[a], z);
            for (size_t b = a; b < d; b++) {
                /* sample covariance about the true mean; SE = sd of the products / sqrt(n) */
                double s1 = 0, s2 = 0;
                for (size_t i = 0; i < n; i++) {
                    double q = (x[i * d + a] - m[a]) * (x[i * d + b] - m[b]);
                    s1 += q;
                    s2 += q * q;
                }
                s1 /= (double)n;
                double se = sqrt((s2 / (double)n - s1 * s1) / (double)n), zc = (s1 - C[a * d + b]) / se;
                zmax_c = fmax(zmax_c, fabs(zc));
                ck_assert_msg(fabs(zc) < 4, "d=%zu cov[%zu][%zu] = %g want %g (z %g)", d, a, b, s1, C[a * d + b], zc);
            }
        }
        test_note("gmm sample k=%zu d=%zu n=%zu: max |z| mean %.2f covariance %.2f", mx.k, d, n, zmax_m, zmax_c);
        /* the test detects a wrong covariance: sum_k w_k S_k (no between-component part) */
        double zwrong = 0;
        for (size_t a = 0; a < d; a++) {
            double within = 0, s1 = 0, s2 = 0;
            for (size_t c = 0; c < mx.k; c++)
                within += mx.w[c] * mx.S[c * d * d + a * d + a];
            for (size_t i = 0; i < n; i++) {
                double q = (x[i * d + a] - m[a]) * (x[i * d + a] - m[a]);
                s1 += q;
                s2 += q * q;
            }
            s1 /= (double)n;
            zwrong = fmax(zwrong, fabs(s1 - within) / sqrt((s2 / (double)n - s1 * s1) / (double)n));
        }
        ck_assert_msg(zwrong > 4, "wrong covariance not detected (z %g)", zwrong);
        free(x);
        sdflow_model_free(g);
        free_mixture(&mx);
    }
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- callback models -------------------------------------------------------- */

/* The user model: the exact output of kind `kind` of a Gaussian under process p. */
typedef struct cb_user {
    sdflow_model *g;
    const sdflow_process *p;
    sdflow_output kind;
    int fail, jvp_fail, nan_at, calls;
} cb_user;

static int cb_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    cb_user *c = u;
    c->calls++;
    if (c->fail)
        return c->fail;
    if (sdflow_model_eval(c->g, c->p, n, x, t, c->kind, out) != SDFLOW_OK)
        return -1;
    if (c->nan_at >= 0 && (size_t)c->nan_at < n * d)
        out[c->nan_at] = NAN;
    return 0;
}

/* J_kind v = a J_score v + b v where kind = a score + b x: sdflow_process_convert
 * applied to (x := v, in := J_score v) gives exactly that. */
static int cb_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *u)
{
    cb_user *c = u;
    if (c->jvp_fail)
        return c->jvp_fail;
    double *J = malloc(n * d * d * sizeof *J);
    if (sdflow_model_jacobian(c->g, c->p, n, x, t, J) != SDFLOW_OK)
        return -1;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < d; a++) {
            double acc = 0;
            for (size_t b = 0; b < d; b++)
                acc += J[i * d * d + a * d + b] * v[i * d + b];
            jv[i * d + a] = acc;
        }
    free(J);
    return sdflow_process_convert(c->p, n, d, v, t, SDFLOW_OUT_SCORE, jv, c->kind, jv) == SDFLOW_OK ? 0 : -1;
}

START_TEST(test_callback)
{
    sdflow_ctx *ctx = test_ctx(14);
    enum { D = 3, N = 6 };
    mixture mx = make_mixture(ctx, 1, D, 500);
    sdflow_model *g = model_of(ctx, &mx);
    for (size_t pc = 0; pc < 3; pc++) { /* vp, subvp, ve */
        sdflow_process *p = process_of(ctx, &pcases[pc]);
        double x[N * D], t[N] = { 0.05, 0.2, 0.4, 0.6, 0.8, 1.0 }, out[N * D], want[N * D];
        double J[N * D * D], Jw[N * D * D], dv[N], dw[N];
        ck_assert_int_eq(sdflow_rng_normal(ctx, 9, 0, N, D, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_jacobian(g, p, N, x, t, Jw), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_divergence(g, p, N, x, t, dw), SDFLOW_OK);
        for (int kind = SDFLOW_OUT_SCORE; kind <= SDFLOW_OUT_V; kind++) {
            cb_user u = { g, p, (sdflow_output)kind, 0, 0, -1, 0 };
            sdflow_model *cb = NULL;
            ck_assert_int_eq(sdflow_model_create_callback(ctx, D, (sdflow_output)kind, cb_fn, &u, &cb), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_get_kind(cb), SDFLOW_MODEL_CALLBACK);
            /* every requested kind is the callback's output converted through the process */
            for (int want_kind = SDFLOW_OUT_SCORE; want_kind <= SDFLOW_OUT_V; want_kind++) {
                ck_assert_int_eq(sdflow_model_eval(cb, p, N, x, t, (sdflow_output)want_kind, out), SDFLOW_OK);
                ck_assert_int_eq(sdflow_model_eval(g, p, N, x, t, (sdflow_output)want_kind, want), SDFLOW_OK);
                /* two affine conversions with coefficients up to sigma^3 = 1.25e5 (VE at t = 1):
                 * 1e-11 of the row norm */
                for (int i = 0; i < N; i++) {
                    double e = diff2(out + i * D, want + i * D, D) / norm2(want + i * D, D);
                    ck_assert_msg(e < 1e-11, "%s produces %d, asked %d, row %d: rel err %g", pcases[pc].name, kind,
                                  want_kind, i, e);
                }
            }
            /* without a JVP: no Jacobian, no divergence, no log-density, no sampler */
            ck_assert_status_msg(ctx, sdflow_model_jacobian(cb, p, N, x, t, J), SDFLOW_E_UNSUPPORTED, "Jacobian");
            ck_assert_status_msg(ctx, sdflow_model_divergence(cb, p, N, x, t, dv), SDFLOW_E_UNSUPPORTED,
                                 "divergence");
            ck_assert_status_msg(ctx, sdflow_model_logpdf(cb, p, N, x, t, dv), SDFLOW_E_UNSUPPORTED, "log-density");
            ck_assert_status_msg(ctx, sdflow_model_sample(cb, 0, 0, N, out), SDFLOW_E_UNSUPPORTED, "sampler");
            /* with a JVP: the score Jacobian and its trace */
            ck_assert_int_eq(sdflow_model_set_callback_jvp(cb, cb_jvp, &u), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(cb, p, N, x, t, J), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_divergence(cb, p, N, x, t, dv), SDFLOW_OK);
            for (int i = 0; i < N; i++) {
                double e = diff2(J + i * D * D, Jw + i * D * D, D * D) / norm2(Jw + i * D * D, D * D);
                ck_assert_msg(e < 1e-11, "%s kind %d JVP Jacobian row %d: rel err %g", pcases[pc].name, kind, i, e);
                ck_assert_msg(fabs(dv[i] - dw[i]) <= 1e-11 * norm2(Jw + i * D * D, D * D),
                              "%s kind %d divergence %g vs %g", pcases[pc].name, kind, dv[i], dw[i]);
            }
            /* failures of the user functions */
            u.fail = 7;
            ck_assert_status_msg(ctx, sdflow_model_score(cb, p, N, x, t, out), SDFLOW_E_CALLBACK, "returned 7");
            u.fail = 0;
            u.jvp_fail = -3;
            ck_assert_status_msg(ctx, sdflow_model_jacobian(cb, p, N, x, t, J), SDFLOW_E_CALLBACK,
                                 "JVP callback returned -3");
            ck_assert_status_msg(ctx, sdflow_model_divergence(cb, p, N, x, t, dv), SDFLOW_E_CALLBACK, "returned -3");
            u.jvp_fail = 0;
            u.nan_at = 4; /* row 1, coordinate 1 */
            ck_assert_status_msg(ctx, sdflow_model_eval(cb, p, N, x, t, (sdflow_output)kind, out), SDFLOW_E_NUMERIC,
                                 "row 1, coordinate 1 is NaN");
            ck_assert_status_msg(ctx, sdflow_model_score(cb, p, N, x, t, out), SDFLOW_E_NUMERIC, "is NaN");
            u.nan_at = -1;
            /* removing the JVP removes the Jacobian */
            ck_assert_int_eq(sdflow_model_set_callback_jvp(cb, NULL, NULL), SDFLOW_OK);
            ck_assert_int_eq(sdflow_model_jacobian(cb, p, N, x, t, J), SDFLOW_E_UNSUPPORTED);
            sdflow_model_free(cb);
        }
        sdflow_process_free(p);
    }
    /* creation errors */
    sdflow_model *cb = (sdflow_model *)&cb;
    cb_user u = { g, NULL, SDFLOW_OUT_SCORE, 0, 0, -1, 0 };
    ck_assert_int_eq(sdflow_model_create_callback(NULL, 2, SDFLOW_OUT_SCORE, cb_fn, &u, &cb), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, cb_fn, &u, NULL),
                         SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_callback(ctx, 0, SDFLOW_OUT_SCORE, cb_fn, &u, &cb),
                         SDFLOW_E_INVALID, "d=0");
    ck_assert_ptr_null(cb);
    ck_assert_status_msg(ctx, sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_SCORE, NULL, &u, &cb),
                         SDFLOW_E_INVALID, "fn is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_callback(ctx, 2, (sdflow_output)9, cb_fn, &u, &cb),
                         SDFLOW_E_INVALID, "unknown output kind 9");
    ck_assert_int_eq(sdflow_model_set_callback_jvp(NULL, cb_jvp, &u), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_model_set_callback_jvp(g, cb_jvp, &u), SDFLOW_E_UNSUPPORTED, "callback models");
    sdflow_model_free(g);
    free_mixture(&mx);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Diagonal score s_j = -(j+1) x_j / (1+t): divergence -d(d+1)/2 / (1+t). */
static int diag_fn(size_t n, size_t d, const double *x, const double *t, double *out, void *u)
{
    (void)u;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = -(double)(j + 1) * x[i * d + j] / (1 + t[i]);
    return 0;
}

static int diag_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv, void *u)
{
    (void)u;
    (void)x;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            jv[i * d + j] = -(double)(j + 1) * v[i * d + j] / (1 + t[i]);
    return 0;
}

START_TEST(test_divergence_blocks)
{
    /* d = 64: the Jacobian-derived divergence works in blocks of 2^20/d^2 + 1 = 257 rows;
     * n = 700 = 2 x 257 + 186 covers full blocks and a partial one */
    sdflow_ctx *ctx = test_ctx(15);
    enum { D = 64, N = 700 };
    double *x = malloc(N * D * sizeof *x), *t = malloc(N * sizeof *t), *dv = malloc(N * sizeof *dv);
    ck_assert_int_eq(sdflow_rng_normal(ctx, 1, 0, N, D, x), SDFLOW_OK);
    for (int i = 0; i < N; i++)
        t[i] = 0.01 + (double)i / N;
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_callback(ctx, D, SDFLOW_OUT_SCORE, diag_fn, NULL, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_callback_jvp(m, diag_jvp, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_divergence(m, NULL, N, x, t, dv), SDFLOW_OK);
    for (int i = 0; i < N; i++) {
        double want = -(double)(D * (D + 1) / 2) / (1 + t[i]);
        ck_assert_msg(fabs(dv[i] - want) <= 1e-13 * fabs(want), "row %d: divergence %.17g want %.17g", i, dv[i],
                      want);
    }
    sdflow_model_free(m);
    free(x);
    free(t);
    free(dv);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- bad input ----------------------------------------------------------------- */

START_TEST(test_model_bad_input)
{
    sdflow_ctx *ctx = test_ctx(16);
    mixture mx = make_mixture(ctx, 3, 2, 600);
    double w[3], mu[6], S[12];
    sdflow_model *g = (sdflow_model *)&g;
#define RESET() (memcpy(w, mx.w, sizeof w), memcpy(mu, mx.mu, sizeof mu), memcpy(S, mx.S, sizeof S))
    RESET();
    ck_assert_int_eq(sdflow_model_create_gmm(NULL, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 0, 2, w, mu, S, &g), SDFLOW_E_INVALID, "k=0 must be >= 1");
    ck_assert_ptr_null(g);
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 0, w, mu, S, &g), SDFLOW_E_INVALID, "d=0 must be >= 1");
    ck_assert_status_msg(ctx, sdflow_model_create_gaussian(ctx, 0, mu, S, &g), SDFLOW_E_INVALID, "d=0");
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, NULL, mu, S, &g), SDFLOW_E_INVALID,
                         "weights is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, NULL, S, &g), SDFLOW_E_INVALID, "means is NULL");
    ck_assert_status_msg(ctx, sdflow_model_create_gaussian(ctx, 2, mu, NULL, &g), SDFLOW_E_INVALID, "covs is NULL");
    /* non-SPD: component 1 with eigenvalues 3 and -1 */
    S[4] = 1, S[5] = 2, S[6] = 2, S[7] = 1;
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID,
                         "covariance 1 is not positive definite");
    ck_assert_status_msg(ctx, sdflow_model_create_gaussian(ctx, 2, mu, S + 4, &g), SDFLOW_E_INVALID,
                         "covariance 0 is not positive definite");
    RESET();
    S[9] += 0.1; /* component 2 [0][1] != [1][0] */
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID,
                         "covariance 2 is not symmetric");
    RESET();
    w[0] += 1e-6;
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID, "weights sum to");
    RESET();
    w[1] = -w[1];
    w[0] -= 2 * w[1];
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID,
                         "weights[1] = ");
    ck_assert(strstr(sdflow_ctx_last_error(ctx), "must be > 0"));
    RESET();
    w[2] = 0;
    w[0] += mx.w[2];
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID,
                         "weights[2] = 0 must be > 0");
    RESET();
    mu[3] = NAN;
    ck_assert_status_msg(ctx, sdflow_model_create_gmm(ctx, 3, 2, w, mu, S, &g), SDFLOW_E_INVALID,
                         "means[1][1] is NaN");
    RESET();
    S[2] = INFINITY;
    ck_assert_status_msg(ctx, sdflow_model_create_gaussian(ctx, 2, mu, S, &g), SDFLOW_E_INVALID, "covs[0][2] is Inf");
    ck_assert_ptr_null(g);

    /* evaluation */
    RESET();
    g = model_of(ctx, &mx);
    sdflow_process *p = process_of(ctx, &pcases[0]);
    double x[4] = { 0.1, 0.2, 0.3, 0.4 }, t[2] = { 0.5, 0.5 }, out[8], xb[4], tb[2];
    ck_assert_int_eq(sdflow_model_score(NULL, p, 2, x, t, out), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_logpdf(NULL, p, 2, x, t, out), SDFLOW_E_INVALID);
    ck_assert_int_eq(sdflow_model_sample(NULL, 0, 0, 2, out), SDFLOW_E_INVALID);
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 0, x, t, out), SDFLOW_E_INVALID, "n=0");
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 2, NULL, t, out), SDFLOW_E_INVALID, "x is NULL");
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 2, x, NULL, out), SDFLOW_E_INVALID, "t is NULL");
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 2, x, t, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_model_logpdf(g, p, 2, x, t, NULL), SDFLOW_E_INVALID, "logp is NULL");
    ck_assert_status_msg(ctx, sdflow_model_jacobian(g, p, 2, x, t, NULL), SDFLOW_E_INVALID, "jac is NULL");
    ck_assert_status_msg(ctx, sdflow_model_divergence(g, p, 2, x, t, NULL), SDFLOW_E_INVALID, "div is NULL");
    ck_assert_status_msg(ctx, sdflow_model_sample(g, 0, 0, 2, NULL), SDFLOW_E_INVALID, "out is NULL");
    ck_assert_status_msg(ctx, sdflow_model_sample(g, 0, 0, 0, out), SDFLOW_E_INVALID, "n=0");
    memcpy(xb, x, sizeof xb);
    xb[2] = NAN;
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 2, xb, t, out), SDFLOW_E_INVALID, "x[1][0] is NaN");
    memcpy(tb, t, sizeof tb);
    tb[1] = 1.5;
    ck_assert_status_msg(ctx, sdflow_model_score(g, p, 2, x, tb, out), SDFLOW_E_INVALID,
                         "t[1] = 1.5 is outside the process's valid range");
    tb[1] = 0;
    ck_assert_status_msg(ctx, sdflow_model_logpdf(g, p, 2, x, tb, out), SDFLOW_E_INVALID, "t[1] = 0 is outside");
    ck_assert_status_msg(ctx, sdflow_model_score(g, NULL, 2, x, tb, out), SDFLOW_E_INVALID,
                         "t[1] = 0: the smoothing level must be > 0");
    tb[1] = NAN;
    ck_assert_status_msg(ctx, sdflow_model_jacobian(g, p, 2, x, tb, out), SDFLOW_E_INVALID, "t[1] is NaN");
    ck_assert_status_msg(ctx, sdflow_model_eval(g, p, 2, x, t, (sdflow_output)5, out), SDFLOW_E_INVALID,
                         "unknown output kind 5");
    ck_assert_status_msg(ctx, sdflow_model_eval(g, p, 2, x, t, (sdflow_output)-1, out), SDFLOW_E_INVALID,
                         "unknown output kind -1");
    /* options: the analytic models have none */
    long v;
    ck_assert_status_msg(ctx, sdflow_model_set_int(g, SDFLOW_OPT_BLOCK_Q, 8), SDFLOW_E_UNSUPPORTED, "block_q");
    ck_assert_int_eq(sdflow_model_get_int(g, SDFLOW_OPT_BLOCK_Q, &v), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_model_get_int(g, SDFLOW_OPT_BLOCK_Q, NULL), SDFLOW_E_INVALID);
    /* names */
    sdflow_model_kind kk;
    ck_assert_str_eq(sdflow_model_kind_name(SDFLOW_MODEL_GMM), "gmm");
    ck_assert_ptr_null(sdflow_model_kind_name((sdflow_model_kind)0));
    ck_assert_int_eq(sdflow_model_kind_from_name("callback", &kk), SDFLOW_OK);
    ck_assert_int_eq(kk, SDFLOW_MODEL_CALLBACK);
    ck_assert_int_eq(sdflow_model_kind_from_name("gmmx", &kk), SDFLOW_E_UNSUPPORTED);
    ck_assert_int_eq(sdflow_model_get_kind(NULL), 0);
    ck_assert_uint_eq(sdflow_model_dim(NULL), 0);
    sdflow_model_free(NULL);
    sdflow_process_free(p);
    sdflow_model_free(g);
    free_mixture(&mx);
    sdflow_ctx_free(ctx);
#undef RESET
}
END_TEST

START_TEST(test_threads_bit_identical)
{
    sdflow_ctx *ctx = test_ctx(17);
    mixture mx = make_mixture(ctx, 4, 8, 700);
    sdflow_model *g = model_of(ctx, &mx);
    sdflow_process *p = process_of(ctx, &pcases[0]);
    enum { N = 1000, D = 8 };
    double *x = malloc(N * D * sizeof *x), *t = malloc(N * sizeof *t);
    double *r[2][4];
    ck_assert_int_eq(sdflow_rng_normal(ctx, 2, 0, N, D, x), SDFLOW_OK);
    for (int i = 0; i < N; i++)
        t[i] = 0.01 + 0.98 * (double)i / N;
    for (int th = 0; th < 2; th++) {
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, th + 1), SDFLOW_OK);
        r[th][0] = malloc(N * D * sizeof(double));
        r[th][1] = malloc(N * sizeof(double));
        r[th][2] = malloc(N * D * D * sizeof(double));
        r[th][3] = malloc(N * sizeof(double));
        ck_assert_int_eq(sdflow_model_score(g, p, N, x, t, r[th][0]), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_logpdf(g, p, N, x, t, r[th][1]), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_jacobian(g, p, N, x, t, r[th][2]), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_divergence(g, p, N, x, t, r[th][3]), SDFLOW_OK);
    }
    ck_assert_msg(memcmp(r[0][0], r[1][0], N * D * sizeof(double)) == 0, "scores differ between 1 and 2 threads");
    ck_assert_msg(memcmp(r[0][1], r[1][1], N * sizeof(double)) == 0, "log-densities differ");
    ck_assert_msg(memcmp(r[0][2], r[1][2], N * D * D * sizeof(double)) == 0, "Jacobians differ");
    ck_assert_msg(memcmp(r[0][3], r[1][3], N * sizeof(double)) == 0, "divergences differ");
    /* a sub-batch gives the same rows (no dependence on the batch) */
    double part[10 * D];
    ck_assert_int_eq(sdflow_model_score(g, p, 10, x + 500 * D, t + 500, part), SDFLOW_OK);
    ck_assert(memcmp(part, r[0][0] + 500 * D, sizeof part) == 0);
    for (int th = 0; th < 2; th++)
        for (int k = 0; k < 4; k++)
            free(r[th][k]);
    free(x);
    free(t);
    sdflow_process_free(p);
    sdflow_model_free(g);
    free_mixture(&mx);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- allocation failure ---------------------------------------------------------- */

static const double wl_w[3] = { 0.25, 0.25, 0.5 }, wl_mu[6] = { -1, 0, 1, 0, 0, 2 },
                    wl_S[12] = { 1, 0.3, 0.3, 1, 0.5, 0.1, 0.1, 0.8, 2, -0.4, -0.4, 1 };

static sdflow_status gmm_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *g = NULL, *ga = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    enum { N = 70 }; /* >= 64 rows: two threads really run */
    double x[N * 2], t[N], s[N * 2], lp[N], J[N * 4], dv[N];
    for (int i = 0; i < N; i++) {
        x[2 * i] = 0.1 * i - 3;
        x[2 * i + 1] = 0.05 * i;
        t[i] = 0.1 + 0.01 * i;
    }
    if (!(st = sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, 2)) &&
        !(st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p)) &&
        !(st = sdflow_model_create_gmm(ctx, 3, 2, wl_w, wl_mu, wl_S, &g)) &&
        !(st = sdflow_model_create_gaussian(ctx, 2, wl_mu, wl_S, &ga)) &&
        !(st = sdflow_model_score(g, p, N, x, t, s)) && !(st = sdflow_model_logpdf(g, p, N, x, t, lp)) &&
        !(st = sdflow_model_jacobian(g, p, N, x, t, J)) && !(st = sdflow_model_divergence(g, p, N, x, t, dv)) &&
        !(st = sdflow_model_eval(g, p, N, x, t, SDFLOW_OUT_V, s)) && !(st = sdflow_model_sample(g, 1, 0, N, s)) &&
        !(st = sdflow_model_logpdf(ga, NULL, N, x, t, lp)))
        st = sdflow_model_sample(ga, 1, 0, N, s);
    sdflow_model_free(g);
    sdflow_model_free(ga);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

static sdflow_status callback_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_process *p = NULL;
    sdflow_model *m = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double x[6] = { 1, 2, 3, 4, 5, 6 }, t[2] = { 0.2, 0.7 }, out[6], J[18], dv[2];
    if (!(st = sdflow_process_create(ctx, SDFLOW_PROCESS_VE, &p)) &&
        !(st = sdflow_model_create_callback(ctx, 3, SDFLOW_OUT_EPS, diag_fn, NULL, &m)) &&
        !(st = sdflow_model_set_callback_jvp(m, diag_jvp, NULL)) &&
        !(st = sdflow_model_eval(m, p, 2, x, t, SDFLOW_OUT_SCORE, out)) &&
        !(st = sdflow_model_jacobian(m, p, 2, x, t, J)))
        st = sdflow_model_divergence(m, p, 2, x, t, dv);
    sdflow_model_free(m);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_model_alloc_failures)
{
    check_all_alloc_failures(gmm_workload);
    check_all_alloc_failures(callback_workload);
}
END_TEST

Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gmm_oracle);
    tcase_add_test(tc, test_gaussian_logdet_wide_scales);
    tcase_add_test(tc, test_gmm_finite_differences);
    tcase_add_test(tc, test_output_kinds);
    tcase_add_test(tc, test_gmm_sample);
    tcase_add_test(tc, test_callback);
    tcase_add_test(tc, test_divergence_blocks);
    tcase_add_test(tc, test_model_bad_input);
    tcase_add_test(tc, test_threads_bit_identical);
    tcase_add_test(tc, test_model_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
