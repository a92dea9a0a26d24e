/* SPDX-License-Identifier: MIT */
/* The BLAS-threading policy, in one place (SDFLOW_CTX_BLAS_POOL, ctx.h).
 * OpenBLAS's thread count is process-global. By default (HOST) libsdflow
 * never touches it. In SINGLE mode, a loop whose threads call GEMMs sets it
 * to 1 for its duration so only one thread pool runs and the GEMMs' bits do
 * not depend on OpenBLAS's thread count (measured: a 1-ulp difference in
 * kernel scores at d = 64 between 1 and 2 OpenBLAS threads). The
 * first of concurrent such loops (objects used from several host threads)
 * saves the count and sets 1, the last restores it. */
#include <cblas.h>
#include <pthread.h>
#include "ctx_internal.h"

static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_users, blas_saved_threads;

int sdflow__blas_team_begin(const sdflow_ctx *ctx, int nt)
{
    (void)nt; /* one thread too: the GEMMs then sum in the same order as on nt threads */
    if (ctx->blas_pool != SDFLOW_BLAS_POOL_SINGLE)
        return 0;
    pthread_mutex_lock(&blas_lock);
    if (blas_users++ == 0) {
        blas_saved_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_lock);
    return 1;
}

void sdflow__blas_team_end(int token)
{
    if (!token)
        return;
    pthread_mutex_lock(&blas_lock);
    if (--blas_users == 0)
        openblas_set_num_threads(blas_saved_threads);
    pthread_mutex_unlock(&blas_lock);
}
