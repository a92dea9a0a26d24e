/* SPDX-License-Identifier: MIT */
/* Shared test helpers: a fault-injecting allocator, context set-up and
 * statistics used by several suites. Header-only, static functions. */
#ifndef SDFLOW_TESTUTIL_H
#define SDFLOW_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

/* Fails allocation number fail_at (0-based); counts live blocks. */
typedef struct failalloc {
    long fail_at, count, live;
} failalloc;

static inline void *fa_alloc(void *u, size_t n)
{
    failalloc *f = u;
    if (f->count++ == f->fail_at)
        return NULL;
    f->live++;
    return malloc(n);
}

static inline void fa_free(void *u, void *p)
{
    failalloc *f = u;
    if (p) {
        f->live--;
        free(p);
    }
}

/* Runs workload(alloc) failing the k-th allocation for every k it reaches:
 * each run must return SDFLOW_E_NOMEM (or OK once k passes the last
 * allocation) and free everything it allocated. The stronger torture of
 * every public entry point (retry, bit-for-bit comparison with a clean run)
 * is tt_torture() below, driven by test/test_torture.c. */
typedef sdflow_status (*alloc_workload)(const sdflow_allocator *a);
static inline void check_all_alloc_failures(alloc_workload workload)
{
    for (long k = 0;; k++) {
        failalloc f = { k, 0, 0 };
        sdflow_allocator a = { fa_alloc, NULL, fa_free, &f };
        sdflow_status st = workload(&a);
        ck_assert_msg(f.live == 0, "allocation %ld failed: %ld blocks leaked", k, f.live);
        if (f.count <= k) {
            ck_assert_msg(st == SDFLOW_OK, "no failure injected at %ld but status %d", k, st);
            ck_assert_msg(k > 0, "workload allocated nothing");
            break;
        }
        ck_assert_msg(st == SDFLOW_E_NOMEM, "allocation %ld failed but status %d (%s)", k, st, sdflow_strerror(st));
    }
}

/* ---- the torture harness ----------------------------------------------------
 * A scenario is a function making a fixed sequence of public calls, each
 * wrapped in TT(h, call) (or TT_NEW for constructors), and recording its
 * outputs with tt_rec(). tt_torture() runs it once cleanly (N allocation
 * events: alloc and realloc calls), then 2N faulted runs: for k = 0..N-1,
 * failing event k only, and failing every event of that call from k on
 * (so the clean-up paths meet further failures too). In a faulted run the
 * call that meets the failure must
 *  - return SDFLOW_E_NOMEM with an "out of memory" message in its ctx (the
 *    message is reset before that call, so a stale one does not count),
 *  - leave the live block count as it was before the call (nothing leaked,
 *    no object half-built or lost: ctx.h promises no state changed),
 *  - set the handle of a constructor to NULL (TT_NEW),
 *  - leave the buffers given to tt_guard() before the call untouched;
 * then TT retries the same call with allocation working, and the scenario
 * goes on. Every other call must return the clean run's status, every
 * tt_rec() record must equal the clean run's bit for bit (memcmp), and at
 * the end nothing may be live. Scenarios must not branch on statuses.
 * Entry points without a status go through TT_NOALLOC (must not allocate),
 * calls whose clean status is not OK through TT_ANY. The allocator counts
 * without locks: libsdflow allocates outside its OpenMP teams. */
typedef struct tt_call_rec {
    sdflow_status st;
    long count_before; /* allocation events before the call */
    long live_delta;   /* live blocks it added (lazy state: workspaces, MLP parameters) */
} tt_call_rec;

typedef struct tt_state {
    long fail_at, count, live; /* injected failure (-1: none), events, live blocks */
    long reallocs;             /* calls of the realloc hook */
    long realloc_null;         /* ... with a NULL block (ctx.h says never) */
    long in_team;              /* allocations made inside an OpenMP team */
    int sticky;                /* faulted runs: every event from fail_at on fails until the call returns */
    int armed;                 /* the injected failure is still to come or in progress */
    int with_realloc;          /* give the allocator a realloc hook */
    int threads;               /* SDFLOW_CTX_THREADS of tt_ctx (0: default 1) */
    int faulted;               /* 0: clean run (recording), 1: faulted run (comparing) */
    sdflow_allocator a;
    sdflow_ctx *ctx; /* where messages go (set by tt_ctx) */
    const char *name;
    /* clean run records */
    tt_call_rec *calls;
    long ncalls, calls_cap;
    unsigned char *log;
    size_t log_len, log_cap;
    /* current run */
    long call_i;     /* logical call index (a retry keeps it) */
    size_t log_pos;  /* faulted run: compared bytes so far */
    long hit_call;   /* faulted run: call index that met the failure (-1: none yet) */
    long retries;    /* faulted run: retries made */
    int hit_kept;    /* faulted run: the failed call kept lazy state (its retry allocates less) */
    long kept_lazy;  /* failed calls that kept lazy state (all runs) */
    long hit_extra;  /* faulted run: events of the failed attempt (repeated by the retry) */
    /* the call in progress */
    long live_before, count_before;
    union tt_hdr *blocks; /* live blocks */
    int jb_set;       /* self-check of the harness: a failed check longjmps to jb */
    jmp_buf jb;
    char why[512];
    /* optional state probe: serializes the observable state of probe_obj
     * (its options) without allocating; compared across a failing call */
    size_t (*probe)(const void *obj, unsigned char *buf, size_t cap);
    const void *probe_obj;
    unsigned char *probe_before;
    size_t probe_len;
    int probe_armed;
    long probes_compared;
    const void *guard_ptr[4];
    size_t guard_len[4];
    unsigned char *guard_copy[4];
    int nguard;
} tt_state;

static inline void tt_fail(tt_state *h, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(buf, sizeof buf, "%s", h->sticky ? "[every allocation from the failing one on fails] " : "");
    vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
    va_end(ap);
    if (h->jb_set) {
        snprintf(h->why, sizeof h->why, "%s", buf);
        longjmp(h->jb, 1);
    }
    ck_abort_msg("%s", buf);
}
#define TT_CHECK(h, cond, ...)                                                                                     \
    do {                                                                                                           \
        if (!(cond))                                                                                               \
            tt_fail((h), __VA_ARGS__);                                                                             \
    } while (0)

/* Blocks carry a header linking them into the state's list of live blocks,
 * so that the harness's self-check can free what a broken scenario left. */
typedef union tt_hdr {
    struct {
        union tt_hdr *prev, *next;
    } l;
    max_align_t align;
} tt_hdr;

static inline void tt_link(tt_state *h, tt_hdr *b)
{
    b->l.prev = NULL;
    b->l.next = h->blocks;
    if (h->blocks)
        h->blocks->l.prev = b;
    h->blocks = b;
}

static inline void tt_unlink(tt_state *h, tt_hdr *b)
{
    if (b->l.prev)
        b->l.prev->l.next = b->l.next;
    else
        h->blocks = b->l.next;
    if (b->l.next)
        b->l.next->l.prev = b->l.prev;
}

/* Counts an allocation event; nonzero if it is to fail. */
static inline int tt_fails(tt_state *h)
{
    if (omp_in_parallel()) /* the counters below are not atomic: tt_run fails the scenario */
        __atomic_fetch_add(&h->in_team, 1, __ATOMIC_RELAXED);
    long k = h->count++;
    return h->armed && (k == h->fail_at || (h->sticky && k > h->fail_at));
}

static inline void *tt_alloc(void *u, size_t n)
{
    tt_state *h = u;
    if (tt_fails(h))
        return NULL;
    tt_hdr *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    tt_link(h, b);
    h->live++;
    return b + 1;
}

static inline void *tt_realloc(void *u, void *p, size_t n)
{
    tt_state *h = u;
    h->reallocs++;
    if (!p) { /* ctx.h: never called with NULL; counted as an error, served as malloc */
        h->realloc_null++;
        return tt_alloc(u, n);
    }
    if (tt_fails(h))
        return NULL;
    tt_hdr *old = (tt_hdr *)p - 1;
    tt_unlink(h, old);
    tt_hdr *b = realloc(old, sizeof *b + n);
    if (!b) {
        tt_link(h, old);
        return NULL;
    }
    tt_link(h, b);
    return b + 1;
}

static inline void tt_free(void *u, void *p)
{
    tt_state *h = u;
    if (p) {
        tt_hdr *b = (tt_hdr *)p - 1;
        tt_unlink(h, b);
        h->live--;
        free(b);
    }
}

static inline void tt_free_all(tt_state *h)
{
    while (h->blocks)
        tt_free(h, h->blocks + 1);
}

/* Snapshot of a buffer the next TT call must leave untouched if it fails. */
static inline void tt_guard(tt_state *h, const void *p, size_t len)
{
    ck_assert(h->nguard < 4);
    unsigned char *c = malloc(len ? len : 1);
    ck_assert(c);
    memcpy(c, p, len);
    h->guard_ptr[h->nguard] = p;
    h->guard_len[h->nguard] = len;
    h->guard_copy[h->nguard++] = c;
}

static inline void tt_guard_drop(tt_state *h)
{
    for (int i = 0; i < h->nguard; i++)
        free(h->guard_copy[i]);
    h->nguard = 0;
}

#define TT_PROBE_CAP 65536
/* Installs a state probe for the object the next calls work on (NULL: none). */
static inline void tt_probe(tt_state *h, size_t (*fn)(const void *, unsigned char *, size_t), const void *obj)
{
    h->probe = fn;
    h->probe_obj = obj;
}

static inline size_t tt_probe_run(tt_state *h, unsigned char *buf)
{
    long c = h->count;
    size_t len = h->probe(h->probe_obj, buf, TT_PROBE_CAP);
    TT_CHECK(h, h->count == c, "%s: the state probe allocated", h->name);
    return len;
}

/* Records output bytes (clean run) or compares them with the record (faulted run). */
static inline void tt_rec_at(tt_state *h, const void *p, size_t len, int line)
{
    if (!h->faulted) {
        if (h->log_len + len > h->log_cap) {
            size_t cap = 2 * (h->log_len + len) + 4096;
            unsigned char *nl = realloc(h->log, cap);
            ck_assert(nl);
            h->log = nl;
            h->log_cap = cap;
        }
        memcpy(h->log + h->log_len, p, len);
        h->log_len += len;
        return;
    }
    TT_CHECK(h, h->log_pos + len <= h->log_len, "%s, failing event %ld: output of line %d past the clean record",
                  h->name, h->fail_at, line);
    TT_CHECK(h, memcmp(h->log + h->log_pos, p, len) == 0,
                  "%s, failing event %ld (in call %ld): output recorded at line %d differs from the clean run", h->name,
                  h->fail_at, h->hit_call, line);
    h->log_pos += len;
}
#define tt_rec(h, p, len) tt_rec_at((h), (p), (len), __LINE__)

#define TT_POISON_OPTION ((sdflow_option)987654)
/* Before attempt `attempt` of the next call: nonzero to make it. */
static inline int tt_begin(tt_state *h, int attempt)
{
    if (attempt == 0) {
        h->live_before = h->live;
        h->count_before = h->count;
        /* the call that will meet the failure: reset the ctx message first */
        h->probe_armed = 0;
        if (h->faulted && h->fail_at >= h->count &&
            (h->call_i + 1 >= h->ncalls || h->fail_at < h->calls[h->call_i + 1].count_before)) {
            if (h->ctx)
                (void)sdflow_ctx_set_int(h->ctx, TT_POISON_OPTION, 0);
            if (h->probe) {
                if (!h->probe_before && !(h->probe_before = malloc(2 * TT_PROBE_CAP)))
                    tt_fail(h, "out of test memory");
                h->probe_len = tt_probe_run(h, h->probe_before);
                h->probe_armed = 1;
            }
        }
        return 1;
    }
    /* attempt 1 is the retry, wanted only when attempt 0 met the failure */
    int retry = attempt == 1 && h->faulted && h->hit_call == h->call_i && h->count_before <= h->fail_at &&
                h->fail_at < h->count && h->retries == 0;
    if (retry) {
        h->retries++;
        h->count_before = h->count;
        h->live_before = h->live;
        return 1;
    }
    tt_guard_drop(h);
    h->call_i++;
    return 0;
}

static inline void tt_end(tt_state *h, sdflow_status st, const void *handle, int is_new, int any_status,
                          const char *what, int line)
{
    if (!h->faulted) {
        TT_CHECK(h, st == SDFLOW_OK || any_status, "%s: clean run: line %d: %s returned %d (%s)", h->name, line, what, st,
                      h->ctx ? sdflow_ctx_last_error(h->ctx) : "");
        if (h->ncalls == h->calls_cap) {
            h->calls_cap = 2 * h->calls_cap + 64;
            h->calls = realloc(h->calls, (size_t)h->calls_cap * sizeof *h->calls);
            ck_assert(h->calls);
        }
        h->calls[h->ncalls].st = st;
        h->calls[h->ncalls].live_delta = h->live - h->live_before;
        h->calls[h->ncalls++].count_before = h->count_before;
        return;
    }
    TT_CHECK(h, h->call_i < h->ncalls, "%s: more calls than the clean run", h->name);
    int met = h->count_before <= h->fail_at && h->fail_at < h->count;
    if (!met) {
        TT_CHECK(h, st == h->calls[h->call_i].st, "%s, failing event %ld: line %d: %s returned %d (%s), clean %d",
                      h->name, h->fail_at, line, what, st, h->ctx ? sdflow_ctx_last_error(h->ctx) : "",
                      h->calls[h->call_i].st);
        return;
    }
    h->hit_call = h->call_i;
    h->armed = 0; /* the retry and the rest of the scenario allocate normally */
    h->hit_extra = h->count - h->count_before;
    TT_CHECK(h, st == SDFLOW_E_NOMEM, "%s, failing event %ld: line %d: %s returned %d (%s), want SDFLOW_E_NOMEM",
                  h->name, h->fail_at, line, what, st, h->ctx ? sdflow_ctx_last_error(h->ctx) : "");
    if (h->ctx) {
        const char *msg = sdflow_ctx_last_error(h->ctx);
        TT_CHECK(h, strstr(msg, "out of memory") != NULL,
                      "%s, failing event %ld: line %d: %s: message '%s' does not report the failed allocation",
                      h->name, h->fail_at, line, what, msg);
    }
    /* Nothing leaked, nothing lost. A call that builds lazy state on success
     * (a kernel workspace, an MLP's parameters: live_delta > 0) may keep what
     * it built before the failure; it is freed with its object (tt_run checks
     * that nothing is live at the end) and must not change any result (the
     * records are compared). A constructor must leave nothing. */
    long keep = is_new ? 0 : h->calls[h->call_i].live_delta;
    TT_CHECK(h, h->live >= h->live_before && h->live <= h->live_before + (keep > 0 ? keep : 0),
             "%s, failing event %ld: line %d: %s failed with %ld live blocks, %ld before the call", h->name,
             h->fail_at, line, what, h->live, h->live_before);
    h->hit_kept = h->live > h->live_before;
    h->kept_lazy += h->hit_kept;
    if (is_new)
        TT_CHECK(h, handle == NULL, "%s, failing event %ld: line %d: %s failed but *out is not NULL", h->name,
                      h->fail_at, line, what);
    if (h->probe_armed) {
        unsigned char *after = h->probe_before + TT_PROBE_CAP;
        size_t len = tt_probe_run(h, after);
        TT_CHECK(h, len == h->probe_len && memcmp(after, h->probe_before, len) == 0,
                 "%s, failing event %ld: line %d: %s failed and changed its object's options", h->name, h->fail_at,
                 line, what);
        h->probes_compared++;
    }
    for (int i = 0; i < h->nguard; i++)
        TT_CHECK(h, memcmp(h->guard_ptr[i], h->guard_copy[i], h->guard_len[i]) == 0,
                      "%s, failing event %ld: line %d: %s failed and changed an output documented untouched",
                      h->name, h->fail_at, line, what);
}

/* A public call; retried once if it met the injected failure. */
#define TT(h, call)                                                                                                \
    do {                                                                                                           \
        for (int tt_a_ = 0; tt_begin((h), tt_a_); tt_a_++)                                                         \
            tt_end((h), (call), NULL, 0, 0, #call, __LINE__);                                                      \
    } while (0)
/* A call whose clean status need not be SDFLOW_OK (a getter of a key the
 * object lacks, ...): faulted runs must still give the same status. */
#define TT_ANY(h, call)                                                                                            \
    do {                                                                                                           \
        for (int tt_a_ = 0; tt_begin((h), tt_a_); tt_a_++)                                                         \
            tt_end((h), (call), NULL, 0, 1, #call, __LINE__);                                                      \
    } while (0)
/* A public function without a status (names, sizes): it must not allocate. */
#define TT_NOALLOC(h, expr)                                                                                        \
    do {                                                                                                           \
        long tt_c_ = (h)->count;                                                                                   \
        (void)(expr);                                                                                              \
        TT_CHECK((h), (h)->count == tt_c_, "%s: line %d: %s allocated", (h)->name, __LINE__, #expr);              \
    } while (0)
/* A constructor writing handle variable `var`: on failure var must be NULL.
 * var is set to a non-NULL sentinel before each attempt. */
#define TT_NEW(h, var, call)                                                                                       \
    do {                                                                                                           \
        for (int tt_a_ = 0; tt_begin((h), tt_a_); tt_a_++) {                                                       \
            (var) = (void *)(h);                                                                                   \
            sdflow_status tt_st_ = (call);                                                                         \
            tt_end((h), tt_st_, (const void *)(var), 1, 0, #call, __LINE__);                                          \
        }                                                                                                          \
    } while (0)

/* The scenario's context, made from the harness allocator. */
static inline sdflow_ctx *tt_ctx(tt_state *h, uint64_t seed)
{
    sdflow_ctx *ctx = NULL;
    h->ctx = NULL;
    TT_NEW(h, ctx, sdflow_ctx_create(&ctx, &h->a));
    h->ctx = ctx;
    TT(h, sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, seed));
    if (h->threads > 1) /* allocations stay outside the OpenMP teams: the event order is fixed */
        TT(h, sdflow_ctx_set_int(ctx, SDFLOW_CTX_THREADS, h->threads));
    return ctx;
}

typedef void (*tt_scenario)(tt_state *h);

static inline void tt_run(tt_state *h, tt_scenario f, long fail_at)
{
    h->fail_at = fail_at;
    h->armed = fail_at >= 0;
    h->count = h->live = 0;
    h->call_i = 0;
    h->log_pos = 0;
    h->hit_call = -1;
    h->retries = 0;
    h->hit_kept = 0;
    h->ctx = NULL;
    h->probe = NULL;
    h->nguard = 0;
    f(h);
    h->ctx = NULL;
    TT_CHECK(h, h->in_team == 0, "%s: %ld allocations inside an OpenMP team", h->name, h->in_team);
    TT_CHECK(h, h->realloc_null == 0, "%s: the realloc hook was called with NULL", h->name);
    TT_CHECK(h, h->live == 0, "%s, failing event %ld: %ld blocks leaked at the end", h->name, fail_at, h->live);
}

/* Runs scenario f clean, then failing each allocation event in turn, in h
 * (zeroed by the caller but for jb_set); returns the number of events. */
static inline long tt_torture_in(tt_state *h, const char *name, tt_scenario f, int with_realloc, int threads)
{
    h->name = name;
    h->threads = threads;
    h->with_realloc = with_realloc;
    h->a = (sdflow_allocator){ tt_alloc, with_realloc ? tt_realloc : NULL, tt_free, h };
    tt_run(h, f, -1);
    long n = h->count;
    TT_CHECK(h, n > 0, "%s allocates nothing", name);
    h->faulted = 1;
    for (h->sticky = 0; h->sticky < 2; h->sticky++)
        for (long k = 0; k < n; k++) {
            tt_run(h, f, k);
            TT_CHECK(h, h->hit_call >= 0 && h->retries == 1, "%s: failing event %ld was never met", name, k);
            TT_CHECK(h, h->call_i == h->ncalls, "%s, failing event %ld: %ld calls, clean run %ld", name, k,
                     h->call_i, h->ncalls);
            TT_CHECK(h, h->log_pos == h->log_len, "%s, failing event %ld: %zu output bytes, clean run %zu", name, k,
                     h->log_pos, h->log_len);
            TT_CHECK(h, h->hit_kept ? h->count < n + h->hit_extra : h->count == n + h->hit_extra,
                     "%s, failing event %ld: %ld allocation events, want the clean run's %ld + %ld repeated", name,
                     k, h->count, n, h->hit_extra);
        }
    h->sticky = 0;
    return n;
}

static inline void tt_state_free(tt_state *h)
{
    tt_guard_drop(h);
    free(h->probe_before);
    free(h->calls);
    free(h->log);
}

/* What a torture saw besides the event count. */
typedef struct tt_stats {
    long kept_lazy; /* failed calls that kept lazy state */
    long probes;    /* failed calls whose object's options were compared */
} tt_stats;

/* The torture of one scenario; a failed check fails the calling test. */
static inline long tt_torture(const char *name, tt_scenario f, int with_realloc, int threads, tt_stats *stats)
{
    tt_state h;
    memset(&h, 0, sizeof h);
    long n = tt_torture_in(&h, name, f, with_realloc, threads);
    if (stats) {
        stats->kept_lazy = h.kept_lazy;
        stats->probes = h.probes_compared;
    }
    tt_state_free(&h);
    return n;
}

/* For testing the harness itself: returns 1 and the first failed check's
 * message in why (size len) if the torture of f fails, 0 if it passes. */
static inline int tt_torture_fails(tt_scenario f, char *why, size_t len)
{
    static tt_state h; /* static: not clobbered by longjmp */
    memset(&h, 0, sizeof h);
    h.jb_set = 1;
    int failed = setjmp(h.jb);
    if (!failed)
        (void)tt_torture_in(&h, "self-check", f, 1, 1);
    snprintf(why, len, "%s", failed ? h.why : "");
    tt_free_all(&h);
    tt_state_free(&h);
    return failed;
}

static inline sdflow_ctx *test_ctx(uint64_t seed)
{
    sdflow_ctx *ctx = NULL;
    ck_assert_int_eq(sdflow_ctx_create(&ctx, NULL), SDFLOW_OK);
    ck_assert_int_eq(sdflow_ctx_set_u64(ctx, SDFLOW_CTX_SEED, seed), SDFLOW_OK);
    return ctx;
}

/* Asserts status st and that the ctx message contains substring want. */
#define ck_assert_status_msg(ctx, call, status, want)                                                              \
    do {                                                                                                           \
        sdflow_status st_ = (call);                                                                                \
        ck_assert_msg(st_ == (status), "%s: status %d, want %d (%s)", #call, st_, (status),                        \
                      sdflow_ctx_last_error(ctx));                                                                 \
        ck_assert_msg(strstr(sdflow_ctx_last_error(ctx), (want)) != NULL, "%s: message '%s' lacks '%s'", #call,     \
                      sdflow_ctx_last_error(ctx), (want));                                                         \
    } while (0)

static inline double vec_mean(const double *a, size_t n, size_t stride)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i * stride];
    return s / (double)n;
}

static inline double vec_var(const double *a, size_t n, size_t stride)
{
    double m = vec_mean(a, n, stride), s = 0;
    for (size_t i = 0; i < n; i++)
        s += (a[i * stride] - m) * (a[i * stride] - m);
    return s / (double)(n - 1);
}

/* Prints measured test quantities (errors, z-scores) to stderr when the
 * environment variable SDFLOW_TEST_VERBOSE is set; silent otherwise. */
#include <stdarg.h>
#include <stdio.h>
static inline void test_note(const char *fmt, ...)
{
    if (!getenv("SDFLOW_TEST_VERBOSE"))
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


/* ---- fixtures shared by the suites -------------------------------------- */

/* A process of the given kind with its defaults. */
static inline sdflow_process *tu_process(sdflow_ctx *ctx, sdflow_process_kind kind)
{
    sdflow_process *p = NULL;
    ck_assert_int_eq(sdflow_process_create(ctx, kind, &p), SDFLOW_OK);
    return p;
}

/* The 2-D Gaussian data N(tu_gm, diag(tu_glam)) of the sampler suites,
 * whose noised marginals and transition moments have closed forms
 * (test_sampler.c, test_fewstep.c). */
static const double tu_gm[2] = { 1.0, -0.5 };
static const double tu_glam[2] = { 1.0, 0.25 };
static inline sdflow_model *tu_gauss2(sdflow_ctx *ctx)
{
    double cov[4] = { tu_glam[0], 0, 0, tu_glam[1] };
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gaussian(ctx, 2, tu_gm, cov, &m), SDFLOW_OK);
    return m;
}

/* A sampler of kind bound to process p and score model m. */
static inline sdflow_sampler *tu_sampler(sdflow_ctx *ctx, sdflow_sampler_kind kind, const sdflow_process *p,
                                         sdflow_model *m)
{
    sdflow_sampler *s = NULL;
    ck_assert_int_eq(sdflow_sampler_create(ctx, kind, &s), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_process(s, p), SDFLOW_OK);
    ck_assert_int_eq(sdflow_sampler_set_model(s, SDFLOW_ROLE_SCORE, m), SDFLOW_OK);
    return s;
}

/* ---- the 2-D, 4-component GMM of the two-sample tests ---------------------
 * (test_sampler.c, test_fewstep.c). Means shifted by `shift` along x0 give
 * the "wrong model" that a two-sample test must reject. */
#define TU_GK 4
#define TU_GMM4_W { 0.1, 0.2, 0.3, 0.4 }
#define TU_GMM4_MU { { -2, -2 }, { 2, -2 }, { -2, 2 }, { 2, 2 } }
#define TU_GMM4_COV { { 0.3, 0, 0, 0.3 }, { 0.5, 0.2, 0.2, 0.3 }, { 0.2, 0, 0, 0.2 }, { 0.4, -0.1, -0.1, 0.2 } }
static inline sdflow_model *tu_gmm4(sdflow_ctx *ctx, double shift)
{
    static const double w[TU_GK] = TU_GMM4_W, mu0[TU_GK][2] = TU_GMM4_MU, cov[TU_GK][4] = TU_GMM4_COV;
    double mu[TU_GK][2];
    for (int k = 0; k < TU_GK; k++) {
        mu[k][0] = mu0[k][0] + shift;
        mu[k][1] = mu0[k][1];
    }
    sdflow_model *m = NULL;
    ck_assert_int_eq(sdflow_model_create_gmm(ctx, TU_GK, 2, w, &mu[0][0], &cov[0][0], &m), SDFLOW_OK);
    return m;
}

/* Energy-distance two-sample test (§13.2): mean + 5 std of E_u between
 * `reps` pairs of independent exact samples of size n (streams seed0 + 2r,
 * seed0 + 2r + 1; reps <= 64). Under H0 E_u is a weighted sum of centred
 * chi-squares; its 5-sigma tail has probability well below 1e-3 (Cantelli's
 * distribution-free bound is 1/26), so each check's false-alarm rate is < 1e-3. */
static inline double tu_energy_null(sdflow_ctx *ctx, sdflow_model *truth, size_t n, int reps, uint64_t seed0,
                                    double *mean_out, double *sd_out)
{
    double *a = malloc(2 * n * sizeof *a), *b = malloc(2 * n * sizeof *b), e[64];
    ck_assert(a && b && reps <= 64);
    for (int r = 0; r < reps; r++) {
        ck_assert_int_eq(sdflow_model_sample(truth, seed0 + 2 * (uint64_t)r, 0, n, a), SDFLOW_OK);
        ck_assert_int_eq(sdflow_model_sample(truth, seed0 + 1 + 2 * (uint64_t)r, 0, n, b), SDFLOW_OK);
        ck_assert_int_eq(sdflow_metric_energy(ctx, n, n, 2, a, b, &e[r], NULL), SDFLOW_OK);
    }
    free(a);
    free(b);
    double mean = vec_mean(e, (size_t)reps, 1), sd = sqrt(vec_var(e, (size_t)reps, 1));
    if (mean_out)
        *mean_out = mean;
    if (sd_out)
        *sd_out = sd;
    return mean + 5 * sd;
}

#endif
