/* SPDX-License-Identifier: MIT */
/* Error messages and log lines into the context. Kept apart from ctx.c
 * (creation, allocation, callbacks) so every core file that reports an
 * error -- the option store among them, which ctx.c's creation uses for
 * the defaults -- sits above this file and no call circle forms. */
#include <stdio.h>
#include <string.h>
#include "ctx_internal.h"

sdflow_status sdflow__fail(sdflow_ctx *ctx, sdflow_status code, const char *fmt, ...)
{
    if (!ctx)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    if (ctx->log_fn && ctx->log_level >= SDFLOW_LOG_DEBUG)
        ctx->log_fn(SDFLOW_LOG_DEBUG, ctx->err, ctx->log_user);
    return code;
}

void sdflow__log(sdflow_ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx || !ctx->log_fn || level > ctx->log_level)
        return;
    char buf[SDFLOW__ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log_fn(level, buf, ctx->log_user);
}

sdflow_status sdflow__fail_prefix(sdflow_ctx *ctx, sdflow_status code, const char *fmt, ...)
{
    if (!ctx)
        return code;
    char pre[SDFLOW__ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t np = len < 0 ? 0 : (size_t)len >= sizeof pre ? sizeof pre - 1 : (size_t)len;
    /* the message moves right in place (truncated at its end), so callers
     * never copy or reformat it */
    size_t nm = strlen(ctx->err);
    if (np + nm > sizeof ctx->err - 1)
        nm = sizeof ctx->err - 1 - np;
    memmove(ctx->err + np, ctx->err, nm);
    memcpy(ctx->err, pre, np);
    ctx->err[np + nm] = 0;
    if (ctx->log_fn && ctx->log_level >= SDFLOW_LOG_DEBUG)
        ctx->log_fn(SDFLOW_LOG_DEBUG, ctx->err, ctx->log_user);
    return code;
}
