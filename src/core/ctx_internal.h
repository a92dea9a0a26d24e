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
    /* options (ctx_options.c) */
    long threads;
    long log_level;
    long blas_pool;          /* sdflow_blas_pool */
    uint64_t file_max_bytes; /* SDFLOW_CTX_FILE_MAX_BYTES */
    long file_dtype;         /* SDFLOW_CTX_FILE_DTYPE */
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
/* The same for a loop of only elems cheap operations in all (a copy, a few
 * flops each): 1 thread below 32768 of them. */
int sdflow__threads_for_light(const sdflow_ctx *ctx, size_t n, size_t elems);

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
size_t sdflow__find_nonfinite(const double *a, size_t n); /* index of the first NaN/Inf, or n */
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

/* ---- the option store (options.c) ---------------------------------------
 * Every object keeps its options in fields of a struct described by a slot
 * table: one row per (key, kinds) with the field's offset and its default.
 * The key's name, type and bounds come from the one option table
 * (options.c), so they are written once for the whole library. int options
 * live in a long, double in a double, u64 in a uint64_t. A key may have
 * several rows with disjoint kind masks (e.g. a kind-dependent default). */
#define SDFLOW__ALL_KINDS (~0u)
typedef struct sdflow__opt_slot {
    sdflow_option key;
    unsigned kinds; /* bit mask over the handle's kind enum (1u << kind) */
    size_t offset;  /* of the field in the store's object */
    double def;     /* default (exact for u64 values below 2^53) */
} sdflow__opt_slot;
/* The kind bit of a slot's mask, and a row of a slot table whose fields are
 * in a struct of type priv_type (a kind's own block, not the handle). */
#define SDFLOW__KIND_BIT(kind) (1u << (kind))
#define SDFLOW__PRIV_SLOT(priv_type, key, kinds, field, def) { key, kinds, offsetof(priv_type, field), def }

/* What an object's options are: its slot table and two optional hooks. */
typedef struct sdflow__opt_store {
    const char *noun; /* names the object in messages: "a <kind> <noun>" */
    const sdflow__opt_slot *slots;
    size_t nslots;
    /* Consistency check, called once the new value is in obj (changed: it
     * differs from the old one); owner is the handle obj belongs to (the
     * model for a model kind's state). A nonzero status refuses the value:
     * the store puts the old one back, the hook undoes anything else it
     * changed. NULL: every in-bounds value is accepted. */
    sdflow_status (*check)(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed);
    /* Resolved default: called after a successful get with the stored value
     * in *value (of the key's type), may replace it by what a run would use
     * (e.g. t_min of the bound process). NULL: the stored value. */
    void (*resolve)(const void *owner, sdflow_option key, void *value);
} sdflow__opt_store;

/* Writes the defaults: first every row (so a field a kind does not accept
 * still holds the value of its last row, never garbage), then the rows of
 * kind_bit. */
void sdflow__opt_defaults(const sdflow__opt_store *store, unsigned kind_bit, void *obj);
/* Where one object's options are: its store, its kind (name NULL and bit 1
 * for kindless objects), the handle (owner: what the hooks get) and the
 * struct holding the fields (obj: the handle, or a model kind's state).
 * owner NULL: no handle was given. kind_store / kind_obj (NULL: none) are
 * a second store searched after the first, for the options private to the
 * object's kind (a sampler kind's own block): a key is looked up in store,
 * then in kind_store, and the hooks of the store that holds it are called
 * with its obj. Messages name the object by store's noun. */
typedef struct sdflow__opt_bind {
    sdflow_ctx *ctx; /* messages go here (getters too: the error slot is the ctx's mutable part) */
    const sdflow__opt_store *store;
    const char *kind;
    unsigned kind_bit;
    void *owner, *obj;
    const sdflow__opt_store *kind_store;
    void *kind_obj;
} sdflow__opt_bind;

/* Typed setter/getter of one object: key must have a row for kind_bit, be
 * of the given type and (setter) within bounds; value points to a long,
 * double or uint64_t. No handle or (getter) no value pointer is
 * SDFLOW_E_INVALID. Errors (SDFLOW_E_UNSUPPORTED for a key the object does
 * not accept, SDFLOW_E_INVALID for the wrong type or an out-of-bounds
 * value) name the key and the object ("a <kind> <noun>"; kind NULL: "a
 * <noun>"); a refused value changes nothing. */
sdflow_status sdflow__opt_set(const sdflow__opt_bind *b, sdflow_option key, sdflow_option_type type,
                              const void *value);
sdflow_status sdflow__opt_get(const sdflow__opt_bind *b, sdflow_option key, sdflow_option_type type, void *value);

/* The bind of a handle h with fields ctx and kind (kind names from
 * prefix##_kind_name), whose options are fields of the handle itself
 * (_STORES: and kind_store / kind_obj after them). */
#define SDFLOW__KIND_BIND_STORES(prefix, h, store, kind_store_, kind_obj_)                                         \
    ((h) ? (sdflow__opt_bind){ (h)->ctx, &(store), prefix##_kind_name((h)->kind), 1u << (h)->kind, (void *)(h),     \
                               (void *)(h), kind_store_, kind_obj_ }                                               \
         : (sdflow__opt_bind){ 0 })
#define SDFLOW__KIND_BIND(prefix, h, store) SDFLOW__KIND_BIND_STORES(prefix, h, store, NULL, NULL)
/* ... of a handle that also has a kind descriptor ops whose opts store
 * holds the kind's own options in the handle's block priv (samplers,
 * density estimators). */
#define SDFLOW__KIND_BIND_PRIV(prefix, h, store) SDFLOW__KIND_BIND_STORES(prefix, h, store, (h)->ops->opts, (h)->priv)

/* The public typed setter and getter prefix_set_<suffix> / prefix_get_<suffix>
 * of one option type over bind(h) (a function or macro giving the handle's
 * sdflow__opt_bind): every object's accessors are these two lines of logic,
 * so they are written once. */
#define SDFLOW__DEFINE_OPTION_ACCESSORS(prefix, handle_type, bind, suffix, type_enum, c_type)                      \
    sdflow_status prefix##_set_##suffix(handle_type *h, sdflow_option key, c_type value)                           \
    {                                                                                                              \
        sdflow__opt_bind b = bind(h);                                                                              \
        return sdflow__opt_set(&b, key, type_enum, &value);                                                        \
    }                                                                                                              \
    sdflow_status prefix##_get_##suffix(const handle_type *h, sdflow_option key, c_type *value)                    \
    {                                                                                                              \
        sdflow__opt_bind b = bind(h);                                                                              \
        return sdflow__opt_get(&b, key, type_enum, value);                                                         \
    }

/* Writes the context's option defaults (ctx_options.c). */
void sdflow__ctx_option_defaults(sdflow_ctx *ctx);

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
