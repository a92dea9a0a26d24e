/* SPDX-License-Identifier: MIT */
/* Argument validation shared by every public function: each failure names
 * exactly what is wrong. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ctx_internal.h"

/* The index of the first NaN or Inf of a[0..n-1], or n: the scan every
 * finiteness check runs (inputs, results, gradients, parameters), so it
 * is branch-free in blocks of 256 (exponent bits all ones, an integer OR
 * the vectorizer takes in any order) and only a block that has one is
 * searched element by element. */
size_t sdflow__find_nonfinite(const double *a, size_t n)
{
    enum { BLK = 256 };
    const uint64_t EXP = 0x7ff0000000000000ull;
    for (size_t i0 = 0; i0 < n; i0 += BLK) {
        size_t m = n - i0 < BLK ? n - i0 : BLK;
        uint64_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (size_t j = 0; j < m; j++) {
            uint64_t u;
            memcpy(&u, a + i0 + j, sizeof u);
            bad |= (uint64_t)((u & EXP) == EXP);
        }
        if (bad)
            for (size_t j = 0; j < m; j++)
                if (!isfinite(a[i0 + j]))
                    return i0 + j;
    }
    return n;
}

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
    size_t i = sdflow__find_nonfinite(a, n * d);
    if (i == n * d)
        return SDFLOW_OK;
    if (d == 1)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu] is %s", name, i, isnan(a[i]) ? "NaN" : "Inf");
    return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s[%zu][%zu] is %s", name, i / d, i % d, isnan(a[i]) ? "NaN" : "Inf");
}

sdflow_status sdflow__check_result(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const char *what)
{
    size_t i = sdflow__find_nonfinite(a, n * d);
    if (i == n * d)
        return SDFLOW_OK;
    return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s: row %zu, coordinate %zu is %s", what, i / d, i % d,
                        isnan(a[i]) ? "NaN" : "Inf");
}

size_t sdflow__first_nonfinite_row(const double *a, size_t n, size_t d)
{
    return d ? sdflow__find_nonfinite(a, n * d) / d : n;
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
