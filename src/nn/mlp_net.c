/* SPDX-License-Identifier: MIT */
/* The MLP's hand-derived passes: forward, batched forward-mode tangents
 * (also forward-over-reverse for energy nets), reverse mode for parameter
 * gradients and reverse-over-forward for bilinear forms a^T J b. The math of
 * every pass is in docs/mlp.md; names follow it (z layer inputs, a
 * pre-activations, dot tangents, bar adjoints). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "mlp_net.h"

#define R SDFLOW__MLP_ROWS

void sdflow__mlp_layout(sdflow__mlp *net)
{
    net->d_in = net->d + 2 * net->nfreq;
    net->nlayers = net->depth + 1;
    size_t off = 0;
    for (size_t l = 0; l < net->nlayers; l++) {
        net->in[l] = l == 0 ? net->d_in : net->width;
        net->out[l] = l == net->depth ? net->d_out : net->width;
        net->woff[l] = off;
        off += net->in[l] * net->out[l];
        net->boff[l] = off;
        off += net->out[l];
    }
    net->nparam = off;
}

static double sigmoid(double a) { return a >= 0 ? 1.0 / (1.0 + exp(-a)) : exp(a) / (1.0 + exp(a)); }

void sdflow__mlp_act(int act, double a, double *s0, double *s1, double *s2, double *s3)
{
    double v0, v1, v2, v3;
    switch (act) {
    case SDFLOW__ACT_TANH: {
        double y = tanh(a), q = 1 - y * y;
        v0 = y, v1 = q, v2 = -2 * y * q, v3 = q * (6 * y * y - 2);
        break;
    }
    case SDFLOW__ACT_SOFTPLUS: {
        double s = sigmoid(a), g = s * (1 - s);
        v0 = a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
        v1 = s, v2 = g, v3 = g * (1 - 2 * s);
        break;
    }
    case SDFLOW__ACT_GELU: {
        const double c = 0.7978845608028654, k = 0.044715; /* sqrt(2/pi) */
        double u = c * (a + k * a * a * a), u1 = c * (1 + 3 * k * a * a), u2 = 6 * c * k * a, u3 = 6 * c * k;
        double T = tanh(u), S = 1 - T * T, h = 1 + T, h1 = S * u1, h2 = S * (u2 - 2 * T * u1 * u1);
        double h3 = -2 * T * S * u1 * (u2 - 2 * T * u1 * u1) + S * (u3 - 2 * S * u1 * u1 * u1 - 4 * T * u1 * u2);
        v0 = 0.5 * a * h, v1 = 0.5 * (h + a * h1), v2 = 0.5 * (2 * h1 + a * h2), v3 = 0.5 * (3 * h2 + a * h3);
        break;
    }
    case SDFLOW__ACT_RELU:
        v0 = a > 0 ? a : 0, v1 = a > 0, v2 = 0, v3 = 0;
        break;
    default: { /* SiLU */
        double s = sigmoid(a), g = s * (1 - s), m = 1 - 2 * s;
        v0 = a * s, v1 = s * (1 + a * (1 - s)), v2 = g * (2 + a * m), v3 = g * m * (2 + a * m) + g * (m - 2 * a * g);
        break;
    }
    }
    if (s0) *s0 = v0;
    if (s1) *s1 = v1;
    if (s2) *s2 = v2;
    if (s3) *s3 = v3;
}

void sdflow__mlp_embed(const sdflow__mlp *net, size_t n, const double *x, const double *s, double *z0)
{
    size_t d = net->d, F = net->nfreq, din = net->d_in;
    for (size_t i = 0; i < n; i++) {
        double *z = z0 + i * din;
        memcpy(z, x + i * d, d * sizeof *z);
        for (size_t k = 0; k < F; k++) {
            double w = 2.0 * SDFLOW__PI * net->freqs[k] * s[i];
            z[d + k] = sin(w);
            z[d + F + k] = cos(w);
        }
    }
}

/* C (rows x out) = Z (rows x in, leading dim ldz) W^T (W: out x in, ldw), in
 * fixed chunks of R rows: one GEMM shape per layer whatever the batch, and
 * small enough (R out in <= 2^18 for width 128) that OpenBLAS stays on the
 * calling thread. rows is a multiple of R. */
static void gemm_nt(size_t rows, size_t out, size_t in, const double *Z, size_t ldz, const double *W, size_t ldw,
                    double *C, size_t ldc)
{
    for (size_t r = 0; r < rows; r += R)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, (int)out, (int)in, 1.0, Z + r * ldz, (int)ldz, W,
                    (int)ldw, 0.0, C + r * ldc, (int)ldc);
}

/* C (rows x in) = A (rows x out) W (out x in, ldw), columns 0..in-1 of W. */
static void gemm_nn(size_t rows, size_t out, size_t in, const double *A, const double *W, size_t ldw, double *C,
                    size_t ldc)
{
    for (size_t r = 0; r < rows; r += R)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, (int)in, (int)out, 1.0, A + r * out, (int)out, W,
                    (int)ldw, 0.0, C + r * ldc, (int)ldc);
}

/* gW (out x in) += A^T (R x out) Z (R x in, ldz); gb += column sums of A. */
static void grad_acc(size_t out, size_t in, const double *A, const double *Z, size_t ldz, double *gW, double *gb)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, R, 1.0, A, (int)out, Z, (int)ldz, 1.0,
                gW, (int)in);
    if (gb)
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < out; j++)
                gb[j] += A[r * out + j];
}

/* Per-block workspace: primal cache, then tangent and adjoint buffers. */
typedef struct blockws {
    double *z[SDFLOW__MLP_MAXLAYERS + 1]; /* z_l: R x in_l; z_L: R x width */
    double *a[SDFLOW__MLP_MAXLAYERS];     /* a_l: R x width */
    double *d1[SDFLOW__MLP_MAXLAYERS];    /* act'(a_l), kept for the tangent and reverse passes */
    double *y;                            /* R x d_out */
    double *zb[SDFLOW__MLP_MAXLAYERS + 1];/* primal adjoints z-bar_l: R x maxw */
    double *ta[SDFLOW__MLP_MAXLAYERS];    /* tangents a-dot_l: R K x width */
    double *t0, *t1, *t2, *t3;            /* R K x maxw each */
} blockws;

static size_t maxw(const sdflow__mlp *net) { return net->width > net->d_in ? net->width : net->d_in; }

static size_t ws_size(const sdflow__mlp *net, size_t K)
{
    size_t L = net->depth, W = net->width, M = maxw(net);
    return R * net->d_in + 3 * L * R * W + R * net->d_out + (L + 1) * R * M + L * R * K * W + 4 * R * K * M;
}

static blockws ws_at(const sdflow__mlp *net, size_t K, double *w)
{
    blockws b;
    size_t L = net->depth, W = net->width, M = maxw(net);
    b.z[0] = w;
    w += R * net->d_in;
    for (size_t l = 1; l <= L; l++, w += R * W)
        b.z[l] = w;
    for (size_t l = 0; l < L; l++, w += R * W)
        b.a[l] = w;
    for (size_t l = 0; l < L; l++, w += R * W)
        b.d1[l] = w;
    b.y = w;
    w += R * net->d_out;
    for (size_t l = 0; l <= L; l++, w += R * M)
        b.zb[l] = w;
    for (size_t l = 0; l < L; l++, w += R * K * W)
        b.ta[l] = w;
    b.t0 = w, b.t1 = w + R * K * M, b.t2 = w + 2 * R * K * M, b.t3 = w + 3 * R * K * M;
    return b;
}

/* Loads rows i0.. of z0 into the block (zero-padded) and runs the forward pass. */
static void block_forward(const sdflow__mlp *net, const double *z0, size_t i0, size_t nb, blockws *b)
{
    size_t din = net->d_in, W = net->width, L = net->depth;
    memcpy(b->z[0], z0 + i0 * din, nb * din * sizeof(double));
    memset(b->z[0] + nb * din, 0, (R - nb) * din * sizeof(double));
    for (size_t l = 0; l < L; l++) {
        const double *Wl = net->theta + net->woff[l], *bl = net->theta + net->boff[l];
        gemm_nt(R, W, net->in[l], b->z[l], net->in[l], Wl, net->in[l], b->a[l], W);
        int res = net->residual && l >= 1;
        double *a = b->a[l], *z = b->z[l + 1], *d1 = b->d1[l];
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < W; j++)
                a[r * W + j] += bl[j];
        if (net->act == SDFLOW__ACT_SILU) {
            /* a / (1 + e^-a) with the library's vectorized exp (<= 2 ulp; half the
             * forward's time went to scalar libm exp): e^-a overflowing to its
             * clamp gives a / huge ~ 0, the right limit */
            double *e = b->t0;
            for (size_t q = 0; q < R * W; q++)
                e[q] = -a[q];
            sdflow_kernel_exp(R * W, e, e);
            for (size_t q = 0; q < R * W; q++) {
                double sg = 1.0 / (1.0 + e[q]);
                z[q] = a[q] * sg + (res ? b->z[l][q] : 0.0);
                d1[q] = sg * (1.0 + a[q] * (1.0 - sg));
            }
        } else {
            for (size_t q = 0; q < R * W; q++) {
                double s;
                sdflow__mlp_act(net->act, a[q], &s, d1 + q, NULL, NULL);
                z[q] = s + (res ? b->z[l][q] : 0.0);
            }
        }
    }
    gemm_nt(R, net->d_out, W, b->z[L], W, net->theta + net->woff[L], W, b->y, net->d_out);
    const double *bL = net->theta + net->boff[L];
    for (size_t r = 0; r < R; r++)
        for (size_t j = 0; j < net->d_out; j++)
            b->y[r * net->d_out + j] += bL[j];
}

/* Primal reverse from ybar (R x d_out): z-bar_l for l = 0..L (z-bar_0 of all
 * d_in inputs); with gtheta, parameter gradients too. */
static void block_reverse(const sdflow__mlp *net, blockws *b, const double *ybar, double *gtheta)
{
    size_t W = net->width, L = net->depth, dout = net->d_out;
    const double *WL = net->theta + net->woff[L];
    gemm_nn(R, dout, W, ybar, WL, W, b->zb[L], W);
    if (gtheta)
        grad_acc(dout, W, ybar, b->z[L], W, gtheta + net->woff[L], gtheta + net->boff[L]);
    for (size_t l = L; l-- > 0;) {
        double *ab = b->t0; /* a-bar_l, R x W */
        for (size_t r = 0; r < R * W; r++)
            ab[r] = b->zb[l + 1][r] * b->d1[l][r];
        if (gtheta)
            grad_acc(W, net->in[l], ab, b->z[l], net->in[l], gtheta + net->woff[l], gtheta + net->boff[l]);
        gemm_nn(R, W, net->in[l], ab, net->theta + net->woff[l], net->in[l], b->zb[l], net->in[l]);
        if (net->residual && l >= 1)
            for (size_t r = 0; r < R * W; r++)
                b->zb[l][r] += b->zb[l + 1][r];
    }
}

static sdflow_status alloc_ws(sdflow_ctx *ctx, size_t nthreads, size_t per, double **w)
{
    *w = sdflow__alloc_array(ctx, nthreads, per * sizeof(double), "MLP workspace");
    return *w ? SDFLOW_OK : SDFLOW_E_NOMEM;
}

sdflow_status sdflow__mlp_forward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *y)
{
    size_t nblk = (n + R - 1) / R, per = ws_size(net, 1), dout = net->d_out;
    int nt = sdflow__threads_for(ctx, nblk);
    double *w;
    if (alloc_ws(ctx, (size_t)nt, per, &w))
        return SDFLOW_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t ib = 0; ib < nblk; ib++) {
        blockws b = ws_at(net, 1, w + (size_t)omp_get_thread_num() * per);
        size_t i0 = ib * R, nb = n - i0 < R ? n - i0 : R;
        block_forward(net, z0, i0, nb, &b);
        memcpy(y + i0 * dout, b.y, nb * dout * sizeof(double));
    }
    sdflow__free(ctx, w);
    return SDFLOW_OK;
}

sdflow_status sdflow__mlp_grad_x(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *e,
                                 double *g)
{
    size_t nblk = (n + R - 1) / R, per = ws_size(net, 1) + R, d = net->d, din = net->d_in;
    int nt = sdflow__threads_for(ctx, nblk);
    double *w;
    if (alloc_ws(ctx, (size_t)nt, per, &w))
        return SDFLOW_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t ib = 0; ib < nblk; ib++) {
        double *wt = w + (size_t)omp_get_thread_num() * per, *ones = wt + per - R;
        blockws b = ws_at(net, 1, wt);
        size_t i0 = ib * R, nb = n - i0 < R ? n - i0 : R;
        for (size_t r = 0; r < R; r++)
            ones[r] = 1.0;
        block_forward(net, z0, i0, nb, &b);
        block_reverse(net, &b, ones, NULL);
        for (size_t r = 0; r < nb; r++) {
            memcpy(g + (i0 + r) * d, b.zb[0] + r * din, d * sizeof(double));
            if (e)
                e[i0 + r] = b.y[r];
        }
    }
    sdflow__free(ctx, w);
    return SDFLOW_OK;
}

/* Forward tangents of the block for K directions per row: a-dot_l into
 * b->ta[l], the last z-dot (R K x width) returned. */
static const double *block_tangent_fwd(const sdflow__mlp *net, blockws *b, size_t K, const double *v, size_t i0,
                                       size_t nb)
{
    size_t d = net->d, din = net->d_in, W = net->width, L = net->depth, RK = R * K;
    const double *W0 = net->theta + net->woff[0];
    if (v) {
        double *vb = b->t1; /* R K x d, zero-padded */
        memcpy(vb, v + i0 * K * d, nb * K * d * sizeof(double));
        memset(vb + nb * K * d, 0, (R - nb) * K * d * sizeof(double));
        gemm_nt(RK, W, d, vb, d, W0, din, b->ta[0], W);
    } else {
        for (size_t r = 0; r < R; r++)
            for (size_t k = 0; k < K; k++)
                for (size_t j = 0; j < W; j++)
                    b->ta[0][(r * K + k) * W + j] = W0[j * din + k];
    }
    double *zd = b->t2, *zn = b->t3;
    for (size_t l = 0;; l++) {
        int res = net->residual && l >= 1;
        for (size_t r = 0; r < R; r++)
            for (size_t k = 0; k < K; k++) {
                const double *s1 = b->d1[l] + r * W;
                size_t q0 = (r * K + k) * W;
                for (size_t j = 0; j < W; j++)
                    zn[q0 + j] = s1[j] * b->ta[l][q0 + j] + (res ? zd[q0 + j] : 0.0);
            }
        double *tmp = zd;
        zd = zn, zn = tmp;
        if (l + 1 == L)
            return zd;
        gemm_nt(RK, W, W, zd, W, net->theta + net->woff[l + 1], W, b->ta[l + 1], W);
    }
}

sdflow_status sdflow__mlp_tangent(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, size_t K,
                                  const double *v, double *primal, double *jv)
{
    size_t nblk = (n + R - 1) / R, per = ws_size(net, K) + R, d = net->d, din = net->d_in, W = net->width;
    size_t L = net->depth, RK = R * K;
    int nt = sdflow__threads_for(ctx, nblk), energy = net->d_out == 1;
    double *w;
    if (alloc_ws(ctx, (size_t)nt, per, &w))
        return SDFLOW_E_NOMEM;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t ib = 0; ib < nblk; ib++) {
        double *wt = w + (size_t)omp_get_thread_num() * per, *ones = wt + per - R;
        blockws b = ws_at(net, K, wt);
        size_t i0 = ib * R, nb = n - i0 < R ? n - i0 : R;
        block_forward(net, z0, i0, nb, &b);
        const double *zd = block_tangent_fwd(net, &b, K, v, i0, nb);
        if (!energy) {
            double *yd = b.t0; /* R K x d */
            gemm_nt(RK, d, W, zd, W, net->theta + net->woff[L], W, yd, d);
            memcpy(jv + i0 * K * d, yd, nb * K * d * sizeof(double));
            if (primal)
                memcpy(primal + i0 * d, b.y, nb * d * sizeof(double));
            continue;
        }
        /* energy: primal reverse, then its tangent (forward over reverse):
         * a-bar-dot_l = zb-dot_{l+1} s1 + zb_{l+1} s2 a-dot_l */
        for (size_t r = 0; r < R; r++)
            ones[r] = 1.0;
        block_reverse(net, &b, ones, NULL);
        double *zbd = b.t2, *abd = b.t3; /* zb-dot_{l+1} (R K x W), a-bar-dot */
        memset(zbd, 0, RK * W * sizeof(double));
        for (size_t l = L; l-- > 0;) {
            for (size_t r = 0; r < R; r++)
                for (size_t j = 0; j < W; j++) {
                    double s1, s2, zb = b.zb[l + 1][r * W + j];
                    sdflow__mlp_act(net->act, b.a[l][r * W + j], NULL, &s1, &s2, NULL);
                    for (size_t k = 0; k < K; k++) {
                        size_t q = (r * K + k) * W + j;
                        abd[q] = zbd[q] * s1 + zb * s2 * b.ta[l][q];
                    }
                }
            if (l == 0) {
                double *hv = b.t1; /* R K x d */
                gemm_nn(RK, W, d, abd, net->theta + net->woff[0], din, hv, d);
                memcpy(jv + i0 * K * d, hv, nb * K * d * sizeof(double));
                break;
            }
            double *nz = b.t0;
            gemm_nn(RK, W, W, abd, net->theta + net->woff[l], W, nz, W);
            if (net->residual)
                for (size_t q = 0; q < RK * W; q++)
                    nz[q] += zbd[q];
            memcpy(zbd, nz, RK * W * sizeof(double));
        }
        if (primal)
            for (size_t r = 0; r < nb; r++)
                memcpy(primal + (i0 + r) * d, b.zb[0] + r * din, d * sizeof(double));
    }
    sdflow__free(ctx, w);
    return SDFLOW_OK;
}

sdflow_status sdflow__mlp_backward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                   const double *ybar, double *gtheta, double *gx)
{
    size_t per = ws_size(net, 1) + R * net->d_out, d = net->d, din = net->d_in, dout = net->d_out;
    double *w;
    if (alloc_ws(ctx, 1, per, &w))
        return SDFLOW_E_NOMEM;
    blockws b = ws_at(net, 1, w);
    double *yb = w + per - R * dout;
    for (size_t i0 = 0; i0 < n; i0 += R) {
        size_t nb = n - i0 < R ? n - i0 : R;
        block_forward(net, z0, i0, nb, &b);
        memcpy(yb, ybar + i0 * dout, nb * dout * sizeof(double));
        memset(yb + nb * dout, 0, (R - nb) * dout * sizeof(double));
        block_reverse(net, &b, yb, gtheta);
        if (gx)
            for (size_t r = 0; r < nb; r++)
                memcpy(gx + (i0 + r) * d, b.zb[0] + r * din, d * sizeof(double));
    }
    sdflow__free(ctx, w);
    return SDFLOW_OK;
}

sdflow_status sdflow__mlp_bilinear_grad(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                        const double *a, const double *bv, double *gtheta)
{
    size_t M = maxw(net), per = ws_size(net, 1) + 5 * R * M, d = net->d, W = net->width, L = net->depth;
    size_t dout = net->d_out;
    double *w;
    if (alloc_ws(ctx, 1, per, &w))
        return SDFLOW_E_NOMEM;
    blockws b = ws_at(net, 1, w);
    double *ab = w + per - 5 * R * M;          /* a-bar_l (primal adjoint of a_l) */
    double *adb = ab + R * M;                  /* adjoint of a-dot_l */
    double *zdb = adb + R * M, *zb = zdb + R * M; /* adjoints of z-dot_{l+1}, z_{l+1} */
    double *abuf = zb + R * M;                 /* padded a rows */
    double *zdots[SDFLOW__MLP_MAXLAYERS + 1];  /* z-dot_l kept for the weight gradients */
    double *zdstore = NULL;
    zdstore = sdflow__alloc_array(ctx, (L + 1) * R, M * sizeof(double), "MLP tangent store");
    if (!zdstore) {
        sdflow__free(ctx, w);
        return SDFLOW_E_NOMEM;
    }
    for (size_t l = 0; l <= L; l++)
        zdots[l] = zdstore + l * R * M;
    for (size_t i0 = 0; i0 < n; i0 += R) {
        size_t nb = n - i0 < R ? n - i0 : R;
        block_forward(net, z0, i0, nb, &b);
        /* forward tangent along b, keeping every z-dot_l */
        double *z0d = zdots[0];
        memset(z0d, 0, R * net->d_in * sizeof(double));
        for (size_t r = 0; r < nb; r++)
            memcpy(z0d + r * net->d_in, bv + (i0 + r) * d, d * sizeof(double));
        for (size_t l = 0; l < L; l++) {
            gemm_nt(R, W, net->in[l], zdots[l], net->in[l], net->theta + net->woff[l], net->in[l], b.ta[l], W);
            int res = net->residual && l >= 1;
            for (size_t q = 0; q < R * W; q++) {
                double s1;
                sdflow__mlp_act(net->act, b.a[l][q], NULL, &s1, NULL, NULL);
                zdots[l + 1][q] = s1 * b.ta[l][q] + (res ? zdots[l][q] : 0.0);
            }
        }
        memcpy(abuf, a + i0 * dout, nb * dout * sizeof(double));
        memset(abuf + nb * dout, 0, (R - nb) * dout * sizeof(double));
        /* reverse: y-dot-bar = a; y itself is not in the loss */
        const double *WL = net->theta + net->woff[L];
        gemm_nn(R, dout, W, abuf, WL, W, zdb, W);
        grad_acc(dout, W, abuf, zdots[L], W, gtheta + net->woff[L], NULL);
        memset(zb, 0, R * W * sizeof(double));
        for (size_t l = L; l-- > 0;) {
            size_t in = net->in[l];
            for (size_t q = 0; q < R * W; q++) {
                double s1, s2;
                sdflow__mlp_act(net->act, b.a[l][q], NULL, &s1, &s2, NULL);
                adb[q] = zdb[q] * s1;
                ab[q] = zb[q] * s1 + zdb[q] * s2 * b.ta[l][q];
            }
            grad_acc(W, in, adb, zdots[l], in, gtheta + net->woff[l], NULL);
            grad_acc(W, in, ab, b.z[l], in, gtheta + net->woff[l], gtheta + net->boff[l]);
            if (l == 0)
                break;
            double *nzd = b.t0, *nz = b.t1;
            gemm_nn(R, W, in, adb, net->theta + net->woff[l], in, nzd, in);
            gemm_nn(R, W, in, ab, net->theta + net->woff[l], in, nz, in);
            if (net->residual)
                for (size_t q = 0; q < R * W; q++) {
                    nzd[q] += zdb[q];
                    nz[q] += zb[q];
                }
            memcpy(zdb, nzd, R * W * sizeof(double));
            memcpy(zb, nz, R * W * sizeof(double));
        }
    }
    sdflow__free(ctx, zdstore);
    sdflow__free(ctx, w);
    return SDFLOW_OK;
}
