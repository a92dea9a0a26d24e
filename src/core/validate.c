/* SPDX-License-Identifier: MIT */
/* Argument validation shared by every public function: each failure names
 * exactly what is wrong. */
#include <math.h>
#include "ctx_internal.h"

sdflow_status sdflow__check_ptr(sdflow_ctx *ctx, const void *ptr, const char *name)
{
    return ptr ? SDFLOW_OK : sdflow__fail(ctx, SDFLOW_E_INVALID, "%s is NULL", name);
}

sdflow_status sdflow__check_size(sdflow_ctx *ctx, size_t v, const char *name)
{
    return v >= 1 ? SDFLOW_OK : sdflow__fail(ctx, SDFLOW_E_INVALID, "%s=%zu must be >= 1", name, v);
}

/* The one overflow check of sizes: every entry point passes its counts
 * through here (directly or through sdflow__check_dims) before it
 * multiplies or adds them. n x d doubles fit in size_t. */
int sdflow__size_ok(size_t n, size_t d)
{
    return d == 0 || n <= (SIZE_MAX / sizeof(double)) / d;
}

sdflow_status sdflow__check_dims(sdflow_ctx *ctx, size_t n, size_t d)
{
    sdflow_status st;
    if ((st = sdflow__check_size(ctx, n, "n")) || (st = sdflow__check_size(ctx, d, "d")))
        return st;
    if (!sdflow__size_ok(n, d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu x d=%zu doubles overflows size_t", n, d);
    return SDFLOW_OK;
}

sdflow_status sdflow__check_finite(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const char *name)
{
    if (!a)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s is NULL", name);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(a[i])) {
            if (d == 1)
                return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu] is %s", name, i, isnan(a[i]) ? "NaN" : "Inf");
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu][%zu] is %s", name, i / d, i % d,
                                isnan(a[i]) ? "NaN" : "Inf");
        }
    return SDFLOW_OK;
}

sdflow_status sdflow__check_result(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const char *what)
{
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(a[i]))
            return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s: row %zu, coordinate %zu is %s", what, i / d, i % d,
                                isnan(a[i]) ? "NaN" : "Inf");
    return SDFLOW_OK;
}

size_t sdflow__first_nonfinite_row(const double *a, size_t n, size_t d)
{
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(a[i]))
            return i / d;
    return n;
}

sdflow_status sdflow__check_rows(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const size_t *rows,
                                 const char *what)
{
    size_t bad = sdflow__first_nonfinite_row(a, n, d);
    if (bad == n)
        return SDFLOW_OK;
    return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s is NaN/Inf for sample %zu", what, rows ? rows[bad] : bad);
}

sdflow_status sdflow__check_same_ctx(sdflow_ctx *ctx, const sdflow_ctx *other_ctx, const char *what)
{
    if (other_ctx && other_ctx != ctx)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s was created from another context", what);
    return SDFLOW_OK;
}
