/* SPDX-License-Identifier: MIT */
/* Exact linear assignment (minibatch OT with uniform weights): shortest
 * augmenting paths with dual potentials (Jonker & Volgenant 1987; the
 * O(n^3) Hungarian form of Kuhn-Munkres). */
#include <math.h>
#include <string.h>
#include "ot_internal.h"

sdflow_status sdflow__assignment(sdflow_ctx *ctx, size_t n, const double *cost, size_t *perm, double *total)
{
    /* 1-based columns; column 0 is the virtual start of each augmenting path */
    double *u = sdflow__calloc_array(ctx, n + 1, sizeof(double), "row potentials");
    double *v = sdflow__calloc_array(ctx, n + 1, sizeof(double), "column potentials");
    double *minv = sdflow__alloc_array(ctx, n + 1, sizeof(double), "path lengths");
    size_t *p = sdflow__calloc_array(ctx, n + 1, sizeof(size_t), "column owners");
    size_t *way = sdflow__calloc_array(ctx, n + 1, sizeof(size_t), "path links");
    unsigned char *used = sdflow__alloc_array(ctx, n + 1, 1, "visited columns");
    sdflow_status st = SDFLOW_E_NOMEM;
    if (u && v && minv && p && way && used) {
        for (size_t i = 1; i <= n; i++) {
            /* grow a shortest path tree from row i until it reaches a free column */
            p[0] = i;
            size_t j0 = 0;
            for (size_t j = 0; j <= n; j++)
                minv[j] = INFINITY;
            memset(used, 0, n + 1);
            do {
                used[j0] = 1;
                size_t i0 = p[j0], j1 = 0;
                double delta = INFINITY;
                const double *row = cost + (i0 - 1) * n;
                for (size_t j = 1; j <= n; j++) {
                    if (used[j])
                        continue;
                    double cur = row[j - 1] - u[i0] - v[j];
                    if (cur < minv[j]) {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if (minv[j] < delta) { /* strict: the lowest column index wins ties */
                        delta = minv[j];
                        j1 = j;
                    }
                }
                for (size_t j = 0; j <= n; j++) {
                    if (used[j]) {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
            } while (p[j0] != 0);
            /* flip the path */
            do {
                size_t j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            } while (j0);
        }
        double sum = 0;
        for (size_t j = 1; j <= n; j++)
            perm[p[j] - 1] = j - 1;
        for (size_t i = 0; i < n; i++)
            sum += cost[i * n + perm[i]];
        if (total)
            *total = sum;
        st = SDFLOW_OK;
    }
    sdflow__free(ctx, u);
    sdflow__free(ctx, v);
    sdflow__free(ctx, minv);
    sdflow__free(ctx, p);
    sdflow__free(ctx, way);
    sdflow__free(ctx, used);
    return st;
}

sdflow_status sdflow_assignment(sdflow_ctx *ctx, size_t n, const double *cost, size_t *perm, double *total)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_dims(ctx, n, n);
    if (st || (st = sdflow__check_finite(ctx, cost, n, n, "cost")) || (st = sdflow__check_ptr(ctx, perm, "perm")))
        return st;
    return sdflow__assignment(ctx, n, cost, perm, total);
}
