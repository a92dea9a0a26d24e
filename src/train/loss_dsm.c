/* SPDX-License-Identifier: MIT */
/* Denoising score matching (algorithms.md section 3) with the QCSGM
 * asymmetry penalty (section 7), as a loss-table entry.
 *
 * Row i of a batch (global index r): time t from u (uniform, or stratified
 * u = (u0 + r)/B), noise z ~ N(0, I), x_t = alpha x0 + sigma z, native model
 * output y at (x_t, t) converted affinely to the target kind K (eps, or v
 * for the v-loss): out = a y + b x_t. The row's loss is
 *     w(t) |out - target|^2   (/ d with reduce_mean),
 * target = z (eps) or alpha z - sigma x0 (v), with w(t) the weighting
 * lambda(t) in eps form (1, g^2/sigma^2) times the importance ratio
 * 1 / ((T - t_eps) q(t)) when t is drawn from q(t) = (g^2/sigma^2)/Z: every
 * (weighting, sampling) pair is unbiased for the same objective
 * (1/(T - t_eps)) int lambda(t) E|...|^2 dt.
 *
 * Importance sampling: g^2/sigma^2 = -d lambda/dt for every linear-Gaussian
 * process (g^2 = d sigma^2/dt - 2 f sigma^2, f = d log alpha/dt), so
 * t ~ q is t = lambda^-1(lambda(t_eps) - u Z), Z = lambda(t_eps) - lambda(T):
 * uniform in log-SNR through the closed-form inverse of the process.
 *
 * QCSGM: with J the Jacobian of the native output and s = a_s y + b_s x the
 * score, J_score - J_score^T = a_s (J - J^T). Per row and Rademacher probe
 * v the penalty is sigma^2 a_s^2 |(J - J^T) v|^2 (JVP + VJP form, unbiased
 * for sigma^2 ||J_score - J_score^T||_F^2; for an eps model sigma^2 a_s^2 =
 * 1). With rho = (J - J^T) v its parameter gradient is
 * 2 (rho^T dJ v - v^T dJ rho): one bilinear-form gradient over 2 rows per
 * row. An energy model is exactly conservative: its penalty is 0. */
#include <math.h>
#include <string.h>
#include "trainer_internal.h"

#define TAG_T 0x745f64736dull   /* "t_dsm" */
#define TAG_U0 0x75305f64736dull /* "u0_dsm" */
#define TAG_Z 0x7a5f64736dull   /* "z_dsm" */
#define TAG_V 0x765f64736dull   /* "v_dsm" */

static sdflow_status dsm_check(sdflow_trainer *t)
{
    if (t->qcsgm_weight > 0 && !sdflow__tm_is_energy(t)) {
        long act = 0;
        sdflow_model_get_int(t->model, SDFLOW_OPT_MLP_ACTIVATION, &act);
        if (act == SDFLOW_ACT_RELU)
            return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED,
                                "the QCSGM penalty needs the activation's second derivative: ReLU has none "
                                "(use SiLU, tanh, softplus or GELU)");
    }
    double lo = sdflow__train_t_eps(t);
    if (!(lo > 0 && lo < t->proc->t_max))
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "training t_eps=%g must lie in (0, T=%g)", lo, t->proc->t_max);
    if (lo < t->proc->t_eps)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "training t_eps=%g is below the process's t_eps=%g", lo,
                            t->proc->t_eps);
    return SDFLOW_OK;
}

/* Times of the rows and their weights w(t). */
static void draw_times(const sdflow_trainer *t, const sdflow__batch *b, double *tt, double *wt)
{
    const sdflow_process *p = t->proc;
    uint64_t seed = t->ctx->seed;
    double lo = sdflow__train_t_eps(t), hi = p->t_max;
    double lam_hi = sdflow__process_log_snr(p, lo), lam_lo = sdflow__process_log_snr(p, hi);
    double Z = lam_hi - lam_lo, span = hi - lo;
    double u0 = 0;
    if (t->stratified)
        sdflow__rng_uniform_row(seed, sdflow__stream(b->stream, TAG_U0, 0), 0, 0, 1, &u0);
    uint64_t st = sdflow__stream(b->stream, TAG_T, 0);
    for (size_t i = 0; i < b->rows; i++) {
        uint64_t r = b->first + i;
        double u;
        if (t->stratified)
            u = (u0 + (double)r) / (double)b->B;
        else
            sdflow__rng_uniform_row(seed, st, r, 0, 1, &u);
        double ti;
        if (t->t_sampling == SDFLOW_TSAMPLE_IMPORTANCE)
            ti = sdflow__process_time_of_log_snr(p, lam_hi - u * Z);
        else
            ti = lo + u * span;
        if (ti < lo)
            ti = lo;
        if (ti > hi)
            ti = hi;
        sdflow__coef c;
        sdflow__process_coef(p, ti, &c);
        double rate = c.g2 / (c.sigma * c.sigma); /* g^2/sigma^2 = -d lambda/dt */
        double lam = t->weighting == SDFLOW_WEIGHT_LIKELIHOOD ? rate : 1.0;
        double w = lam;
        if (t->t_sampling == SDFLOW_TSAMPLE_IMPORTANCE)
            w = t->weighting == SDFLOW_WEIGHT_LIKELIHOOD ? Z / span : lam * Z / (span * rate);
        tt[i] = ti;
        wt[i] = w;
    }
}

/* The QCSGM penalty of the rows at (xt, tt): adds to acc and, with grad, its gradient. */
static sdflow_status penalty(sdflow_trainer *t, const sdflow__batch *b, const double *xt, const double *tt,
                             const double *as, double *grad, double *acc)
{
    size_t n = b->rows, d = t->d, K = (size_t)t->qcsgm_probes;
    sdflow_ctx *ctx = t->ctx;
    /* v, J v, J^T v (n x d each) and the two terms of the bilinear form: a = [a1; a2], b = [b1; b2]
     * (2n x d each), both evaluated on one forward pass per row */
    double *buf = sdflow__alloc_array(ctx, n, 7 * d * sizeof(double), "QCSGM work");
    if (!buf)
        return SDFLOW_E_NOMEM;
    double *v = buf, *jv = v + n * d, *vj = jv + n * d, *A = vj + n * d, *Bm = A + 2 * n * d;
    uint64_t sv = sdflow__stream(b->stream, TAG_V, 0);
    size_t blocks = (d + 127) / 128;
    double gamma = t->qcsgm_weight, inv = 1.0 / ((double)K * (double)b->B);
    sdflow_status st = SDFLOW_OK;
    for (size_t k = 0; k < K && !st; k++) {
        for (size_t i = 0; i < n; i++)
            sdflow__rng_rademacher_row(ctx->seed, sv, b->first + i, k * blocks, d, v + i * d);
        if ((st = sdflow__tm_jvp_vjp(t, n, xt, tt, v, jv, vj)))
            break;
        for (size_t i = 0; i < n; i++) {
            sdflow__coef c;
            sdflow__process_coef(t->proc, tt[i], &c);
            double s2 = c.sigma * c.sigma * as[i] * as[i], q = 0;
            for (size_t j = 0; j < d; j++) {
                double rj = jv[i * d + j] - vj[i * d + j];
                q += rj * rj;
                if (grad) {
                    double cij = 2.0 * gamma * s2 * inv;
                    A[i * d + j] = cij * rj;
                    A[(n + i) * d + j] = -cij * v[i * d + j];
                    Bm[i * d + j] = v[i * d + j];
                    Bm[(n + i) * d + j] = rj;
                }
            }
            acc[SDFLOW__ACC_PENALTY] += s2 * q * inv;
            acc[SDFLOW__ACC_LOSS] += gamma * s2 * q * inv;
        }
        if (grad)
            st = sdflow__tm_grad_jac2(t, n, xt, tt, A, Bm, A + n * d, Bm + n * d, grad);
    }
    sdflow__free(ctx, buf);
    return st;
}

static sdflow_status dsm_batch(sdflow_trainer *t, const sdflow__batch *b, double *grad, double *acc)
{
    sdflow_ctx *ctx = t->ctx;
    size_t n = b->rows, d = t->d;
    double *buf = sdflow__alloc_array(ctx, n, (4 * d + 9) * sizeof(double), "DSM work");
    if (!buf)
        return SDFLOW_E_NOMEM;
    double *xt = buf, *z = xt + n * d, *y = z + n * d, *rr = y + n * d, *tt = rr + n * d, *wt = tt + n;
    double *as = wt + n, *ma = as + n, *mb = ma + n, *sc = mb + n, *lrow = sc + n, *ca = lrow + n, *cs = ca + n;
    draw_times(t, b, tt, wt);
    uint64_t sz = sdflow__stream(b->stream, TAG_Z, 0);
    sdflow_output native = sdflow__tm_native(t);
    sdflow_output kind = t->weighting == SDFLOW_WEIGHT_V ? SDFLOW_OUT_V : SDFLOW_OUT_EPS;
    double dd = t->reduce_mean ? (double)d : 1.0, invB = 1.0 / (double)b->B;
    sdflow_status st = SDFLOW_OK;
    /* Rows are independent (noise keyed by global row index) and each writes
     * only its own outputs, so the row loops run on the ctx's threads with
     * the same bits for any thread count; the loss is summed in row order
     * afterwards. bad: the first row whose output conversion is undefined. */
    int nt = sdflow__threads_for(ctx, n);
    size_t bad = n;
    /* per row: x_t, the affine map native -> target kind (out = ma y + mb x_t), and the loss's output
     * adjoint 2 w (out - target) ma / (dd B) = sc y + rr, affine in y */
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : bad)
    for (size_t i = 0; i < n; i++) {
        sdflow__coef c;
        sdflow__process_coef(t->proc, tt[i], &c);
        sdflow__affine m, ms;
        if (!sdflow__conversion(native, kind, &c, &m) || !sdflow__conversion(native, SDFLOW_OUT_SCORE, &c, &ms)) {
            bad = i < bad ? i : bad;
            continue;
        }
        as[i] = ms.a;
        ca[i] = c.alpha;
        cs[i] = c.sigma;
        ma[i] = m.a;
        mb[i] = m.b;
        double ci = 2.0 * wt[i] * m.a / dd * invB;
        sc[i] = ci * m.a;
        sdflow__rng_normal_row(ctx->seed, sz, b->first + i, 0, d, z + i * d);
        for (size_t j = 0; j < d; j++) {
            size_t q = i * d + j;
            xt[q] = c.alpha * b->x0[q] + c.sigma * z[q];
            double target = kind == SDFLOW_OUT_V ? c.alpha * z[q] - c.sigma * b->x0[q] : z[q];
            rr[q] = ci * (m.b * xt[q] - target);
        }
    }
    if (bad < n)
        st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "DSM: output conversion undefined at t=%g", tt[bad]);
    if (!st)
        st = grad ? sdflow__tm_eval_grad_affine(t, n, xt, tt, sc, rr, y, grad) : sdflow__tm_eval(t, n, xt, tt, y);
    if (!st) {
        /* light (the coefficients are those of the first loop): threads only for large n d */
        int nl = sdflow__threads_for_light(ctx, n, n * d);
#pragma omp parallel for num_threads(nl) schedule(static)
        for (size_t i = 0; i < n; i++) {
            double l = 0;
            for (size_t j = 0; j < d; j++) {
                size_t q = i * d + j;
                double target = kind == SDFLOW_OUT_V ? ca[i] * z[q] - cs[i] * b->x0[q] : z[q];
                double r = ma[i] * y[q] + mb[i] * xt[q] - target;
                l += r * r;
            }
            lrow[i] = l * (wt[i] / dd * invB);
        }
        for (size_t i = 0; i < n; i++) {
            acc[SDFLOW__ACC_MAIN] += lrow[i];
            acc[SDFLOW__ACC_LOSS] += lrow[i];
        }
    }
    if (!st && t->qcsgm_weight > 0 && !sdflow__tm_is_energy(t))
        st = penalty(t, b, xt, tt, as, grad, acc);
    sdflow__free(ctx, buf);
    return st;
}

const sdflow__loss_ops sdflow__loss_dsm = {
    .name = "dsm",
    .check = dsm_check,
    .batch = dsm_batch,
};
