/* SPDX-License-Identifier: MIT */
/* Internal: access to an MLP model's network for the trainer (losses need
 * the parameter gradients of src/nn/mlp_net.h on the model's native output). */
#ifndef SDFLOW_MLP_INTERNAL_H
#define SDFLOW_MLP_INTERNAL_H

#include "model_internal.h"
#include "mlp_net.h"

/* The network of an MLP model, parameters initialized (first use freezes
 * the architecture); SDFLOW_E_INVALID for another kind. */
sdflow_status sdflow__mlp_model_net(sdflow_model *m, sdflow__mlp **net);
/* Network inputs z0 (n x d_in, caller-allocated) for points x at times t. */
void sdflow__mlp_model_input(const sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                             const double *t, double *z0);

#endif
