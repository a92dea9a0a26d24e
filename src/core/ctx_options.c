/* SPDX-License-Identifier: MIT */
/* The context's options (seed, threads, log level, BLAS pool, model-file
 * limits) over the option store. Kept apart from ctx.c so the option table
 * (options.c), which reports through ctx.c, is below them and not in a
 * circle with them. */
#include <stddef.h>
#include "ctx_internal.h"

#define SLOT(key, field, def) { key, SDFLOW__ALL_KINDS, offsetof(struct sdflow_ctx, field), def }
static const sdflow__opt_slot slots[] = {
    SLOT(SDFLOW_CTX_SEED, seed, 0),
    SLOT(SDFLOW_CTX_THREADS, threads, 1),
    SLOT(SDFLOW_CTX_LOG_LEVEL, log_level, SDFLOW_LOG_INFO),
    SLOT(SDFLOW_CTX_BLAS_POOL, blas_pool, SDFLOW_BLAS_POOL_HOST),
    SLOT(SDFLOW_CTX_FILE_MAX_BYTES, file_max_bytes, 1073741824.0 /* 2^30 */),
    SLOT(SDFLOW_CTX_FILE_DTYPE, file_dtype, SDFLOW_DTYPE_F64),
};
static const sdflow__opt_store store = { "context", slots, sizeof slots / sizeof slots[0], NULL, NULL };

void sdflow__ctx_option_defaults(sdflow_ctx *ctx) { sdflow__opt_defaults(&store, 1, ctx); }

/* The getters report into the context they read (its error slot is the
 * one mutable part of a const context; every ctx is allocated writable). */
static sdflow__opt_bind bind(const sdflow_ctx *ctx)
{
    return (sdflow__opt_bind){ (sdflow_ctx *)ctx, &store, NULL, 1, (void *)ctx, (void *)ctx, NULL, NULL };
}

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_ctx, sdflow_ctx, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_ctx, sdflow_ctx, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_ctx, sdflow_ctx, bind, u64, SDFLOW_TYPE_U64, uint64_t)
