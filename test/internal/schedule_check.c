/* SPDX-License-Identifier: MIT */
/* Internal check of the process time maths (src/process/schedule.c), linked
 * against the static library (the functions are not exported):
 *   1. the closed-form inverse of the log-SNR against the forward map at
 *      4000 times per process (relative error <= 1e-13, see below);
 *   2. the log-SNR grids are monotone, start and end exactly at their ends,
 *      and are uniform in lambda: lambda(grid[k]) within 1e-13 max(1, |lambda|)
 *      of the uniform target.
 * With --dump it prints every grid point in hex instead (docs/design.md,
 * "Log-SNR grids": the before/after comparison of the bisection).
 * Usage: schedule_check [--dump] */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "process_internal.h"

typedef struct pcase {
    const char *name;
    sdflow_process_kind kind;
    int exact_std;
} pcase;

static const pcase cases[] = {
    { "vp", SDFLOW_PROCESS_VP, 0 },       { "subvp", SDFLOW_PROCESS_SUBVP, 0 },
    { "vp_cosine", SDFLOW_PROCESS_VP_COSINE, 0 }, { "ve", SDFLOW_PROCESS_VE, 0 },
    { "ve_exact_std", SDFLOW_PROCESS_VE, 1 },
};

int main(int argc, char **argv)
{
    int dump = argc > 1 && strcmp(argv[1], "--dump") == 0;
    sdflow_ctx *ctx = NULL;
    if (sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        return 2;
    int bad = 0;
    double worst_all = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sdflow_process *p = NULL;
        if (sdflow_process_create(ctx, cases[c].kind, &p) != SDFLOW_OK)
            return 2;
        if (cases[c].exact_std && sdflow_process_set_int(p, SDFLOW_PROC_VE_EXACT_STD, 1) != SDFLOW_OK)
            return 2;
        double lo = p->t_eps, hi = p->t_max;
        /* 1. round trips at 4000 times, log-spaced from t_eps to T: in
         * lambda, |lambda(t(lambda)) - lambda| <= 1e-13 max(1, |lambda|); in
         * t, |t(lambda(t)) - t| <= 1e-13 t plus what the rounding of lambda
         * itself moves t (4 ulp(lambda) |dt/dlambda|: VE's lambda = -2 log
         * sigma resolves t only to ~1e-11 relative at t_eps = 1e-5, for any
         * inverse) */
        double worst = 0, worst_t = 0;
        for (int k = 0; k < 4000; k++) {
            double t = exp(log(lo) + (log(hi) - log(lo)) * k / 3999.0);
            t = t < lo ? lo : t > hi ? hi : t;
            double lam = sdflow__process_log_snr(p, t), back = sdflow__process_time_of_log_snr(p, lam);
            double lam_back = sdflow__process_log_snr(p, back);
            double rel = fabs(lam_back - lam) / fmax(1.0, fabs(lam));
            double h = 1e-6 * t, dtdl = 2 * h / fabs(sdflow__process_log_snr(p, t + h) - sdflow__process_log_snr(p, t - h));
            double cond = 4 * (nextafter(fabs(lam), INFINITY) - fabs(lam)) * dtdl;
            double rel_t = fabs(back - t) / (t + cond / 1e-13);
            worst = fmax(worst, rel);
            worst_t = fmax(worst_t, fabs(back - t) / t);
            if (!(rel <= 1e-13) || !(rel_t <= 1e-13)) {
                if (bad < 20)
                    printf("schedule_check: %s t=%.17g: lambda %.17g -> t %.17g -> lambda %.17g\n", cases[c].name, t,
                           lam, back, lam_back);
                bad++;
            }
        }
        worst_all = fmax(worst_all, worst);
        if (!dump)
            printf("schedule_check: %-13s inverse log-SNR over [%g, %g]: worst lambda round trip %.2e, t round trip %.2e\n",
                   cases[c].name, lo, hi, worst, worst_t);
        /* 2. grids */
        static const long steps[] = { 1, 2, 10, 18, 50, 100, 1000 };
        static const double ends[][2] = { { -1, -1 }, { -1, 0.5 }, { 0.3, -1 }, { 0.7, 0.05 } };
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++)
            for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++) {
                double a = ends[e][0] < 0 ? hi : ends[e][0] * hi, b = ends[e][1] < 0 ? lo : ends[e][1] * hi;
                for (int dir = 0; dir < 2; dir++) {
                    double from = dir ? b : a, to = dir ? a : b, g[1001];
                    long N = steps[s];
                    sdflow__process_time_grid(p, SDFLOW_GRID_LOGSNR, N, from, to, g);
                    if (dump) {
                        printf("%s N=%ld from=%a to=%a:", cases[c].name, N, from, to);
                        for (long k = 0; k <= N; k++)
                            printf(" %a", g[k]);
                        printf("\n");
                        continue;
                    }
                    if (g[0] != from || g[N] != to) {
                        printf("schedule_check: %s N=%ld: grid ends %a %a, not %a %a\n", cases[c].name, N, g[0],
                               g[N], from, to);
                        bad++;
                    }
                    double l0 = sdflow__process_log_snr(p, from), l1 = sdflow__process_log_snr(p, to);
                    for (long k = 1; k <= N; k++) {
                        if ((g[k] - g[k - 1]) * (to - from) < 0) {
                            printf("schedule_check: %s N=%ld: grid not monotone at %ld\n", cases[c].name, N, k);
                            bad++;
                        }
                        double want = l0 + (double)k / (double)N * (l1 - l0);
                        double got = sdflow__process_log_snr(p, g[k]);
                        if (k < N && !(fabs(got - want) <= 1e-13 * fmax(1.0, fabs(want)))) {
                            if (bad < 20)
                                printf("schedule_check: %s N=%ld k=%ld: lambda %.17g, want %.17g\n", cases[c].name,
                                       N, k, got, want);
                            bad++;
                        }
                    }
                }
            }
        sdflow_process_free(p);
    }
    if (!dump)
        printf("schedule_check: %s (worst lambda round trip %.2e; %d failures)\n", bad ? "FAILED" : "ok", worst_all, bad);
    sdflow_ctx_free(ctx);
    return bad != 0;
}
