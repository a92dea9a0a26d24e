/* SPDX-License-Identifier: MIT */
/* The context's typed option accessors (seed, threads, log level). Kept
 * apart from ctx.c so the option table (options.c), which reports through
 * ctx.c, is below them and not in a circle with them. */
#include "ctx_internal.h"

static const sdflow_option ctx_keys[] = { SDFLOW_CTX_SEED, SDFLOW_CTX_THREADS, SDFLOW_CTX_LOG_LEVEL,
                                          SDFLOW_CTX_BLAS_POOL, SDFLOW_CTX_FILE_MAX_BYTES, SDFLOW_CTX_FILE_DTYPE };
#define CTX_KEY(ctx, key, type, v) \
    sdflow__option_accept(ctx, "a context", ctx_keys, sizeof ctx_keys / sizeof ctx_keys[0], key, type, v)

sdflow_status sdflow_ctx_set_int(sdflow_ctx *ctx, sdflow_option key, long value)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    double v = (double)value;
    sdflow_status st = CTX_KEY(ctx, key, SDFLOW_TYPE_INT, &v);
    if (st)
        return st;
    if (key == SDFLOW_CTX_THREADS)
        ctx->threads = (int)value;
    else if (key == SDFLOW_CTX_BLAS_POOL)
        ctx->blas_pool = (int)value;
    else if (key == SDFLOW_CTX_FILE_DTYPE)
        ctx->file_dtype = (int)value;
    else
        ctx->log_level = (int)value;
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_set_double(sdflow_ctx *ctx, sdflow_option key, double value)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    /* the ctx has no double-typed keys: this reports the unknown key or wrong type */
    sdflow_status st = CTX_KEY(ctx, key, SDFLOW_TYPE_DOUBLE, &value);
    return st ? st : sdflow__fail(ctx, SDFLOW_E_INVALID, "internal: no double ctx option");
}

sdflow_status sdflow_ctx_set_u64(sdflow_ctx *ctx, sdflow_option key, uint64_t value)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    double v = (double)value;
    sdflow_status st = CTX_KEY(ctx, key, SDFLOW_TYPE_U64, &v);
    if (st)
        return st;
    if (key == SDFLOW_CTX_FILE_MAX_BYTES)
        ctx->file_max_bytes = value;
    else
        ctx->seed = value;
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_get_int(const sdflow_ctx *ctx, sdflow_option key, long *value)
{
    if (!ctx || !value)
        return SDFLOW_E_INVALID;
    sdflow_status st = CTX_KEY(NULL, key, SDFLOW_TYPE_INT, NULL);
    if (st)
        return st;
    *value = key == SDFLOW_CTX_THREADS      ? ctx->threads
             : key == SDFLOW_CTX_BLAS_POOL  ? ctx->blas_pool
             : key == SDFLOW_CTX_FILE_DTYPE ? ctx->file_dtype
                                            : ctx->log_level;
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_get_double(const sdflow_ctx *ctx, sdflow_option key, double *value)
{
    if (!ctx || !value)
        return SDFLOW_E_INVALID;
    sdflow_status st = CTX_KEY(NULL, key, SDFLOW_TYPE_DOUBLE, NULL);
    return st ? st : SDFLOW_E_INVALID;
}

sdflow_status sdflow_ctx_get_u64(const sdflow_ctx *ctx, sdflow_option key, uint64_t *value)
{
    if (!ctx || !value)
        return SDFLOW_E_INVALID;
    sdflow_status st = CTX_KEY(NULL, key, SDFLOW_TYPE_U64, NULL);
    if (st)
        return st;
    *value = key == SDFLOW_CTX_FILE_MAX_BYTES ? ctx->file_max_bytes : ctx->seed;
    return SDFLOW_OK;
}
