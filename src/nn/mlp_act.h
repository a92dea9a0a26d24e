/* SPDX-License-Identifier: MIT */
/* Internal: vectorized elementwise rows of the MLP (mlp_act.c). */
#ifndef SDFLOW_NN_MLP_ACT_H
#define SDFLOW_NN_MLP_ACT_H

#include <stddef.h>

/* For rows x w values: a += bias (a row of w), z = silu(a) (+ res when res is
 * non-NULL), d1 = silu'(a) when d1 is non-NULL, d2 = silu''(a) when d1 and
 * d2 are non-NULL. */
void sdflow__mlp_silu_rows(size_t rows, size_t w, const double *bias, double *a, const double *res, double *z,
                           double *d1, double *d2);

/* sn = sin(w), cs = cos(w), n values. */
void sdflow__mlp_sincos_rows(size_t n, const double *w, double *sn, double *cs);

#endif
