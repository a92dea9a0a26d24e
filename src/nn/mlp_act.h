/* SPDX-License-Identifier: MIT */
/* Internal: vectorized activation rows of the MLP (mlp_act.c). */
#ifndef SDFLOW_NN_MLP_ACT_H
#define SDFLOW_NN_MLP_ACT_H

#include <stddef.h>

/* z = silu(a) (+ res when res is non-NULL), d1 = silu'(a), n values. */
void sdflow__mlp_silu_rows(size_t n, const double *a, const double *res, double *z, double *d1);

#endif
