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

/* What the rows' times need: t from u is lo + u span (uniform) or
 * lambda^-1(lam_hi - u Z) (importance); u0 is the stratified offset. */
typedef struct dsm_times {
    double lo, hi, lam_hi, Z, span, u0;
    uint64_t stream;
} dsm_times;

static void times_setup(const sdflow_trainer *t, const sdflow__batch *b, dsm_times *s)
{
    const sdflow_process *p = t->proc;
    s->lo = sdflow__train_t_eps(t);
    s->hi = p->t_max;
    s->lam_hi = sdflow__process_log_snr(p, s->lo);
    s->Z = s->lam_hi - sdflow__process_log_snr(p, s->hi);
    s->span = s->hi - s->lo;
    s->u0 = 0;
    if (t->stratified)
        sdflow__rng_uniform_row(t->ctx->seed, sdflow__stream(b->stream, TAG_U0, 0), 0, 0, 1, &s->u0);
    s->stream = sdflow__stream(b->stream, TAG_T, 0);
}

/* Time of global row r and its weight w(t); c: the process's coefficients there. */
static double row_time(const sdflow_trainer *t, const sdflow__batch *b, const dsm_times *s, uint64_t r,
                       double *w, sdflow__coef *c)
{
    const sdflow_process *p = t->proc;
    double u;
    if (t->stratified)
        u = (s->u0 + (double)r) / (double)b->B;
    else
        sdflow__rng_uniform_row(t->ctx->seed, s->stream, r, 0, 1, &u);
    double ti;
    if (t->t_sampling == SDFLOW_TSAMPLE_IMPORTANCE)
        ti = sdflow__process_time_of_log_snr(p, s->lam_hi - u * s->Z);
    else
        ti = s->lo + u * s->span;
    if (ti < s->lo)
        ti = s->lo;
    if (ti > s->hi)
        ti = s->hi;
    sdflow__process_coef(p, ti, c);
    double rate = c->g2 / (c->sigma * c->sigma); /* g^2/sigma^2 = -d lambda/dt */
    double lam = t->weighting == SDFLOW_WEIGHT_LIKELIHOOD ? rate : 1.0;
    *w = lam;
    if (t->t_sampling == SDFLOW_TSAMPLE_IMPORTANCE)
        *w = t->weighting == SDFLOW_WEIGHT_LIKELIHOOD ? s->Z / s->span : lam * s->Z / (s->span * rate);
    return ti;
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

/* The batch's rows as the network's pass makes and consumes them. Per row
 * i: x_t, the target tg, the affine map native -> target kind (out = ma y +
 * mb x_t) and the loss's output adjoint 2 w (out - tg) ma / (dd B) = sc y +
 * rr (affine in y); lrow the row's loss. bad[i]: the output conversion is
 * undefined at t_i (the row is made inert: finite x_t, zero adjoint). */
typedef struct dsm_rows {
    const sdflow_trainer *t;
    const sdflow__batch *b;
    dsm_times ts;
    sdflow_output native, kind;
    double dd, invB;
    double *xt, *tg, *rr, *tt, *wt, *as, *ma, *mb, *sc, *lrow;
    unsigned char *bad;
} dsm_rows;

/* Rows i0..i0+nb-1: everything of the row but its output, on the calling thread. */
static void dsm_fill(void *user, size_t i0, size_t nb)
{
    dsm_rows *w = user;
    const sdflow_trainer *t = w->t;
    const sdflow__batch *b = w->b;
    size_t d = t->d;
    uint64_t sz = sdflow__stream(b->stream, TAG_Z, 0);
    for (size_t i = i0; i < i0 + nb; i++) {
        double *xt = w->xt + i * d, *tg = w->tg + i * d, *rr = w->rr + i * d;
        sdflow__coef c;
        w->tt[i] = row_time(t, b, &w->ts, b->first + i, &w->wt[i], &c);
        sdflow__affine m, ms;
        w->bad[i] = !sdflow__conversion(w->native, w->kind, &c, &m) ||
                    !sdflow__conversion(w->native, SDFLOW_OUT_SCORE, &c, &ms);
        if (w->bad[i]) {
            memset(xt, 0, d * sizeof(double));
            memset(tg, 0, d * sizeof(double));
            memset(rr, 0, d * sizeof(double));
            w->as[i] = w->ma[i] = w->mb[i] = w->sc[i] = 0;
            continue;
        }
        w->as[i] = ms.a;
        w->ma[i] = m.a;
        w->mb[i] = m.b;
        double ci = 2.0 * w->wt[i] * m.a / w->dd * w->invB;
        w->sc[i] = ci * m.a;
        /* x0 into the x_t row (the trainer's data row, drawn here, or the batch's), z into tg */
        if (b->x0)
            memcpy(xt, b->x0 + i * d, d * sizeof(double));
        else
            sdflow__batch_data_row(t, b->step, b->first + i, xt);
        sdflow__rng_normal_row(t->ctx->seed, sz, b->first + i, 0, d, tg);
        for (size_t j = 0; j < d; j++) {
            double x0 = xt[j], z = tg[j];
            xt[j] = c.alpha * x0 + c.sigma * z;
            tg[j] = w->kind == SDFLOW_OUT_V ? c.alpha * z - c.sigma * x0 : z;
            rr[j] = ci * (m.b * xt[j] - tg[j]);
        }
    }
}

/* The rows' losses from their outputs y and (ybar not NULL) the adjoints sc y + rr. */
static void dsm_adjoint(void *user, size_t i0, size_t nb, const double *y, double *ybar)
{
    dsm_rows *w = user;
    size_t d = w->t->d;
    for (size_t k = 0; k < nb; k++) {
        size_t i = i0 + k;
        const double *yi = y + k * d, *xt = w->xt + i * d, *tg = w->tg + i * d, *rr = w->rr + i * d;
        double l = 0;
        for (size_t j = 0; j < d; j++) {
            double r = w->ma[i] * yi[j] + w->mb[i] * xt[j] - tg[j];
            l += r * r;
        }
        w->lrow[i] = l * (w->wt[i] / w->dd * w->invB);
        if (ybar)
            for (size_t j = 0; j < d; j++)
                ybar[k * d + j] = w->sc[i] * yi[j] + rr[j];
    }
}

static sdflow_status dsm_batch(sdflow_trainer *t, const sdflow__batch *b, double *grad, double *acc)
{
    sdflow_ctx *ctx = t->ctx;
    size_t n = b->rows, d = t->d;
    double *buf = sdflow__alloc_array(ctx, n, (4 * d + 9) * sizeof(double), "DSM work");
    if (!buf)
        return SDFLOW_E_NOMEM;
    dsm_rows w = { .t = t, .b = b, .native = sdflow__tm_native(t),
                   .kind = t->weighting == SDFLOW_WEIGHT_V ? SDFLOW_OUT_V : SDFLOW_OUT_EPS,
                   .dd = t->reduce_mean ? (double)d : 1.0, .invB = 1.0 / (double)b->B };
    times_setup(t, b, &w.ts);
    w.xt = buf;
    w.tg = w.xt + n * d;
    double *y = w.tg + n * d;
    w.rr = y + n * d;
    w.tt = w.rr + n * d;
    w.wt = w.tt + n;
    w.as = w.wt + n;
    w.ma = w.as + n;
    w.mb = w.ma + n;
    w.sc = w.mb + n;
    w.lrow = w.sc + n;
    w.bad = (unsigned char *)(w.lrow + n); /* 2 n doubles are left */
    sdflow_status st;
    /* Rows are independent (time, noise and data row keyed by global row
     * index) and each writes only its own entries, so making them on the
     * pass's threads (the fill hook, block by block) gives the same bits
     * for any thread count; the loss is summed in row order afterwards. */
    if (grad) {
        sdflow__tm_rows h = { dsm_fill, dsm_adjoint, &w };
        st = sdflow__tm_eval_grad_rows(t, n, w.xt, w.tt, &h, y, grad);
    } else {
        int nt = sdflow__threads_for(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < n; i++)
            dsm_fill(&w, i, 1);
        st = sdflow__tm_eval(t, n, w.xt, w.tt, y);
        if (!st)
            dsm_adjoint(&w, 0, n, y, NULL);
    }
    if (!st) { /* the rows' flags exist only if the pass ran (it can fail on its workspace first) */
        size_t bad = 0;
        while (bad < n && !w.bad[bad])
            bad++;
        if (bad < n)
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC, "DSM: output conversion undefined at t=%g", w.tt[bad]);
    }
    if (!st)
        for (size_t i = 0; i < n; i++) {
            acc[SDFLOW__ACC_MAIN] += w.lrow[i];
            acc[SDFLOW__ACC_LOSS] += w.lrow[i];
        }
    if (!st && t->qcsgm_weight > 0 && !sdflow__tm_is_energy(t))
        st = penalty(t, b, w.xt, w.tt, w.as, grad, acc);
    sdflow__free(ctx, buf);
    return st;
}

const sdflow__loss_ops sdflow__loss_dsm = {
    .name = "dsm",
    .check = dsm_check,
    .batch = dsm_batch,
    .lazy_rows = 1,
};
