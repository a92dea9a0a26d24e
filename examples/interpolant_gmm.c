/* SPDX-License-Identifier: MIT */
/* Stochastic-interpolant flow from N(0, I) to a 2-D Gaussian mixture
 * (docs/interpolants.md). Convention: t = 0 is the base, t = 1 the data.
 *  1. the exact interpolant velocity of the mixture (its score through the
 *     trig interpolant process) pushes base draws to the data: sample
 *     moments and energy distance against exact mixture draws;
 *  2. the likelihood of held-out points through the velocity ODE (exact
 *     divergence) against the mixture's closed-form log-density;
 *  3. the same samples transported back to the base (data -> base);
 *  4. batch couplings: mean squared pair distance (the straight-line kinetic
 *     energy) of independent, exact-OT and Sinkhorn pairings.
 *
 *   interpolant_gmm [n]      (default n = 2000) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sdflow.h"

#define K 4
static const double weights[K] = { 0.1, 0.2, 0.3, 0.4 };
static const double means[K][2] = { { -2, -2 }, { 2, -2 }, { -2, 2 }, { 2, 2 } };
static const double covs[K][4] = { { 0.3, 0, 0, 0.3 }, { 0.5, 0.2, 0.2, 0.3 }, { 0.2, 0, 0, 0.2 },
                                   { 0.4, -0.1, -0.1, 0.2 } };

static int fail(sdflow_ctx *ctx, const char *what)
{
    fprintf(stderr, "%s: %s\n", what, ctx ? sdflow_ctx_last_error(ctx) : "out of memory");
    return 1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2000;
    if (n < 16) {
        fprintf(stderr, "usage: interpolant_gmm [n >= 16]\n");
        return 2;
    }
    if (sdflow_version() != SDFLOW_VERSION_NUMBER)
        return fail(NULL, "header and library versions differ");
    sdflow_ctx *ctx = NULL;
    sdflow_process *trig = NULL;
    sdflow_model *gmm = NULL;
    sdflow_sampler *s = NULL;
    sdflow_density *e = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return fail(NULL, "sdflow_ctx_create");
    sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 42);
    if (sdflow_process_create(ctx, SDFLOW_PROCESS_INTERP_TRIG, &trig) ||
        sdflow_model_create_gmm(ctx, K, 2, weights, &means[0][0], &covs[0][0], &gmm))
        return fail(ctx, "setup");
    double *x0 = malloc(n * 2 * sizeof *x0), *x = malloc(n * 2 * sizeof *x), *ref = malloc(n * 2 * sizeof *ref);
    double *back = malloc(n * 2 * sizeof *back);
    size_t *pair = malloc(n * sizeof *pair);
    if (!x0 || !x || !ref || !back || !pair)
        return fail(NULL, "malloc");

    /* 1. base -> data. The mixture's velocity comes from its score through the process, which
     * divides by b(t) = 0 at t = 0: start at t0 = 1e-6, where rho_t0 is N(0, I) up to O(1e-6). */
    if (sdflow_process_prior_sample(trig, 1, 0, n, 2, x0) || sdflow_model_sample(gmm, 2, 0, n, ref))
        return fail(ctx, "draws");
    if (sdflow_sampler_create(ctx, SDFLOW_SAMPLER_INTERPOLANT, &s) || sdflow_sampler_set_process(s, trig) ||
        sdflow_sampler_set_model(s, SDFLOW_ROLE_VELOCITY, gmm) ||
        sdflow_sampler_set_double(s, SDFLOW_OPT_INTERP_T0, 1e-6) ||
        sdflow_sampler_set_int(s, SDFLOW_OPT_INTERP_KINETIC, 1))
        return fail(ctx, "sampler setup");
    if (sdflow_sampler_run(s, n, x0, x))
        return fail(ctx, "base -> data");
    double nfe, ke, ed, ed_sd;
    sdflow_sampler_get_stat(s, SDFLOW_STAT_NFE, &nfe);
    sdflow_sampler_get_stat(s, SDFLOW_STAT_KINETIC_ENERGY, &ke);
    if (sdflow_metric_energy(ctx, n, n, 2, x, ref, &ed, &ed_sd))
        return fail(ctx, "energy distance");
    printf("base -> data: %zu samples, NFE/sample %.1f, kinetic energy %.3f, energy distance to exact draws "
           "%.5f (std %.5f)\n", n, nfe / (double)n, ke, ed, ed_sd);

    /* 2. likelihood of held-out mixture draws: velocity ODE from t = 1 down to t_min = 1e-6 */
    size_t m = 100;
    double lp[100], lref[100], t1[100], err = 0;
    for (size_t i = 0; i < m; i++)
        t1[i] = 1.0;
    if (sdflow_density_create(ctx, SDFLOW_DENSITY_PF_ODE_EXACT, &e) || sdflow_density_set_process(e, trig) ||
        sdflow_density_set_model(e, gmm) || sdflow_density_set_double(e, SDFLOW_OPT_T_MIN, 1e-6) ||
        sdflow_density_logpdf(e, m, ref, lp, NULL) || sdflow_model_logpdf(gmm, trig, m, ref, t1, lref))
        return fail(ctx, "likelihood");
    double mean_lp = 0;
    for (size_t i = 0; i < m; i++) {
        err = fmax(err, fabs(lp[i] - lref[i]));
        mean_lp += lp[i] / (double)m;
    }
    printf("likelihood: mean log p %.4f nats over %zu held-out points, max |error| vs closed form %.2e\n", mean_lp, m,
           err);

    /* 3. data -> base: the same flow backward returns the starting draws */
    if (sdflow_sampler_transport(s, n, 1.0, 1e-6, x, back))
        return fail(ctx, "data -> base");
    err = 0;
    for (size_t i = 0; i < 2 * n; i++)
        err = fmax(err, fabs(back[i] - x0[i]));
    printf("data -> base: max |x(0) - start| %.2e\n", err);

    /* 4. couplings of a batch of 256: straight-line kinetic energy E|x1 - x0|^2 */
    static const char *names[3] = { "independent", "exact OT", "Sinkhorn 0.05" };
    size_t b = n < 256 ? n : 256;
    for (int k = 0; k < 3; k++) {
        double cost;
        if (sdflow_coupling_pair(ctx, (sdflow_coupling)k, b, 2, x0, ref, 0.05, 3, 0, pair, &cost))
            return fail(ctx, "coupling");
        printf("coupling %-13s: mean |x1 - x0|^2 = %.3f\n", names[k], cost);
    }
    free(x0);
    free(x);
    free(ref);
    free(back);
    free(pair);
    sdflow_density_free(e);
    sdflow_sampler_free(s);
    sdflow_model_free(gmm);
    sdflow_process_free(trig);
    sdflow_ctx_free(ctx);
    return 0;
}
