/* SPDX-License-Identifier: MIT */
/**
 * @file ctx.h
 * @brief The context: allocator, options, error messages, callbacks, random numbers.
 *
 * Every object is created from a context and reports its errors into it. The
 * context must outlive every object made from it. Two contexts never
 * interact, and by default libsdflow changes no process-global state; the
 * one opt-in exception is SDFLOW_CTX_BLAS_POOL = SDFLOW_BLAS_POOL_SINGLE.
 */
#ifndef SDFLOW_CTX_H
#define SDFLOW_CTX_H

#include <stddef.h>
#include <stdint.h>
#include "options.h"

SDFLOW_BEGIN_DECLS

/** Opaque context. */
typedef struct sdflow_ctx sdflow_ctx;

/** User allocator. @c alloc and @c free are required; @c realloc may be NULL
 *  (the library then allocates, copies and frees). @c realloc is called only
 *  to resize a block the allocator made (@p ptr never NULL, @p size > 0;
 *  today: a kernel model's workspace growing for a larger batch) and must,
 *  like C realloc, return NULL and leave @p ptr valid on failure.
 *  @c alloc and @c realloc may return NULL, which every function turns into
 *  SDFLOW_E_NOMEM (message "out of memory ...") with nothing leaked and no
 *  state changed: a constructor leaves *out NULL, an object keeps its
 *  options and bindings (what an output holds: see each function). The one
 *  thing a failed call may keep is a cache it built before the failure (a
 *  kernel model's workspace), freed with its object; it never changes a
 *  result, so repeating the call once memory is available gives
 *  bit-identical outputs.
 *  The library always frees a block through the allocator that made it. */
typedef struct sdflow_allocator {
    void *(*alloc)(void *user_data, size_t size);
    void *(*realloc)(void *user_data, void *ptr, size_t size);
    void (*free)(void *user_data, void *ptr);
    void *user_data;
} sdflow_allocator;

/** Log levels (SDFLOW_CTX_LOG_LEVEL). */
typedef enum sdflow_log_level {
    SDFLOW_LOG_ERROR = 0,
    SDFLOW_LOG_WARN = 1,
    SDFLOW_LOG_INFO = 2,
    SDFLOW_LOG_DEBUG = 3,
    SDFLOW_LOG_TRACE = 4
} sdflow_log_level;

/** Values of SDFLOW_CTX_BLAS_POOL. Some loops (kernel models from d = 12,
 *  the metrics from d = 16) run on SDFLOW_CTX_THREADS threads that each call
 *  cblas_dgemm. OpenBLAS's thread count is process-global, so who threads
 *  those GEMMs is the host's choice:
 *  - SDFLOW_BLAS_POOL_HOST (default): libsdflow never changes OpenBLAS's
 *    settings. With OpenBLAS threads > 1 the GEMMs of our threads use
 *    OpenBLAS's pool too (the two pools can oversubscribe the cores; set
 *    OPENBLAS_NUM_THREADS=1 or openblas_set_num_threads(1) to avoid it).
 *    Results are bit-identical for any SDFLOW_CTX_THREADS at a fixed
 *    OpenBLAS thread count, but may differ in the last bits between
 *    OpenBLAS thread counts (a threaded GEMM may sum in another order).
 *  - SDFLOW_BLAS_POOL_SINGLE: during such a loop libsdflow sets OpenBLAS to
 *    1 thread and restores the previous count afterwards (reference-counted
 *    across concurrent calls). Results then do not depend on OpenBLAS's
 *    thread count either (and equal those of version 0.1.0 before this
 *    option). This is a process-global change for the duration of the call:
 *    a GEMM another thread of the host program runs meanwhile is
 *    single-threaded too, and an openblas_set_num_threads() made meanwhile
 *    is reverted at the end. */
typedef enum sdflow_blas_pool {
    SDFLOW_BLAS_POOL_HOST = 0,
    SDFLOW_BLAS_POOL_SINGLE = 1
} sdflow_blas_pool;

/** Log callback: @p msg is valid only during the call. */
typedef void (*sdflow_log_fn)(int level, const char *msg, void *user_data);

/** Progress callback, called from the thread that called run, once per step
 *  of long operations. Return 0 to continue, nonzero to cancel: the running
 *  function then returns SDFLOW_E_CANCELLED (its outputs are documented per function). */
typedef int (*sdflow_progress_fn)(void *user_data, long done, long total);

/** Creates a context. @p alloc may be NULL (malloc/free); it is copied.
 *  On failure *out is NULL. Thread safety: safe. */
SDFLOW_API sdflow_status sdflow_ctx_create(sdflow_ctx **out, const sdflow_allocator *alloc);
/** Frees a context; NULL is a no-op. Objects made from it must be freed first. */
SDFLOW_API void sdflow_ctx_free(sdflow_ctx *ctx);

/** Typed option setters/getters for SDFLOW_CTX_* keys (see options.h).
 *  Thread safety: not safe on the same ctx concurrently with any use of it. */
SDFLOW_API sdflow_status sdflow_ctx_set_int(sdflow_ctx *ctx, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_ctx_set_double(sdflow_ctx *ctx, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_ctx_set_u64(sdflow_ctx *ctx, sdflow_option key, uint64_t value);
SDFLOW_API sdflow_status sdflow_ctx_get_int(const sdflow_ctx *ctx, sdflow_option key, long *value);
SDFLOW_API sdflow_status sdflow_ctx_get_double(const sdflow_ctx *ctx, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_ctx_get_u64(const sdflow_ctx *ctx, sdflow_option key, uint64_t *value);

/** Installs a log callback (NULL removes it). The library never writes to
 *  stdout or stderr itself. */
SDFLOW_API sdflow_status sdflow_ctx_set_log(sdflow_ctx *ctx, sdflow_log_fn fn, void *user_data);
/** Installs a progress callback used by samplers, density estimators and
 *  trainers made from this ctx (NULL removes it). */
SDFLOW_API sdflow_status sdflow_ctx_set_progress(sdflow_ctx *ctx, sdflow_progress_fn fn, void *user_data);

/** Sum-allreduce over the processes of a data-parallel job: on return,
 *  every process's @p buf holds the elementwise sum of all processes' @p n
 *  values (e.g. MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM,
 *  comm)). Return 0 on success; nonzero makes the caller fail with
 *  SDFLOW_E_CALLBACK. Called from the thread that called the library. */
typedef int (*sdflow_allreduce_fn)(double *buf, size_t n, void *user_data);
/** Installs the allreduce hook (NULL removes it). The library links no MPI:
 *  the trainer calls the hook once per step on its flat (gradient, loss)
 *  vector. Thread safety: not safe on the same ctx concurrently with any use of it. */
SDFLOW_API sdflow_status sdflow_ctx_set_allreduce(sdflow_ctx *ctx, sdflow_allreduce_fn fn, void *user_data);

/** The message of the last failure reported into @p ctx ("x[17][3] is NaN").
 *  Empty string if none; "no context" for NULL. Valid until the next failing
 *  call on this ctx. If several threads use objects of one ctx, the message
 *  may be another thread's; the returned status is always right. */
SDFLOW_API const char *sdflow_ctx_last_error(const sdflow_ctx *ctx);

/** Standard normal draws: row i of the n x d output depends only on
 *  (seed, @p stream, @p first_index + i) — Philox4x32-10 counter-based
 *  generator and Box-Muller — never on n, blocking or threads.
 *  Thread safety: safe on a shared ctx, except for the error message on failure. */
SDFLOW_API sdflow_status sdflow_rng_normal(sdflow_ctx *ctx, uint64_t stream, uint64_t first_index,
                                           size_t n, size_t d, double *out);
/** Uniform draws on [0, 1) with 53 random bits; same keying as sdflow_rng_normal(). */
SDFLOW_API sdflow_status sdflow_rng_uniform(sdflow_ctx *ctx, uint64_t stream, uint64_t first_index,
                                            size_t n, size_t d, double *out);
/** Raw Philox4x32-10 block function (for known-answer tests and bindings):
 *  out = philox(counter ctr[4], key key[2]). Thread safety: safe.
 *  Precondition: @p ctr, @p key and @p out point to arrays of the sizes
 *  shown (this context-free block function has no status to refuse NULL;
 *  a NULL pointer is undefined behaviour). */
SDFLOW_API void sdflow_rng_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

SDFLOW_END_DECLS
#endif
