/* SPDX-License-Identifier: MIT */
/* Diffusion Schrodinger bridge between two Gaussians, fitted by IPF with
 * exact affine transition means (docs/dsb.md). With a Brownian reference
 * (f = 0) the chain's static bridge is the entropic-OT coupling with
 * s2 = 2 T, known in closed form (algorithms.md §12.b.3); the program
 * prints, per IPF iteration, how far the sampled couplings are from it.
 *
 *   dsb_gaussians            d = 1 (A = 1, B = 4, a = 0, b = 3, N = 20,
 *                            gamma = 0.05: C = 1.2361), then d = 5 in the
 *                            DSBM benchmark setting (A = B = I, s2 = 1:
 *                            C = (sqrt 5 - 1)/2 I)
 *   dsb_gaussians D [ITERS]  the DSBM setting in dimension D */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sdflow.h>

#define CHECK(call)                                                                                                \
    do {                                                                                                           \
        sdflow_status st_ = (call);                                                                                \
        if (st_ != SDFLOW_OK) {                                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, sdflow_strerror(st_),                         \
                    sdflow_ctx_last_error(ctx));                                                                   \
            exit(1);                                                                                               \
        }                                                                                                          \
    } while (0)

/* Symmetric eigendecomposition (cyclic Jacobi): a destroyed, w values, v columns. */
static void eig(int d, double *a, double *w, double *v)
{
    for (int i = 0; i < d * d; i++)
        v[i] = i % (d + 1) == 0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++)
                off += a[p * d + q] * a[p * d + q];
        if (off < 1e-30)
            break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                if (fabs(a[p * d + q]) < 1e-300)
                    continue;
                double th = (a[q * d + q] - a[p * d + p]) / (2 * a[p * d + q]);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1)), c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < d; k++) {
                    double akp = a[k * d + p], akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for (int k = 0; k < d; k++) {
                    double apk = a[p * d + k], aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < d; k++) {
                    double vkp = v[k * d + p], vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < d; i++)
        w[i] = a[i * d + i];
}

/* out = f(S) for symmetric S, f = sqrt (pw = 0.5) or inverse sqrt (pw = -0.5). */
static void sym_pow(int d, const double *S, double pw, double *out)
{
    double *a = malloc(sizeof(double) * d * d), *v = malloc(sizeof(double) * d * d), *w = malloc(sizeof(double) * d);
    memcpy(a, S, sizeof(double) * d * d);
    eig(d, a, w, v);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int k = 0; k < d; k++)
                acc += v[i * d + k] * pow(w[k], pw) * v[j * d + k];
            out[i * d + j] = acc;
        }
    free(a);
    free(v);
    free(w);
}

static void matmul(int d, const double *x, const double *y, double *out)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int k = 0; k < d; k++)
                acc += x[i * d + k] * y[k * d + j];
            out[i * d + j] = acc;
        }
}

/* Entropic-OT cross-covariance C = 1/2 A^1/2 D A^-1/2 - s2/2 I, D = (4 A^1/2 B A^1/2 + s2^2 I)^1/2. */
static void eot_cross(int d, const double *A, const double *B, double s2, double *C)
{
    size_t z = sizeof(double) * d * d;
    double *ah = malloc(z), *aih = malloc(z), *t = malloc(z), *M = malloc(z), *D = malloc(z);
    sym_pow(d, A, 0.5, ah);
    sym_pow(d, A, -0.5, aih);
    matmul(d, ah, B, t);
    matmul(d, t, ah, M);
    for (int i = 0; i < d * d; i++)
        M[i] = 4 * M[i] + (i % (d + 1) == 0 ? s2 * s2 : 0);
    for (int i = 0; i < d; i++) /* symmetrize against rounding */
        for (int j = 0; j < i; j++)
            M[i * d + j] = M[j * d + i] = 0.5 * (M[i * d + j] + M[j * d + i]);
    sym_pow(d, M, 0.5, D);
    matmul(d, ah, D, t);
    matmul(d, t, aih, C);
    for (int i = 0; i < d * d; i++)
        C[i] = 0.5 * C[i] - (i % (d + 1) == 0 ? s2 / 2 : 0);
    free(ah);
    free(aih);
    free(t);
    free(M);
    free(D);
}

/* max |cov(x, y) - C| and max |mean(x) - m| over entries, x and y n x d. */
static double cross_err(size_t n, int d, const double *x, const double *y, const double *C)
{
    double *mx = calloc(d, sizeof(double)), *my = calloc(d, sizeof(double)), err = 0;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            mx[j] += x[i * d + j] / (double)n;
            my[j] += y[i * d + j] / (double)n;
        }
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double acc = 0;
            for (size_t i = 0; i < n; i++)
                acc += (x[i * d + a] - mx[a]) * (y[i * d + b] - my[b]);
            err = fmax(err, fabs(acc / (double)(n - 1) - C[a * d + b]));
        }
    free(mx);
    free(my);
    return err;
}

static double mean_err(size_t n, int d, const double *x, const double *m)
{
    double err = 0;
    for (int j = 0; j < d; j++) {
        double acc = 0;
        for (size_t i = 0; i < n; i++)
            acc += x[i * d + j];
        err = fmax(err, fabs(acc / (double)n - m[j]));
    }
    return err;
}

static void run(int d, int iters, const double *a, const double *A, const double *b, const double *B, double gamma)
{
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        exit(1);
    const long N = 20;
    const size_t n = 20000;
    double s2 = 2 * N * gamma, *C = malloc(sizeof(double) * d * d);
    eot_cross(d, A, B, s2, C);
    sdflow_model *data, *prior;
    CHECK(sdflow_model_create_gaussian(ctx, (size_t)d, a, A, &data));
    CHECK(sdflow_model_create_gaussian(ctx, (size_t)d, b, B, &prior));
    sdflow_sampler *s;
    CHECK(sdflow_sampler_create(ctx, SDFLOW_SAMPLER_DSB, &s));
    CHECK(sdflow_sampler_set_model(s, SDFLOW_ROLE_DATA, data));
    CHECK(sdflow_sampler_set_model(s, SDFLOW_ROLE_PRIOR, prior));
    CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_REFERENCE, SDFLOW_DSB_BROWNIAN));
    CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, N));
    CHECK(sdflow_sampler_set_double(s, SDFLOW_OPT_DSB_GAMMA_MAX, gamma));
    CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_NPAR, 50000));
    CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_DENOISE, 0)); /* the chain's own X_0 marginal */
    double *x0 = malloc(sizeof(double) * n * d), *xN = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * n * d);
    CHECK(sdflow_model_sample(data, 11, 0, n, x0));
    CHECK(sdflow_model_sample(prior, 12, 0, n, xN));
    printf("d = %d, N = %ld, gamma = %g, s2 = 2T = %g, C*_11 = %.4f; %zu chains per estimate (SE of C ~ %.3f)\n", d,
           N, gamma, s2, C[0], n, sqrt((A[0] * B[0] + C[0] * C[0]) / (double)n));
    printf("%4s  %12s %12s %12s  %12s %12s %12s\n", "iter", "bwd |C-C*|", "|mean X0-a|", "|cov X0-A|",
           "fwd |C-C*|", "|mean XN-b|", "|cov XN-B|");
    for (int it = 1; it <= iters; it++) {
        CHECK(sdflow_sampler_fit(s, 1));
        /* backward (generator) chains from exact prior-end draws */
        CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_DIRECTION, SDFLOW_DSB_PRIOR_TO_DATA));
        CHECK(sdflow_sampler_run(s, n, xN, y));
        double cb = cross_err(n, d, y, xN, C), mb = mean_err(n, d, y, a), vb = cross_err(n, d, y, y, A);
        CHECK(sdflow_sampler_set_int(s, SDFLOW_OPT_DSB_DIRECTION, SDFLOW_DSB_DATA_TO_PRIOR));
        CHECK(sdflow_sampler_run(s, n, x0, y));
        double cf = cross_err(n, d, x0, y, C), mf = mean_err(n, d, y, b), vf = cross_err(n, d, y, y, B);
        printf("%4d  %12.4f %12.4f %12.4f  %12.4f %12.4f %12.4f\n", it, cb, mb, vb, cf, mf, vf);
    }
    free(x0);
    free(xN);
    free(y);
    free(C);
    sdflow_sampler_free(s);
    sdflow_model_free(data);
    sdflow_model_free(prior);
    sdflow_ctx_free(ctx);
}

/* DSBM benchmark (Shi et al. 2023): N(-0.1, I) <-> N(0.1, I), s2 = 1 (T = 0.5). */
static void dsbm(int d, int iters)
{
    double *a = malloc(sizeof(double) * d), *b = malloc(sizeof(double) * d), *I = calloc((size_t)d * d, sizeof(double));
    for (int i = 0; i < d; i++) {
        a[i] = -0.1;
        b[i] = 0.1;
        I[i * d + i] = 1;
    }
    run(d, iters, a, I, b, I, 0.025);
    free(a);
    free(b);
    free(I);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        int d = atoi(argv[1]), iters = argc > 2 ? atoi(argv[2]) : 6;
        if (d < 1 || d > 200 || iters < 1) {
            fprintf(stderr, "usage: dsb_gaussians [D [ITERS]]\n");
            return 2;
        }
        dsbm(d, iters);
        return 0;
    }
    double a = 0, A = 1, b = 3, B = 4;
    run(1, 6, &a, &A, &b, &B, 0.05);
    dsbm(5, 4);
    return 0;
}
