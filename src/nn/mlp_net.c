/* SPDX-License-Identifier: MIT */
/* The MLP's hand-derived passes: forward, batched forward-mode tangents
 * (also forward-over-reverse for energy nets), reverse mode for parameter
 * gradients and reverse-over-forward for bilinear forms a^T J b. The math of
 * every pass is in docs/mlp.md; names follow it (z layer inputs, a
 * pre-activations, dot tangents, bar adjoints). Skip connections
 * z_{l+1} += z_{skip[l]} make every adjoint an accumulation: the reverse
 * passes zero the adjoints first and the GEMMs add into them (beta = 1). */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "mlp_act.h"
#include "mlp_gemm.h"
#include "mlp_net.h"

#define R SDFLOW__MLP_ROWS

void sdflow__mlp_layout(sdflow__mlp *net)
{
    net->d_in = net->d + 2 * net->nfreq + (net->learn_freqs ? 1 : 0);
    net->nlayers = net->depth + 1;
    size_t off = 0;
    for (size_t l = 0; l < net->nlayers; l++) {
        net->in[l] = l == 0 ? net->d + 2 * net->nfreq : net->width;
        net->out[l] = l == net->depth ? net->d_out : net->width;
        net->woff[l] = off;
        off += net->in[l] * net->out[l];
        net->boff[l] = off;
        off += net->out[l];
        /* BLOCKS: layer 0 is the input layer, then pairs (lin1 at odd l, lin2 at even l):
         * z_{l+1} = a_l + z_{l-1} after lin2; SIMPLE: z_{l+1} = act(a_l) + z_l for l >= 1 */
        int blocks = net->residual == SDFLOW__MLP_RES_BLOCKS && l < net->depth && l >= 2 && l % 2 == 0;
        net->linear[l] = (unsigned char)blocks;
        net->skip[l] = blocks ? (int)l - 1 : net->residual == SDFLOW__MLP_RES_SIMPLE && l >= 1 ? (int)l : -1;
    }
    net->foff = off;
    net->nparam = off + (net->learn_freqs ? net->nfreq : 0);
}

void sdflow__mlp_scratch_init(sdflow__mlp *net, sdflow_ctx *ctx)
{
    for (int k = 0; k < SDFLOW__MLP_NSCRATCH; k++) {
        pthread_mutex_init(&net->scratch[k].lock, NULL);
        net->scratch[k].buf = NULL;
        net->scratch[k].cap = 0;
        net->scratch[k].wt_of = 0;
    }
    net->scratch_ctx = ctx;
}

void sdflow__mlp_scratch_free(sdflow__mlp *net)
{
    if (!net->scratch_ctx)
        return;
    for (int k = 0; k < SDFLOW__MLP_NSCRATCH; k++) {
        sdflow__free(net->scratch_ctx, net->scratch[k].buf);
        pthread_mutex_destroy(&net->scratch[k].lock);
    }
    net->scratch_ctx = NULL;
}

double *sdflow__mlp_scratch_get(sdflow_ctx *ctx, const sdflow__mlp *net, int slot, size_t n, int *held)
{
    /* the slot is mutable state of a const net: its lock serializes it */
    sdflow__mlp_scratch *sc = (sdflow__mlp_scratch *)&net->scratch[slot];
    *held = 0;
    if (net->scratch_ctx && pthread_mutex_trylock(&sc->lock) == 0) {
        if (sc->cap < n) {
            /* the new buffer first: a failed call leaves the old one (the state before the call) */
            double *nb = sdflow__alloc_array(net->scratch_ctx, n, sizeof(double), "MLP scratch");
            if (!nb) {
                pthread_mutex_unlock(&sc->lock);
                if (ctx != net->scratch_ctx) /* the error belongs to the caller's ctx */
                    sdflow__fail(ctx, SDFLOW_E_NOMEM, "out of memory (MLP scratch, %zu doubles)", n);
                return NULL;
            }
            sdflow__free(net->scratch_ctx, sc->buf);
            sc->buf = nb;
            sc->cap = n;
            sc->wt_of = 0;
        }
        *held = 1;
        return sc->buf;
    }
    return sdflow__alloc_array(ctx, n, sizeof(double), "MLP scratch");
}

void sdflow__mlp_scratch_put(sdflow_ctx *ctx, const sdflow__mlp *net, int slot, double *p, int held)
{
    if (held)
        pthread_mutex_unlock((pthread_mutex_t *)&net->scratch[slot].lock);
    else
        sdflow__free(ctx, p);
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
    enum { CH = 64 };
    double w[CH]; /* the arguments, formed here (strict IEEE), their sin and cos in mlp_act.c (libmvec) */
    for (size_t i = 0; i < n; i++) {
        double *z = z0 + i * din;
        memcpy(z, x + i * d, d * sizeof *z);
        for (size_t k0 = 0; k0 < F; k0 += CH) {
            size_t nk = F - k0 < CH ? F - k0 : CH;
            for (size_t k = 0; k < nk; k++)
                w[k] = 2.0 * SDFLOW__PI * net->freqs[k0 + k] * s[i];
            sdflow__mlp_sincos_rows(nk, w, z + d + k0, z + d + F + k0);
        }
        if (net->learn_freqs)
            z[d + 2 * F] = s[i];
    }
}

/* C (rows x out) = Z (rows x k, leading dim ldz) WT, WT = W^T of a layer
 * with kp inputs (its first k <= kp rows), packed at the head of the pass's
 * scratch (pack_weights), in fixed chunks of R rows (mlp_gemm.c: with the
 * library's kernel the chunking does not change a bit; on the cblas_dgemm
 * fallback it keeps every call at or below OpenBLAS's threading threshold,
 * R out in <= 2^18 for width 128, so the GEMMs stay on the calling thread).
 * rows: a multiple of R. */
static void gemm_nt(size_t rows, size_t out, size_t k, const double *Z, size_t ldz, const double *WT, size_t kp,
                    double *C, size_t ldc)
{
    for (size_t r = 0; r < rows; r += R)
        sdflow__mlp_gemm_packed(R, out, k, Z + r * ldz, ldz, WT, kp, out, C + r * ldc, ldc, 0);
}

/* The weights as the passes' GEMM operands, packed (mlp_gemm.h): at
 * wt[woff[l]] W_l^T (in_l x out_l), the forward and tangent passes' B; at
 * wt[foff + woff[l]] W_l itself (out_l x in_l), the reverse passes'. Thread
 * tid of nt packs its share of each layer's 12-column strips (a pure copy:
 * the split does not change a bit). */
static void pack_weights(const sdflow__mlp *net, double *wt, int tid, int nt)
{
    for (size_t l = 0; l < net->nlayers; l++) {
        const double *w = net->theta + net->woff[l];
        size_t in = net->in[l], out = net->out[l];
        for (int which = 0; which < 2; which++) {
            size_t n = which ? in : out, strips = (n + 11) / 12;
            size_t lo = strips * (size_t)tid / (size_t)nt * 12, hi = strips * (size_t)(tid + 1) / (size_t)nt * 12;
            if (which)
                sdflow__mlp_pack(out, in, w, in, 1, wt + net->foff + net->woff[l], lo, hi);
            else
                sdflow__mlp_pack(in, out, w, 1, in, wt + net->woff[l], lo, hi);
        }
    }
}

/* Whether a pass must remake the packed weights at the head of its
 * scratch wt (2 foff doubles): they are kept from the previous pass when the
 * net's PASS buffer was held by both and no parameter was written since
 * (samplers evaluate one net thousands of times; remaking them was ~4 % of
 * a forward pass on one thread). A trainer writes the parameters every
 * step: the pass's threads then share the packing (wt_begin, inside the
 * parallel region, before the blocks). */
static int wt_stale(const sdflow__mlp *net, int held)
{
    const sdflow__mlp_scratch *sc = &net->scratch[SDFLOW__MLP_SCRATCH_PASS];
    return !(held && sc->wt_of == net->version && net->version != 0);
}

/* Inside a pass's parallel region: this thread's share of the packing,
 * then a barrier so every block sees all of it. */
static void wt_begin(const sdflow__mlp *net, double *wt, int stale)
{
    if (!stale)
        return;
    pack_weights(net, wt, omp_get_thread_num(), omp_get_num_threads());
#pragma omp barrier
}

/* After the pass: record which parameters the kept packing holds. */
static void wt_done(const sdflow__mlp *net, int held, int stale)
{
    if (held && stale)
        ((sdflow__mlp_scratch *)&net->scratch[SDFLOW__MLP_SCRATCH_PASS])->wt_of = net->version;
}

/* C (rows x ncol) += A (rows x out) W (out x in), columns 0..ncol-1 of W,
 * WP = W packed (pack_weights; in = its column count): the adjoints
 * accumulate (skip connections add into them too). */
static void gemm_nn_acc(size_t rows, size_t out, size_t ncol, const double *A, const double *WP, size_t in, double *C,
                        size_t ldc)
{
    for (size_t r = 0; r < rows; r += R)
        sdflow__mlp_gemm_packed(R, ncol, out, A + r * out, out, WP, out, in, C + r * ldc, ldc, 1);
}

/* gW (out x in) += A^T (R x out) Z (R x in, ldz); gb += column sums of A. */
static void grad_acc(size_t out, size_t in, const double *A, const double *Z, size_t ldz, double *gW, double *gb)
{
    sdflow__mlp_gemm(1, out, in, R, A, out, Z, ldz, gW, in, 1);
    if (gb)
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < out; j++)
                gb[j] += A[r * out + j];
}

/* Frequency gradient of learned Fourier features from the input adjoint
 * zb0 (R x in[0]) and the block's z0 rows (d_in, s last):
 * d sin(2 pi f s)/df = 2 pi s cos(.), d cos(2 pi f s)/df = -2 pi s sin(.). */
static void freq_grad_acc(const sdflow__mlp *net, const double *z0, const double *zb0, double *gf)
{
    size_t d = net->d, F = net->nfreq, din = net->d_in, in0 = net->in[0];
    for (size_t r = 0; r < R; r++) {
        const double *z = z0 + r * din, *zb = zb0 + r * in0;
        double c = 2.0 * SDFLOW__PI * z[d + 2 * F];
        for (size_t k = 0; k < F; k++)
            gf[k] += c * (zb[d + k] * z[d + F + k] - zb[d + F + k] * z[d + k]);
    }
}

/* dst (R x w) = rows 0..nb-1 of src, then zero rows: the fixed block shape. */
static void load_rows(double *dst, const double *src, size_t nb, size_t w)
{
    memcpy(dst, src, nb * w * sizeof(double));
    memset(dst + nb * w, 0, (R - nb) * w * sizeof(double));
}

/* The first d columns of nb rows of src (leading dimension ld) to dst (nb x d). */
static void store_cols(double *dst, const double *src, size_t nb, size_t ld, size_t d)
{
    for (size_t r = 0; r < nb; r++)
        memcpy(dst + r * d, src + r * ld, d * sizeof(double));
}

/* dst[q] += src[q] for q < n (a skip connection's adjoint). */
static void add_to(size_t n, double *restrict dst, const double *restrict src)
{
    for (size_t q = 0; q < n; q++)
        dst[q] += src[q];
}

/* Per-block workspace: primal cache, then tangent and adjoint buffers. */
typedef struct blockws {
    double *z[SDFLOW__MLP_MAXLAYERS + 1]; /* z_l: R x in_l (z_0: R x d_in); z_L: R x width */
    double *a[SDFLOW__MLP_MAXLAYERS];     /* a_l: R x width */
    double *d1[SDFLOW__MLP_MAXLAYERS];    /* phi'(a_l), kept for the tangent and reverse passes */
    double *d2[SDFLOW__MLP_MAXLAYERS];    /* phi''(a_l), filled by second-order passes */
    double *y;                            /* R x d_out */
    double *zb[SDFLOW__MLP_MAXLAYERS + 1];/* primal adjoints z-bar_l: R x maxw */
    double *ta[SDFLOW__MLP_MAXLAYERS];    /* tangents a-dot_l: R K x width */
    double *t[4];                         /* R K x maxw each */
    const double *wp;                     /* the packed W_l of the pass (pack_weights), at woff[l] */
} blockws;

static size_t maxw(const sdflow__mlp *net) { return net->width > net->d_in ? net->width : net->d_in; }

static size_t ws_size(const sdflow__mlp *net, size_t K)
{
    size_t L = net->depth, W = net->width, M = maxw(net);
    return R * net->d_in + 4 * L * R * W + R * net->d_out + (L + 1) * R * M + L * R * K * W + 4 * R * K * M;
}

static blockws ws_at(const sdflow__mlp *net, size_t K, double *w)
{
    blockws b;
    size_t L = net->depth, W = net->width, M = maxw(net);
    b.z[0] = w;
    w += R * net->d_in;
    for (size_t l = 1; l <= L; l++, w += R * W)
        b.z[l] = w;
    for (size_t l = 0; l < L; l++, w += 3 * R * W) {
        b.a[l] = w;
        b.d1[l] = w + R * W;
        b.d2[l] = w + 2 * R * W;
    }
    b.y = w;
    w += R * net->d_out;
    for (size_t l = 0; l <= L; l++, w += R * M)
        b.zb[l] = w;
    for (size_t l = 0; l < L; l++, w += R * K * W)
        b.ta[l] = w;
    for (int k = 0; k < 4; k++)
        b.t[k] = w + (size_t)k * R * K * M;
    return b;
}

/* Loads rows i0.. of z0 into the block (zero-padded; z0 NULL: b->z[0] is
 * loaded, rows_input) and runs the forward
 * pass; need: 0 the outputs only, 1 also phi' of every hidden layer (b->d1,
 * for the tangent and reverse passes), 2 also phi'' (b->d2). */
static void block_forward(const sdflow__mlp *net, const double *wt, const double *z0, size_t i0, size_t nb,
                          blockws *b, int need)
{
    size_t din = net->d_in, W = net->width, L = net->depth, RW = R * W;
    if (z0)
        load_rows(b->z[0], z0 + i0 * din, nb, din);
    for (size_t l = 0; l < L; l++) {
        const double *bl = net->theta + net->boff[l];
        size_t ldz = l == 0 ? din : W;
        gemm_nt(R, W, net->in[l], b->z[l], ldz, wt + net->woff[l], net->in[l], b->a[l], W);
        const double *res = net->skip[l] >= 0 ? b->z[net->skip[l]] : NULL;
        double *a = b->a[l], *z = b->z[l + 1], *d1 = b->d1[l], *d2 = b->d2[l];
        if (net->act == SDFLOW__ACT_SILU && !net->linear[l]) {
            /* bias, activation and its derivatives in one vectorized sweep */
            sdflow__mlp_silu_rows(R, W, bl, a, res, z, need >= 1 ? d1 : NULL, need >= 2 ? d2 : NULL);
            continue;
        }
        for (size_t r = 0; r < R; r++)
            for (size_t j = 0; j < W; j++)
                a[r * W + j] += bl[j];
        if (net->linear[l]) {
            for (size_t q = 0; q < RW; q++) {
                z[q] = a[q] + (res ? res[q] : 0.0);
                d1[q] = 1.0;
                d2[q] = 0.0;
            }
        } else {
            for (size_t q = 0; q < RW; q++) {
                double s;
                sdflow__mlp_act(net->act, a[q], &s, d1 + q, need >= 2 ? d2 + q : NULL, NULL);
                z[q] = s + (res ? res[q] : 0.0);
            }
        }
    }
    gemm_nt(R, net->d_out, W, b->z[L], W, wt + net->woff[L], W, b->y, net->d_out);
    const double *bL = net->theta + net->boff[L];
    for (size_t r = 0; r < R; r++)
        for (size_t j = 0; j < net->d_out; j++)
            b->y[r * net->d_out + j] += bL[j];
}

/* Primal reverse from ybar (R x d_out): z-bar_l for l = 1..L and the first
 * d columns of z-bar_0 (all in[0] when the frequencies' gradient is taken);
 * with gtheta, parameter gradients too. */
static void block_reverse(const sdflow__mlp *net, blockws *b, const double *ybar, double *gtheta)
{
    size_t W = net->width, L = net->depth, dout = net->d_out, M = maxw(net), din = net->d_in;
    const double *WL = b->wp + net->woff[L];
    for (size_t l = 0; l <= L; l++)
        memset(b->zb[l], 0, R * M * sizeof(double));
    gemm_nn_acc(R, dout, W, ybar, WL, W, b->zb[L], W);
    if (gtheta)
        grad_acc(dout, W, ybar, b->z[L], W, gtheta + net->woff[L], gtheta + net->boff[L]);
    int fgrad = gtheta && net->learn_freqs;
    for (size_t l = L; l-- > 0;) {
        size_t in = net->in[l], ldz = l == 0 ? din : W, ncol = l == 0 && !fgrad ? net->d : in;
        double *ab = b->t[0]; /* a-bar_l, R x W */
        for (size_t r = 0; r < R * W; r++)
            ab[r] = b->zb[l + 1][r] * b->d1[l][r];
        if (gtheta)
            grad_acc(W, in, ab, b->z[l], ldz, gtheta + net->woff[l], gtheta + net->boff[l]);
        gemm_nn_acc(R, W, ncol, ab, b->wp + net->woff[l], in, b->zb[l], in);
        if (net->skip[l] >= 0)
            add_to(R * W, b->zb[net->skip[l]], b->zb[l + 1]);
    }
    if (fgrad)
        freq_grad_acc(net, b->z[0], b->zb[0], gtheta + net->foff);
}

/* Threads for n rows (the ctx's rule counts rows), at most one per block. */
static int threads(const sdflow_ctx *ctx, size_t n, size_t nblk)
{
    int nt = sdflow__threads_for(ctx, n);
    return (size_t)nt > nblk ? (int)nblk : nt;
}

/* The BLAS policy for a pass whose blocks call GEMMs from the ctx's threads:
 * only on the cblas_dgemm fallback (the library's kernel calls no BLAS, so
 * there is no OpenBLAS thread count to pin per pass). */
static int blas_team(const sdflow_ctx *ctx, int nt)
{
    return sdflow__mlp_gemm_native() ? 0 : sdflow__blas_team_begin(ctx, nt);
}

/* What a parallel block pass does with one block: the block's rows i0..i0+nb-1,
 * its workspace and the R extra values at its end (ones for the energy passes). */
typedef struct pass_args {
    const sdflow__mlp *net;
    const double *wt; /* transposed weights (set by run_blocks) */
    const double *z0, *v;
    size_t K;
    double *out, *out2, *out3;
} pass_args;
typedef void (*block_fn)(const pass_args *p, blockws *b, double *ones, size_t i0, size_t nb);

/* Runs fn over the blocks of n rows on the ctx's threads, each with its own
 * workspace (K tangents per row): the one parallel driver of every pass. */
static sdflow_status run_blocks(sdflow_ctx *ctx, pass_args *p, size_t n, block_fn fn)
{
    size_t nblk = (n + R - 1) / R, per = ws_size(p->net, p->K) + R;
    int nt = threads(ctx, n, nblk), held;
    if (!sdflow__size_ok((size_t)nt, per))
        return sdflow__fail(ctx, SDFLOW_E_NOMEM, "MLP workspace too large");
    double *wt = sdflow__mlp_scratch_get(ctx, p->net, SDFLOW__MLP_SCRATCH_PASS, 2 * p->net->foff + (size_t)nt * per,
                                         &held);
    if (!wt)
        return SDFLOW_E_NOMEM;
    double *w = wt + 2 * p->net->foff;
    int stale = wt_stale(p->net, held);
    p->wt = wt;
    int blas = blas_team(ctx, nt);
#pragma omp parallel num_threads(nt)
    {
        wt_begin(p->net, wt, stale);
#pragma omp for schedule(static)
        for (size_t ib = 0; ib < nblk; ib++) {
            double *mine = w + (size_t)omp_get_thread_num() * per, *ones = mine + per - R;
            blockws b = ws_at(p->net, p->K, mine);
            b.wp = wt + p->net->foff;
            size_t i0 = ib * R, nb = n - i0 < R ? n - i0 : R;
            for (size_t r = 0; r < R; r++)
                ones[r] = 1.0;
            fn(p, &b, ones, i0, nb);
        }
    }
    wt_done(p->net, held, stale);
    sdflow__blas_team_end(blas);
    sdflow__mlp_scratch_put(ctx, p->net, SDFLOW__MLP_SCRATCH_PASS, wt, held);
    return SDFLOW_OK;
}

static void forward_block(const pass_args *p, blockws *b, double *ones, size_t i0, size_t nb)
{
    (void)ones;
    block_forward(p->net, p->wt, p->z0, i0, nb, b, 0);
    memcpy(p->out + i0 * p->net->d_out, b->y, nb * p->net->d_out * sizeof(double));
}

sdflow_status sdflow__mlp_forward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *y)
{
    pass_args p = { net, NULL, z0, NULL, 1, y, NULL, NULL };
    return run_blocks(ctx, &p, n, forward_block);
}

static void grad_x_block(const pass_args *p, blockws *b, double *ones, size_t i0, size_t nb)
{
    const sdflow__mlp *net = p->net;
    block_forward(net, p->wt, p->z0, i0, nb, b, 1);
    block_reverse(net, b, ones, NULL);
    store_cols(p->out + i0 * net->d, b->zb[0], nb, net->in[0], net->d);
    for (size_t r = 0; r < nb && p->out2; r++)
        p->out2[i0 + r] = b->y[r];
}

sdflow_status sdflow__mlp_grad_x(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *e,
                                 double *g)
{
    pass_args p = { net, NULL, z0, NULL, 1, g, e, NULL };
    return run_blocks(ctx, &p, n, grad_x_block);
}

/* Forward tangents of the block for K directions per row: a-dot_l into
 * b->ta[l] for every l; z-dot_l in the ring b->t[l % 3] (a skip reaches one
 * layer back at most); the last z-dot (R K x width) returned. */
static double *block_tangent_fwd(const sdflow__mlp *net, const double *wt, blockws *b, size_t K, const double *v,
                                 size_t i0, size_t nb)
{
    size_t d = net->d, in0 = net->in[0], W = net->width, L = net->depth, RK = R * K;
    const double *W0 = net->theta + net->woff[0];
    if (v) {
        double *vb = b->t[3]; /* R K x d, zero-padded */
        load_rows(vb, v + i0 * K * d, nb, K * d);
        gemm_nt(RK, W, d, vb, d, wt + net->woff[0], in0, b->ta[0], W);
    } else {
        for (size_t r = 0; r < R; r++)
            for (size_t k = 0; k < K; k++)
                for (size_t j = 0; j < W; j++)
                    b->ta[0][(r * K + k) * W + j] = W0[j * in0 + k];
    }
    for (size_t l = 0;; l++) {
        double *zn = b->t[(l + 1) % 3];
        const double *res = net->skip[l] >= 0 ? b->t[net->skip[l] % 3] : NULL;
        for (size_t r = 0; r < R; r++)
            for (size_t k = 0; k < K; k++) {
                const double *s1 = b->d1[l] + r * W;
                size_t q0 = (r * K + k) * W;
                for (size_t j = 0; j < W; j++)
                    zn[q0 + j] = s1[j] * b->ta[l][q0 + j] + (res ? res[q0 + j] : 0.0);
            }
        if (l + 1 == L)
            return zn;
        gemm_nt(RK, W, W, zn, W, wt + net->woff[l + 1], W, b->ta[l + 1], W);
    }
}

static void tangent_block(const pass_args *p, blockws *b, double *ones, size_t i0, size_t nb)
{
    const sdflow__mlp *net = p->net;
    size_t d = net->d, K = p->K, W = net->width, L = net->depth, RK = R * K, M = maxw(net);
    int energy = net->energy;
    block_forward(net, p->wt, p->z0, i0, nb, b, energy ? 2 : 1);
    const double *zd = block_tangent_fwd(net, p->wt, b, K, p->v, i0, nb);
    if (!energy) {
        double *yd = b->t[3]; /* R K x d */
        gemm_nt(RK, d, W, zd, W, p->wt + net->woff[L], W, yd, d);
        memcpy(p->out2 + i0 * K * d, yd, nb * K * d * sizeof(double));
        if (p->out)
            memcpy(p->out + i0 * d, b->y, nb * d * sizeof(double));
        return;
    }
    /* energy: primal reverse, then its tangent (forward over reverse):
     * a-bar-dot_l = zb-dot_{l+1} phi'_l + zb_{l+1} phi''_l a-dot_l, zb-dot_l += a-bar-dot_l W_l,
     * zb-dot_skip += zb-dot_{l+1}; zb-dot_L = 0. zb-dot_j lives in the ring b->t[j % 3]. */
    block_reverse(net, b, ones, NULL);
    double *abd = b->t[3];
#define ZBD(j) b->t[(j) % 3]
    memset(ZBD(L), 0, RK * M * sizeof(double));
    memset(ZBD(L - 1), 0, RK * M * sizeof(double));
    for (size_t l = L; l-- > 0;) {
        const double *zbd = ZBD(l + 1);
        if (l >= 1)
            memset(ZBD(l - 1), 0, RK * M * sizeof(double));
        for (size_t r = 0; r < R; r++) /* j innermost: contiguous in every array */
            for (size_t k = 0; k < K; k++) {
                const double *s1 = b->d1[l] + r * W, *s2 = b->d2[l] + r * W, *zb = b->zb[l + 1] + r * W;
                size_t q0 = (r * K + k) * W;
                for (size_t j = 0; j < W; j++)
                    abd[q0 + j] = zbd[q0 + j] * s1[j] + zb[j] * s2[j] * b->ta[l][q0 + j];
            }
        size_t in = net->in[l];
        gemm_nn_acc(RK, W, l == 0 ? d : in, abd, p->wt + net->foff + net->woff[l], in, ZBD(l), l == 0 ? d : in);
        if (net->skip[l] >= 0)
            add_to(RK * W, ZBD(net->skip[l]), zbd);
    }
    memcpy(p->out2 + i0 * K * d, ZBD(0), nb * K * d * sizeof(double));
#undef ZBD
    if (p->out)
        store_cols(p->out + i0 * d, b->zb[0], nb, net->in[0], d);
}

sdflow_status sdflow__mlp_tangent(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, size_t K,
                                  const double *v, double *primal, double *jv)
{
    pass_args p = { net, NULL, z0, v, K, primal, jv, NULL };
    return run_blocks(ctx, &p, n, tangent_block);
}

/* J v and v^T J of a vector-output net on one forward pass per block: the
 * tangent along v (as tangent_block), then the primal reverse seeded with
 * ybar = v (as backward_block, no parameter gradient). */
static void jvp_vjp_block(const pass_args *p, blockws *b, double *ones, size_t i0, size_t nb)
{
    (void)ones;
    const sdflow__mlp *net = p->net;
    size_t d = net->d, W = net->width, L = net->depth;
    block_forward(net, p->wt, p->z0, i0, nb, b, 1);
    const double *zd = block_tangent_fwd(net, p->wt, b, 1, p->v, i0, nb);
    /* b->t[3] (R x d): v's rows were used up by the first tangent GEMM; y-dot, then ybar = v
     * (block_reverse takes b->t[0] for its a-bar) */
    double *y = b->t[3];
    gemm_nt(R, d, W, zd, W, p->wt + net->woff[L], W, y, d);
    memcpy(p->out + i0 * d, y, nb * d * sizeof(double));
    load_rows(y, p->v + i0 * d, nb, d);
    block_reverse(net, b, y, NULL);
    store_cols(p->out2 + i0 * d, b->zb[0], nb, net->in[0], d);
}

sdflow_status sdflow__mlp_jvp_vjp(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, const double *v,
                                  double *jv, double *vj)
{
    pass_args p = { net, NULL, z0, v, 1, jv, vj, NULL };
    return run_blocks(ctx, &p, n, jvp_vjp_block);
}

/* The reverse passes sum parameter gradients over rows. Rows are cut into
 * groups of group_rows(n) rows (whole blocks; the cut depends on n only):
 * each group sums its blocks in sequence into its own partial gradient, the
 * groups run on the ctx's threads, and the partials are added to gtheta in
 * group order. So gtheta has the same bits for every thread count, and the
 * reverse passes use every thread. At most MAXGROUPS partials (memory:
 * MAXGROUPS nparam doubles), at least GROUP_MIN rows each (fewer partials to
 * add for small batches; B = 512 gives 2 groups, one per thread on 2: each
 * partial is nparam doubles zeroed and summed per pass, and 128-row groups
 * cost a DSM step at d = 64 ~10 %). */
enum { MAXGROUPS = 16, GROUP_MIN = 256 };

static size_t group_rows(size_t n)
{
    size_t g = (n + MAXGROUPS - 1) / MAXGROUPS;
    if (g < GROUP_MIN)
        g = GROUP_MIN;
    return (g + R - 1) / R * R;
}

typedef struct rev_args {
    const sdflow__mlp *net;
    const double *wt, *z0;
    const double *in1, *in2; /* ybar | s, r | a, b */
    double *out;             /* dL/dx (backward) | y (affine); may be NULL */
    size_t extra;            /* per-thread doubles after the block workspace */
    const double *in3, *in4; /* the second (a, b) pair of sdflow__mlp_bilinear_grad2 */
    const sdflow__mlp_rows *rows; /* the caller's rows (the _rows passes) */
} rev_args;
/* One block of a reverse pass: rows i0..i0+nb-1, gradient into g (NULL: none). */
typedef void (*rev_fn)(const rev_args *p, blockws *b, double *extra, size_t i0, size_t nb, double *g);

static sdflow_status run_groups(sdflow_ctx *ctx, rev_args *p, size_t n, rev_fn fn, double *gtheta)
{
    const sdflow__mlp *net = p->net;
    size_t G = group_rows(n), ng = (n + G - 1) / G, np = net->nparam, per = ws_size(net, 1) + p->extra;
    int nt = threads(ctx, n, ng), held;
    size_t npart = gtheta ? ng : 0;
    if (!sdflow__size_ok((size_t)nt, per) || !sdflow__size_ok(npart, np))
        return sdflow__fail(ctx, SDFLOW_E_NOMEM, "MLP workspace too large");
    double *wt = sdflow__mlp_scratch_get(ctx, net, SDFLOW__MLP_SCRATCH_PASS,
                                         2 * net->foff + (size_t)nt * per + npart * np, &held);
    if (!wt)
        return SDFLOW_E_NOMEM;
    double *w = wt + 2 * net->foff, *part = gtheta ? w + (size_t)nt * per : NULL;
    int stale = wt_stale(net, held);
    p->wt = wt;
    int blas = blas_team(ctx, nt);
#pragma omp parallel num_threads(nt)
    {
        wt_begin(net, wt, stale);
        double *mine = w + (size_t)omp_get_thread_num() * per;
        blockws b = ws_at(net, 1, mine);
        b.wp = wt + net->foff;
#pragma omp for schedule(static)
        for (size_t g = 0; g < ng; g++) {
            double *pg = part ? part + g * np : NULL;
            if (pg)
                memset(pg, 0, np * sizeof(double));
            for (size_t i0 = g * G; i0 < n && i0 < (g + 1) * G; i0 += R)
                fn(p, &b, mine + per - p->extra, i0, n - i0 < R ? n - i0 : R, pg);
        }
        /* gtheta += the partials in group order, threads over disjoint parameter ranges */
        if (part) {
#pragma omp for schedule(static)
            for (size_t j0 = 0; j0 < np; j0 += 1024) {
                size_t j1 = np - j0 < 1024 ? np : j0 + 1024;
                for (size_t g = 0; g < ng; g++)
                    add_to(j1 - j0, gtheta + j0, part + g * np + j0);
            }
        }
    }
    wt_done(net, held, stale);
    sdflow__blas_team_end(blas);
    sdflow__mlp_scratch_put(ctx, net, SDFLOW__MLP_SCRATCH_PASS, wt, held);
    return SDFLOW_OK;
}

static void backward_block(const rev_args *p, blockws *b, double *yb, size_t i0, size_t nb, double *g)
{
    const sdflow__mlp *net = p->net;
    block_forward(net, p->wt, p->z0, i0, nb, b, 1);
    load_rows(yb, p->in1 + i0 * net->d_out, nb, net->d_out);
    block_reverse(net, b, yb, g);
    if (p->out)
        store_cols(p->out + i0 * net->d, b->zb[0], nb, net->in[0], net->d);
}

sdflow_status sdflow__mlp_backward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                   const double *ybar, double *gtheta, double *gx)
{
    rev_args p = { net, NULL, z0, ybar, NULL, gx, R * net->d_out, NULL, NULL, NULL };
    return run_groups(ctx, &p, n, backward_block, gtheta);
}

/* The block's inputs from the caller's hook, zero-padded to R rows. */
static void rows_input(const rev_args *p, blockws *b, size_t i0, size_t nb)
{
    size_t din = p->net->d_in;
    p->rows->input(p->rows->user, i0, nb, b->z[0]);
    memset(b->z[0] + nb * din, 0, (R - nb) * din * sizeof(double));
}

static void rows_block(const rev_args *p, blockws *b, double *yb, size_t i0, size_t nb, double *g)
{
    const sdflow__mlp *net = p->net;
    size_t dout = net->d_out;
    rows_input(p, b, i0, nb);
    block_forward(net, p->wt, NULL, i0, nb, b, 1);
    if (p->out)
        memcpy(p->out + i0 * dout, b->y, nb * dout * sizeof(double));
    memset(yb + nb * dout, 0, (R - nb) * dout * sizeof(double)); /* padded rows add nothing */
    p->rows->adjoint(p->rows->user, i0, nb, b->y, yb);
    block_reverse(net, b, yb, g);
}

sdflow_status sdflow__mlp_forward_backward_rows(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n,
                                               const sdflow__mlp_rows *rows, double *y, double *gtheta)
{
    rev_args p = { net, NULL, NULL, NULL, NULL, y, R * net->d_out, NULL, NULL, rows };
    return run_groups(ctx, &p, n, rows_block, gtheta);
}

/* Reverse over forward for L = sum_i a_i^T J b_i = sum a . y-dot with the
 * tangent along b: per layer, with primal (z, a) and tangent (z-dot, a-dot)
 *   a-dot-bar_l = zd-bar_{l+1} phi'_l,
 *   a-bar_l     = z-bar_{l+1} phi'_l + zd-bar_{l+1} phi''_l a-dot_l,
 *   gW_l += a-dot-bar_l^T z-dot_l + a-bar_l^T z_l, gb_l += a-bar_l,
 *   zd-bar_l += a-dot-bar_l W_l, z-bar_l += a-bar_l W_l, and the skips.
 * For several pairs (a_k, b_k) the tangent and tangent-adjoint chains are
 * per pair, but everything in the reverse is linear in the seeds: one
 * primal adjoint z-bar carries the sum over the pairs,
 *   a-bar_l = z-bar_{l+1} phi'_l + sum_k zd-bar_{k,l+1} phi''_l a-dot_{k,l},
 * so the pass has one a-bar_l^T z_l and one a-bar_l W_l per layer.
 * Extra per-thread space: a-bar (R x M), then per pair a-dot-bar, z-dot_l
 * and zd-bar_l for l = 0..L (R x M each) and, for pairs after the first
 * (the first uses the block's b.ta), a-dot_l for l = 0..L-1 (R x W each). */
enum { BILINEAR_MAXPAIRS = 2 };

typedef struct bilinear_pair {
    double *adb;                               /* a-dot-bar_l, R x M */
    double *zdots[SDFLOW__MLP_MAXLAYERS + 1];  /* z-dot_l */
    double *zdbar[SDFLOW__MLP_MAXLAYERS + 1];  /* zd-bar_l */
    double *ta[SDFLOW__MLP_MAXLAYERS];         /* a-dot_l */
} bilinear_pair;

/* Extra doubles of a bilinear pass with npair pairs (bilinear_bufs). */
static size_t bilinear_extra(const sdflow__mlp *net, size_t npair)
{
    size_t M = maxw(net), L = net->depth;
    return R * M + npair * (1 + 2 * (L + 1)) * R * M + (npair - 1) * L * R * net->width;
}

/* Pair k's buffers in the extra space ex (after a-bar). */
static void bilinear_bufs(const sdflow__mlp *net, const blockws *b, double *ex, size_t k, bilinear_pair *q)
{
    size_t M = maxw(net), L = net->depth, W = net->width;
    double *w = ex + R * M;
    for (size_t j = 0; j < k; j++)
        w += (1 + 2 * (L + 1)) * R * M + (j > 0 ? L * R * W : 0);
    q->adb = w;
    w += R * M;
    for (size_t l = 0; l <= L; l++) {
        q->zdots[l] = w + l * R * M;
        q->zdbar[l] = w + (L + 1 + l) * R * M;
    }
    w += 2 * (L + 1) * R * M;
    for (size_t l = 0; l < L; l++)
        q->ta[l] = k == 0 ? b->ta[l] : w + l * R * W;
}

/* The reverse-over-forward part of a bilinear block for npair pairs: the
 * forward pass is done (with phi''), pair k's z-dot_0 (bilinear_bufs) holds
 * its padded b rows and b.t[k] its padded a rows (R x d_out). */
static void bilinear_core(const rev_args *p, blockws *bw, double *ex, size_t npair, double *gtheta)
{
    const sdflow__mlp *net = p->net;
    const double *wt = p->wt;
    size_t M = maxw(net), d = net->d, W = net->width, L = net->depth, dout = net->d_out, din = net->d_in;
    blockws b = *bw;
    double *ab = ex; /* a-bar_l */
    bilinear_pair pr[BILINEAR_MAXPAIRS];
    int fgrad = net->learn_freqs;
    for (size_t k = 0; k < npair; k++) {
        bilinear_pair *q = &pr[k];
        bilinear_bufs(net, &b, ex, k, q);
        /* forward tangent along b_k, keeping every z-dot_l (z-dot_0 = [b_k, 0]) */
        for (size_t l = 0; l < L; l++) {
            gemm_nt(R, W, l == 0 ? d : W, q->zdots[l], l == 0 ? din : W, wt + net->woff[l], net->in[l], q->ta[l], W);
            const double *res = net->skip[l] >= 0 ? q->zdots[net->skip[l]] : NULL;
            for (size_t i = 0; i < R * W; i++)
                q->zdots[l + 1][i] = b.d1[l][i] * q->ta[l][i] + (res ? res[i] : 0.0);
        }
    }
    for (size_t l = 0; l <= L; l++) {
        memset(b.zb[l], 0, R * M * sizeof(double));
        for (size_t k = 0; k < npair; k++)
            memset(pr[k].zdbar[l], 0, R * M * sizeof(double));
    }
    /* reverse: y-dot-bar_k = a_k; y itself is not in the loss (z-bar_L = 0) */
    for (size_t k = 0; k < npair; k++) {
        gemm_nn_acc(R, dout, W, b.t[k], wt + net->foff + net->woff[L], W, pr[k].zdbar[L], W);
        grad_acc(dout, W, b.t[k], pr[k].zdots[L], W, gtheta + net->woff[L], NULL);
    }
    for (size_t l = L; l-- > 0;) {
        size_t in = net->in[l], ldz = l == 0 ? din : W;
        const double *zb1 = b.zb[l + 1];
        for (size_t i = 0; i < R * W; i++) {
            double s1 = b.d1[l][i], abi = zb1[i] * s1;
            for (size_t k = 0; k < npair; k++) {
                const double *zdb1 = pr[k].zdbar[l + 1];
                pr[k].adb[i] = zdb1[i] * s1;
                abi += zdb1[i] * b.d2[l][i] * pr[k].ta[l][i];
            }
            ab[i] = abi;
        }
        for (size_t k = 0; k < npair; k++)
            grad_acc(W, in, pr[k].adb, pr[k].zdots[l], ldz, gtheta + net->woff[l], NULL);
        grad_acc(W, in, ab, b.z[l], ldz, gtheta + net->woff[l], gtheta + net->boff[l]);
        if (net->skip[l] >= 0) {
            for (size_t k = 0; k < npair; k++)
                add_to(R * W, pr[k].zdbar[net->skip[l]], pr[k].zdbar[l + 1]);
            add_to(R * W, b.zb[net->skip[l]], zb1);
        }
        if (l == 0) { /* z-dot_0 does not depend on theta; z_0 does through learned frequencies */
            if (fgrad) {
                gemm_nn_acc(R, W, in, ab, wt + net->foff + net->woff[0], in, b.zb[0], in);
                freq_grad_acc(net, b.z[0], b.zb[0], gtheta + net->foff);
            }
            break;
        }
        for (size_t k = 0; k < npair; k++)
            gemm_nn_acc(R, W, in, pr[k].adb, wt + net->foff + net->woff[l], in, pr[k].zdbar[l], in);
        gemm_nn_acc(R, W, in, ab, wt + net->foff + net->woff[l], in, b.zb[l], in);
    }
}

/* Pair k's padded rows of the block: b (n x d) into z-dot_0, a (n x d_out) into b.t[k]. */
static void bilinear_load(const sdflow__mlp *net, blockws *b, double *ex, size_t k, const double *av,
                          const double *bv, size_t i0, size_t nb)
{
    size_t d = net->d, din = net->d_in;
    bilinear_pair q;
    bilinear_bufs(net, b, ex, k, &q);
    memset(q.zdots[0], 0, R * din * sizeof(double));
    for (size_t r = 0; r < nb; r++)
        memcpy(q.zdots[0] + r * din, bv + (i0 + r) * d, d * sizeof(double));
    load_rows(b->t[k], av + i0 * net->d_out, nb, net->d_out);
}

static void bilinear_block(const rev_args *p, blockws *b, double *ex, size_t i0, size_t nb, double *gtheta)
{
    block_forward(p->net, p->wt, p->z0, i0, nb, b, 2);
    bilinear_load(p->net, b, ex, 0, p->in1, p->in2, i0, nb);
    bilinear_core(p, b, ex, 1, gtheta);
}

/* Two (a, b) pairs per row on one forward pass and one primal-adjoint chain. */
static void bilinear2_block(const rev_args *p, blockws *b, double *ex, size_t i0, size_t nb, double *gtheta)
{
    block_forward(p->net, p->wt, p->z0, i0, nb, b, 2);
    bilinear_load(p->net, b, ex, 0, p->in1, p->in2, i0, nb);
    bilinear_load(p->net, b, ex, 1, p->in3, p->in4, i0, nb);
    bilinear_core(p, b, ex, 2, gtheta);
}

sdflow_status sdflow__mlp_bilinear_grad2(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                         const double *a1, const double *b1, const double *a2, const double *b2,
                                         double *gtheta)
{
    rev_args p = { net, NULL, z0, a1, b1, NULL, bilinear_extra(net, 2), a2, b2, NULL };
    return run_groups(ctx, &p, n, bilinear2_block, gtheta);
}

/* Energy nets, the caller's output adjoint w of the score y = -grad_x E:
 * per block the forward pass (with phi''), the primal reverse for y, then
 * the bilinear gradient with a = -1, b = w (the gradient of w . y is
 * -(d/dtheta) grad_x E . w), all on the block's one forward pass. Extra
 * space: the bilinear pair, R ones, y and w (R x d each). */
static void energy_rows_block(const rev_args *p, blockws *b, double *ex, size_t i0, size_t nb, double *gtheta)
{
    const sdflow__mlp *net = p->net;
    size_t d = net->d, din = net->d_in, in0 = net->in[0];
    double *ones = ex + bilinear_extra(net, 1), *y = ones + R, *w = y + R * d;
    bilinear_pair q;
    bilinear_bufs(net, b, ex, 0, &q);
    rows_input(p, b, i0, nb);
    block_forward(net, p->wt, NULL, i0, nb, b, 2);
    for (size_t i = 0; i < R; i++)
        ones[i] = 1.0;
    block_reverse(net, b, ones, NULL);
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < d; j++)
            y[i * d + j] = -b->zb[0][i * in0 + j];
    if (p->out)
        memcpy(p->out + i0 * d, y, nb * d * sizeof(double));
    p->rows->adjoint(p->rows->user, i0, nb, y, w);
    memset(q.zdots[0], 0, R * din * sizeof(double));
    for (size_t i = 0; i < nb; i++)
        memcpy(q.zdots[0] + i * din, w + i * d, d * sizeof(double));
    for (size_t i = 0; i < R; i++) /* a = -1 (d_out = 1) on the block's rows, 0 on padding */
        b->t[0][i] = i < nb ? -1.0 : 0.0;
    bilinear_core(p, b, ex, 1, gtheta);
}

sdflow_status sdflow__mlp_energy_rows(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const sdflow__mlp_rows *rows,
                                      double *y, double *gtheta)
{
    rev_args p = { net, NULL, NULL, NULL, NULL, y, bilinear_extra(net, 1) + R + 2 * R * net->d, NULL, NULL, rows };
    return run_groups(ctx, &p, n, energy_rows_block, gtheta);
}

sdflow_status sdflow__mlp_bilinear_grad(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                        const double *a, const double *bv, double *gtheta)
{
    rev_args p = { net, NULL, z0, a, bv, NULL, bilinear_extra(net, 1), NULL, NULL, NULL };
    return run_groups(ctx, &p, n, bilinear_block, gtheta);
}
