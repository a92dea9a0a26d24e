/* SPDX-License-Identifier: MIT */
/* Internal: the context body and the helpers every object uses. Never installed. */
#ifndef SDFLOW_CTX_INTERNAL_H
#define SDFLOW_CTX_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "sdflow.h"

#define SDFLOW__ERRMAX 256
#define SDFLOW__PI 3.14159265358979323846264338327950288

struct sdflow_ctx {
    sdflow_allocator alloc;
    uint64_t seed;
    int threads;
    int log_level;
    int blas_pool; /* sdflow_blas_pool */
    uint64_t file_max_bytes; /* SDFLOW_CTX_FILE_MAX_BYTES */
    int file_dtype;          /* SDFLOW_CTX_FILE_DTYPE */
    sdflow_log_fn log_fn;
    void *log_user;
    sdflow_progress_fn progress_fn;
    void *progress_user;
    sdflow_allreduce_fn allreduce_fn;
    void *allreduce_user;
    char err[SDFLOW__ERRMAX];
};

#if defined(__GNUC__)
#  define SDFLOW__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define SDFLOW__PRINTF(a, b)
#endif

/* Formats the message into ctx->err (never allocates) and returns code. */
sdflow_status sdflow__fail(sdflow_ctx *ctx, sdflow_status code, const char *fmt, ...) SDFLOW__PRINTF(3, 4);
/* Adds context to the message already in ctx->err: prepends the formatted
 * prefix (operation, step, time) and returns code. The one way a layer
 * wraps a lower layer's message: the reason stays exactly as reported. */
sdflow_status sdflow__fail_prefix(sdflow_ctx *ctx, sdflow_status code, const char *fmt, ...) SDFLOW__PRINTF(3, 4);
void sdflow__log(sdflow_ctx *ctx, int level, const char *fmt, ...) SDFLOW__PRINTF(3, 4);

/* Allocation through the ctx allocator. sdflow__alloc_array checks n*size
 * for overflow and reports SDFLOW_E_NOMEM into ctx on failure (what names
 * the buffer in the message). */
void *sdflow__alloc(sdflow_ctx *ctx, size_t size);
/* The checks every create function starts with (ctx given, out given, kind
 * known: kind_name non-NULL), then a zeroed handle of size bytes; NULL with
 * the status in *st on failure. The caller clears *out first. */
void *sdflow__new_handle(sdflow_ctx *ctx, int out_given, const char *kind_name, const char *noun, int kind,
                         size_t size, sdflow_status *st);
void *sdflow__alloc_array(sdflow_ctx *ctx, size_t n, size_t size, const char *what);
void *sdflow__calloc_array(sdflow_ctx *ctx, size_t n, size_t size, const char *what);
/* Grows (or shrinks) block ptr of old_n x size bytes to n x size bytes,
 * keeping the first min(old_n, n) elements: through the user's realloc hook
 * when there is one, else allocate, copy, free. On failure (NULL, with
 * SDFLOW_E_NOMEM reported) ptr is untouched and still owned by the caller,
 * so a failed growth changes no state. ptr NULL is a plain allocation. */
void *sdflow__realloc_array(sdflow_ctx *ctx, void *ptr, size_t old_n, size_t n, size_t size, const char *what);
void sdflow__free(sdflow_ctx *ctx, void *ptr);

/* The one BLAS-threading policy (blas.c, SDFLOW_CTX_BLAS_POOL): call
 * begin before an OpenMP team of nt threads whose threads call BLAS, and
 * end with its token after the team. */
int sdflow__blas_team_begin(const sdflow_ctx *ctx, int nt);
void sdflow__blas_team_end(int token);

/* Number of threads for a loop over n independent rows (1 for small n). */
int sdflow__threads_for(const sdflow_ctx *ctx, size_t n);

/* Progress: returns SDFLOW_E_CANCELLED (with message) when the callback asks to stop. */
sdflow_status sdflow__progress(sdflow_ctx *ctx, long done, long total, const char *what);

/* Sum-allreduce of buf through the ctx hook (no hook: nothing to do);
 * a nonzero return is SDFLOW_E_CALLBACK naming what was reduced. */
sdflow_status sdflow__allreduce(sdflow_ctx *ctx, double *buf, size_t n, const char *what);

/* Validation helpers: each reports a precise message and returns its status. */
sdflow_status sdflow__check_ptr(sdflow_ctx *ctx, const void *ptr, const char *name);
sdflow_status sdflow__check_size(sdflow_ctx *ctx, size_t v, const char *name);     /* v >= 1 */
sdflow_status sdflow__check_dims(sdflow_ctx *ctx, size_t n, size_t d);              /* n, d >= 1, n*d fits */
sdflow_status sdflow__check_finite(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const char *name);
sdflow_status sdflow__check_option_value(sdflow_ctx *ctx, sdflow_option key, sdflow_option_type type,
                                         double value);
/* An object bound to a handle of ctx must come from ctx (its allocator and
 * error slot); other_ctx NULL (unbinding) passes. */
sdflow_status sdflow__check_same_ctx(sdflow_ctx *ctx, const sdflow_ctx *other_ctx, const char *what);
/* A result array produced by the library: SDFLOW_E_NUMERIC naming row/col. */
sdflow_status sdflow__check_result(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const char *what);
/* Index of the first row of a (n x d) holding a NaN or Inf, or n when all
 * are finite. */
size_t sdflow__first_nonfinite_row(const double *a, size_t n, size_t d);
/* The output check of internal evaluations (one scan): SDFLOW_E_NUMERIC
 * "<what> is NaN/Inf for sample <r>" at the first non-finite row i of a
 * (n x d), with r = rows[i] -- the caller's sample of a compacted batch --
 * or r = i when rows is NULL. */
sdflow_status sdflow__check_rows(sdflow_ctx *ctx, const double *a, size_t n, size_t d, const size_t *rows,
                                 const char *what);

/* True if n*d*extra elements of 8 bytes can be allocated without overflow. */
int sdflow__size_ok(size_t n, size_t d);

/* Checks that key is one of keys (the options an object accepts) and of the
 * given type; with value non-NULL also checks its bounds. ctx may be NULL
 * (getters on const objects): then no message is written. */
sdflow_status sdflow__option_accept(sdflow_ctx *ctx, const char *object, const sdflow_option *keys, size_t nkeys,
                                    sdflow_option key, sdflow_option_type type, const double *value);

/* An option kept in a field of a handle (sampler, density estimator): the
 * kinds of the handle it applies to (bit mask over the kind enum) and the
 * field's offset. int options live in a long, u64 in a uint64_t. */
typedef struct sdflow__opt_slot {
    sdflow_option key;
    unsigned kinds;
    size_t offset;
} sdflow__opt_slot;

/* Typed setter/getter over a slot table: key must apply to kind_bit, be of
 * the given type and (setter) within bounds; value points to a long, double
 * or uint64_t. Errors name the option, the kind (kind_name) and the handle
 * (noun). The getter writes no message (its object is const). */
sdflow_status sdflow__slot_set(sdflow_ctx *ctx, const sdflow__opt_slot *slots, size_t nslots, unsigned kind_bit,
                               const char *kind_name, const char *noun, void *obj, sdflow_option key,
                               sdflow_option_type type, const void *value);
sdflow_status sdflow__slot_get(const sdflow__opt_slot *slots, size_t nslots, unsigned kind_bit, const void *obj,
                               sdflow_option key, sdflow_option_type type, void *value);

/* Options table lookup: type and bounds of a key (SDFLOW_TYPE_NONE if unknown). */
sdflow_option_type sdflow__option_info(sdflow_option key, double *lo, double *hi);

/* Name/enum tables used by the *_kind_name / *_from_name helpers. */
typedef struct sdflow__name {
    int value;
    const char *name;
} sdflow__name;
const char *sdflow__name_of(const sdflow__name *table, int value);
int sdflow__value_of(const sdflow__name *table, const char *name, int *out);

/* Defines the public pair <prefix>_kind_name() and <prefix>_kind_from_name()
 * of a kind enum over its sdflow__name table; every handle kind has the same
 * two functions. */
#define SDFLOW__DEFINE_KIND_NAMES(prefix, enum_type, table)                                                        \
    const char *prefix##_kind_name(enum_type kind) { return sdflow__name_of(table, (int)kind); }                   \
    sdflow_status prefix##_kind_from_name(const char *name, enum_type *out)                                        \
    {                                                                                                              \
        int v;                                                                                                     \
        if (!out)                                                                                                  \
            return SDFLOW_E_INVALID;                                                                               \
        if (!sdflow__value_of(table, name, &v))                                                                    \
            return SDFLOW_E_UNSUPPORTED;                                                                           \
        *out = (enum_type)v;                                                                                       \
        return SDFLOW_OK;                                                                                          \
    }

/* Defines, for a handle with fields ctx and kind and a file-level option
 * table `slots`, the static set_option() and get_option() over the slot
 * store and the public typed accessors <prefix>_set_int/_double/_u64 and
 * <prefix>_get_int/_u64; <prefix>_get_double is written by each handle, as
 * it reports resolved defaults. @p noun names the handle in messages. */
#define SDFLOW__DEFINE_TYPED_OPTIONS(prefix, handle_type, noun)                                                    \
    static sdflow_status set_option(handle_type *h, sdflow_option key, sdflow_option_type type, const void *value) \
    {                                                                                                              \
        if (!h)                                                                                                    \
            return SDFLOW_E_INVALID;                                                                               \
        return sdflow__slot_set(h->ctx, slots, sizeof slots / sizeof slots[0], 1u << h->kind,                      \
                                prefix##_kind_name(h->kind), noun, h, key, type, value);                           \
    }                                                                                                              \
    static sdflow_status get_option(const handle_type *h, sdflow_option key, sdflow_option_type type, void *value) \
    {                                                                                                              \
        if (!h || !value)                                                                                          \
            return SDFLOW_E_INVALID;                                                                               \
        return sdflow__slot_get(slots, sizeof slots / sizeof slots[0], 1u << h->kind, h, key, type, value);        \
    }                                                                                                              \
    sdflow_status prefix##_set_int(handle_type *h, sdflow_option key, long value)                                  \
    {                                                                                                              \
        return set_option(h, key, SDFLOW_TYPE_INT, &value);                                                        \
    }                                                                                                              \
    sdflow_status prefix##_set_double(handle_type *h, sdflow_option key, double value)                             \
    {                                                                                                              \
        return set_option(h, key, SDFLOW_TYPE_DOUBLE, &value);                                                     \
    }                                                                                                              \
    sdflow_status prefix##_set_u64(handle_type *h, sdflow_option key, uint64_t value)                              \
    {                                                                                                              \
        return set_option(h, key, SDFLOW_TYPE_U64, &value);                                                        \
    }                                                                                                              \
    sdflow_status prefix##_get_int(const handle_type *h, sdflow_option key, long *value)                           \
    {                                                                                                              \
        return get_option(h, key, SDFLOW_TYPE_INT, value);                                                         \
    }                                                                                                              \
    sdflow_status prefix##_get_u64(const handle_type *h, sdflow_option key, uint64_t *value)                       \
    {                                                                                                              \
        return get_option(h, key, SDFLOW_TYPE_U64, value);                                                         \
    }

/* Counter-based RNG: row-keyed draws with an extra draw offset inside the row,
 * so one row can take several independent vectors (e.g. one per step). */
void sdflow__rng_normal_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset,
                            size_t d, double *out);
void sdflow__rng_uniform_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset,
                             size_t d, double *out);
/* Rademacher (+1/-1) draws with the same keying. */
void sdflow__rng_rademacher_row(uint64_t seed, uint64_t stream, uint64_t row, uint64_t offset,
                                size_t d, double *out);
/* Derives a stream id from a purpose tag and a step number. */
uint64_t sdflow__stream(uint64_t base, uint64_t tag, uint64_t step);

#endif
