/* SPDX-License-Identifier: MIT */
/* The elementwise rows of the MLP passes that call exp, sin or cos: the one
 * file built with -ffast-math (Makefile) so GCC calls glibc's vector math
 * (libmvec, <= 4 ulp): with scalar exp the activation took half of the
 * forward pass, and scalar sincos of the time embedding 13 %. Built for
 * three ISAs (target_clones, chosen once at load time by the CPU):
 * libmvec's 8-wide AVX-512 and 4-wide AVX2 versions beside the baseline
 * 2-wide SSE one. The choice depends on the CPU only, and every element is
 * computed by the same code whatever its position in a batch (the loops run
 * over one row block of fixed shape), so results stay the same for every
 * batch split and thread count on one machine. No NaN checks live here
 * (inputs are validated at the API edge, mlp.c), and no sums: -ffast-math
 * may only contract a * b + c into an FMA, not reorder a reduction.
 * Arguments are formed by the caller (mlp_net.c, strict IEEE) so that
 * fast-math cannot reassociate them. */
#include <math.h>
#include <stddef.h>
#include "mlp_act.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__gnu_linux__)
#  define SDFLOW__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define SDFLOW__CLONES
#endif

/* a (rows x w) += bias (per column); z = silu(a) (+ res); d1 = silu'(a) and
 * d2 = silu''(a) when non-NULL (d2 only with d1). One loop per case so each
 * vectorizes without branches. exp(-a) overflows to inf for a < -709: s = 0,
 * z = -0, d1 = d2 = 0 (the limits). */
SDFLOW__CLONES
void sdflow__mlp_silu_rows(size_t rows, size_t w, const double *restrict bias, double *restrict a,
                           const double *restrict res, double *restrict z, double *restrict d1, double *restrict d2)
{
    for (size_t r = 0; r < rows; r++) {
        double *ar = a + r * w, *zr = z + r * w;
        const double *rr = res ? res + r * w : NULL;
        for (size_t j = 0; j < w; j++)
            ar[j] += bias[j];
        if (!d1) {
            for (size_t j = 0; j < w; j++) {
                double s = 1.0 / (1.0 + exp(-ar[j]));
                zr[j] = ar[j] * s + (rr ? rr[j] : 0.0);
            }
        } else if (!d2) {
            double *d1r = d1 + r * w;
            for (size_t j = 0; j < w; j++) {
                double s = 1.0 / (1.0 + exp(-ar[j]));
                zr[j] = ar[j] * s + (rr ? rr[j] : 0.0);
                d1r[j] = s * (1.0 + ar[j] * (1.0 - s));
            }
        } else {
            double *d1r = d1 + r * w, *d2r = d2 + r * w;
            for (size_t j = 0; j < w; j++) {
                double s = 1.0 / (1.0 + exp(-ar[j])), g = s * (1.0 - s), m = 1.0 - 2.0 * s;
                zr[j] = ar[j] * s + (rr ? rr[j] : 0.0);
                d1r[j] = s * (1.0 + ar[j] * (1.0 - s));
                d2r[j] = g * (2.0 + ar[j] * m);
            }
        }
    }
}

SDFLOW__CLONES
void sdflow__mlp_sincos_rows(size_t n, const double *restrict w, double *restrict sn, double *restrict cs)
{
    for (size_t q = 0; q < n; q++)
        sn[q] = sin(w[q]);
    for (size_t q = 0; q < n; q++)
        cs[q] = cos(w[q]);
}
