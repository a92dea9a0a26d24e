/* SPDX-License-Identifier: MIT */
/* Embedding example: exact scores and log-densities of a noised 2-D Gaussian
 * mixture under the VP process, with error handling. Prints a small table. */
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

/* Prints the library's message for a failed call and returns 1. */
static int report(sdflow_ctx *ctx, const char *what, sdflow_status st)
{
    fprintf(stderr, "%s failed: %s: %s\n", what, sdflow_strerror(st), sdflow_ctx_last_error(ctx));
    return 1;
}

int main(void)
{
    if (sdflow_version() != SDFLOW_VERSION_NUMBER) {
        fprintf(stderr, "header %d but library %u\n", SDFLOW_VERSION_NUMBER, sdflow_version());
        return 1;
    }
    sdflow_ctx *ctx = NULL;
    sdflow_process *vp = NULL;
    sdflow_model *gmm = NULL;
    sdflow_status st;
    int rc = 1;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return 1;

    /* Three components in 2-D: weights, means (k x d), covariances (k x d x d). */
    const double w[3] = { 0.5, 0.3, 0.2 };
    const double mu[3 * 2] = { -2, 0, 2, 1, 0, -2.5 };
    const double cov[3 * 4] = { 1.0, 0.3, 0.3, 0.5, 0.4, -0.1, -0.1, 0.8, 0.2, 0.0, 0.0, 0.2 };
    if ((st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &vp)) != SDFLOW_OK) {
        report(ctx, "sdflow_process_create", st);
        goto done;
    }
    if ((st = sdflow_model_create_gmm(ctx, 3, 2, w, mu, cov, &gmm)) != SDFLOW_OK) {
        report(ctx, "sdflow_model_create_gmm", st);
        goto done;
    }

    enum { N = 3 };
    const double x[N * 2] = { 0, 0, 2, 1, -1, -2 };
    const double times[3] = { 0.01, 0.3, 1.0 };
    printf("%6s %16s %24s %10s\n", "t", "x", "score", "log p_t");
    for (int k = 0; k < 3; k++) {
        double t[N], score[N * 2], logp[N];
        for (int i = 0; i < N; i++)
            t[i] = times[k];
        if ((st = sdflow_model_score(gmm, vp, N, x, t, score)) != SDFLOW_OK ||
            (st = sdflow_model_logpdf(gmm, vp, N, x, t, logp)) != SDFLOW_OK) {
            report(ctx, "evaluating the model", st);
            goto done;
        }
        for (int i = 0; i < N; i++)
            printf("%6.2f (%6.2f, %6.2f) (%10.4f, %10.4f) %10.4f\n", t[i], x[2 * i], x[2 * i + 1], score[2 * i],
                   score[2 * i + 1], logp[i]);
    }

    /* A bad call: the status says what kind of error, the ctx says exactly what. */
    const double bad_t[1] = { 2.0 };
    double s1[2];
    st = sdflow_model_score(gmm, vp, 1, x, bad_t, s1);
    printf("t = 2 is rejected: %s (%s)\n", sdflow_strerror(st), sdflow_ctx_last_error(ctx));
    rc = st != SDFLOW_OK ? 0 : 1;
done:
    sdflow_model_free(gmm);
    sdflow_process_free(vp);
    sdflow_ctx_free(ctx);
    return rc;
}
