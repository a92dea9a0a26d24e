/* SPDX-License-Identifier: MIT */
/* Kernel (empirical) score model: the Gaussian-smoothed empirical measure
 * (1/M) sum_j N(alpha y_j, sigma^2 I) of a reference set Y, with its exact
 * score, log-density, Jacobian and divergence (algorithms.md section 11).
 *
 * Sums over Y are blocked with an online log-sum-exp, so memory is
 * O(block_q * block_y + block_q * d), never O(n * m). Below d = 12 the
 * logits come from a fused direct loop (exact differences, no cancellation);
 * from d = 12 up the cross terms x.y go through cblas_dgemm on centred data
 * (measured per 4096^2 SD-flow step on 2 cores: equal at d = 8 and 10,
 * fused 79 ms vs GEMM 57 ms at d = 12, 122 vs 65 ms at d = 16).
 * The exponential is our own vectorizable one (range reduction and a degree
 * 13 polynomial, Estrin form) because libm's exp is scalar without -ffast-math; hot loops
 * get an AVX2+FMA clone chosen at run time, so results are deterministic on
 * one machine for any thread count but may differ in the last bits between
 * machines. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <omp.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "kernel_internal.h"

#define LANES 8 /* independent partial sums: vectorizable, fixed order */
#define FUSED_ROWS 16 /* query rows sharing each cached reference block (fused path) */

#if defined(__GNUC__) && defined(__x86_64__)
#  define KERNEL_AVX2 1
#  define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

/* ---- vectorizable exp ----------------------------------------------------- */

/* Taylor coefficients 1/k! of e^r, k = 3..13. */
#define C3 (1.0 / 6.0)
#define C4 (1.0 / 24.0)
#define C5 (1.0 / 120.0)
#define C6 (1.0 / 720.0)
#define C7 (1.0 / 5040.0)
#define C8 (1.0 / 40320.0)
#define C9 (1.0 / 362880.0)
#define C10 (1.0 / 3628800.0)
#define C11 (1.0 / 39916800.0)
#define C12 (1.0 / 479001600.0)
#define C13 (1.0 / 6227020800.0)

/* e^r on |r| <= ln2/2 by Estrin's scheme: depth 4 instead of Horner's 13,
 * so the exp throughput is not bound by FMA latency. */
static SDFLOW__ALWAYS_INLINE double poly13(double r)
{
    double r2 = r * r, r4 = r2 * r2;
    double q0 = (1.0 + r) + r2 * (0.5 + r * C3);
    double q1 = (C4 + r * C5) + r2 * (C6 + r * C7);
    double q2 = (C8 + r * C9) + r2 * (C10 + r * C11);
    double q3 = C12 + r * C13;
    return (q0 + r4 * q1) + (r4 * r4) * (q2 + r4 * q3);
}

/* exp(x) = 2^k e^r, k = round(x / ln 2), r = x - k ln 2 (Cody-Waite split,
 * exact first product), e^r by its Taylor polynomial of degree 13 on
 * |r| <= ln2/2 (truncation < 5e-18). 2^k is built from the bits of the
 * rounding constant, so no double->int64 conversion (AVX2 has none). */
static SDFLOW__ALWAYS_INLINE double vexp(double x)
{
    const double shift = 0x1.8p52, log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double xc = x < -708.0 ? -708.0 : x;
    xc = xc > 709.0 ? 709.0 : xc;
    double kd = xc * log2e + shift;
    double k = kd - shift;
    double r = (xc - k * ln2_hi) - k * ln2_lo;
    double p = poly13(r);
    uint64_t kb;
    memcpy(&kb, &kd, sizeof kb);
    kb = (kb + 1023u) << 52; /* low bits of kd hold k (+ 2^51, shifted out) */
    double scale;
    memcpy(&scale, &kb, sizeof scale);
    return x < -708.0 ? 0.0 : p * scale;
}

double sdflow__kernel_exp1(double x) { return vexp(x); }

sdflow_status sdflow_kernel_exp(size_t n, const double *x, double *out)
{
    if (!x || !out || !sdflow__size_ok(n, 1))
        return SDFLOW_E_INVALID;
    for (size_t i = 0; i < n; i++)
        out[i] = vexp(x[i]);
    return SDFLOW_OK;
}

/* ---- reference sets --------------------------------------------------------- */

sdflow_status sdflow__kref_init(sdflow_ctx *ctx, sdflow__kref *r, size_t m, size_t d)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->d = d;
    r->c = sdflow__alloc_array(ctx, d, sizeof(double), "kernel centre");
    if (d < SDFLOW__KERNEL_GEMM_D) {
        r->yt = sdflow__alloc_array(ctx, m * d, sizeof(double), "kernel reference set");
    } else {
        r->y = sdflow__alloc_array(ctx, m * d, sizeof(double), "kernel reference set");
        r->hy = r->y ? sdflow__alloc_array(ctx, m, sizeof(double), "kernel reference norms") : NULL;
    }
    if (!r->c || (!r->yt && !r->hy)) {
        sdflow__kref_free(ctx, r);
        return SDFLOW_E_NOMEM;
    }
    return SDFLOW_OK;
}

void sdflow__kref_free(sdflow_ctx *ctx, sdflow__kref *r)
{
    sdflow__free(ctx, r->c);
    sdflow__free(ctx, r->y);
    sdflow__free(ctx, r->hy);
    sdflow__free(ctx, r->yt);
    memset(r, 0, sizeof *r);
}

/* Stores rows minus c (centred: rows already centred) and the norms. */
static void kref_fill(sdflow__kref *r, const double *rows, int centred, int nt)
{
    size_t m = r->m, d = r->d;
    const double *c = r->c;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t j = 0; j < m; j++) {
        double h = 0;
        for (size_t k = 0; k < d; k++) {
            double v = centred ? rows[j * d + k] : rows[j * d + k] - c[k];
            if (r->yt)
                r->yt[k * m + j] = v;
            else
                r->y[j * d + k] = v;
            h += v * v;
        }
        if (r->hy)
            r->hy[j] = 0.5 * h;
    }
}

void sdflow__kref_set(sdflow__kref *r, const double *rows, int nt)
{
    size_t m = r->m, d = r->d;
    for (size_t k = 0; k < d; k++) /* fixed summation order: the centre is reproducible */
        r->c[k] = 0;
    for (size_t j = 0; j < m; j++)
        for (size_t k = 0; k < d; k++)
            r->c[k] += rows[j * d + k];
    for (size_t k = 0; k < d; k++)
        r->c[k] /= (double)m;
    kref_fill(r, rows, 0, nt);
}

void sdflow__kref_set_centred(sdflow__kref *r, const double *centre, const double *rows, int nt)
{
    memcpy(r->c, centre, r->d * sizeof *r->c);
    kref_fill(r, rows, 1, nt);
}

/* ---- the hot loops ------------------------------------------------------------ */

static SDFLOW__ALWAYS_INLINE double lane_max(const double *a, size_t n)
{
    double lm[LANES];
    for (int u = 0; u < LANES; u++)
        lm[u] = -INFINITY;
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int u = 0; u < LANES; u++)
            lm[u] = a[j + u] > lm[u] ? a[j + u] : lm[u];
    for (; j < n; j++)
        lm[j % LANES] = a[j] > lm[j % LANES] ? a[j] : lm[j % LANES];
    double mb = lm[0];
    for (int u = 1; u < LANES; u++)
        mb = lm[u] > mb ? lm[u] : mb;
    return mb;
}

/* a[j] = e^(a[j] - mx) in place; returns sum_j a[j] in a fixed lane order. */
static SDFLOW__ALWAYS_INLINE double exp_sum(double *a, size_t n, double mx)
{
    double ls[LANES] = { 0 };
    for (size_t j = 0; j < n; j++)
        a[j] = vexp(a[j] - mx);
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int u = 0; u < LANES; u++)
            ls[u] += a[j + u];
    for (; j < n; j++)
        ls[j % LANES] += a[j];
    double s = 0;
    for (int u = 0; u < LANES; u++)
        s += ls[u];
    return s;
}

/* Online log-sum-exp update with a block whose logits (now in buf) peak at
 * mb: rescales (mx, s, v) to the new max. Returns 0 if the block is empty. */
static SDFLOW__ALWAYS_INLINE int rescale(double mb, double *mx, double *s, double *v, size_t d)
{
    if (mb == -INFINITY)
        return 0;
    if (mb > *mx) {
        double c = exp(*mx - mb); /* 0 when mx = -inf: nothing accumulated yet */
        *s *= c;
        for (size_t k = 0; k < d; k++)
            v[k] *= c;
        *mx = mb;
    }
    return 1;
}

/* ---- fused small-d path with GCC vector types (4 doubles; SSE2 pairs in the
 * default clone, one AVX2 register in the avx2 clone) ---------------------- */

#pragma GCC diagnostic ignored "-Wpsabi" /* the vector helpers are always inlined, never an ABI boundary */
typedef double v4d __attribute__((vector_size(32)));
typedef double v4du __attribute__((vector_size(32), aligned(8))); /* unaligned loads/stores */
typedef long long v4i __attribute__((vector_size(32)));

static SDFLOW__ALWAYS_INLINE v4d splat(double a) { return (v4d){ a, a, a, a }; }
static SDFLOW__ALWAYS_INLINE v4d vsel(v4i m, v4d a, v4d b) { return (v4d)(((v4i)a & m) | ((v4i)b & ~m)); }
#define vload(p) (*(const v4du *)(p))
#define vstore(p, a) (*(v4du *)(p) = (a))

/* vexp on four lanes, same algorithm and constants as the scalar one. */
static SDFLOW__ALWAYS_INLINE v4d vexp4(v4d x)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    v4i lo = x < splat(-708.0);
    v4d xc = vsel(lo, splat(-708.0), x);
    xc = vsel(xc > splat(709.0), splat(709.0), xc);
    v4d kd = xc * splat(1.4426950408889634074) + splat(0x1.8p52);
    v4d k = kd - splat(0x1.8p52);
    v4d r = (xc - k * splat(ln2_hi)) - k * splat(ln2_lo);
    v4d r2 = r * r, r4 = r2 * r2;
    v4d q0 = (splat(1.0) + r) + r2 * (splat(0.5) + r * splat(C3));
    v4d q1 = (splat(C4) + r * splat(C5)) + r2 * (splat(C6) + r * splat(C7));
    v4d q2 = (splat(C8) + r * splat(C9)) + r2 * (splat(C10) + r * splat(C11));
    v4d q3 = splat(C12) + r * splat(C13);
    v4d p = (q0 + r4 * q1) + (r4 * r4) * (q2 + r4 * q3);
    v4i kb = ((v4i)kd + 1023) << 52;
    return vsel(lo, splat(0.0), p * (v4d)kb);
}

static SDFLOW__ALWAYS_INLINE double hmax4(v4d a)
{
    double m = a[0];
    for (int u = 1; u < 4; u++)
        m = a[u] > m ? a[u] : m;
    return m;
}

static SDFLOW__ALWAYS_INLINE double hsum4(v4d a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* One query row against the references j0 .. j0 + nb - 1, fused layout
 * (d < SDFLOW__KERNEL_GEMM_D), updating the row's running (mx, s, v). D is a
 * compile-time constant in the specialized copies (d = 1..4) so the
 * coordinate loops unroll; 0 means "use r->d". Two passes: logits with their
 * max, then exp with the weighted sums. References are processed 4 at a
 * time; a tail of < 4 is padded with -inf. */
static SDFLOW__ALWAYS_INLINE void fused_block_body(const sdflow__kref *r, const double *q, double hb, long skip,
                                                   size_t j0, size_t nb, double *buf, double *mxo, double *so,
                                                   double *v, const size_t D)
{
    size_t m = r->m, d = D ? D : r->d, nv = nb & ~(size_t)3;
    double mx = *mxo, s = *so;
    v4d qv[SDFLOW__KERNEL_GEMM_D];
    for (size_t k = 0; k < d; k++)
        qv[k] = splat(q[k]);
    const double *yb = r->yt + j0;
    v4d lm = splat(-INFINITY), nhb = splat(-hb);
    for (size_t j = 0; j < nv; j += 4) {
        v4d acc = splat(0.0);
        for (size_t k = 0; k < d; k++) {
            v4d t = qv[k] - vload(yb + k * m + j);
            acc += t * t;
        }
        acc *= nhb;
        vstore(buf + j, acc);
        lm = vsel(acc > lm, acc, lm);
    }
    for (size_t j = nv; j < nv + 4; j++) { /* tail, padded to a full vector */
        double acc = 0;
        for (size_t k = 0; k < d && j < nb; k++) {
            double t = q[k] - yb[k * m + j];
            acc += t * t;
        }
        buf[j] = j < nb ? -hb * acc : -INFINITY;
    }
    if (skip >= 0 && (size_t)skip >= j0 && (size_t)skip < j0 + nb)
        buf[(size_t)skip - j0] = -INFINITY;
    double mb = hmax4(lm);
    for (size_t j = nv; j < nv + 4; j++)
        mb = buf[j] > mb ? buf[j] : mb;
    if (skip >= 0 && (size_t)skip >= j0 && (size_t)skip < j0 + nv) { /* the skipped pair may have been the max */
        mb = -INFINITY;
        for (size_t j = 0; j < nv + 4; j++)
            mb = buf[j] > mb ? buf[j] : mb;
    }
    if (!rescale(mb, &mx, &s, v, d))
        return;
    v4d mxv = splat(mx), sv = splat(0.0), sw = splat(0.0), vv[SDFLOW__KERNEL_GEMM_D], vw[SDFLOW__KERNEL_GEMM_D];
    for (size_t k = 0; k < d; k++)
        vv[k] = vw[k] = splat(0.0);
    size_t j = 0;
    for (; j + 8 <= nv; j += 8) { /* two independent chains per iteration */
        v4d pv = vexp4(vload(buf + j) - mxv), pw = vexp4(vload(buf + j + 4) - mxv);
        sv += pv;
        sw += pw;
        for (size_t k = 0; k < d; k++) {
            vv[k] += pv * vload(yb + k * m + j);
            vw[k] += pw * vload(yb + k * m + j + 4);
        }
    }
    if (j < nv) {
        v4d pv = vexp4(vload(buf + j) - mxv);
        sv += pv;
        for (size_t k = 0; k < d; k++)
            vv[k] += pv * vload(yb + k * m + j);
    }
    if (nv < nb) {
        v4d pv = vexp4(vload(buf + nv) - mxv);
        sv += pv;
        for (size_t k = 0; k < d; k++) {
            double y4[4];
            for (size_t u = 0; u < 4; u++)
                y4[u] = nv + u < nb ? yb[k * m + nv + u] : 0.0;
            vv[k] += pv * vload(y4);
        }
    }
    s += hsum4(sv + sw);
    for (size_t k = 0; k < d; k++)
        v[k] += hsum4(vv[k] + vw[k]);
    *mxo = mx;
    *so = s;
}

/* One query row of a GEMM block: g holds q.y_j on entry and e^(l_j - mx)
 * on exit (the left factor of the second GEMM). */
static SDFLOW__ALWAYS_INLINE void gemm_row_body(double *g, const double *hy, size_t nb, double beta, double hq,
                                                long skip, double *mx, double *s, double *v, size_t d)
{
    for (size_t j = 0; j < nb; j++) {
        double l = beta * (g[j] - hy[j] - hq); /* -beta |q - y|^2 / 2, clamped: the expansion can round above 0 */
        g[j] = l < 0 ? l : 0;
    }
    if (skip >= 0 && (size_t)skip < nb)
        g[skip] = -INFINITY;
    if (!rescale(lane_max(g, nb), mx, s, v, d)) {
        for (size_t j = 0; j < nb; j++)
            g[j] = 0;
        return;
    }
    *s += exp_sum(g, nb, *mx);
}

typedef void (*fused_fn)(const sdflow__kref *, const double *, double, long, size_t, size_t, double *, double *,
                         double *, double *);
typedef void (*gemm_fn)(double *, const double *, size_t, double, double, long, double *, double *, double *, size_t);

/* Per-block dispatch on d: the specialized copies unroll the coordinate loops. */
#define FUSED_DISPATCH                                                                \
    switch (r->d) {                                                                   \
    case 1: fused_block_body(r, q, hb, skip, j0, nb, buf, mx, s, v, 1); break;        \
    case 2: fused_block_body(r, q, hb, skip, j0, nb, buf, mx, s, v, 2); break;        \
    case 3: fused_block_body(r, q, hb, skip, j0, nb, buf, mx, s, v, 3); break;        \
    case 4: fused_block_body(r, q, hb, skip, j0, nb, buf, mx, s, v, 4); break;        \
    default: fused_block_body(r, q, hb, skip, j0, nb, buf, mx, s, v, 0); break;       \
    }

static void fused_block_default(const sdflow__kref *r, const double *q, double hb, long skip, size_t j0, size_t nb,
                                double *buf, double *mx, double *s, double *v)
{
    FUSED_DISPATCH
}

static void gemm_row_default(double *g, const double *hy, size_t nb, double beta, double hq, long skip, double *mx,
                             double *s, double *v, size_t d)
{
    gemm_row_body(g, hy, nb, beta, hq, skip, mx, s, v, d);
}

#ifdef KERNEL_AVX2
TARGET_AVX2 static void fused_block_avx2(const sdflow__kref *r, const double *q, double hb, long skip, size_t j0,
                                         size_t nb, double *buf, double *mx, double *s, double *v)
{
    FUSED_DISPATCH
}

TARGET_AVX2 static void gemm_row_avx2(double *g, const double *hy, size_t nb, double beta, double hq, long skip,
                                      double *mx, double *s, double *v, size_t d)
{
    gemm_row_body(g, hy, nb, beta, hq, skip, mx, s, v, d);
}

static int have_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

/* Empty running sums (max -inf, sum 0, weighted sum 0) for rows i0 .. i1 - 1. */
static void start_rows(size_t i0, size_t i1, size_t d, double *mx, double *s, double *v)
{
    for (size_t i = i0; i < i1; i++) {
        mx[i] = -INFINITY;
        s[i] = 0;
        for (size_t k = 0; k < d; k++)
            v[i * d + k] = 0;
    }
}

/* All references against query rows i0 .. i0 + nq - 1 (GEMM layout): logits
 * q.y_j by a GEMM into g, the exp pass row by row, then the weighted sums
 * by a second GEMM. g holds nq * by doubles. */
static void gemm_block(const sdflow__kref *r, size_t i0, size_t nq, const double *q, const double *beta, double beta0,
                       long self_off, size_t by, gemm_fn g_row, double *g, double *mx, double *s, double *v)
{
    size_t d = r->d, m = r->m;
    start_rows(i0, i0 + nq, d, mx, s, v);
    for (size_t j0 = 0; j0 < m; j0 += by) {
        size_t nb = m - j0 < by ? m - j0 : by;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nb, (int)d, 1.0, q + i0 * d, (int)d,
                    r->y + j0 * d, (int)d, 0.0, g, (int)nb);
        for (size_t i = i0; i < i0 + nq; i++) {
            double b = beta ? beta[i] : beta0, hq = 0;
            for (size_t k = 0; k < d; k++)
                hq += q[i * d + k] * q[i * d + k];
            long skip = self_off >= 0 ? (long)i + self_off - (long)j0 : -1;
            g_row(g + (i - i0) * nb, r->hy + j0, nb, b, 0.5 * hq, skip, mx + i, s + i, v + i * d, d);
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)d, (int)nb, 1.0, g, (int)nb,
                    r->y + j0 * d, (int)d, 1.0, v + i0 * d, (int)d);
    }
}

size_t sdflow__kernel_work_size(size_t d, size_t bq, size_t by, int nt)
{
    return (size_t)nt * (d < SDFLOW__KERNEL_GEMM_D ? by + 4 : bq * by); /* + 4: padded tail */
}

void sdflow__kernel_sums(const sdflow_ctx *ctx, const sdflow__kref *r, size_t n, const double *q, const double *beta,
                         double beta0, long self_off, size_t bq, size_t by, int nt, double *work, double *mx, double *s,
                         double *v)
{
    size_t d = r->d, m = r->m;
    if (by > m)
        by = m;
    if (r->yt) {
        fused_fn f = fused_block_default;
#ifdef KERNEL_AVX2
        if (have_avx2())
            f = fused_block_avx2;
#endif
        /* Tiles of FUSED_ROWS query rows sweep the reference blocks
         * together, so a block (by x d doubles) is read from cache once per
         * tile instead of from memory once per row. Each row still sums its
         * blocks in order: any split gives the same bits. */
        size_t ntile = (n + FUSED_ROWS - 1) / FUSED_ROWS;
#pragma omp parallel num_threads(nt)
        {
            double *buf = work + (size_t)omp_get_thread_num() * (by + 4);
#pragma omp for schedule(dynamic, 1)
            for (size_t tile = 0; tile < ntile; tile++) {
                size_t i0 = tile * FUSED_ROWS, i1 = i0 + FUSED_ROWS < n ? i0 + FUSED_ROWS : n;
                start_rows(i0, i1, d, mx, s, v);
                for (size_t j0 = 0; j0 < m; j0 += by) {
                    size_t nb = m - j0 < by ? m - j0 : by;
                    for (size_t i = i0; i < i1; i++) {
                        double b = beta ? beta[i] : beta0;
                        f(r, q + i * d, 0.5 * b, self_off >= 0 ? (long)i + self_off : -1, j0, nb, buf, mx + i, s + i,
                          v + i * d);
                    }
                }
            }
        }
        return;
    }
    gemm_fn g = gemm_row_default;
#ifdef KERNEL_AVX2
    if (have_avx2())
        g = gemm_row_avx2;
#endif
    /* Each of our threads takes whole query blocks and calls GEMMs on them,
     * so the exp passes run in parallel too. Whether those GEMMs may thread
     * inside OpenBLAS's pool is the ctx's BLAS policy (core/blas.c). A block
     * is computed the same way whichever thread takes it, so results do not
     * depend on the thread count. */
    int blas = sdflow__blas_team_begin(ctx, nt);
    size_t nblk = (n + bq - 1) / bq;
#pragma omp parallel num_threads(nt)
    {
        double *buf = work + (size_t)omp_get_thread_num() * bq * by;
#pragma omp for schedule(dynamic, 1)
        for (size_t b = 0; b < nblk; b++)
            gemm_block(r, b * bq, n - b * bq < bq ? n - b * bq : bq, q, beta, beta0, self_off, by, g, buf, mx, s, v);
    }
    sdflow__blas_team_end(blas);
}

void sdflow__kernel_nn(const sdflow__kref *r, size_t n, const double *x, const size_t *self_idx, int nt, double *nn2,
                       double *far2)
{
    size_t m = r->m, d = r->d;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        double lo = INFINITY, hi = 0, buf[256];
        for (size_t j0 = 0; j0 < m; j0 += 256) {
            size_t nb = m - j0 < 256 ? m - j0 : 256;
            if (r->yt) { /* column layout: accumulate coordinate by coordinate, vectorized over j */
                for (size_t j = 0; j < nb; j++)
                    buf[j] = 0;
                for (size_t k = 0; k < d; k++) {
                    double qk = x[i * d + k] - r->c[k];
                    const double *yk = r->yt + k * m + j0;
                    for (size_t j = 0; j < nb; j++)
                        buf[j] += (qk - yk[j]) * (qk - yk[j]);
                }
            } else { /* row layout: one contiguous row per reference */
                for (size_t j = 0; j < nb; j++) {
                    const double *yj = r->y + (j0 + j) * d;
                    double acc[LANES] = { 0 }; /* lanes over k: vectorizable, fixed order */
                    size_t k = 0;
                    for (; k + LANES <= d; k += LANES)
                        for (int u = 0; u < LANES; u++) {
                            double t = (x[i * d + k + u] - r->c[k + u]) - yj[k + u];
                            acc[u] += t * t;
                        }
                    for (; k < d; k++) {
                        double t = (x[i * d + k] - r->c[k]) - yj[k];
                        acc[k % LANES] += t * t;
                    }
                    double d2 = 0;
                    for (int u = 0; u < LANES; u++)
                        d2 += acc[u];
                    buf[j] = d2;
                }
            }
            if (self_idx && self_idx[i] >= j0 && self_idx[i] < j0 + nb)
                buf[self_idx[i] - j0] = NAN; /* comparisons below ignore it */
            for (size_t j = 0; j < nb; j++) {
                lo = buf[j] < lo ? buf[j] : lo;
                hi = buf[j] > hi ? buf[j] : hi;
            }
        }
        nn2[i] = lo;
        if (far2)
            far2[i] = hi;
    }
}

/* ---- the model ------------------------------------------------------------------ */

/* The workspace (chunk x (2 d + 3) + the engine's blocks, up to ~8 MB per
 * thread for d >= 12) is cached in the model and grown on demand through the
 * allocator's realloc hook: a sampler or likelihood run evaluates the model
 * thousands of times with the same sizes, and a fresh block per call would
 * cost an allocation (and, above the allocator's mmap threshold, page
 * faults) per call. The cache is claimed with an atomic flag, so evaluation
 * stays reentrant: a call that finds it claimed -- another thread evaluating
 * the same model, as distinct samplers sharing it may -- works in a block of
 * its own, allocated and freed within the call. Results do not depend on
 * which buffer a call uses (scratch only). */
typedef struct kmodel {
    sdflow__kref ref;
    long bq, by;
    double *work; /* cached workspace, owned by whoever holds busy */
    size_t work_len;
    atomic_flag busy;
} kmodel;

const sdflow__kref *sdflow__kernel_ref(const sdflow_model *m)
{
    return m && m->kind == SDFLOW_MODEL_KERNEL ? &((const kmodel *)m->impl)->ref : NULL;
}

typedef enum kmode { K_SCORE, K_LOGP, K_JAC, K_DIV, K_JVP, K_EVAL_DIV, K_PARTIAL } kmode;

/* Where a pass writes: out (score, logp, jac, div or jvp; score for
 * K_EVAL_DIV with div beside it), or the partial triple. vin: JVP directions. */
typedef struct ksink {
    kmode mode;
    double *out, *div, *mx, *s, *v;
    const double *vin;
} ksink;

typedef enum moment { M_FULL, M_TRACE, M_MATVEC } moment;

/* Second moment of the references around the kernel mean mc (centred frame)
 * at query q under the softmax weights: the full covariance (d x d), its
 * trace, or its product with dir. A second pass with the final max known,
 * so no rescaling; scalar and simple, as only derivatives need it. */
static void row_moment(const sdflow__kref *r, const double *q, double hb, double mx, double s, const double *mc,
                       moment what, const double *dir, double *out)
{
    size_t d = r->d, len = what == M_FULL ? d * d : what == M_TRACE ? 1 : d;
    for (size_t k = 0; k < len; k++)
        out[k] = 0;
    for (size_t j = 0; j < r->m; j++) {
        double d2 = 0, proj = 0;
        for (size_t k = 0; k < d; k++) {
            double t = q[k] - sdflow__kref_at(r, j, k);
            d2 += t * t;
        }
        double w = exp(-hb * d2 - mx) / s;
        if (w == 0)
            continue;
        if (what == M_MATVEC)
            for (size_t k = 0; k < d; k++)
                proj += (sdflow__kref_at(r, j, k) - mc[k]) * dir[k];
        for (size_t a = 0; a < d; a++) {
            double ea = sdflow__kref_at(r, j, a) - mc[a];
            if (what == M_TRACE)
                out[0] += w * ea * ea;
            else if (what == M_MATVEC)
                out[a] += w * ea * proj;
            else
                for (size_t b = 0; b <= a; b++)
                    out[a * d + b] += w * ea * (sdflow__kref_at(r, j, b) - mc[b]);
        }
    }
    if (what == M_FULL)
        for (size_t a = 0; a < d; a++)
            for (size_t b = a + 1; b < d; b++)
                out[a * d + b] = out[b * d + a];
}

/* One pass over all n rows in chunks of chunk rows, in the workspace buf of
 * chunk (2 d + 3) + sdflow__kernel_work_size() doubles. */
static void kernel_sweep(sdflow_model *mdl, const sdflow_process *p, size_t n, const double *x, const double *t,
                         ksink o, size_t chunk, int nt, double *buf)
{
    const kmodel *km = mdl->impl;
    const sdflow__kref *r = &km->ref;
    size_t d = r->d, bq = (size_t)km->bq, by = (size_t)km->by;
    double *q = buf, *beta = q + chunk * d, *mx = beta + chunk, *s = mx + chunk, *v = s + chunk,
           *work = v + chunk * d;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t nc = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < nc; i++) { /* mixture of N(alpha y, sigma^2): work at x/alpha, sigma/alpha */
            sdflow__coef c;
            sdflow__process_coef(p, t[i0 + i], &c);
            beta[i] = c.alpha * c.alpha / (c.sigma * c.sigma);
            for (size_t k = 0; k < d; k++)
                q[i * d + k] = x[(i0 + i) * d + k] / c.alpha - r->c[k];
        }
        sdflow__kernel_sums(mdl->ctx, r, nc, q, beta, 0, -1, bq, by, nt, work, mx, s, v);
        double logm = log((double)r->m);
        if (o.mode == K_JAC || o.mode == K_DIV || o.mode == K_JVP || o.mode == K_EVAL_DIV) {
            /* J = alpha^2 Cov_w(y) / sigma^4 - I / sigma^2 */
#pragma omp parallel for num_threads(nt) schedule(static)
            for (size_t i = 0; i < nc; i++) {
                size_t gi = i0 + i;
                sdflow__coef c;
                sdflow__process_coef(p, t[gi], &c);
                double *mc = v + i * d, s2 = c.sigma * c.sigma, hb = 0.5 * beta[i];
                double a2s4 = c.alpha * c.alpha / (s2 * s2);
                for (size_t k = 0; k < d; k++)
                    mc[k] /= s[i];
                if (o.mode == K_JAC) {
                    double *J = o.out + gi * d * d;
                    row_moment(r, q + i * d, hb, mx[i], s[i], mc, M_FULL, NULL, J);
                    for (size_t k = 0; k < d * d; k++)
                        J[k] *= a2s4;
                    for (size_t k = 0; k < d; k++)
                        J[k * d + k] -= 1.0 / s2;
                } else if (o.mode == K_JVP) {
                    const double *dir = o.vin + gi * d;
                    double *jv = o.out + gi * d;
                    row_moment(r, q + i * d, hb, mx[i], s[i], mc, M_MATVEC, dir, jv);
                    for (size_t k = 0; k < d; k++)
                        jv[k] = a2s4 * jv[k] - dir[k] / s2;
                } else {
                    double tr;
                    row_moment(r, q + i * d, hb, mx[i], s[i], mc, M_TRACE, NULL, &tr);
                    tr = a2s4 * tr - (double)d / s2;
                    if (o.mode == K_DIV) {
                        o.out[gi] = tr;
                        continue;
                    }
                    o.div[gi] = tr;
                    for (size_t k = 0; k < d; k++)
                        o.out[gi * d + k] = (c.alpha * (r->c[k] + mc[k]) - x[gi * d + k]) / s2;
                }
            }
            continue;
        }
        for (size_t i = 0; i < nc; i++) {
            size_t gi = i0 + i;
            sdflow__coef c;
            sdflow__process_coef(p, t[gi], &c);
            double s2 = c.sigma * c.sigma;
            switch (o.mode) {
            case K_SCORE: /* (alpha m - x) / sigma^2 with m = c + v / s */
                for (size_t k = 0; k < d; k++)
                    o.out[gi * d + k] = (c.alpha * (r->c[k] + v[i * d + k] / s[i]) - x[gi * d + k]) / s2;
                break;
            case K_LOGP:
                o.out[gi] = mx[i] + log(s[i]) - logm - 0.5 * (double)d * log(2.0 * SDFLOW__PI * s2);
                break;
            case K_PARTIAL: /* data coordinates, so shards with other centres merge */
                o.mx[gi] = mx[i];
                o.s[gi] = s[i];
                for (size_t k = 0; k < d; k++)
                    o.v[gi * d + k] = v[i * d + k] + s[i] * r->c[k];
                break;
            default: break;
            }
        }
    }
}

static sdflow_status kernel_pass(sdflow_model *mdl, const sdflow_process *p, size_t n, const double *x,
                                 const double *t, ksink o)
{
    kmodel *km = mdl->impl;
    const sdflow__kref *r = &km->ref;
    size_t d = r->d, bq = (size_t)km->bq, by = (size_t)km->by;
    size_t chunk = bq * ((1024 + bq - 1) / bq);
    if (chunk > n)
        chunk = n;
    int nt = sdflow__threads_for(mdl->ctx, chunk);
    size_t engine = sdflow__kernel_work_size(d, bq, by < r->m ? by : r->m, nt);
    size_t need = chunk * (2 * d + 3) + engine;
    double *buf;
    int own = !atomic_flag_test_and_set_explicit(&km->busy, memory_order_acquire);
    if (own) {
        if (km->work_len < need) {
            /* realloc keeps the old workspace if growing fails (no state changed on NOMEM); its
             * contents are scratch, so the copy an allocator without realloc makes is wasted but rare */
            double *w = sdflow__realloc_array(mdl->ctx, km->work, km->work_len, need, sizeof(double),
                                              "kernel workspace");
            if (!w) {
                atomic_flag_clear_explicit(&km->busy, memory_order_release);
                return SDFLOW_E_NOMEM;
            }
            km->work = w;
            km->work_len = need;
        }
        buf = km->work;
    } else if (!(buf = sdflow__alloc_array(mdl->ctx, need, sizeof(double), "kernel workspace of a concurrent call"))) {
        return SDFLOW_E_NOMEM;
    }
    kernel_sweep(mdl, p, n, x, t, o, chunk, nt, buf);
    if (own)
        atomic_flag_clear_explicit(&km->busy, memory_order_release);
    else
        sdflow__free(mdl->ctx, buf);
    return SDFLOW_OK;
}

static sdflow_status k_eval(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                            double *out)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_SCORE, .out = out });
}

static sdflow_status k_logpdf(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                              double *logp)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_LOGP, .out = logp });
}

static sdflow_status k_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                const double *t, double *jac)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_JAC, .out = jac });
}

static sdflow_status k_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *div)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_DIV, .out = div });
}

static sdflow_status k_jvp(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                           const double *v, double *jv)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_JVP, .out = jv, .vin = v });
}

static sdflow_status k_eval_div(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                const double *t, double *out, double *div)
{
    return kernel_pass(m, p, n, x, t, (ksink){ .mode = K_EVAL_DIV, .out = out, .div = div });
}

/* Block sizes of the blocked passes (results do not depend on them). */
static const sdflow__opt_slot k_slots[] = {
    { SDFLOW_OPT_BLOCK_Q, SDFLOW__ALL_KINDS, offsetof(kmodel, bq), 256 },
    { SDFLOW_OPT_BLOCK_Y, SDFLOW__ALL_KINDS, offsetof(kmodel, by), 4096 },
};
static const sdflow__opt_store k_options = { "model", k_slots, 2, NULL, NULL };

static void k_destroy(sdflow_model *m)
{
    kmodel *km = m->impl;
    if (!km)
        return;
    sdflow__kref_free(m->ctx, &km->ref);
    sdflow__free(m->ctx, km->work);
    sdflow__free(m->ctx, km);
}

static const sdflow__model_ops kernel_ops = {
    .eval = k_eval,
    .logpdf = k_logpdf,
    .jacobian = k_jacobian,
    .divergence = k_divergence,
    .options = &k_options,
    .destroy = k_destroy,
    .jvp = k_jvp,
    .eval_div = k_eval_div,
};

/* Both constructors: rows y (data coordinates), or with centre non-NULL
 * rows already centred at centre (a saved model's own frame). */
static sdflow_status create_kernel(sdflow_ctx *ctx, size_t m, size_t d, const double *centre, const double *y,
                                   sdflow_model **out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    if (!out)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "out is NULL");
    *out = NULL;
    sdflow_status st = sdflow__check_dims(ctx, m, d);
    if (st || (st = sdflow__check_finite(ctx, y, m, d, "y")) ||
        (centre && (st = sdflow__check_finite(ctx, centre, 1, d, "centre"))))
        return st;
    if (d > INT_MAX || m > (size_t)LONG_MAX / 2)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "kernel model with m=%zu, d=%zu exceeds the BLAS index range",
                            m, d);
    kmodel *km = sdflow__calloc_array(ctx, 1, sizeof *km, "kernel model");
    if (km)
        atomic_flag_clear(&km->busy); /* a zeroed atomic_flag need not be clear */
    if (!km)
        return SDFLOW_E_NOMEM;
    sdflow__opt_defaults(&k_options, 1, km);
    if ((st = sdflow__kref_init(ctx, &km->ref, m, d))) {
        sdflow__free(ctx, km);
        return st;
    }
    if (centre)
        sdflow__kref_set_centred(&km->ref, centre, y, sdflow__threads_for(ctx, m));
    else
        sdflow__kref_set(&km->ref, y, sdflow__threads_for(ctx, m));
    return sdflow__model_new(ctx, SDFLOW_MODEL_KERNEL, d, SDFLOW_OUT_SCORE, &kernel_ops, km, out);
}

sdflow_status sdflow_model_create_kernel(sdflow_ctx *ctx, size_t m, size_t d, const double *y, sdflow_model **out)
{
    return create_kernel(ctx, m, d, NULL, y, out);
}

sdflow_status sdflow__model_create_kernel_centred(sdflow_ctx *ctx, size_t m, size_t d, const double *centre,
                                                  const double *yc, sdflow_model **out)
{
    return create_kernel(ctx, m, d, centre, yc, out);
}

/* ---- shards ------------------------------------------------------------------------ */

sdflow_status sdflow_model_kernel_partial(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                          const double *t, double *mx, double *s, double *v)
{
    if (!m)
        return SDFLOW_E_INVALID;
    sdflow_ctx *ctx = m->ctx;
    if (m->kind != SDFLOW_MODEL_KERNEL)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "partial sums need a kernel model, not %s",
                            sdflow_model_kind_name(m->kind));
    sdflow_status st = sdflow__check_dims(ctx, n, m->d);
    if (st || (st = sdflow__check_finite(ctx, x, n, m->d, "x")) || (st = sdflow__check_times(ctx, p, n, t, "t")) ||
        (st = sdflow__check_ptr(ctx, mx, "mx")) || (st = sdflow__check_ptr(ctx, s, "s")) ||
        (st = sdflow__check_ptr(ctx, v, "v")))
        return st;
    if ((st = kernel_pass(m, p, n, x, t, (ksink){ .mode = K_PARTIAL, .mx = mx, .s = s, .v = v })))
        return st;
    /* documented: mx is finite for a non-empty shard (all weights can underflow at tiny t) */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(mx[i]) || !(s[i] > 0) || !isfinite(s[i]))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "partial sums of query %zu are not finite (mx=%g, s=%g)", i,
                                mx[i], s[i]);
    return sdflow__check_result(ctx, v, n, m->d, "kernel partial sums v");
}

sdflow_status sdflow_kernel_merge(sdflow_ctx *ctx, size_t n, size_t d, double *mx, double *s, double *v,
                                  const double *mx_b, const double *s_b, const double *v_b)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_ptr(ctx, mx, "mx")) || (st = sdflow__check_ptr(ctx, s, "s")) ||
        (st = sdflow__check_ptr(ctx, v, "v")) || (st = sdflow__check_ptr(ctx, mx_b, "mx_b")) ||
        (st = sdflow__check_ptr(ctx, s_b, "s_b")) || (st = sdflow__check_finite(ctx, v, n, d, "v")) ||
        (st = sdflow__check_finite(ctx, v_b, n, d, "v_b")))
        return st;
    for (size_t i = 0; i < n; i++) {
        if (isnan(mx[i]) || isnan(mx_b[i]) || mx[i] == INFINITY || mx_b[i] == INFINITY || !(s[i] >= 0) ||
            !(s_b[i] >= 0) || isinf(s[i]) || isinf(s_b[i]))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "partial triple %zu is not valid (mx=%g, s=%g; mx_b=%g, s_b=%g)",
                                i, mx[i], s[i], mx_b[i], s_b[i]);
        if (mx_b[i] == -INFINITY) /* empty side: nothing to add */
            continue;
        double hi = mx[i] > mx_b[i] ? mx[i] : mx_b[i];
        double ca = exp(mx[i] - hi), cb = exp(mx_b[i] - hi);
        s[i] = ca * s[i] + cb * s_b[i];
        for (size_t k = 0; k < d; k++)
            v[i * d + k] = ca * v[i * d + k] + cb * v_b[i * d + k];
        mx[i] = hi;
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_kernel_finalize(sdflow_ctx *ctx, const sdflow_process *p, size_t n, size_t d, size_t m_total,
                                     const double *x, const double *t, const double *mx, const double *s,
                                     const double *v, double *score, double *mean, double *logp)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, d);
    if (st || (st = sdflow__check_size(ctx, m_total, "m_total")) || (st = sdflow__check_ptr(ctx, mx, "mx")) ||
        (st = sdflow__check_ptr(ctx, s, "s")) || (st = sdflow__check_ptr(ctx, v, "v")) ||
        (st = sdflow__check_times(ctx, p, n, t, "t")))
        return st;
    if ((score && (st = sdflow__check_finite(ctx, x, n, d, "x"))) || (st = sdflow__check_finite(ctx, v, n, d, "v")))
        return st;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] > 0) || !isfinite(s[i]) || !isfinite(mx[i]))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "partial triple %zu is empty or not finite (mx=%g, s=%g)", i,
                                mx[i], s[i]);
    for (size_t i = 0; i < n; i++) {
        sdflow__coef c;
        sdflow__process_coef(p, t[i], &c);
        double s2 = c.sigma * c.sigma;
        for (size_t k = 0; k < d; k++) {
            double mk = v[i * d + k] / s[i];
            if (mean)
                mean[i * d + k] = mk;
            if (score)
                score[i * d + k] = (c.alpha * mk - x[i * d + k]) / s2;
        }
        if (logp)
            logp[i] = mx[i] + log(s[i]) - log((double)m_total) - 0.5 * (double)d * log(2.0 * SDFLOW__PI * s2);
    }
    if (mean && (st = sdflow__check_result(ctx, mean, n, d, "kernel mean")))
        return st;
    if (score && (st = sdflow__check_result(ctx, score, n, d, "kernel score")))
        return st;
    return logp ? sdflow__check_result(ctx, logp, n, 1, "kernel log-density") : SDFLOW_OK;
}
