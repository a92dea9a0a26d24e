/* SPDX-License-Identifier: MIT */
/* Stochastic interpolants (algorithms.md §8, oracle §12.d): schedules as
 * process kinds, batch couplings (exact assignment, Sinkhorn), the
 * INTERPOLANT sampler and the interpolant likelihood. Reference formulas
 * are written out here from the docs, independently of src/. */
#include "testutil.h"

#define PI 3.14159265358979323846

/* ---- schedules ------------------------------------------------------------ */

/* a, b, gamma and derivatives written from §8 and the unifying framework */
static void ref_interp(int trig, double eps, double t, double r[6])
{
    double a = trig ? cos(PI * t / 2) : 1 - t, b = trig ? sin(PI * t / 2) : t;
    double da = trig ? -PI / 2 * sin(PI * t / 2) : -1, db = trig ? PI / 2 * cos(PI * t / 2) : 1;
    double g = sqrt(eps * t * (1 - t));
    double dg = g > 0 ? eps * (1 - 2 * t) / (2 * g) : 0;
    r[0] = a, r[1] = b, r[2] = da, r[3] = db, r[4] = g, r[5] = dg;
}

START_TEST(test_interp_schedules)
{
    sdflow_ctx *ctx = test_ctx(1);
    for (int trig = 0; trig < 2; trig++)
        for (int e = 0; e < 2; e++) {
            double eps = e ? 0.7 : 0.0;
            sdflow_process *p = NULL;
            ck_assert_int_eq(
                sdflow_process_create(ctx, trig ? SDFLOW_PROCESS_INTERP_TRIG : SDFLOW_PROCESS_INTERP_LINEAR, &p),
                SDFLOW_OK);
            ck_assert(sdflow_process_is_interpolant(p));
            if (e)
                ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_INTERP_EPS, eps), SDFLOW_OK);
            double lo, hi;
            ck_assert_int_eq(sdflow_process_time_range(p, &lo, &hi), SDFLOW_OK);
            ck_assert(lo == 0 && hi == 1); /* closed interval: t = 0 base, t = 1 data */
            double t[7] = { 0, 1e-9, 0.1, 0.5, 0.77, 1 - 1e-9, 1 }, v[6][7];
            ck_assert_int_eq(sdflow_process_interpolant(p, 7, t, v[0], v[1], v[2], v[3], v[4], v[5]), SDFLOW_OK);
            for (int i = 0; i < 7; i++) {
                double r[6];
                ref_interp(trig, eps, t[i], r);
                for (int k = 0; k < 6; k++)
                    ck_assert_msg(fabs(v[k][i] - r[k]) <= 1e-14 * (1 + fabs(r[k])), "trig=%d eps=%g t=%g k=%d: %.17g vs %.17g",
                                  trig, eps, t[i], k, v[k][i], r[k]);
            }
            /* boundary values exactly */
            ck_assert(v[0][0] == 1 && v[1][0] == 0 && v[0][6] == 0 && v[1][6] == 1 && v[4][0] == 0 && v[4][6] == 0);
            /* diffusion view: alpha = b, sigma^2 = a^2 + gamma^2; f = b'/b; g^2 = 2 f sigma^2 - (sigma^2)' */
            double ti[3] = { 0.1, 0.5, 0.9 }, al[3], sg[3], f[3], g[3];
            ck_assert_int_eq(sdflow_process_coefficients(p, 3, ti, al, sg, f, g), SDFLOW_OK);
            for (int i = 0; i < 3; i++) {
                double r[6];
                ref_interp(trig, eps, ti[i], r);
                double s2 = r[0] * r[0] + r[4] * r[4], ds2 = 2 * r[0] * r[2] + eps * (1 - 2 * ti[i]);
                ck_assert(fabs(al[i] - r[1]) < 1e-14 && fabs(sg[i] - sqrt(s2)) < 1e-14);
                ck_assert(fabs(f[i] - r[3] / r[1]) < 1e-12 * fabs(f[i]));
                ck_assert(fabs(g[i] * g[i] - (2 * f[i] * s2 - ds2)) < 1e-12 * (1 + g[i] * g[i]));
            }
            /* f, g are infinite at the base end: refused, alpha/sigma fine */
            double t0 = 0, a0, s0, f0;
            ck_assert_status_msg(ctx, sdflow_process_coefficients(p, 1, &t0, &a0, &s0, &f0, NULL), SDFLOW_E_INVALID,
                                 "infinite");
            ck_assert_int_eq(sdflow_process_coefficients(p, 1, &t0, &a0, &s0, NULL, NULL), SDFLOW_OK);
            ck_assert(a0 == 0 && s0 == 1);
            /* the noising SDE of an interpolant does not run forward in t */
            double x[2] = { 0, 0 };
            ck_assert_status_msg(ctx, sdflow_process_simulate(p, 0, 0, 1, 2, x, 0.1, 0.2, 2, x), SDFLOW_E_UNSUPPORTED,
                                 "interpolant");
            ck_assert_status_msg(ctx, sdflow_process_set_double(p, SDFLOW_PROC_T_MAX, 2.0), SDFLOW_E_INVALID, "[0, 1]");
            sdflow_process_free(p);
        }
    /* interp_eps belongs to the interpolant kinds; interpolant queries to them too */
    sdflow_process *vp = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp), SDFLOW_OK);
    ck_assert_status_msg(ctx, sdflow_process_set_double(vp, SDFLOW_PROC_INTERP_EPS, 0.5), SDFLOW_E_INVALID,
                         "interpolant");
    double t1 = 0.5, a1;
    ck_assert_status_msg(ctx, sdflow_process_interpolant(vp, 1, &t1, &a1, NULL, NULL, NULL, NULL, NULL),
                         SDFLOW_E_INVALID, "not an interpolant");
    ck_assert(!sdflow_process_is_interpolant(vp) && !sdflow_process_is_interpolant(NULL));
    sdflow_process_kind k;
    ck_assert_int_eq(sdflow_process_kind_from_name("interp_trig", &k), SDFLOW_OK);
    ck_assert_int_eq(k, SDFLOW_PROCESS_INTERP_TRIG);
    ck_assert_str_eq(sdflow_process_kind_name(SDFLOW_PROCESS_INTERP_LINEAR), "interp_linear");
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
}
END_TEST

/* The VELOCITY output of a gaussian data model under an interpolant process
 * is the exact interpolant velocity of a N(0, I) base (§12.d with m0 = 0,
 * S0 = I, plus gamma^2 I for the stochastic form). */
START_TEST(test_interp_velocity_conversion)
{
    sdflow_ctx *ctx = test_ctx(2);
    const double m1[2] = { 1.0, -0.5 }, S1[4] = { 2.0, 0.6, 0.6, 0.5 };
    sdflow_model *g = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m1, S1, &g), SDFLOW_OK);
    for (int trig = 0; trig < 2; trig++)
        for (int e = 0; e < 2; e++) {
            double eps = e ? 0.4 : 0;
            sdflow_process *p = NULL;
            ck_assert_int_eq(
                sdflow_process_create(ctx, trig ? SDFLOW_PROCESS_INTERP_TRIG : SDFLOW_PROCESS_INTERP_LINEAR, &p),
                SDFLOW_OK);
            ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_INTERP_EPS, eps), SDFLOW_OK);
            double x[2] = { 0.3, 1.1 }, t = 0.37, v[2];
            ck_assert_int_eq(sdflow_model_eval(g, p, 1, x, &t, SDFLOW_OUT_VELOCITY, v), SDFLOW_OK);
            double r[6];
            ref_interp(trig, eps, t, r);
            /* Sigma_t = a^2 I + b^2 S1 + gamma^2 I; v = b' m1 + (a a' I + b b' S1 + gamma gamma' I) Sigma^-1 (x - b m1) */
            double a = r[0], b = r[1], da = r[2], db = r[3], gg = r[4] * r[4], ggd = r[4] * r[5];
            double S[4] = { a * a + gg + b * b * S1[0], b * b * S1[1], b * b * S1[2], a * a + gg + b * b * S1[3] };
            double det = S[0] * S[3] - S[1] * S[2];
            double Si[4] = { S[3] / det, -S[1] / det, -S[2] / det, S[0] / det };
            double M[4] = { a * da + ggd + b * db * S1[0], b * db * S1[1], b * db * S1[2], a * da + ggd + b * db * S1[3] };
            double y[2] = { x[0] - b * m1[0], x[1] - b * m1[1] };
            double z[2] = { Si[0] * y[0] + Si[1] * y[1], Si[2] * y[0] + Si[3] * y[1] };
            double want[2] = { db * m1[0] + M[0] * z[0] + M[1] * z[1], db * m1[1] + M[2] * z[0] + M[3] * z[1] };
            for (int j = 0; j < 2; j++)
                ck_assert_msg(fabs(v[j] - want[j]) < 1e-12 * (1 + fabs(want[j])), "trig=%d eps=%g: v[%d] %.17g vs %.17g",
                              trig, eps, j, v[j], want[j]);
            /* at t = 0 the score -> velocity conversion divides by b = 0 */
            double t0 = 0;
            ck_assert_status_msg(ctx, sdflow_model_eval(g, p, 1, x, &t0, SDFLOW_OUT_VELOCITY, v), SDFLOW_E_NUMERIC,
                                 "undefined");
            sdflow_process_free(p);
        }
    sdflow_model_free(g);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- couplings -------------------------------------------------------------- */

/* Brute force over all n! permutations (Heap's algorithm). */
static double brute_assignment(size_t n, const double *c)
{
    size_t perm[8], cnt[8] = { 0 };
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    double best = INFINITY;
    for (;;) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += c[i * n + perm[i]];
        best = fmin(best, s);
        size_t i = 1;
        while (i < n && cnt[i] >= i)
            cnt[i++] = 0;
        if (i >= n)
            break;
        size_t j = i % 2 ? cnt[i] : 0, tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
        cnt[i]++;
    }
    return best;
}

START_TEST(test_assignment_brute_force)
{
    sdflow_ctx *ctx = test_ctx(3);
    uint64_t state = 12345;
    for (size_t n = 1; n <= 8; n++)
        for (int rep = 0; rep < 12; rep++) {
            double c[64];
            for (size_t k = 0; k < n * n; k++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                double u = (double)(state >> 11) / 9007199254740992.0;
                /* half the cases integer costs 0..3: many ties and equal optima */
                c[k] = rep % 2 ? floor(4 * u) : u * 10 - 3;
            }
            size_t perm[8];
            double total;
            ck_assert_int_eq(sdflow_assignment(ctx, n, c, perm, &total), SDFLOW_OK);
            unsigned seen = 0;
            double s = 0;
            for (size_t i = 0; i < n; i++) {
                ck_assert(perm[i] < n && !(seen >> perm[i] & 1));
                seen |= 1u << perm[i];
                s += c[i * n + perm[i]];
            }
            double best = brute_assignment(n, c);
            ck_assert_msg(fabs(total - best) <= 1e-12 * (1 + fabs(best)) && s == total, "n=%zu rep=%d: %.17g vs %.17g",
                          n, rep, total, best);
        }
    double bad[4] = { 0, NAN, 1, 2 };
    size_t perm[2];
    ck_assert_status_msg(ctx, sdflow_assignment(ctx, 2, bad, perm, NULL), SDFLOW_E_INVALID, "NaN");
    sdflow_ctx_free(ctx);
}
END_TEST

START_TEST(test_sinkhorn)
{
    sdflow_ctx *ctx = test_ctx(4);
    enum { N = 24, M = 17 };
    double c[N * M], plan[N * M];
    uint64_t state = 99;
    for (int k = 0; k < N * M; k++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        c[k] = 5.0 * (double)(state >> 11) / 9007199254740992.0;
    }
    /* marginals to tolerance, down to eps = 0.004 of the cost range (log domain: exp(-C/eps) ~ e^-250 does not underflow the potentials) */
    const double epss[3] = { 1.0, 0.1, 0.02 };
    for (int e = 0; e < 3; e++) {
        double err;
        ck_assert_int_eq(sdflow_sinkhorn(ctx, N, M, c, epss[e], 100000, 1e-9, plan, &err), SDFLOW_OK);
        ck_assert(err <= 1e-9);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < M; j++)
                s += plan[i * M + j];
            worst = fmax(worst, fabs(s - 1.0 / N));
        }
        for (int j = 0; j < M; j++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                s += plan[i * M + j];
            worst = fmax(worst, fabs(s - 1.0 / M));
        }
        ck_assert_msg(worst <= 1e-9, "eps=%g: marginal error %g", epss[e], worst);
    }
    /* eps -> 0: <P, C> decreases to the exact OT cost (square case: assignment / n) */
    enum { S = 12 };
    double cs[S * S], ps[S * S], prev = INFINITY, exact;
    for (int k = 0; k < S * S; k++)
        cs[k] = c[k] / 5.0; /* costs in [0, 1) */
    size_t perm[S];
    ck_assert_int_eq(sdflow_assignment(ctx, S, cs, perm, &exact), SDFLOW_OK);
    exact /= S;
    const double es[4] = { 0.3, 0.1, 0.03, 0.01 };
    double gap = 0;
    for (int e = 0; e < 4; e++) {
        ck_assert_int_eq(sdflow_sinkhorn(ctx, S, S, cs, es[e], 200000, 1e-9, ps, NULL), SDFLOW_OK);
        double cost = 0;
        for (int k = 0; k < S * S; k++)
            cost += ps[k] * cs[k];
        gap = cost - exact;
        test_note("sinkhorn eps=%g: <P,C> - OT = %.3e", es[e], gap);
        ck_assert(gap >= -1e-9 && cost <= prev + 1e-12);
        /* entropic gap <= eps (H(P_eps) - H(P*)) <= eps (log n^2 - log n) */
        ck_assert_msg(gap <= es[e] * log((double)S), "gap %g at eps=%g", gap, es[e]);
        prev = cost;
    }
    ck_assert(gap < 2e-3); /* measured 1.4e-3 at eps = 0.01 */
    double err;
    ck_assert_status_msg(ctx, sdflow_sinkhorn(ctx, S, S, cs, 0.0, 10, 1e-9, ps, &err), SDFLOW_E_INVALID, "eps");
    ck_assert_status_msg(ctx, sdflow_sinkhorn(ctx, S, S, cs, 1e-3, 1, 1e-14, ps, &err), SDFLOW_E_NUMERIC,
                         "iterations");
    sdflow_ctx_free(ctx);
}
END_TEST

/* W2^2 between N(m0, S0) and N(m1, S1) for diagonal covariances. */
static double w2sq_diag(const double *m0, const double *s0, const double *m1, const double *s1, int d)
{
    double w = 0;
    for (int k = 0; k < d; k++)
        w += (m0[k] - m1[k]) * (m0[k] - m1[k]) + s0[k] + s1[k] - 2 * sqrt(s0[k] * s1[k]);
    return w;
}

START_TEST(test_coupling_kinetic_energy)
{
    sdflow_ctx *ctx = test_ctx(5);
    /* x0 ~ N(0, I), x1 ~ N((1, 0), diag(4, 0.25)): W2^2 = 1 + 2 + 4.25 - 2 (2 + 0.5) = 2.25;
     * independent pairs: E|x1 - x0|^2 = 1 + 2 + 4.25 = 7.25 */
    const double m0[2] = { 0, 0 }, s0[2] = { 1, 1 }, m1[2] = { 1, 0 }, s1[2] = { 4, 0.25 };
    const double S1[4] = { 4, 0, 0, 0.25 };
    sdflow_model *g1 = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m1, S1, &g1), SDFLOW_OK);
    double w2 = w2sq_diag(m0, s0, m1, s1, 2);
    enum { B = 256, REPS = 8 };
    double *x0 = malloc(B * 2 * sizeof *x0), *x1 = malloc(B * 2 * sizeof *x1);
    size_t *pair = malloc(B * sizeof *pair);
    double ke[3][REPS];
    for (int r = 0; r < REPS; r++) {
        const double I2[4] = { 1, 0, 0, 1 };
        sdflow_model *g0 = NULL;
        ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m0, I2, &g0), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(g0, 100 + (uint64_t)r, 0, B, x0), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(g1, 200 + (uint64_t)r, 0, B, x1), SDFLOW_OK);
        sdflow_model_free(g0);
        for (int kind = 0; kind < 3; kind++) {
            /* kinetic energy of the linear interpolant of the pairs: E|dI/dt|^2 = E|x1 - x0|^2 */
            ck_assert_int_eq(sdflow_coupling_pair(ctx, (sdflow_coupling)kind, B, 2, x0, x1, 0.05, 7, (uint64_t)r * B,
                                                  pair, &ke[kind][r]),
                             SDFLOW_OK);
            if (kind == SDFLOW_COUPLING_OT_EXACT) { /* a permutation: each x1 used once */
                unsigned char seen[B] = { 0 };
                for (int i = 0; i < B; i++) {
                    ck_assert(pair[i] < B && !seen[pair[i]]);
                    seen[pair[i]] = 1;
                }
            }
        }
    }
    double mi = vec_mean(ke[0], REPS, 1), mo = vec_mean(ke[1], REPS, 1), ms = vec_mean(ke[2], REPS, 1);
    double se_i = sqrt(vec_var(ke[0], REPS, 1) / REPS);
    test_note("coupling kinetic energy (B=%d, %d batches): W2^2 = %.4f, independent %.4f (+- %.4f), "
              "exact OT %.4f (%+.2f%%), Sinkhorn(0.05) %.4f (%+.2f%%)",
              B, REPS, w2, mi, se_i, mo, 100 * (mo / w2 - 1), ms, 100 * (ms / w2 - 1));
    /* independent pairs: E|x1 - x0|^2 = 7.25 within 4 SE */
    ck_assert_msg(fabs(mi - 7.25) < 4 * se_i, "independent %g vs 7.25 (se %g)", mi, se_i);
    /* exact minibatch OT: within 5% of W2^2 (a batch optimum lies at or below the
     * population one in expectation minus a positive finite-B bias; measured above) */
    ck_assert_msg(fabs(mo / w2 - 1) < 0.05, "OT kinetic energy %g vs W2^2 %g", mo, w2);
    /* entropic pairs (eps = 0.05 x mean cost) are blurred toward independence: between the two */
    ck_assert_msg(ms > mo && ms < 0.5 * mi, "Sinkhorn kinetic energy %g vs OT %g, independent %g", ms, mo, mi);
    ck_assert(mi > 2 * mo);
    free(x0);
    free(x1);
    free(pair);
    sdflow_model_free(g1);
    sdflow_ctx_free(ctx);
}
END_TEST

static sdflow_status coupling_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    double x0[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }, x1[8] = { 7, 6, 5, 4, 3, 2, 1, 0 }, plan[16], c;
    double cost[16]; /* 4 x 4 squared distances of x0 to x1 */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            cost[4 * i + j] = (x0[2 * i] - x1[2 * j]) * (x0[2 * i] - x1[2 * j]) +
                              (x0[2 * i + 1] - x1[2 * j + 1]) * (x0[2 * i + 1] - x1[2 * j + 1]);
    size_t pair[4];
    if (!(st = sdflow_coupling_pair(ctx, SDFLOW_COUPLING_OT_EXACT, 4, 2, x0, x1, 0, 0, 0, pair, &c)) &&
        !(st = sdflow_coupling_pair(ctx, SDFLOW_COUPLING_OT_SINKHORN, 4, 2, x0, x1, 0.1, 0, 0, pair, &c)))
        st = sdflow_sinkhorn(ctx, 4, 4, cost, 0.5, 1000, 1e-6, plan, NULL);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_coupling_alloc_failures)
{
    check_all_alloc_failures(coupling_workload);
}
END_TEST


/* ---- Gaussian -> Gaussian with the closed-form velocity (§12.d) ---------------- */

/* x0 ~ N(m0, S0), x1 ~ N(m1, S1) (non-commuting 2 x 2 covariances),
 * x_t = a x0 + b x1 + gamma z: mu_t = a m0 + b m1, Sigma_t = a^2 S0 + b^2 S1 + gamma^2 I,
 * v = mu_t' + M_t Sigma_t^-1 (x - mu_t), M_t = a a' S0 + b b' S1 + gamma gamma' I,
 * eta = E[z | x_t] = gamma Sigma_t^-1 (x - mu_t). */
typedef struct gg {
    int trig;
    double eps; /* process interp_eps */
    double m0[2], S0[4], m1[2], S1[4];
    long calls;
} gg;

static const gg GG_INIT = { 1, 0.0, { -1.0, 0.5 }, { 1.0, 0.3, 0.3, 0.6 }, { 2.0, -1.0 }, { 0.5, -0.2, -0.2, 1.5 }, 0 };

typedef struct gg_t {
    double mu[2], dmu[2], Si[4], M[4], gamma, logdet, S[4];
} gg_t;

static void gg_at(const gg *g, double t, gg_t *o)
{
    double r[6];
    ref_interp(g->trig, g->eps, t, r);
    double a = r[0], b = r[1], da = r[2], db = r[3], g2 = g->eps * t * (1 - t), ggd = g->eps * (1 - 2 * t) / 2;
    for (int k = 0; k < 2; k++) {
        o->mu[k] = a * g->m0[k] + b * g->m1[k];
        o->dmu[k] = da * g->m0[k] + db * g->m1[k];
    }
    for (int k = 0; k < 4; k++) {
        o->S[k] = a * a * g->S0[k] + b * b * g->S1[k] + (k == 0 || k == 3 ? g2 : 0);
        o->M[k] = a * da * g->S0[k] + b * db * g->S1[k] + (k == 0 || k == 3 ? ggd : 0);
    }
    double det = o->S[0] * o->S[3] - o->S[1] * o->S[2];
    o->Si[0] = o->S[3] / det, o->Si[1] = -o->S[1] / det, o->Si[2] = -o->S[2] / det, o->Si[3] = o->S[0] / det;
    o->logdet = log(det);
    o->gamma = sqrt(g2);
}

static int gg_velocity(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    gg *g = user;
    (void)d;
    g->calls += (long)n;
    for (size_t i = 0; i < n; i++) {
        gg_t o;
        gg_at(g, t[i], &o);
        double y[2] = { x[2 * i] - o.mu[0], x[2 * i + 1] - o.mu[1] };
        double z[2] = { o.Si[0] * y[0] + o.Si[1] * y[1], o.Si[2] * y[0] + o.Si[3] * y[1] };
        out[2 * i] = o.dmu[0] + o.M[0] * z[0] + o.M[1] * z[1];
        out[2 * i + 1] = o.dmu[1] + o.M[2] * z[0] + o.M[3] * z[1];
    }
    return 0;
}

/* J_v = M Sigma^-1 */
static int gg_velocity_jvp(size_t n, size_t d, const double *x, const double *t, const double *v, double *jv,
                           void *user)
{
    gg *g = user;
    (void)d, (void)x;
    for (size_t i = 0; i < n; i++) {
        gg_t o;
        gg_at(g, t[i], &o);
        double z[2] = { o.Si[0] * v[2 * i] + o.Si[1] * v[2 * i + 1], o.Si[2] * v[2 * i] + o.Si[3] * v[2 * i + 1] };
        jv[2 * i] = o.M[0] * z[0] + o.M[1] * z[1];
        jv[2 * i + 1] = o.M[2] * z[0] + o.M[3] * z[1];
    }
    return 0;
}

static int gg_denoiser(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    gg *g = user;
    (void)d;
    for (size_t i = 0; i < n; i++) {
        gg_t o;
        gg_at(g, t[i], &o);
        double y[2] = { x[2 * i] - o.mu[0], x[2 * i + 1] - o.mu[1] };
        out[2 * i] = o.gamma * (o.Si[0] * y[0] + o.Si[1] * y[1]);
        out[2 * i + 1] = o.gamma * (o.Si[2] * y[0] + o.Si[3] * y[1]);
    }
    return 0;
}

static double gg_logpdf(const gg *g, double t, const double *x)
{
    gg_t o;
    gg_at(g, t, &o);
    double y[2] = { x[0] - o.mu[0], x[1] - o.mu[1] };
    double q = y[0] * (o.Si[0] * y[0] + o.Si[1] * y[1]) + y[1] * (o.Si[2] * y[0] + o.Si[3] * y[1]);
    return -log(2 * PI) - 0.5 * o.logdet - 0.5 * q;
}

/* int_0^1 E|v(t, x_t)|^2 dt = int |mu'|^2 + tr(M Sigma^-1 M) dt (Simpson, 2000 panels) */
static double gg_kinetic(const gg *g)
{
    int N = 2000;
    double s = 0;
    for (int k = 0; k <= N; k++) {
        gg_t o;
        gg_at(g, (double)k / N, &o);
        double A[4] = { o.M[0] * o.Si[0] + o.M[1] * o.Si[2], o.M[0] * o.Si[1] + o.M[1] * o.Si[3],
                        o.M[2] * o.Si[0] + o.M[3] * o.Si[2], o.M[2] * o.Si[1] + o.M[3] * o.Si[3] };
        double tr = A[0] * o.M[0] + A[1] * o.M[2] + A[2] * o.M[1] + A[3] * o.M[3];
        double f = o.dmu[0] * o.dmu[0] + o.dmu[1] * o.dmu[1] + tr;
        s += f * (k == 0 || k == N ? 1 : k % 2 ? 4 : 2);
    }
    return s / (3.0 * N);
}

typedef struct gg_objs {
    sdflow_ctx *ctx;
    sdflow_process *p;
    sdflow_model *vel, *den, *base;
} gg_objs;

static gg_objs gg_setup(gg *g, uint64_t seed)
{
    gg_objs o = { test_ctx(seed), NULL, NULL, NULL, NULL };
    ck_assert_int_eq(
        sdflow_process_create(o.ctx, g->trig ? SDFLOW_PROCESS_INTERP_TRIG : SDFLOW_PROCESS_INTERP_LINEAR, &o.p),
        SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_set_double(o.p, SDFLOW_PROC_INTERP_EPS, g->eps), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_callback(o.ctx, 2, SDFLOW_OUT_VELOCITY, gg_velocity, g, &o.vel), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_callback_jvp(o.vel, gg_velocity_jvp, g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_callback(o.ctx, 2, SDFLOW_OUT_EPS, gg_denoiser, g, &o.den), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_gaussian(o.ctx, 2, g->m0, g->S0, &o.base), SDFLOW_OK);
    return o;
}

static void gg_teardown(gg_objs *o)
{
    sdflow_model_free(o->vel);
    sdflow_model_free(o->den);
    sdflow_model_free(o->base);
    sdflow_process_free(o->p);
    sdflow_ctx_free(o->ctx);
}

/* Sample mean and covariance against N(m, S) within 4 SE: mean SE sqrt(S_kk/n),
 * variance SE S_kk sqrt(2/(n-1)), covariance SE sqrt((S_00 S_11 + S_01^2)/n). */
static void check_moments(const double *x, size_t n, const double *m, const double *S, double extra, const char *what)
{
    double mu[2] = { vec_mean(x, n, 2), vec_mean(x + 1, n, 2) }, C[3] = { 0, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        double a = x[2 * i] - mu[0], b = x[2 * i + 1] - mu[1];
        C[0] += a * a, C[1] += a * b, C[2] += b * b;
    }
    for (int k = 0; k < 3; k++)
        C[k] /= (double)(n - 1);
    double nn = (double)n;
    for (int k = 0; k < 2; k++) {
        double se = sqrt(S[3 * k] / nn), z = (mu[k] - m[k]) / se;
        test_note("%s: mean[%d] %.4f vs %.4f (z = %+.2f)", what, k, mu[k], m[k], z);
        ck_assert_msg(fabs(mu[k] - m[k]) < 4 * se + extra, "%s: mean[%d] %g vs %g (se %g)", what, k, mu[k], m[k], se);
    }
    const double want[3] = { S[0], S[1], S[3] };
    const double se[3] = { S[0] * sqrt(2 / (nn - 1)), sqrt((S[0] * S[3] + S[1] * S[1]) / nn), S[3] * sqrt(2 / (nn - 1)) };
    for (int k = 0; k < 3; k++) {
        test_note("%s: cov[%d] %.4f vs %.4f (z = %+.2f)", what, k, C[k], want[k], (C[k] - want[k]) / se[k]);
        ck_assert_msg(fabs(C[k] - want[k]) < 4 * se[k] + extra, "%s: cov[%d] %g vs %g (se %g)", what, k, C[k], want[k],
                      se[k]);
    }
}

START_TEST(test_interp_sampler_gaussian)
{
    for (int trig = 0; trig < 2; trig++) {
        gg g = GG_INIT;
        g.trig = trig;
        gg_objs o = gg_setup(&g, 11);
        sdflow_sampler *s = NULL;
        ck_assert_int_eq(sdflow_sampler_create(o.ctx, SDFLOW_SAMPLER_INTERPOLANT, &s), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_process(s, o.p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, o.vel), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, o.base), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_INTERP_KINETIC, 1), SDFLOW_OK);
        enum { N = 4000, NB = 8 };
        double *x = malloc(N * 2 * sizeof *x), *back = malloc(N * 2 * sizeof *back), *x0 = malloc(N * 2 * sizeof *x0);
        /* the kinetic energy per batch of N/NB samples: its spread over batches gives the SE */
        double ke[NB];
        for (int b = 0; b < NB; b++) {
            ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, (uint64_t)b * (N / NB)), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_run(s, N / NB, NULL, x + (size_t)b * (N / NB) * 2), SDFLOW_OK);
            ck_assert_int_eq(sdflow_sampler_get_stat(s, SDFLOW_STAT_KINETIC_ENERGY, &ke[b]), SDFLOW_OK);
        }
        check_moments(x, N, g.m1, g.S1, 0, trig ? "interp trig ODE" : "interp linear ODE");
        double kmean = vec_mean(ke, NB, 1), kse = sqrt(vec_var(ke, NB, 1) / NB), kref = gg_kinetic(&g);
        test_note("interp %s: kinetic energy %.4f +- %.4f, oracle int E|v|^2 = %.4f", trig ? "trig" : "linear", kmean,
                  kse, kref);
        ck_assert_msg(fabs(kmean - kref) < 4 * kse, "kinetic %g vs %g (se %g)", kmean, kref, kse);
        /* data -> base: transport back to t = 0 returns the base draws (DOPRI5 at 1e-10) */
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_RTOL, 1e-10), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_ATOL, 1e-10), SDFLOW_OK);
        double err = 0;
        /* the starts given explicitly (x_init: e.g. rows of a second data set) */
        ck_assert_int_eq(sdflow_model_sample(o.base, 5, 0, 64, x0), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, 64, x0, x), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_transport(s, 64, 1.0, 0.0, x, back), SDFLOW_OK);
        for (int k = 0; k < 128; k++)
            err = fmax(err, fabs(back[k] - x0[k]));
        test_note("interp %s: round trip base -> data -> base max error %.2e", trig ? "trig" : "linear", err);
        ck_assert_msg(err < 1e-7, "round trip error %g", err);
        /* fixed-step RK4 agrees with DOPRI5 */
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_SOLVER, SDFLOW_SOLVER_RK4), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 200), SDFLOW_OK);
        ck_assert_int_eq(sdflow_sampler_run(s, 64, x0, back), SDFLOW_OK);
        err = 0;
        for (int k = 0; k < 128; k++)
            err = fmax(err, fabs(back[k] - x[k]));
        ck_assert_msg(err < 1e-6, "RK4 vs DOPRI5 %g", err);
        sdflow_sampler_free(s);
        free(x);
        free(back);
        free(x0);
        gg_teardown(&o);
    }
}
END_TEST

START_TEST(test_interp_sampler_sde)
{
    gg g = GG_INIT;
    g.eps = 1.0; /* gamma^2 = t (1 - t) */
    gg_objs o = gg_setup(&g, 12);
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(o.ctx, SDFLOW_SAMPLER_INTERPOLANT, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, o.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, o.vel), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, o.base), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_DIFFUSION, 0.5), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 4, NULL, (double[8]){ 0 }), SDFLOW_E_STATE, "denoiser");
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_DENOISER, o.den), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 400), SDFLOW_OK);
    enum { N = 4000 };
    double *x = malloc(N * 2 * sizeof *x), *y = malloc(N * 2 * sizeof *y), *x1 = malloc(N * 2 * sizeof *x1);
    ck_assert_int_eq(sdflow_sampler_run(s, N, NULL, x), SDFLOW_OK);
    /* Euler-Maruyama weak error O(h) with h = 1/400: well inside the 4-SE band (cov SE ~ 2%) */
    check_moments(x, N, g.m1, g.S1, 0, "interp SDE base -> data");
    /* keyed noise: any split into runs gives the same samples bit for bit */
    ck_assert_int_eq(sdflow_sampler_run(s, 1000, NULL, y), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, 1000), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_run(s, 500, NULL, y + 2000), SDFLOW_OK);
    ck_assert(memcmp(x, y, 1500 * 2 * sizeof *x) == 0);
    /* data -> base with the backward SDE: data draws N(m1, S1) end as N(m0, S0) */
    sdflow_model *data = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(o.ctx, 2, g.m1, g.S1, &data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_sample(data, 77, 0, N, x1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_u64(s, SDFLOW_OPT_FIRST_INDEX, 0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_transport(s, N, 1.0, 0.0, x1, y), SDFLOW_OK);
    check_moments(y, N, g.m0, g.S0, 0, "interp SDE data -> base");
    sdflow_model_free(data);
    sdflow_sampler_free(s);
    free(x);
    free(y);
    free(x1);
    gg_teardown(&o);
}
END_TEST

START_TEST(test_interp_density_gaussian)
{
    for (int c = 0; c < 3; c++) {
        gg g = GG_INIT;
        g.trig = c != 1;
        g.eps = c == 2 ? 0.8 : 0.0;
        gg_objs o = gg_setup(&g, 13);
        double x[10][2];
        ck_assert_int_eq(sdflow_model_sample(o.base, 3, 0, 10, &x[0][0]), SDFLOW_OK);
        for (int i = 0; i < 10; i++)
            x[i][0] += 2.5, x[i][1] -= 1.0; /* points around the data mean */
        for (int kind = SDFLOW_DENSITY_PF_ODE_EXACT; kind <= SDFLOW_DENSITY_PF_ODE_HUTCHINSON; kind++) {
            sdflow_density *e = NULL;
            ck_assert_int_eq(sdflow_density_create(o.ctx, (sdflow_density_kind)kind, &e), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_process(e, o.p), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_model(e, o.vel), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_base(e, o.base), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_RTOL, 1e-11), SDFLOW_OK);
            ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_ATOL, 1e-11), SDFLOW_OK);
            if (kind == SDFLOW_DENSITY_PF_ODE_HUTCHINSON)
                ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 16), SDFLOW_OK);
            const double ts[2] = { 1.0, 0.5 };
            for (int k = 0; k < 2; k++) {
                ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_INTERP_TIME, ts[k]), SDFLOW_OK);
                double lp[10], se[10], worst = 0, zmax = 0;
                ck_assert_int_eq(sdflow_density_logpdf(e, 10, &x[0][0], lp, se), SDFLOW_OK);
                for (int i = 0; i < 10; i++) {
                    double ref = gg_logpdf(&g, ts[k], x[i]), err = fabs(lp[i] - ref);
                    worst = fmax(worst, err);
                    if (kind == SDFLOW_DENSITY_PF_ODE_EXACT) {
                        ck_assert_msg(err < 1e-6, "case %d t=%g: log rho %.12f vs %.12f", c, ts[k], lp[i], ref);
                    } else {
                        /* Hutchinson: unbiased, its own SE (16 probes) */
                        ck_assert(se[i] > 0);
                        zmax = fmax(zmax, err / se[i]);
                        ck_assert_msg(err < 4.5 * se[i] + 1e-6, "case %d t=%g: %g vs %g (se %g)", c, ts[k], lp[i], ref,
                                      se[i]);
                    }
                }
                test_note("interp density case %d (%s, eps=%g) %s t=%g: max |err| %.2e, max |err|/se %.2f", c,
                          g.trig ? "trig" : "linear", g.eps, kind == SDFLOW_DENSITY_PF_ODE_EXACT ? "exact" : "hutchinson",
                          ts[k], worst, zmax);
            }
            /* finite differences of the velocity instead of its JVP */
            if (kind == SDFLOW_DENSITY_PF_ODE_EXACT) {
                ck_assert_int_eq(sdflow_density_set_int(e, SDFLOW_OPT_DIVERGENCE, SDFLOW_DIV_FINITE_DIFF), SDFLOW_OK);
                ck_assert_int_eq(sdflow_density_set_double(e, SDFLOW_OPT_INTERP_TIME, 1.0), SDFLOW_OK);
                double lp[10];
                ck_assert_int_eq(sdflow_density_logpdf(e, 10, &x[0][0], lp, NULL), SDFLOW_OK);
                for (int i = 0; i < 10; i++)
                    ck_assert_msg(fabs(lp[i] - gg_logpdf(&g, 1.0, x[i])) < 1e-6, "FD divergence: %g", lp[i]);
            }
            sdflow_density_free(e);
        }
        gg_teardown(&o);
    }
}
END_TEST

START_TEST(test_interp_bad_use)
{
    gg g = GG_INIT;
    gg_objs o = gg_setup(&g, 14);
    sdflow_sampler *s = NULL, *ode = NULL;
    ck_assert_int_eq(sdflow_sampler_create(o.ctx, SDFLOW_SAMPLER_INTERPOLANT, &s), SDFLOW_OK);
    ck_assert_str_eq(sdflow_sampler_kind_name(SDFLOW_SAMPLER_INTERPOLANT), "interpolant");
    double x[4] = { 0, 0, 1, 1 }, y[4];
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, x, y), SDFLOW_E_STATE, "velocity");
    ck_assert_status_msg(o.ctx, sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, o.vel), SDFLOW_E_INVALID,
                         "SDFLOW_ROLE_VELOCITY");
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, o.vel), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, x, y), SDFLOW_E_STATE, "process");
    /* an interpolant sampler needs an interpolant process, a diffusion sampler a diffusion one */
    sdflow_process *vp = NULL;
    ck_assert_int_eq(sdflow_process_create(o.ctx, SDFLOW_PROCESS_VP, &vp), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, vp), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, x, y), SDFLOW_E_INVALID, "interpolant process");
    ck_assert_int_eq(sdflow_sampler_create(o.ctx, SDFLOW_SAMPLER_PF_ODE, &ode), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(ode, o.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(ode, SDFLOW_ROLE_SCORE, o.vel), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(ode, 2, x, y), SDFLOW_E_INVALID, "diffusion process");
    ck_assert_int_eq(sdflow_sampler_set_process(s, o.p), SDFLOW_OK);
    /* a run from the data end needs its start points */
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T0, 1.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T1, 0.0), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, NULL, y), SDFLOW_E_INVALID, "x_init");
    ck_assert_int_eq(sdflow_sampler_run(s, 2, x, y), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T0, 1.5), SDFLOW_E_INVALID, "interp_t0");
    ck_assert_status_msg(o.ctx, sdflow_sampler_set_double(s, SDFLOW_OPT_T_MIN, 0.5), SDFLOW_E_UNSUPPORTED, "t_min");
    /* a base of another dimension */
    sdflow_model *g3 = NULL;
    const double m3[3] = { 0, 0, 0 }, I3[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    ck_assert_int_eq(sdflow_model_create_gaussian(o.ctx, 3, m3, I3, &g3), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, g3), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, x, y), SDFLOW_E_INVALID, "base model");
    /* score-like velocity models are undefined at the base end t = 0 */
    sdflow_model *gd = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(o.ctx, 2, g.m1, g.S1, &gd), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, gd), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T0, 0.0), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T1, 1.0), SDFLOW_OK);
    ck_assert_status_msg(o.ctx, sdflow_sampler_run(s, 2, x, y), SDFLOW_E_NUMERIC, "undefined");
    /* Li-Yan does not apply to interpolants */
    sdflow_density *e = NULL;
    ck_assert_int_eq(sdflow_density_create(o.ctx, SDFLOW_DENSITY_LIYAN, &e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_process(e, o.p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_density_set_model(e, o.vel), SDFLOW_OK);
    double lp[2];
    ck_assert_status_msg(o.ctx, sdflow_density_logpdf(e, 2, x, lp, NULL), SDFLOW_E_UNSUPPORTED, "Li-Yan");
    sdflow_density_free(e);
    sdflow_model_free(gd);
    sdflow_model_free(g3);
    sdflow_process_free(vp);
    sdflow_sampler_free(ode);
    sdflow_sampler_free(s);
    gg_teardown(&o);
}
END_TEST

static sdflow_status interp_workload(const sdflow_allocator *a)
{
    sdflow_ctx *ctx = NULL;
    sdflow_status st = sdflow_ctx_create(&ctx, a);
    if (st)
        return st;
    gg g = GG_INIT;
    g.eps = 0.5;
    sdflow_process *p = NULL;
    sdflow_model *v = NULL, *den = NULL, *base = NULL;
    sdflow_sampler *s = NULL;
    sdflow_density *e = NULL;
    double x[8], y[8], lp[4];
    if (!(st = sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &p)) &&
        !(st = sdflow_process_set_double(p, SDFLOW_PROC_INTERP_EPS, g.eps)) &&
        !(st = sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_VELOCITY, gg_velocity, &g, &v)) &&
        !(st = sdflow_model_create_callback(ctx, 2, SDFLOW_OUT_EPS, gg_denoiser, &g, &den)) &&
        !(st = sdflow_model_create_gaussian(ctx, 2, g.m0, g.S0, &base)) &&
        !(st = sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &s)) && !(st = sdflow_sampler_set_process(s, p)) &&
        !(st = sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, v)) &&
        !(st = sdflow_sampler_set_model(s, SDFLOW_ROLE_BASE, base)) &&
        !(st = sdflow_sampler_set_model(s, SDFLOW_ROLE_DENOISER, den)) &&
        !(st = sdflow_sampler_set_int(s, SDFLOW_OPT_INTERP_KINETIC, 1)) && !(st = sdflow_sampler_run(s, 4, NULL, x)) &&
        !(st = sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_DIFFUSION, 0.3)) &&
        !(st = sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 3)) && !(st = sdflow_sampler_run(s, 4, NULL, y)) &&
        !(st = sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_HUTCHINSON, &e)) &&
        !(st = sdflow_density_set_process(e, p)) && !(st = sdflow_density_set_model(e, v)) &&
        !(st = sdflow_density_set_base(e, base)) && !(st = sdflow_density_set_int(e, SDFLOW_OPT_PROBES, 2)))
        st = sdflow_density_logpdf(e, 4, x, lp, NULL);
    sdflow_density_free(e);
    sdflow_sampler_free(s);
    sdflow_model_free(v);
    sdflow_model_free(den);
    sdflow_model_free(base);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
    return st;
}

START_TEST(test_interp_alloc_failures)
{
    check_all_alloc_failures(interp_workload);
}
END_TEST


/* An interpolant process round-trips through a model file (kind, interp_eps, t_eps = 0). */
START_TEST(test_interp_model_file)
{
    sdflow_ctx *ctx = test_ctx(15);
    const double m[2] = { 1, 2 }, S[4] = { 1, 0.2, 0.2, 0.5 };
    sdflow_model *g = NULL, *g2 = NULL;
    sdflow_process *p = NULL, *q = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m, S, &g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_LINEAR, &p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_set_double(p, SDFLOW_PROC_INTERP_EPS, 0.25), SDFLOW_OK);
    size_t size = 0;
    ck_assert_int_eq(sdflow_model_save_buffer(g, p, NULL, 0, &size), SDFLOW_OK);
    unsigned char *buf = malloc(size);
    ck_assert_int_eq(sdflow_model_save_buffer(g, p, buf, size, &size), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_load_buffer(ctx, buf, size, &g2, &q), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_get_kind(q), SDFLOW_PROCESS_INTERP_LINEAR);
    double e, lo, hi;
    ck_assert_int_eq(sdflow_process_get_double(q, SDFLOW_PROC_INTERP_EPS, &e), SDFLOW_OK);
    ck_assert_int_eq(sdflow_process_time_range(q, &lo, &hi), SDFLOW_OK);
    ck_assert(e == 0.25 && lo == 0 && hi == 1);
    free(buf);
    sdflow_model_free(g);
    sdflow_model_free(g2);
    sdflow_process_free(p);
    sdflow_process_free(q);
    sdflow_ctx_free(ctx);
}
END_TEST

/* ---- the trainer's INTERPOLANT loss at the exact velocity (§8, §12.d) ---- */

/* Trig interpolant between N(m0, S) and N(m1, S) (equal covariances): by
 * §12.d Sigma_t = (cos^2 + sin^2) S = S and Sigma_t' = 0, so the exact
 * velocity is v(t, x) = mu_t' = -(pi/2) sin(pi t/2) m0 + (pi/2) cos(pi t/2) m1,
 * independent of x. A depth-1 tanh MLP with one Fourier frequency
 * f = 1/4 (inputs [x, sin(pi t/2), cos(pi t/2)]) in its linear regime
 * (W1 = eps on the two features, W2 = (pi/2)(-m0, m1)/eps) represents it
 * up to O(eps^2) = 1e-12 relative. */
static sdflow_model *trig_velocity_mlp(sdflow_ctx *ctx, const double *m0, const double *m1, double scale)
{
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_DEPTH, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 2), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_FREQS, 1), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_double(m, SDFLOW_OPT_MLP_FREQ_SCALE, 0.25), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_ACTIVATION, SDFLOW_ACT_TANH), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY), SDFLOW_OK);
    const double eps = 1e-6, h = 1.5707963267948966;
    /* layers.0.weight 2 x 4 ([x1, x2, sin, cos]), layers.0.bias 2, layers.1.weight 2 x 2, layers.1.bias 2 */
    double th[16] = { 0 };
    th[2] = eps;     /* hidden 0 = tanh(eps sin(pi t/2)) */
    th[4 + 3] = eps; /* hidden 1 = tanh(eps cos(pi t/2)) */
    for (int j = 0; j < 2; j++) {
        th[10 + 2 * j] = -scale * h * m0[j] / eps;
        th[10 + 2 * j + 1] = scale * h * m1[j] / eps;
    }
    size_t P;
    ck_assert_int_eq(sdflow_model_param_count(m, &P), SDFLOW_OK);
    ck_assert_uint_eq(P, 16);
    ck_assert_int_eq(sdflow_model_set_params(m, P, th), SDFLOW_OK);
    return m;
}

/* Moments over t in [0, 1] of the exact velocity (midpoint rule, 20000
 * points: error < 1e-9): K = int |v|^2, K2 = int |v|^4, Q = int v^T (a'^2 S0
 * + b'^2 S1) v, and c = int a'(t) v(t) dt (the coefficient of a base-mean
 * error in the loss). */
static void trig_moments(const double *m0, const double *m1, const double *S, double *K, double *K2, double *Q,
                         double *c)
{
    const int n = 20000;
    const double h = 1.5707963267948966;
    *K = *K2 = *Q = c[0] = c[1] = 0;
    for (int i = 0; i < n; i++) {
        double t = (i + 0.5) / n, da = -h * sin(h * t), db = h * cos(h * t), v[2], v2 = 0, q = 0;
        for (int j = 0; j < 2; j++) {
            v[j] = da * m0[j] + db * m1[j];
            v2 += v[j] * v[j];
            c[j] += da * v[j] / n;
        }
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++)
                q += v[j] * (da * da + db * db) * S[2 * j + k] * v[k];
        *K += v2 / n;
        *K2 += v2 * v2 / n;
        *Q += q / n;
    }
}

/* The loss as reported (§8: mean |v_hat|^2 - 2 dI . v_hat) at the exact
 * velocity equals the oracle's minimum G* = -int E|v|^2 dt within 4 SE,
 * through sdflow_trainer_validate on n = 20000 held-out data rows. Per row
 * the loss is -|v|^2 - 2 (a' e0 + b' e1) . v (e0, e1 the centred ends), so
 * Var = int |v|^4 - (int |v|^2)^2 + 4 int v^T (a'^2 S0 + b'^2 S1) v and
 * SE = sqrt(Var / n) (0.029 for case 1, 0.063 for cases 2 and 3). Three bases:
 *   1. N(0, I), the default, to data N(m1, I);
 *   2. a gaussian base model N(m0, S) (sdflow_trainer_set_base_model) to
 *      N(m1, S), S non-diagonal;
 *   3. a base data array of 40000 draws of N(m0, S)
 *      (sdflow_trainer_set_base_data): the base rows' empirical mean m0_hat
 *      enters the expected loss as -2 (m0_hat - m0) . int a' v dt, added to G*.
 * Half the exact velocity (loss -0.75 int E|v|^2) fails by > 10 SE. */
START_TEST(test_interp_loss_oracle)
{
    sdflow_ctx *ctx = test_ctx(43);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &p), SDFLOW_OK);
    enum { N = 20000, NB = 40000 };
    const double I2[4] = { 1, 0, 0, 1 }, S[4] = { 1.5, 0.6, 0.6, 0.8 }, zero[2] = { 0, 0 };
    const double m0s[2] = { -1, 0.5 }, m1s[2] = { 1, 1 }, m1i[2] = { 1, -0.5 };
    double *x1 = malloc(sizeof(double) * N * 2), *xb = malloc(sizeof(double) * NB * 2);
    for (int c = 0; c < 3; c++) {
        const double *m0 = c ? m0s : zero, *m1 = c ? m1s : m1i, *Sc = c ? S : I2;
        sdflow_model *g1 = NULL, *g0 = NULL;
        ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m1, Sc, &g1), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(g1, 50 + (uint64_t)c, 0, N, x1), SDFLOW_OK);
        double K, K2, Q, cc[2];
        trig_moments(m0, m1, Sc, &K, &K2, &Q, cc);
        double Gstar = -K, se = sqrt((K2 - K * K + 4 * Q) / N);
        sdflow_model *m = trig_velocity_mlp(ctx, m0, m1, 1.0);
        sdflow_trainer *t = NULL;
        ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_INTERPOLANT, &t), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_model(t, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_process(t, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_validation(t, N, 2, x1), SDFLOW_OK);
        if (c >= 1)
            ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, m0, S, &g0), SDFLOW_OK);
        if (c == 1)
            ck_assert_int_eq(sdflow_trainer_set_base_model(t, g0), SDFLOW_OK);
        if (c == 2) {
            ck_assert_int_eq(sdflow_model_sample(g0, 60, 0, NB, xb), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_set_base_data(t, NB, 2, xb), SDFLOW_OK);
            for (int j = 0; j < 2; j++)
                Gstar -= 2 * (vec_mean(xb + j, NB, 2) - m0[j]) * cc[j];
        }
        double L, Lh;
        ck_assert_int_eq(sdflow_trainer_validate(t, &L), SDFLOW_OK);
        sdflow_model *half = trig_velocity_mlp(ctx, m0, m1, 0.5);
        ck_assert_int_eq(sdflow_trainer_set_model(t, half), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_validate(t, &Lh), SDFLOW_OK);
        test_note("interpolant loss at the exact velocity (base %s): %.5f, oracle -int E|v|^2 = %.5f (SE %.5f, "
                  "%+.2f SE); half the velocity %.4f",
                  c == 0 ? "N(0, I)" : c == 1 ? "gaussian model" : "data array", L, Gstar, se, (L - Gstar) / se, Lh);
        ck_assert_double_le(fabs(L - Gstar), 4 * se);
        ck_assert_double_gt(Lh - Gstar, 10 * se);
        sdflow_trainer_free(t);
        sdflow_model_free(half);
        sdflow_model_free(m);
        sdflow_model_free(g0);
        sdflow_model_free(g1);
    }
    free(x1);
    free(xb);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/* Base bindings: refused for other loss kinds, a model that cannot be
 * sampled, a wrong dimension, NaN base data; NULL / empty restore N(0, I);
 * the same seed gives the same batch loss for any thread count, and a
 * base model changes it. */
START_TEST(test_interp_trainer_base_rules)
{
    sdflow_ctx *ctx = test_ctx(44);
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_LINEAR, &p), SDFLOW_OK);
    const double mu[2] = { 2, -1 }, S[4] = { 1, 0.3, 0.3, 0.5 }, mu3[3] = { 0 }, I3[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    sdflow_model *g = NULL, *g3 = NULL, *k = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, mu, S, &g), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 3, mu3, I3, &g3), SDFLOW_OK);
    double data[2 * 64];
    ck_assert_int_eq(sdflow_model_sample(g, 3, 0, 64, data), SDFLOW_OK);
    ck_assert_int_eq(sdflow_model_create_kernel(ctx, 64, 2, data, &k), SDFLOW_OK);
    double loss[4];
    for (int rep = 0; rep < 4; rep++) {
        ck_assert_int_eq(sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, rep % 2 + 1), SDFLOW_OK);
        sdflow_model *m = NULL;
        ck_assert_int_eq(sdflow_model_create_mlp(ctx, 2, &m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_WIDTH, 16), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_set_int(m, SDFLOW_OPT_MLP_OUTPUT, SDFLOW_OUT_VELOCITY), SDFLOW_OK);
        sdflow_trainer *t = NULL;
        ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_INTERPOLANT, &t), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_model(t, m), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_process(t, p), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_data(t, 64, 2, data), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, 32), SDFLOW_OK);
        if (rep == 0) {
            ck_assert_int_eq(sdflow_trainer_set_base_model(NULL, g), SDFLOW_E_INVALID);
            ck_assert_status_msg(ctx, sdflow_trainer_set_base_model(t, k), SDFLOW_E_UNSUPPORTED, "cannot be sampled");
            ck_assert_status_msg(ctx, sdflow_trainer_set_base_model(t, g3), SDFLOW_E_INVALID, "d=3");
            double bad[4] = { 0, NAN, 1, 1 };
            ck_assert_int_eq(sdflow_trainer_set_base_data(t, 2, 2, bad), SDFLOW_E_INVALID);
            ck_assert_int_eq(sdflow_trainer_set_base_data(t, 2, 3, data), SDFLOW_E_INVALID);
            ck_assert_int_eq(sdflow_trainer_set_base_data(t, 64, 2, data), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_set_base_data(t, 0, 2, NULL), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_set_base_model(t, g), SDFLOW_OK);
            ck_assert_int_eq(sdflow_trainer_set_base_model(t, NULL), SDFLOW_OK);
            sdflow_trainer *o = NULL;
            ck_assert_int_eq(sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &o), SDFLOW_OK);
            ck_assert_status_msg(ctx, sdflow_trainer_set_base_model(o, g), SDFLOW_E_UNSUPPORTED, "interpolant");
            sdflow_trainer_free(o);
        }
        if (rep >= 2)
            ck_assert_int_eq(sdflow_trainer_set_base_model(t, g), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_eval_batch(t, 0, &loss[rep], NULL), SDFLOW_OK);
        ck_assert_int_eq(sdflow_trainer_step(t), SDFLOW_OK);
        sdflow_trainer_free(t);
        sdflow_model_free(m);
    }
    ck_assert_double_eq(loss[0], loss[1]);
    ck_assert_double_eq(loss[2], loss[3]);
    ck_assert_double_ne(loss[0], loss[2]);
    sdflow_model_free(k);
    sdflow_model_free(g3);
    sdflow_model_free(g);
    sdflow_process_free(p);
    sdflow_ctx_free(ctx);
}
END_TEST

/*@MORE_TESTS@*/

Suite *interpolant_suite(void)
{
    Suite *s = suite_create("interpolant");
    TCase *tc = tcase_create("interpolant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_interp_schedules);
    tcase_add_test(tc, test_interp_velocity_conversion);
    tcase_add_test(tc, test_assignment_brute_force);
    tcase_add_test(tc, test_sinkhorn);
    tcase_add_test(tc, test_coupling_kinetic_energy);
    tcase_add_test(tc, test_coupling_alloc_failures);
    tcase_add_test(tc, test_interp_sampler_gaussian);
    tcase_add_test(tc, test_interp_sampler_sde);
    tcase_add_test(tc, test_interp_density_gaussian);
    tcase_add_test(tc, test_interp_bad_use);
    tcase_add_test(tc, test_interp_alloc_failures);
    tcase_add_test(tc, test_interp_model_file);
    tcase_add_test(tc, test_interp_loss_oracle);
    tcase_add_test(tc, test_interp_trainer_base_rules);
    /*@MORE_TCASES@*/
    suite_add_tcase(s, tc);
    return s;
}
