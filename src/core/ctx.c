/* SPDX-License-Identifier: MIT */
/* The context: allocator, options, callbacks and the last error message. */
#include <stdlib.h>
#include <string.h>
#include "ctx_internal.h"

static void *default_alloc(void *user, size_t size) { (void)user; return malloc(size); }
static void *default_realloc(void *user, void *ptr, size_t size) { (void)user; return realloc(ptr, size); }
static void default_free(void *user, void *ptr) { (void)user; free(ptr); }

sdflow_status sdflow_ctx_create(sdflow_ctx **out, const sdflow_allocator *alloc)
{
    if (!out)
        return SDFLOW_E_INVALID;
    *out = NULL;
    sdflow_allocator a = { default_alloc, default_realloc, default_free, NULL };
    if (alloc) {
        if (!alloc->alloc || !alloc->free)
            return SDFLOW_E_INVALID;
        a = *alloc;
    }
    sdflow_ctx *ctx = a.alloc(a.user_data, sizeof *ctx);
    if (!ctx)
        return SDFLOW_E_NOMEM;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = a;
    sdflow__ctx_option_defaults(ctx);
    *out = ctx;
    return SDFLOW_OK;
}

void sdflow_ctx_free(sdflow_ctx *ctx)
{
    if (ctx)
        ctx->alloc.free(ctx->alloc.user_data, ctx);
}

const char *sdflow_ctx_last_error(const sdflow_ctx *ctx)
{
    return ctx ? ctx->err : "no context";
}

void *sdflow__alloc(sdflow_ctx *ctx, size_t size)
{
    void *p = ctx->alloc.alloc(ctx->alloc.user_data, size ? size : 1);
    if (!p)
        sdflow__fail(ctx, SDFLOW_E_NOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *sdflow__new_handle(sdflow_ctx *ctx, int out_given, const char *kind_name, const char *noun, int kind,
                         size_t size, sdflow_status *st)
{
    void *h = NULL;
    if (!ctx)
        *st = SDFLOW_E_INVALID;
    else if (!out_given)
        *st = sdflow__fail(ctx, SDFLOW_E_INVALID, "out is NULL");
    else if (!kind_name)
        *st = sdflow__fail(ctx, SDFLOW_E_INVALID, "unknown %s kind %d", noun, kind);
    else
        *st = (h = sdflow__calloc_array(ctx, 1, size, noun)) ? SDFLOW_OK : SDFLOW_E_NOMEM;
    return h;
}

void *sdflow__alloc_array(sdflow_ctx *ctx, size_t n, size_t size, const char *what)
{
    if (size && n > SIZE_MAX / size) {
        sdflow__fail(ctx, SDFLOW_E_NOMEM, "%s: %zu x %zu bytes overflows size_t", what, n, size);
        return NULL;
    }
    void *p = ctx->alloc.alloc(ctx->alloc.user_data, (n * size) != 0 ? n * size : 1);
    if (!p)
        sdflow__fail(ctx, SDFLOW_E_NOMEM, "out of memory allocating %s (%zu bytes)", what, n * size);
    return p;
}

void *sdflow__calloc_array(sdflow_ctx *ctx, size_t n, size_t size, const char *what)
{
    void *p = sdflow__alloc_array(ctx, n, size, what);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *sdflow__realloc_array(sdflow_ctx *ctx, void *ptr, size_t old_n, size_t n, size_t size, const char *what)
{
    if (!ptr)
        return sdflow__alloc_array(ctx, n, size, what);
    if (size && n > SIZE_MAX / size) {
        sdflow__fail(ctx, SDFLOW_E_NOMEM, "%s: %zu x %zu bytes overflows size_t", what, n, size);
        return NULL;
    }
    size_t bytes = n * size != 0 ? n * size : 1;
    if (ctx->alloc.realloc) {
        /* like C realloc: NULL on failure leaves ptr valid */
        void *p = ctx->alloc.realloc(ctx->alloc.user_data, ptr, bytes);
        if (!p)
            sdflow__fail(ctx, SDFLOW_E_NOMEM, "out of memory growing %s to %zu bytes", what, n * size);
        return p;
    }
    void *p = sdflow__alloc_array(ctx, n, size, what);
    if (!p)
        return NULL;
    memcpy(p, ptr, (old_n < n ? old_n : n) * size);
    ctx->alloc.free(ctx->alloc.user_data, ptr);
    return p;
}

void sdflow__free(sdflow_ctx *ctx, void *ptr)
{
    if (ptr)
        ctx->alloc.free(ctx->alloc.user_data, ptr);
}

sdflow_status sdflow__progress(sdflow_ctx *ctx, long done, long total, const char *what)
{
    if (ctx->progress_fn && ctx->progress_fn(ctx->progress_user, done, total) != 0)
        return sdflow__fail(ctx, SDFLOW_E_CANCELLED, "%s cancelled by the progress callback at step %ld of %ld",
                            what, done, total);
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_set_log(sdflow_ctx *ctx, sdflow_log_fn fn, void *user_data)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    ctx->log_fn = fn;
    ctx->log_user = user_data;
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_set_progress(sdflow_ctx *ctx, sdflow_progress_fn fn, void *user_data)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    ctx->progress_fn = fn;
    ctx->progress_user = user_data;
    return SDFLOW_OK;
}

sdflow_status sdflow_ctx_set_allreduce(sdflow_ctx *ctx, sdflow_allreduce_fn fn, void *user_data)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    ctx->allreduce_fn = fn;
    ctx->allreduce_user = user_data;
    return SDFLOW_OK;
}

sdflow_status sdflow__allreduce(sdflow_ctx *ctx, double *buf, size_t n, const char *what)
{
    if (!ctx->allreduce_fn)
        return SDFLOW_OK;
    int rc = ctx->allreduce_fn(buf, n, ctx->allreduce_user);
    if (rc != 0)
        return sdflow__fail(ctx, SDFLOW_E_CALLBACK, "%s: the allreduce hook returned %d", what, rc);
    return SDFLOW_OK;
}

int sdflow__threads_for(const sdflow_ctx *ctx, size_t n)
{
    if (n < 64)
        return 1; /* starting threads costs more than the work */
    return (size_t)ctx->threads > n ? (int)n : (int)ctx->threads;
}

int sdflow__threads_for_light(const sdflow_ctx *ctx, size_t n, size_t elems)
{
    /* Under OMP_WAIT_POLICY=PASSIVE a parallel region's start and join cost
     * ~90 us on a 2-vCPU VM (measured: 51 us until the second thread runs,
     * 37 us at the join), the work of ~30000 light elements on one core. */
    return elems < 32768 ? 1 : sdflow__threads_for(ctx, n);
}
