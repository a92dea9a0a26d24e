/* SPDX-License-Identifier: MIT */
/* Two-sample metrics (algorithms.md §13): unbiased energy distance, unbiased
 * MMD^2 with a Gaussian kernel, sliced Wasserstein-p.
 *
 * Energy distance and MMD^2 are both U-statistics of a kernel of |x - y|^2, so
 * they share one blocked pass: for every row of A the sums of f(|a - b|^2)
 * and f^2 over the rows of B, computed tile by tile (TILE x TILE squared
 * distances at a time). Memory is O(TILE^2) per thread plus O(m + n) row
 * sums, whatever m and n. Each row is summed by one thread in a fixed order
 * of tiles and the row sums are added sequentially, so the results do not
 * depend on the thread count. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include "ctx_internal.h"

#define TILE 256
#define GEMM_MIN_D 16      /* below this, direct differences beat a GEMM with a tiny inner size */
#define MEDIAN_CAP 5000    /* points per sample used by the median heuristic */
#define MEDIAN_BINS 65536

/* Visits one tile of squared distances d2 (ni x nj); may overwrite it. */
typedef void (*tile_fn)(void *arg, int tid, size_t i0, size_t ni, size_t j0, size_t nj, double *d2);

/* One blocked pass over the squared distances between the rows of a and b. */
typedef struct tiles {
    const double *a, *b;
    size_t na, nb, d;
    const double *center; /* subtracted before the GEMM expansion (cancellation, §11.2) */
    int upper;            /* a == b and only pairs i < j are wanted: skip tiles below the diagonal */
} tiles;

static int use_gemm(size_t d)
{
    return d >= GEMM_MIN_D && d <= INT_MAX; /* CBLAS takes int sizes */
}

static size_t tile_scratch(size_t d)
{
    return (size_t)TILE * TILE + 2 * (size_t)TILE * (d + 1);
}

/* Copies rows minus the center and returns their squared norms in nrm. */
static void centered_rows(const double *src, size_t rows, size_t d, const double *c, double *dst, double *nrm)
{
    for (size_t i = 0; i < rows; i++) {
        double s = 0;
        for (size_t k = 0; k < d; k++) {
            double v = src[i * d + k] - c[k];
            dst[i * d + k] = v;
            s += v * v;
        }
        nrm[i] = s;
    }
}

static void tile_d2(const tiles *t, size_t i0, size_t ni, size_t j0, size_t nj, double *w)
{
    size_t d = t->d;
    const double *a = t->a + i0 * d, *b = t->b + j0 * d;
    if (!use_gemm(d)) {
        /* Direct differences, exact; b transposed so the inner loop runs
         * over contiguous columns (vectorizes for any small d). */
        double *bt = w + (size_t)TILE * TILE;
        for (size_t j = 0; j < nj; j++)
            for (size_t k = 0; k < d; k++)
                bt[k * nj + j] = b[j * d + k];
        for (size_t i = 0; i < ni; i++) {
            double *row = w + i * nj;
            for (size_t j = 0; j < nj; j++)
                row[j] = 0;
            for (size_t k = 0; k < d; k++) {
                double ak = a[i * d + k];
                const double *bk = bt + k * nj;
                for (size_t j = 0; j < nj; j++)
                    row[j] += (ak - bk[j]) * (ak - bk[j]);
            }
        }
        return;
    }
    /* GEMM expansion |a|^2 + |b|^2 - 2 a.b on centred copies; clamp the rounding below 0. */
    double *ac = w + (size_t)TILE * TILE, *bc = ac + (size_t)TILE * d;
    double *an = bc + (size_t)TILE * d, *bn = an + TILE;
    centered_rows(a, ni, d, t->center, ac, an);
    centered_rows(b, nj, d, t->center, bc, bn);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, (int)d, -2.0, ac, (int)d, bc, (int)d,
                0.0, w, (int)nj);
    for (size_t i = 0; i < ni; i++)
        for (size_t j = 0; j < nj; j++) {
            double v = w[i * nj + j] + an[i] + bn[j];
            w[i * nj + j] = v > 0 ? v : 0;
        }
}

/* Calls fn on every tile; row blocks of a run in parallel, the column blocks
 * of one row block in increasing order. */
static sdflow_status for_tiles(sdflow_ctx *ctx, const tiles *t, tile_fn fn, void *arg)
{
    size_t nblk = (t->na + TILE - 1) / TILE, per = tile_scratch(t->d);
    int nt = sdflow__threads_for(ctx, t->na);
    if ((size_t)nt > nblk)
        nt = (int)nblk;
    if (!sdflow__size_ok((size_t)nt, per))
        return sdflow__fail(ctx, SDFLOW_E_NOMEM, "tile scratch for d=%zu overflows size_t", t->d);
    double *work = sdflow__alloc_array(ctx, (size_t)nt * per, sizeof(double), "metric tile scratch");
    if (!work)
        return SDFLOW_E_NOMEM;
    int blas = use_gemm(t->d) ? sdflow__blas_team_begin(ctx, nt) : 0; /* tile_d2 calls GEMMs from our threads */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t ib = 0; ib < nblk; ib++) {
        int tid = omp_get_thread_num();
        double *w = work + (size_t)tid * per;
        size_t i0 = ib * TILE, ni = t->na - i0 < TILE ? t->na - i0 : TILE;
        for (size_t j0 = t->upper ? i0 : 0; j0 < t->nb; j0 += TILE) {
            size_t nj = t->nb - j0 < TILE ? t->nb - j0 : TILE;
            tile_d2(t, i0, ni, j0, nj, w);
            fn(arg, tid, i0, ni, j0, nj, w);
        }
    }
    sdflow__blas_team_end(blas);
    sdflow__free(ctx, work);
    return SDFLOW_OK;
}

/* ---- kernel row sums ------------------------------------------------------ */

typedef struct rowsum {
    double gamma; /* 0: distance kernel |x - y|; else exp(-gamma |x - y|^2) */
    int same;     /* a == b: leave out the diagonal (U-statistic) */
    double *s1, *s2;
} rowsum;

static void rowsum_tile(void *arg, int tid, size_t i0, size_t ni, size_t j0, size_t nj, double *w)
{
    const rowsum *r = arg;
    size_t len = ni * nj;
    (void)tid;
    if (r->gamma > 0) {
        for (size_t k = 0; k < len; k++)
            w[k] *= -r->gamma;
        sdflow_kernel_exp(len, w, w); /* the vectorized exp of the kernel sums */
    } else {
        for (size_t k = 0; k < len; k++)
            w[k] = sqrt(w[k]);
    }
    if (r->same) /* U-statistic: the pairs i = j are left out */
        for (size_t i = 0; i < ni; i++)
            if (i0 + i >= j0 && i0 + i < j0 + nj)
                w[i * nj + (i0 + i - j0)] = 0;
    for (size_t i = 0; i < ni; i++) {
        /* Four interleaved partial sums in a fixed order: deterministic, and
         * not limited by the latency of one addition chain. */
        const double *f = w + i * nj;
        double a[4] = { 0, 0, 0, 0 }, b[4] = { 0, 0, 0, 0 };
        size_t j = 0;
        for (; j + 4 <= nj; j += 4)
            for (int u = 0; u < 4; u++) {
                a[u] += f[j + u];
                b[u] += f[j + u] * f[j + u];
            }
        for (; j < nj; j++) {
            a[0] += f[j];
            b[0] += f[j] * f[j];
        }
        r->s1[i0 + i] += (a[0] + a[1]) + (a[2] + a[3]);
        r->s2[i0 + i] += (b[0] + b[1]) + (b[2] + b[3]);
    }
}

/* same: a and b are the same sample (not just the same pointer: y may be x). */
static sdflow_status row_sums(sdflow_ctx *ctx, double gamma, const double *center, const double *a, size_t na,
                              const double *b, size_t nb, size_t d, int same, double *s1, double *s2)
{
    for (size_t i = 0; i < na; i++)
        s1[i] = s2[i] = 0;
    tiles t = { a, b, na, nb, d, center, 0 };
    rowsum r = { gamma, same, s1, s2 };
    return for_tiles(ctx, &t, rowsum_tile, &r);
}

static double sum(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i];
    return s;
}

/* Mean of the m + n rows, computed in a fixed order. */
static void pooled_mean(size_t m, size_t n, size_t d, const double *x, const double *y, double *c)
{
    for (size_t k = 0; k < d; k++) {
        double s = 0;
        for (size_t i = 0; i < m; i++)
            s += x[i * d + k];
        for (size_t j = 0; j < n; j++)
            s += y[j * d + k];
        c[k] = s / (double)(m + n);
    }
}

/* Variance of h(z_i) = mean_a k(z_i, .) - mean_b k(z_i, .) over the rows,
 * from row sums (a1, a2: sums of k and k^2 over ca terms; b1, b2 over cb).
 * The plug-in sample variance of the row means is inflated by the noise of
 * each row mean, Var_a k(z_i, .)/ca + Var_b k(z_i, .)/cb, known from the same
 * row sums: subtract its average (else the H1 term would not vanish under H0). */
static double row_mean_var(const double *a1, const double *a2, double ca, const double *b1, const double *b2,
                           double cb, size_t n)
{
    double mean = 0, s = 0, noise = 0;
    for (size_t i = 0; i < n; i++)
        mean += a1[i] / ca - b1[i] / cb;
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double h = a1[i] / ca - b1[i] / cb - mean;
        double va = a2[i] / ca - (a1[i] / ca) * (a1[i] / ca), vb = b2[i] / cb - (b1[i] / cb) * (b1[i] / cb);
        s += h * h;
        noise += (ca > 1 ? va / (ca - 1) : 0) + (cb > 1 ? vb / (cb - 1) : 0);
    }
    double v = s / (double)(n - 1) - noise / (double)n;
    return v > 0 ? v : 0;
}

/* U = Kxx/(m(m-1)) + Kyy/(n(n-1)) - 2 Kxy/(mn) for k = exp(-gamma d2)
 * (gamma > 0) or k = |x - y| (gamma = 0), and its variance
 *   4 Var(h_x)/m + 4 Var(h_y)/n                       (H1 leading term, noise-corrected)
 * + E[k~^2] (2/(m(m-1)) + 2/(n(n-1)) + 4/(mn))        (H0 term, exact under H0),
 * h_x(x_i) = mean_{i'} k(x_i, x_i') - mean_j k(x_i, y_j), E[k~^2] the mean
 * square of the doubly centred kernel over the pooled sample. The energy
 * distance is -U for the distance kernel, with the same variance. */
static sdflow_status u_stat(sdflow_ctx *ctx, double gamma, size_t m, size_t n, size_t d, const double *x,
                            const double *y, double *u, double *var)
{
    size_t len = 4 * (m + n) + d;
    double *buf = sdflow__alloc_array(ctx, len, sizeof(double), "metric row sums");
    if (!buf)
        return SDFLOW_E_NOMEM;
    double *xx = buf, *xx2 = xx + m, *xy = xx2 + m, *xy2 = xy + m;
    double *yy = xy2 + m, *yy2 = yy + n, *yx = yy2 + n, *yx2 = yx + n, *c = yx2 + n;
    pooled_mean(m, n, d, x, y, c);
    sdflow_status st;
    if ((st = row_sums(ctx, gamma, c, x, m, x, m, d, 1, xx, xx2)) ||
        (st = row_sums(ctx, gamma, c, y, n, y, n, d, 1, yy, yy2)) ||
        (st = row_sums(ctx, gamma, c, x, m, y, n, d, 0, xy, xy2)) ||
        (st = row_sums(ctx, gamma, c, y, n, x, m, d, 0, yx, yx2))) {
        sdflow__free(ctx, buf);
        return st;
    }
    double dm = (double)m, dn = (double)n, N = dm + dn;
    *u = sum(xx, m) / (dm * (dm - 1)) + sum(yy, n) / (dn * (dn - 1)) - 2 * sum(xy, m) / (dm * dn);
    double h1 = 4 * row_mean_var(xx, xx2, dm - 1, xy, xy2, dn, m) / dm +
                4 * row_mean_var(yy, yy2, dn - 1, yx, yx2, dm, n) / dn;

    /* Pooled plug-in of E[k~^2] = E k^2 - 2 E mu(z)^2 + mubar^2, mu(z) = E_z' k(z, z'). */
    double k2 = (sum(xx2, m) + sum(yy2, n) + sum(xy2, m) + sum(yx2, n)) / (N * (N - 1));
    double mu2 = 0, mubar = 0;
    for (size_t i = 0; i < m; i++) {
        double mu = (xx[i] + xy[i]) / (N - 1);
        mu2 += mu * mu;
        mubar += mu;
    }
    for (size_t j = 0; j < n; j++) {
        double mu = (yy[j] + yx[j]) / (N - 1);
        mu2 += mu * mu;
        mubar += mu;
    }
    mu2 /= N;
    mubar /= N;
    double kt2 = k2 - 2 * mu2 + mubar * mubar;
    if (kt2 < 0)
        kt2 = 0;
    *var = h1 + kt2 * (2 / (dm * (dm - 1)) + 2 / (dn * (dn - 1)) + 4 / (dm * dn));
    sdflow__free(ctx, buf);
    return SDFLOW_OK;
}

/* ---- median heuristic ----------------------------------------------------- */

/* Selection of one rank among the pairwise squared distances (i < j) of the
 * pooled sample without storing them: each pass histograms the values that
 * fall into the bins chosen by the previous passes (nested bins, the same
 * bin formula in every pass, so membership is consistent), until the chosen
 * bin holds at most MEDIAN_KEEP values; a last pass collects those and sorts
 * them. Counts are integers, so the result is exact and independent of the
 * thread count. Typically two passes. */
#define MEDIAN_LEVELS 16
#define MEDIAN_KEEP 65536

typedef struct medsel {
    double lo[MEDIAN_LEVELS], scale[MEDIAN_LEVELS];
    size_t bin[MEDIAN_LEVELS];
    int levels;  /* bins already chosen */
    int collect; /* 0: histogram the next level; 1: collect the chosen bin's values */
    size_t *counts; /* per thread: MEDIAN_BINS + 1 (last: exact zeros) */
    double *keep;   /* per thread: MEDIAN_KEEP values */
    size_t *nkeep;  /* per thread */
} medsel;

static size_t med_bin(const medsel *h, int level, double v)
{
    double b = (v - h->lo[level]) * h->scale[level];
    return b <= 0 ? 0 : b >= MEDIAN_BINS - 1 ? MEDIAN_BINS - 1 : (size_t)b;
}

static void medsel_tile(void *arg, int tid, size_t i0, size_t ni, size_t j0, size_t nj, double *d2)
{
    const medsel *h = arg;
    size_t *c = h->counts + (size_t)tid * (MEDIAN_BINS + 1);
    for (size_t i = 0; i < ni; i++)
        for (size_t j = 0; j < nj; j++) {
            if (j0 + j <= i0 + i)
                continue;
            double v = d2[i * nj + j];
            int in = 1;
            for (int l = 0; l < h->levels && in; l++)
                in = med_bin(h, l, v) == h->bin[l];
            if (!in)
                continue;
            if (h->collect) {
                size_t k = h->nkeep[tid]++;
                h->keep[(size_t)tid * MEDIAN_KEEP + k] = v; /* k < MEDIAN_KEEP: the bin's count is known */
            } else {
                c[med_bin(h, h->levels, v)]++;
                c[MEDIAN_BINS] += v == 0;
            }
        }
}

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* Lower median of |z - z'|^2 over the pairs of z (N x d). */
static sdflow_status median_d2(sdflow_ctx *ctx, const double *z, size_t N, size_t d, const double *c, double r2max,
                               double *out)
{
    int nt = sdflow__threads_for(ctx, N);
    size_t nbuf = (size_t)nt * (MEDIAN_BINS + 1), rank = (N * (N - 1) / 2 - 1) / 2; /* 0-based lower median */
    medsel h = { { 0 }, { 0 }, { 0 }, 0, 0, NULL, NULL, NULL };
    h.counts = sdflow__alloc_array(ctx, nbuf + (size_t)nt, sizeof(size_t), "median heuristic histogram");
    h.keep = h.counts ? sdflow__alloc_array(ctx, (size_t)nt * MEDIAN_KEEP, sizeof(double), "median heuristic values")
                      : NULL;
    if (!h.keep) {
        sdflow__free(ctx, h.counts);
        return SDFLOW_E_NOMEM;
    }
    h.nkeep = h.counts + nbuf;
    tiles t = { z, z, N, N, d, c, 1 };
    double lo = 0, hi = 4 * r2max * 1.01 + 1e-300; /* (2 max |z - c|)^2 bounds every pair */
    sdflow_status st = SDFLOW_OK;
    for (;;) {
        h.lo[h.levels] = lo;
        h.scale[h.levels] = MEDIAN_BINS / (hi - lo);
        for (size_t i = 0; i < nbuf + (size_t)nt; i++)
            h.counts[i] = 0;
        if ((st = for_tiles(ctx, &t, medsel_tile, &h)))
            break;
        for (int k = 1; k < nt; k++)
            for (size_t b = 0; b <= MEDIAN_BINS; b++)
                h.counts[b] += h.counts[(size_t)k * (MEDIAN_BINS + 1) + b];
        if (h.levels == 0 && h.counts[MEDIAN_BINS] > rank) {
            st = sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                              "median heuristic: more than half of the pooled pairs coincide, bandwidth would be 0; "
                              "pass a bandwidth > 0");
            break;
        }
        size_t b = 0;
        while (b + 1 < MEDIAN_BINS && rank >= h.counts[b]) /* this level's counts sum to more than rank */
            rank -= h.counts[b++];
        h.bin[h.levels++] = b;
        double w = (hi - lo) / MEDIAN_BINS;
        lo += (double)b * w;
        hi = lo + w;
        if (h.counts[b] <= MEDIAN_KEEP || h.levels == MEDIAN_LEVELS || !(lo < hi)) {
            /* Last pass: the values of the chosen bin, sorted. (After
             * MEDIAN_LEVELS levels the bin is below double resolution.) */
            h.collect = 1;
            if (h.counts[b] > MEDIAN_KEEP) {
                *out = lo;
                break;
            }
            for (int k = 0; k < nt; k++)
                h.nkeep[k] = 0;
            if ((st = for_tiles(ctx, &t, medsel_tile, &h)))
                break;
            size_t n = 0;
            for (int k = 0; k < nt; k++)
                for (size_t i = 0; i < h.nkeep[k]; i++)
                    h.keep[n++] = h.keep[(size_t)k * MEDIAN_KEEP + i];
            qsort(h.keep, n, sizeof(double), cmp_double);
            *out = h.keep[rank < n ? rank : n - 1];
            break;
        }
    }
    sdflow__free(ctx, h.keep);
    sdflow__free(ctx, h.counts);
    return st;
}

/* Median heuristic bandwidth: median |z - z'| over the pooled sample of the
 * first MEDIAN_CAP rows of each side. */
static sdflow_status median_bandwidth(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x,
                                      const double *y, double *l)
{
    size_t mc = m < MEDIAN_CAP ? m : MEDIAN_CAP, nc = n < MEDIAN_CAP ? n : MEDIAN_CAP, N = mc + nc;
    double *z = sdflow__alloc_array(ctx, N * d + d, sizeof(double), "median heuristic sample");
    if (!z)
        return SDFLOW_E_NOMEM;
    double *c = z + N * d, r2max = 0, med = 0;
    for (size_t i = 0; i < mc * d; i++)
        z[i] = x[i];
    for (size_t i = 0; i < nc * d; i++)
        z[mc * d + i] = y[i];
    pooled_mean(N, 0, d, z, NULL, c);
    for (size_t i = 0; i < N; i++) {
        double s = 0;
        for (size_t k = 0; k < d; k++)
            s += (z[i * d + k] - c[k]) * (z[i * d + k] - c[k]);
        r2max = s > r2max ? s : r2max;
    }
    sdflow_status st = median_d2(ctx, z, N, d, c, r2max, &med);
    sdflow__free(ctx, z);
    if (!st)
        *l = sqrt(med);
    return st;
}

/* ---- validation ------------------------------------------------------------ */

static sdflow_status check_samples(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x, const double *y,
                                   const double *value)
{
    sdflow_status st;
    if (m < 2)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "m=%zu must be >= 2", m);
    if (n < 2)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu must be >= 2", n);
    if ((st = sdflow__check_size(ctx, d, "d")))
        return st;
    if (!sdflow__size_ok(m + n, d) || !sdflow__size_ok(4 * (m + n) + 1, 1 + d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "m=%zu + n=%zu rows of d=%zu overflow size_t", m, n, d);
    if ((st = sdflow__check_finite(ctx, x, m, d, "x")) || (st = sdflow__check_finite(ctx, y, n, d, "y")))
        return st;
    return sdflow__check_ptr(ctx, value, "value");
}

static sdflow_status finish(sdflow_ctx *ctx, const char *what, double v, double var, double *value, double *std_out)
{
    double s = sqrt(var);
    if (!isfinite(v) || !isfinite(s))
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s is not finite (inputs too large?)", what);
    *value = v;
    if (std_out)
        *std_out = s;
    return SDFLOW_OK;
}

/* ---- public ------------------------------------------------------------------ */

sdflow_status sdflow_metric_energy(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x, const double *y,
                                   double *value, double *std_out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = check_samples(ctx, m, n, d, x, y, value);
    double u, var;
    if (st || (st = u_stat(ctx, 0, m, n, d, x, y, &u, &var)))
        return st;
    return finish(ctx, "energy distance", -u, var, value, std_out);
}

sdflow_status sdflow_metric_mmd2(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x, const double *y,
                                 double bandwidth, double *value, double *std_out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = check_samples(ctx, m, n, d, x, y, value);
    if (st)
        return st;
    if (!(bandwidth >= 0) || !isfinite(bandwidth))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "bandwidth=%g must be > 0, or 0 for the median heuristic",
                            bandwidth);
    if (bandwidth == 0 && (st = median_bandwidth(ctx, m, n, d, x, y, &bandwidth)))
        return st;
    double u, var;
    if ((st = u_stat(ctx, 1 / (2 * bandwidth * bandwidth), m, n, d, x, y, &u, &var)))
        return st;
    return finish(ctx, "MMD^2", u, var, value, std_out);
}

static double pow_abs(double v, double p)
{
    v = fabs(v);
    return p == 1 ? v : p == 2 ? v * v : pow(v, p);
}

/* out = sorted projections of the rows on th. */
static void project_sorted(const double *rows, size_t n, size_t d, const double *th, double *out)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t k = 0; k < d; k++)
            s += rows[i * d + k] * th[k];
        out[i] = s;
    }
    qsort(out, n, sizeof(double), cmp_double);
}

/* W_p^p between the sorted 1-D samples a (m) and b (n): the integral of
 * |F^-1(u) - G^-1(u)|^p over the merged breakpoints {i/m} and {j/n}, kept in
 * integer units of 1/(mn) so ties are exact. */
static double wpp_sorted(const double *a, size_t m, const double *b, size_t n, double p)
{
    uint64_t cur = 0, mn = (uint64_t)m * n;
    size_t i = 0, j = 0;
    double s = 0;
    while (cur < mn) {
        uint64_t ea = (uint64_t)(i + 1) * n, eb = (uint64_t)(j + 1) * m, e = ea < eb ? ea : eb;
        s += (double)(e - cur) * pow_abs(a[i] - b[j], p);
        cur = e;
        if (ea == e)
            i++;
        if (eb == e)
            j++;
    }
    return s / (double)mn;
}

sdflow_status sdflow_metric_sliced_wasserstein(sdflow_ctx *ctx, size_t m, size_t n, size_t d, const double *x,
                                               const double *y, double p, long directions, uint64_t stream,
                                               double *value, double *std_out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = check_samples(ctx, m, n, d, x, y, value);
    if (st)
        return st;
    if (!(p >= 1) || !isfinite(p))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "p=%g must be a finite number >= 1", p);
    if (directions < 1)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "directions=%ld must be >= 1", directions);
    if (std_out && directions < 2)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "directions=%ld must be >= 2 to estimate a std", directions);
    if (n > 0 && (uint64_t)m > UINT64_MAX / (uint64_t)n)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "m=%zu x n=%zu overflows 64 bits", m, n);
    size_t L = (size_t)directions, per = m + n + d;
    /* Parallel over directions; worth it when the total work is large. */
    int nt = sdflow__threads_for(ctx, L > SIZE_MAX / (m + n) ? SIZE_MAX : L * (m + n));
    if ((size_t)nt > L)
        nt = (int)L;
    if (!sdflow__size_ok((size_t)nt + 1, per + L))
        return sdflow__fail(ctx, SDFLOW_E_NOMEM, "sliced Wasserstein scratch overflows size_t");
    double *buf = sdflow__alloc_array(ctx, (size_t)nt * per + L, sizeof(double), "sliced Wasserstein scratch");
    if (!buf)
        return SDFLOW_E_NOMEM;
    double *wl = buf + (size_t)nt * per;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t l = 0; l < L; l++) {
        double *px = buf + (size_t)omp_get_thread_num() * per, *py = px + m, *th = py + n, nrm = 0;
        /* theta_l = g/|g| with g keyed by (seed, stream, l): the same directions for any thread count. */
        sdflow__rng_normal_row(ctx->seed, stream, l, 0, d, th);
        for (size_t k = 0; k < d; k++)
            nrm += th[k] * th[k];
        nrm = sqrt(nrm);
        for (size_t k = 0; k < d; k++)
            th[k] = nrm > 0 ? th[k] / nrm : (k == 0);
        project_sorted(x, m, d, th, px);
        project_sorted(y, n, d, th, py);
        wl[l] = wpp_sorted(px, m, py, n, p);
    }
    double mean = sum(wl, L) / (double)L, var = 0;
    for (size_t l = 0; l < L; l++)
        var += (wl[l] - mean) * (wl[l] - mean);
    /* Direction-sampling error of the mean, carried to SW_p = S^(1/p) by the delta method. */
    double sd_mean = L > 1 ? sqrt(var / (double)(L - 1) / (double)L) : 0;
    double sw = pow(mean, 1 / p), sd = mean > 0 ? sw / (p * mean) * sd_mean : 0;
    sdflow__free(ctx, buf);
    return finish(ctx, "sliced Wasserstein distance", sw, sd * sd, value, std_out);
}
