/* SPDX-License-Identifier: MIT */
/* The SiLU rows of the MLP forward pass, the one loop built with -ffast-math
 * (Makefile) so GCC calls glibc's vector exp (libmvec, <= 4 ulp): with
 * scalar exp the activation took half of the forward pass. Built for three
 * ISAs (target_clones, chosen once at load time by the CPU): libmvec's
 * 8-wide AVX-512 and 4-wide AVX2 exp beside the baseline 2-wide SSE one.
 * The choice depends on the CPU only, so results stay the same for every
 * batch split and thread count on one machine. No NaN checks live here
 * (inputs are validated at the API edge, mlp.c). */
#include <math.h>
#include <stddef.h>
#include "mlp_act.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__gnu_linux__)
#  define SDFLOW__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define SDFLOW__CLONES
#endif

SDFLOW__CLONES
void sdflow__mlp_silu_rows(size_t n, const double *restrict a, const double *restrict res, double *restrict z,
                           double *restrict d1)
{
    for (size_t q = 0; q < n; q++) {
        /* exp(-a) overflows to inf for a < -709: s = 0, z = -0, d1 = 0 (the limits) */
        double s = 1.0 / (1.0 + exp(-a[q]));
        z[q] = a[q] * s + (res ? res[q] : 0.0);
        d1[q] = s * (1.0 + a[q] * (1.0 - s));
    }
}
