/* SPDX-License-Identifier: MIT */
/* Data-parallel DSM training over MPI (docs/mpi.md).
 *
 * Every rank binds the same data, model initialization (same ctx seed) and
 * options, and sets SDFLOW_TRAIN_RANK / SDFLOW_TRAIN_WORLD_SIZE: rank r then
 * computes the rows [r B / R, (r + 1) B / R) of each global batch of B rows
 * (chosen by global row index, so the union over ranks is the one-process
 * batch), and the ctx allreduce hook, wired to MPI_Allreduce(SUM), adds the
 * ranks' gradient and loss vectors once per step. All ranks thus apply the
 * same Adam update. Rank 0 then trains the same model in one process (no
 * hook, world size 1) and prints the max relative difference of the weights,
 * max |theta_mpi - theta_one| / max |theta_one|, after the same steps, and
 * the spread between the ranks' weights (0: they agree bit for bit).
 *
 * --fail-at K: the hook still takes part in the allreduce (so no rank is
 * left waiting) but returns nonzero at step K on every rank: each rank's fit
 * must stop with SDFLOW_E_CALLBACK after K completed steps, with the
 * weights of step K (checked against a K-step one-process run).
 *
 * --no-hook: the negative control, ranks train on their halves without the
 * hook: the weights differ from one process (and between ranks), so
 * --check must fail.
 *
 * Options: --steps N (200), --check TOL (fail above TOL), --fail-at K, --no-hook.
 * Build: mpicc -std=c11 mpi_train.c $(pkg-config --cflags --libs sdflow) -lm
 * Run:   mpirun -np 2 ./mpi_train --check 1e-9 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

#define N_DATA 2000
#define D 2
#define BATCH 256
#define SEED 12

typedef struct hook {
    MPI_Comm comm;
    long calls, fail_at; /* fail_at < 0: never */
} hook;

/* The allreduce hook: in-place sum over the ranks of comm. */
static int mpi_sum(double *buf, size_t n, void *user)
{
    hook *h = user;
    if (MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, h->comm) != MPI_SUCCESS)
        return 1;
    return h->calls++ == h->fail_at ? 2 : 0; /* the injected failure (every rank at the same call) */
}

/* Data: a 2-D mixture of two Gaussian blobs, the same on every rank. */
static int make_data(sdflow_ctx *ctx, double *x)
{
    if (sdflow_rng_normal(ctx, 3, 0, N_DATA, D, x))
        return 1;
    for (size_t i = 0; i < N_DATA; i++) {
        double c = i % 2 ? 1.5 : -1.5;
        x[i * D] = c + 0.4 * x[i * D];
        x[i * D + 1] = 0.5 * c + 0.3 * x[i * D + 1];
    }
    return 0;
}

/* Trains a fresh MLP (initialized from the ctx seed) for steps steps as rank
 * of world; theta gets the weights (count values). Returns the fit status. */
static sdflow_status train(int rank, int world, hook *h, long steps, double **theta, size_t *count, long *done)
{
    sdflow_ctx *ctx = NULL;
    sdflow_model *m = NULL;
    sdflow_process *p = NULL;
    sdflow_trainer *t = NULL;
    double *x = malloc(N_DATA * D * sizeof *x), s = 0;
    sdflow_status st = x ? sdflow_ctx_create(&ctx, NULL) : SDFLOW_E_NOMEM, fit = SDFLOW_OK;
    *theta = NULL;
    if (!st)
        st = sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, SEED);
    if (!st && make_data(ctx, x))
        st = SDFLOW_E_NUMERIC;
    if (!st && h)
        st = sdflow_ctx_set_allreduce(ctx, mpi_sum, h);
    if (!st)
        st = sdflow_model_create_mlp(ctx, D, &m);
    if (!st)
        st = sdflow_process_create(ctx, SDFLOW_PROCESS_VP, &p);
    if (!st)
        st = sdflow_trainer_create(ctx, SDFLOW_LOSS_DSM, &t);
    if (!st)
        st = sdflow_trainer_set_model(t, m);
    if (!st)
        st = sdflow_trainer_set_process(t, p);
    if (!st)
        st = sdflow_trainer_set_data(t, N_DATA, D, x);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_BATCH, BATCH);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_WORLD_SIZE, world);
    if (!st)
        st = sdflow_trainer_set_int(t, SDFLOW_TRAIN_RANK, rank);
    if (!st) {
        fit = sdflow_trainer_fit(t, steps);
        if (fit && fit != SDFLOW_E_CALLBACK)
            fprintf(stderr, "rank %d: fit: %s\n", rank, sdflow_ctx_last_error(ctx));
        if (fit == SDFLOW_E_CALLBACK && rank == 0)
            printf("mpi_train: fit stopped: %s\n", sdflow_ctx_last_error(ctx));
        if (!(st = sdflow_trainer_get_stat(t, SDFLOW_TRAIN_STAT_STEP, &s)))
            *done = (long)s;
    }
    if (!st)
        st = sdflow_model_param_count(m, count);
    if (!st && !(*theta = malloc(*count * sizeof **theta)))
        st = SDFLOW_E_NOMEM;
    if (!st)
        st = sdflow_model_get_params(m, *count, *theta);
    if (st)
        fprintf(stderr, "rank %d: %s\n", rank, ctx ? sdflow_ctx_last_error(ctx) : "no context");
    sdflow_trainer_free(t);
    sdflow_process_free(p);
    sdflow_model_free(m);
    sdflow_ctx_free(ctx);
    free(x);
    return st ? st : fit;
}

static double max_rel(const double *a, const double *b, size_t n)
{
    double dmax = 0, bmax = 0;
    for (size_t i = 0; i < n; i++) {
        dmax = fmax(dmax, fabs(a[i] - b[i]));
        bmax = fmax(bmax, fabs(b[i]));
    }
    return dmax / bmax;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long steps = 200, fail_at = -1;
    double tol = -1;
    int no_hook = 0;
    for (int i = 1; i < argc; i++)
        no_hook |= !strcmp(argv[i], "--no-hook");
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--steps"))
            steps = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--check"))
            tol = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--fail-at"))
            fail_at = atol(argv[i + 1]);
    }
    hook h = { MPI_COMM_WORLD, 0, fail_at };
    double *theta = NULL, *ref = NULL;
    size_t count = 0, rcount = 0;
    long done = -1, rdone = -1;
    int rc = 0;
    sdflow_status st = train(rank, size, no_hook ? NULL : &h, steps, &theta, &count, &done);
    if (fail_at >= 0) {
        /* the failing hook must stop every rank with SDFLOW_E_CALLBACK after fail_at steps */
        if (st != SDFLOW_E_CALLBACK || done != fail_at) {
            printf("mpi_train: rank %d: failing hook gave status %d (%s) after %ld steps, want %d after %ld\n", rank,
                   (int)st, sdflow_strerror(st), done, (int)SDFLOW_E_CALLBACK, fail_at);
            rc = 1;
        }
        st = theta ? SDFLOW_OK : SDFLOW_E_NOMEM;
        steps = fail_at; /* the weights must be those of the last completed step */
    } else if (st) {
        rc = 1;
    }
    /* spread of the weights between the ranks */
    double spread = 0;
    if (!rc && !st) {
        double *hi = malloc(count * sizeof *hi), *lo = malloc(count * sizeof *lo);
        if (!hi || !lo)
            MPI_Abort(MPI_COMM_WORLD, 2);
        MPI_Allreduce(theta, hi, (int)count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(theta, lo, (int)count, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
        spread = max_rel(hi, lo, count);
        free(hi), free(lo);
    }
    if (rank == 0 && !rc) {
        if (train(0, 1, NULL, steps, &ref, &rcount, &rdone) || rcount != count || rdone != steps) {
            printf("mpi_train: the one-process run failed\n");
            rc = 1;
        } else {
            double rel = max_rel(theta, ref, count);
            printf("mpi_train: %d ranks, %ld steps of batch %d (%d rows per rank), %zu weights: max relative "
                   "difference to one process %.3g, between ranks %.3g%s\n",
                   size, steps, BATCH, BATCH / size, count, rel, spread,
                   fail_at >= 0 ? " (after the failing hook stopped the fit)" : "");
            if (tol >= 0 && !(rel <= tol && spread == 0)) {
                printf("mpi_train: FAILED, above the tolerance %g or ranks differ\n", tol);
                rc = 1;
            }
        }
    }
    free(theta), free(ref);
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
