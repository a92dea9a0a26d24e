/* SPDX-License-Identifier: MIT */
/* The data rows of a training batch drawn from the bound array: row r of
 * the global batch of step k is data row floor(u n), u uniform from Philox
 * keyed by (seed, trainer stream, k) and r. Keyed by the global row index,
 * so a rank's slice, a thread's block and a loss that draws its rows one by
 * one inside the network's pass (lazy_rows) all see the same rows. */
#include <string.h>
#include "trainer_internal.h"

#define TAG_IDX 0x6964782dull /* "idx-" */

void sdflow__batch_data_row(const sdflow_trainer *t, long k, size_t r, double *row)
{
    double u;
    sdflow__rng_uniform_row(t->ctx->seed, sdflow__stream(t->stream, TAG_IDX, (uint64_t)k), r, 0, 1, &u);
    size_t idx = (size_t)(u * (double)t->n);
    if (idx >= t->n)
        idx = t->n - 1;
    memcpy(row, t->data + idx * t->d, t->d * sizeof(double));
}
