/* SPDX-License-Identifier: MIT */
/* SD flow with the target set split over MPI ranks (docs/mpi.md).
 *
 * Every rank draws the same two-moons target set and the same starting
 * particles, keeps its shard of the targets (rows r*m/R .. (r+1)*m/R) in a
 * kernel model, and runs the SD-flow sampler on a callback target model
 * whose score combines the shards' partial sums: sdflow_model_kernel_partial
 * on the local shard, MPI_Allreduce(MAX) of the largest logits, a local
 * rescale, a sum-allreduce of (s, v) through a function of the library's
 * sdflow_allreduce_fn type, and sdflow_kernel_finalize over all m targets.
 * All ranks thus move the same particles in lockstep. Rank 0 then runs the
 * one-process sampler on the whole target set (a plain kernel model, same
 * schedule and start) and prints the max relative difference
 * max |x_mpi - x_one| / max |x_one|; with --check TOL it fails above TOL.
 *
 * Build: mpicc -std=c11 mpi_sdflow.c $(pkg-config --cflags --libs sdflow) -lm
 * Run:   mpirun -np 2 ./mpi_sdflow [--check 1e-10] */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

#define M_TARGET 2000
#define N_PART 500
#define D 2

typedef struct shard_target {
    sdflow_ctx *ctx;
    sdflow_model *shard; /* kernel model of this rank's targets */
    size_t m_total;
    double *mx, *sv, *mx_all; /* sv: s (n) then v (n x d), one buffer for one allreduce */
    size_t cap;
} shard_target;

/* Sum over ranks, in place: the allreduce hook's type (sdflow_ctx_set_allreduce). */
static int mpi_sum(double *buf, size_t n, void *user)
{
    MPI_Comm comm = *(MPI_Comm *)user;
    return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm) != MPI_SUCCESS;
}

/* The callback target: the score of the kernel estimate of all ranks' targets. */
static int sharded_score(size_t n, size_t d, const double *x, const double *t, double *out, void *user)
{
    shard_target *st = user;
    if (n > st->cap) {
        free(st->mx), free(st->sv), free(st->mx_all);
        st->mx = malloc(n * sizeof(double));
        st->mx_all = malloc(n * sizeof(double));
        st->sv = malloc(n * (d + 1) * sizeof(double));
        if (!st->mx || !st->mx_all || !st->sv)
            MPI_Abort(MPI_COMM_WORLD, 2); /* the other ranks wait in the allreduce: stop the job */
        st->cap = n;
    }
    double *s = st->sv, *v = st->sv + n;
    if (sdflow_model_kernel_partial(st->shard, NULL, n, x, t, st->mx, s, v) != SDFLOW_OK) {
        fprintf(stderr, "kernel partial: %s\n", sdflow_ctx_last_error(st->ctx));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Allreduce(st->mx, st->mx_all, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    for (size_t i = 0; i < n; i++) {
        double c = exp(st->mx[i] - st->mx_all[i]); /* the shard's sums relative to the global max */
        s[i] *= c;
        for (size_t k = 0; k < d; k++)
            v[i * d + k] *= c;
    }
    MPI_Comm comm = MPI_COMM_WORLD;
    if (mpi_sum(st->sv, n * (d + 1), &comm))
        return 1;
    return sdflow_kernel_finalize(st->ctx, NULL, n, d, st->m_total, x, t, st->mx_all, s, v, out, NULL, NULL) !=
           SDFLOW_OK;
}

/* Two interleaving half circles with Gaussian jitter, keyed by (seed, stream). */
static int two_moons(sdflow_ctx *ctx, uint64_t stream, size_t n, double *out)
{
    double *u = malloc(n * sizeof *u), *z = malloc(2 * n * sizeof *z);
    if (!u || !z || sdflow_rng_uniform(ctx, stream, 0, n, 1, u) || sdflow_rng_normal(ctx, stream + 1, 0, n, 2, z)) {
        free(u), free(z);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        double a = 3.14159265358979323846 * u[i];
        int upper = i % 2 == 0;
        out[2 * i] = (upper ? cos(a) : 1.0 - cos(a)) + 0.06 * z[2 * i];
        out[2 * i + 1] = (upper ? sin(a) : 0.5 - sin(a)) + 0.06 * z[2 * i + 1];
    }
    free(u), free(z);
    return 0;
}

static sdflow_status run_sdflow(sdflow_ctx *ctx, sdflow_model *target, const double *x0, double *x)
{
    sdflow_sampler *s = NULL;
    sdflow_status st = sdflow_sampler_create(ctx, SDFLOW_SAMPLER_SDFLOW, &s);
    if (!st)
        st = sdflow_sampler_set_model(s, SDFLOW_ROLE_TARGET, target);
    /* an explicit schedule: a callback target has no sample set to derive one from */
    if (!st)
        st = sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MAX, 3.0);
    if (!st)
        st = sdflow_sampler_set_double(s, SDFLOW_OPT_SIGMA_MIN, 0.08);
    if (!st)
        st = sdflow_sampler_set_int(s, SDFLOW_OPT_STEPS, 30);
    if (!st)
        st = sdflow_sampler_run(s, N_PART, x0, x);
    sdflow_sampler_free(s);
    return st;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double tol = -1;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--check"))
            tol = atof(argv[i + 1]);

    sdflow_ctx *ctx = NULL;
    sdflow_model *shard = NULL, *target = NULL, *whole = NULL;
    double *y = malloc(M_TARGET * D * sizeof *y), *x0 = malloc(N_PART * D * sizeof *x0);
    double *x = malloc(N_PART * D * sizeof *x), *xr = malloc(N_PART * D * sizeof *xr);
    shard_target sh = { 0 };
    int rc = 1;
    if (!y || !x0 || !x || !xr || sdflow_ctx_create(&ctx, NULL) || sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, 2026) ||
        two_moons(ctx, 1, M_TARGET, y) || sdflow_rng_normal(ctx, 9, 0, N_PART, D, x0))
        goto done;
    size_t lo = (size_t)rank * M_TARGET / (size_t)size, hi = (size_t)(rank + 1) * M_TARGET / (size_t)size;
    sh.ctx = ctx;
    sh.m_total = M_TARGET;
    if (sdflow_model_create_kernel(ctx, hi - lo, D, y + lo * D, &shard) ||
        sdflow_model_create_callback(ctx, D, SDFLOW_OUT_SCORE, sharded_score, &sh, &target))
        goto done;
    sh.shard = shard;
    sdflow_status st = run_sdflow(ctx, target, x0, x);
    if (st) {
        fprintf(stderr, "rank %d: sharded SD flow: %s\n", rank, sdflow_ctx_last_error(ctx));
        goto done;
    }
    rc = 0;
    if (rank == 0) {
        if (sdflow_model_create_kernel(ctx, M_TARGET, D, y, &whole) || run_sdflow(ctx, whole, x0, xr)) {
            fprintf(stderr, "one-process SD flow: %s\n", sdflow_ctx_last_error(ctx));
            rc = 1;
            goto done;
        }
        double dmax = 0, xmax = 0;
        for (size_t i = 0; i < N_PART * D; i++) {
            dmax = fmax(dmax, fabs(x[i] - xr[i]));
            xmax = fmax(xmax, fabs(xr[i]));
        }
        double rel = dmax / xmax;
        printf("mpi_sdflow: %d ranks, %d targets (%zu on rank 0), %d particles, 30 levels: "
               "max relative difference to one process %.3g (max abs %.3g)\n",
               size, M_TARGET, hi - lo, N_PART, rel, dmax);
        if (tol >= 0 && !(rel <= tol)) {
            printf("mpi_sdflow: FAILED, above the tolerance %g\n", tol);
            rc = 1;
        }
    }
done:
    sdflow_model_free(whole);
    sdflow_model_free(target);
    sdflow_model_free(shard);
    sdflow_ctx_free(ctx);
    free(y), free(x0), free(x), free(xr);
    free(sh.mx), free(sh.sv), free(sh.mx_all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
