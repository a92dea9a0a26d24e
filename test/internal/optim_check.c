/* SPDX-License-Identifier: MIT */
/* Internal check of the trainer's elementwise kernels (src/train/adam.c and
 * the finiteness scan of src/core/validate.c), linked against the static
 * library (the functions are not exported):
 *   1. sdflow__clip_grad's global norm against a long-double sum of squares
 *      for random vectors of 1..5000 values (relative error <= 4e-16 n^0.5,
 *      the bound of a blocked sum of n positive terms, worst seen ~3e-16),
 *      at magnitudes 1e-310 (subnormal), 1, 1e300 (squares overflow) and
 *      mixed 1e-200 .. 1e200; clipping scales by max / (norm + 1e-6);
 *   2. sdflow__find_nonfinite finds the first NaN or Inf at every position
 *      of vectors of lengths around its block size, and returns n when all
 *      are finite; sdflow__clip_grad returns NaN there and clips nothing
 *      (the trainer scans only then);
 *   3. sdflow__adam_update says whether every new weight is finite.
 * Usage: optim_check */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "trainer_internal.h"

static uint64_t st = 0x9e3779b97f4a7c15ull;
static double unif(void) /* (0, 1), splitmix64 */
{
    uint64_t z = (st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return ((double)((z ^ (z >> 31)) >> 11) + 0.5) / 9007199254740992.0;
}

static int fails;

static void check_norm(const char *what, size_t n, double scale, int mixed)
{
    static double g[5000];
    long double ref = 0;
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double v = (2 * unif() - 1) * scale * (mixed ? pow(10.0, 400 * unif() - 200) : 1.0);
        g[i] = v;
        mx = fmax(mx, fabs(v));
    }
    /* reference: scaled by the max in long double (no overflow at 1e300) */
    for (size_t i = 0; i < n; i++) {
        long double q = (long double)g[i] / (long double)mx;
        ref += q * q;
    }
    double want = (double)(sqrtl(ref) * (long double)mx);
    double got = sdflow__clip_grad(g, n, 0);
    double rel = fabs(got - want) / want, tol = 4e-16 * sqrt((double)n) + 1e-16;
    if (!(rel <= tol)) {
        printf("optim_check: FAIL clip norm %s n=%zu: %.17g vs %.17g (rel %.3g > %.3g)\n", what, n, got, want, rel,
               tol);
        fails++;
    }
    /* clipping to half the norm: g scaled by c / (norm + 1e-6), exactly */
    double keep = g[0], c = 0.5 * got;
    double got2 = sdflow__clip_grad(g, n, c);
    if (got2 != got || g[0] != keep * (c / (got + 1e-6))) {
        printf("optim_check: FAIL clipping %s n=%zu\n", what, n);
        fails++;
    }
}

int main(void)
{
    static const size_t ns[] = { 1, 2, 7, 8, 9, 63, 1000, 4999, 5000 };
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        check_norm("unit", ns[k], 1.0, 0);
        check_norm("tiny", ns[k], 1e-310, 0);
        check_norm("huge", ns[k], 1e300, 0);
        check_norm("mixed", ns[k], 1.0, 1);
    }
    static double z[1100];
    if (sdflow__clip_grad(z, 1100, 1.0) != 0.0) {
        printf("optim_check: FAIL the norm of zeros is not 0\n");
        fails++;
    }
    z[700] = NAN; /* the only nonzero: the max skips NaN, the norm must not */
    if (!isnan(sdflow__clip_grad(z, 1100, 1.0))) {
        printf("optim_check: FAIL the norm of zeros and one NaN is not NaN\n");
        fails++;
    }
    z[700] = 0;
    static const size_t lens[] = { 1, 255, 256, 257, 1100 };
    const double bad[3] = { NAN, INFINITY, -INFINITY };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        for (size_t i = 0; i < n; i++)
            z[i] = (double)i - 100.5;
        if (sdflow__find_nonfinite(z, n) != n) {
            printf("optim_check: FAIL finite vector of %zu flagged\n", n);
            fails++;
        }
        for (size_t p = 0; p < n; p++)
            for (int b = 0; b < 3; b++) {
                double keep = z[p];
                z[p] = bad[b];
                if (p + 1 < n)
                    z[n - 1] = bad[(b + 1) % 3]; /* a later one must not win */
                size_t got = sdflow__find_nonfinite(z, n);
                double nrm = sdflow__clip_grad(z, n, 1e-3), zp = z[p];
                z[p] = keep;
                if (!isnan(nrm) || !(zp != zp || zp == bad[b])) {
                    printf("optim_check: FAIL clip norm %g with a non-finite at %zu of %zu (or g touched)\n", nrm,
                           p, n);
                    fails++;
                }
                z[n - 1] = (double)(n - 1) - 100.5;
                if (got != p) {
                    printf("optim_check: FAIL non-finite at %zu of %zu found at %zu\n", p, n, got);
                    fails++;
                }
            }
    }
    /* the update's finiteness flag: 1 for a plain step, 0 when a weight overflows (Adam's coupled
     * decay on a weight near the double range: g + wd theta = inf), the case the trainer refuses */
    {
        sdflow__adam a = { 0 };
        double m[3] = { 0 }, v[3] = { 0 }, ema[3] = { 0 }, th[3] = { 1, -2, 1e308 }, g[3] = { 0.5, 0.25, 1 };
        a.n = 3;
        a.m = m;
        a.v = v;
        a.ema = ema;
        sdflow__adam_cfg plain = { 0.9, 0.999, 1e-8, 0.0, 0 }, decay = { 0.9, 0.999, 1e-8, 10.0, 0 };
        int ok1 = sdflow__adam_update(&a, &plain, 1e-3, th, g);
        int ok2 = sdflow__adam_update(&a, &decay, 1e-3, th, g);
        if (ok1 != 1 || ok2 != 0) {
            printf("optim_check: FAIL adam finiteness flag %d %d (want 1 0)\n", ok1, ok2);
            fails++;
        }
    }
    if (fails)
        return 1;
    printf("optim_check: clip norm (36 vectors, 4 magnitudes), non-finite scan (5 lengths), Adam overflow flag: ok\n");
    return 0;
}
