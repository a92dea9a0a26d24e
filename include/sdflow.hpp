/* SPDX-License-Identifier: MIT */
/**
 * @file sdflow.hpp
 * @brief Optional header-only C++17/C++20 wrapper of libsdflow (docs/cxx.md).
 *
 * - Every handle (ctx, process, model, sampler, density, trainer) is a
 *   move-only RAII class owning exactly one C object; the destructor frees it.
 * - Every failing call throws sdflow::error, which carries the
 *   ::sdflow_status (error::status()) and the library's message
 *   (sdflow_ctx_last_error()). An exception thrown by a C++ callback (model,
 *   JVP, batch, progress, log, allreduce) is caught at the C boundary (C
 *   frames are never unwound) and rethrown from the wrapper call that ran it.
 * - Arrays are sdflow::span views: std::span with C++20 (when the library
 *   has __cpp_lib_span), a minimal pointer + size view with the same
 *   interface otherwise (C++17 baseline). Every length is checked against
 *   the model's dimension before the C call; a mismatch throws an error with
 *   status SDFLOW_E_INVALID and nothing is called.
 * - The C enums (sdflow_option, sdflow_sampler_kind, ...) are used as they
 *   are, so their values can never drift from the C API; sdflow::name() and
 *   sdflow::from_name<E>() convert kinds to and from their names.
 * - Options: obj.set(key, value) and obj.get<T>(key) pick the typed C
 *   setter from the key's type (sdflow_option_get_type()), so
 *   `ctx.set(SDFLOW_CTX_SEED, 42)` and `s.set(SDFLOW_OPT_SOLVER,
 *   SDFLOW_SOLVER_DOPRI5)` both work.
 *
 * Lifetimes follow the C API: the ctx must outlive everything made from it,
 * and a process or model bound to a sampler, density or trainer must outlive
 * its runs. Moving a wrapper keeps these bindings valid (the C handles do not
 * move). Thread safety is that of the C objects (include/sdflow/ctx.h and
 * each header's notes).
 */
#ifndef SDFLOW_HPP
#define SDFLOW_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__has_include)
#  if __has_include(<version>)
#    include <version>
#  endif
#endif
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#  include <span>
#  define SDFLOW_HPP_STD_SPAN 1
#else
#  define SDFLOW_HPP_STD_SPAN 0
#endif

#include "sdflow.h"

namespace sdflow {

#if SDFLOW_HPP_STD_SPAN
/** A contiguous view: std::span under C++20. */
template <class T> using span = std::span<T>;
#else
/** A contiguous view (C++17 stand-in for std::span: data(), size(),
 *  iteration, element access; made from a pointer and a size, a C array, or
 *  any container with data() and size() such as std::vector and std::array). */
template <class T> class span {
public:
    using element_type = T;
    using value_type = typename std::remove_cv<T>::type;
    using size_type = std::size_t;
    using iterator = T *;
    constexpr span() noexcept : p_(nullptr), n_(0) {}
    constexpr span(T *p, std::size_t n) noexcept : p_(p), n_(n) {}
    template <std::size_t N> constexpr span(T (&a)[N]) noexcept : p_(a), n_(N) {}
    template <class C,
              class = typename std::enable_if<
                  !std::is_same<typename std::decay<C>::type, span>::value &&
                  std::is_convertible<decltype(std::declval<C &>().data()), T *>::value>::type>
    constexpr span(C &&c) noexcept(noexcept(c.data())) : p_(c.data()), n_(c.size())
    {
    }
    template <class U, class = typename std::enable_if<std::is_convertible<U (*)[], T (*)[]>::value>::type>
    constexpr span(const span<U> &o) noexcept : p_(o.data()), n_(o.size())
    {
    }
    constexpr T *data() const noexcept { return p_; }
    constexpr std::size_t size() const noexcept { return n_; }
    constexpr bool empty() const noexcept { return n_ == 0; }
    constexpr T *begin() const noexcept { return p_; }
    constexpr T *end() const noexcept { return p_ + n_; }
    constexpr T &operator[](std::size_t i) const { return p_[i]; }

private:
    T *p_;
    std::size_t n_;
};
#endif

/** The exception of every failing call: the status and the library's message. */
class error : public std::runtime_error {
public:
    error(sdflow_status st, const std::string &message)
        : std::runtime_error(std::string(sdflow_strerror(st)) + (message.empty() ? "" : ": " + message)),
          status_(st), message_(message)
    {
    }
    /** The C status (SDFLOW_E_INVALID, ...). */
    sdflow_status status() const noexcept { return status_; }
    /** The library's message alone ("x[17][3] is NaN"); what() prefixes sdflow_strerror(). */
    const std::string &message() const noexcept { return message_; }

private:
    sdflow_status status_;
    std::string message_;
};

/** Run-time library version ("0.1.0") and number (MAJOR*10000 + MINOR*100 + PATCH). */
inline const char *version_string() noexcept { return sdflow_version_string(); }
inline unsigned version() noexcept { return sdflow_version(); }

namespace detail {

/** Per-ctx state shared by every wrapper made from it: the C ctx, the C++
 *  callbacks installed on it and the first exception a callback threw
 *  (callbacks may run on the library's worker threads, hence the mutex). */
struct ctx_state {
    sdflow_ctx *c = nullptr;
    std::mutex mu;
    std::exception_ptr pending;
    std::function<void(int, const char *)> log;
    std::function<bool(long, long)> progress;
    std::function<bool(double *, std::size_t)> allreduce;

    void stash(std::exception_ptr e)
    {
        std::lock_guard<std::mutex> g(mu);
        if (!pending)
            pending = e;
    }
    std::exception_ptr take()
    {
        std::lock_guard<std::mutex> g(mu);
        std::exception_ptr e = pending;
        pending = nullptr;
        return e;
    }
};

[[noreturn]] inline void fail(sdflow_status st, const std::string &msg) { throw error(st, msg); }

/** Throws for a failed status: a callback's own exception when it caused it,
 *  else sdflow::error with the ctx's message. */
inline void check(ctx_state *s, sdflow_status st)
{
    if (st == SDFLOW_OK)
        return;
    if (s) {
        std::exception_ptr e = s->take();
        if (e && (st == SDFLOW_E_CALLBACK || st == SDFLOW_E_CANCELLED))
            std::rethrow_exception(e);
        throw error(st, sdflow_ctx_last_error(s->c));
    }
    throw error(st, "");
}

/** n * d with an overflow check. */
inline std::size_t mul(std::size_t a, std::size_t b)
{
    if (b != 0 && a > std::numeric_limits<std::size_t>::max() / b)
        fail(SDFLOW_E_INVALID, "array size " + std::to_string(a) + " x " + std::to_string(b) + " overflows size_t");
    return a * b;
}

/** Checks that view @p what has exactly @p want elements. */
template <class T> inline void need(const span<T> &v, std::size_t want, const char *what)
{
    if (v.size() != want)
        fail(SDFLOW_E_INVALID, std::string(what) + " has " + std::to_string(v.size()) + " elements, want " +
                                   std::to_string(want));
}
/** Optional output: empty means "not requested" (NULL), else exactly @p want elements. */
template <class T> inline T *opt(const span<T> &v, std::size_t want, const char *what)
{
    if (v.empty())
        return nullptr;
    need(v, want, what);
    return v.data();
}
/** Rows of a flat n x d view (its size must be a multiple of d). */
inline std::size_t rows(std::size_t size, std::size_t d, const char *what)
{
    if (d == 0)
        fail(SDFLOW_E_STATE, std::string(what) + ": dimension unknown (bind a model first)");
    if (size % d != 0)
        fail(SDFLOW_E_INVALID, std::string(what) + " has " + std::to_string(size) +
                                   " elements, not a multiple of the dimension " + std::to_string(d));
    return size / d;
}

/** set(key, value) for any arithmetic or enum value, through the key's type. */
template <class H, class V>
inline void set_option(ctx_state *s, H *h, sdflow_option key, V value,
                       sdflow_status (*si)(H *, sdflow_option, long),
                       sdflow_status (*sd)(H *, sdflow_option, double),
                       sdflow_status (*su)(H *, sdflow_option, std::uint64_t))
{
    static_assert(std::is_arithmetic<V>::value || std::is_enum<V>::value, "option values are numbers or enums");
    using N = typename std::conditional<std::is_enum<V>::value, long, V>::type;
    N v = static_cast<N>(value);
    switch (sdflow_option_get_type(key)) {
    case SDFLOW_TYPE_INT:
        if constexpr (std::is_floating_point<N>::value) {
            if (!(v >= -9.2e18 && v <= 9.2e18) || static_cast<N>(static_cast<long>(v)) != v)
                fail(SDFLOW_E_INVALID, std::string("option ") + sdflow_option_name(key) + " takes an integer");
        }
        check(s, si(h, key, static_cast<long>(v)));
        return;
    case SDFLOW_TYPE_DOUBLE:
        check(s, sd(h, key, static_cast<double>(v)));
        return;
    case SDFLOW_TYPE_U64:
        if (!su)
            break;
        if constexpr (std::is_signed<N>::value) {
            if (v < 0)
                fail(SDFLOW_E_INVALID, std::string("option ") + sdflow_option_name(key) + " takes an unsigned value");
        }
        check(s, su(h, key, static_cast<std::uint64_t>(v)));
        return;
    default:
        fail(SDFLOW_E_UNSUPPORTED, "unknown option key " + std::to_string(static_cast<int>(key)));
    }
    fail(SDFLOW_E_UNSUPPORTED, std::string("option ") + sdflow_option_name(key) + " does not apply to this object");
}

template <class T, class H>
inline T get_option(ctx_state *s, const H *h, sdflow_option key,
                    sdflow_status (*gi)(const H *, sdflow_option, long *),
                    sdflow_status (*gd)(const H *, sdflow_option, double *),
                    sdflow_status (*gu)(const H *, sdflow_option, std::uint64_t *))
{
    switch (sdflow_option_get_type(key)) {
    case SDFLOW_TYPE_INT: {
        long v = 0;
        check(s, gi(h, key, &v));
        return static_cast<T>(v);
    }
    case SDFLOW_TYPE_DOUBLE: {
        double v = 0;
        check(s, gd(h, key, &v));
        return static_cast<T>(v);
    }
    case SDFLOW_TYPE_U64: {
        if (!gu)
            break;
        std::uint64_t v = 0;
        check(s, gu(h, key, &v));
        return static_cast<T>(v);
    }
    default:
        fail(SDFLOW_E_UNSUPPORTED, "unknown option key " + std::to_string(static_cast<int>(key)));
    }
    fail(SDFLOW_E_UNSUPPORTED, std::string("option ") + sdflow_option_name(key) + " does not apply to this object");
}

/* C trampolines: never let an exception cross a C frame. */
inline void log_tramp(int level, const char *msg, void *u) noexcept
{
    ctx_state *s = static_cast<ctx_state *>(u);
    try {
        s->log(level, msg);
    } catch (...) {
        s->stash(std::current_exception());
    }
}
inline int progress_tramp(void *u, long done, long total) noexcept
{
    ctx_state *s = static_cast<ctx_state *>(u);
    try {
        return s->progress(done, total) ? 0 : 1;
    } catch (...) {
        s->stash(std::current_exception());
        return 1;
    }
}
inline int allreduce_tramp(double *buf, std::size_t n, void *u) noexcept
{
    ctx_state *s = static_cast<ctx_state *>(u);
    try {
        return s->allreduce(buf, n) ? 0 : 1;
    } catch (...) {
        s->stash(std::current_exception());
        return 1;
    }
}

} // namespace detail

/** Model callback: write n x d outputs for points x (n x d) at times t (n). Throw to fail. */
using model_fn = std::function<void(std::size_t n, std::size_t d, const double *x, const double *t, double *out)>;
/** JVP callback: jv[i] = J(x[i], t[i]) v[i]. Throw to fail. */
using model_jvp_fn = std::function<void(std::size_t n, std::size_t d, const double *x, const double *t,
                                        const double *v, double *jv)>;
/** Batch callback of a trainer: fill x0 (rows x d) with rows [first_row, first_row + rows) of step @p step. */
using batch_fn = std::function<void(long step, std::uint64_t first_row, std::size_t rows, std::size_t d, double *x0)>;

/** A value with its standard deviation or standard error. */
struct estimate {
    double value;
    double std;
};

/** Option-type and name helpers (options.h). */
inline sdflow_option_type option_type(sdflow_option key) noexcept { return sdflow_option_get_type(key); }
inline std::string option_name(sdflow_option key)
{
    const char *n = sdflow_option_name(key);
    if (!n)
        detail::fail(SDFLOW_E_UNSUPPORTED, "unknown option key " + std::to_string(static_cast<int>(key)));
    return n;
}
inline sdflow_option option_from_name(const std::string &name)
{
    sdflow_option k{};
    if (sdflow_option_from_name(name.c_str(), &k) != SDFLOW_OK)
        detail::fail(SDFLOW_E_UNSUPPORTED, "no option named '" + name + "'");
    return k;
}
inline std::pair<double, double> option_bounds(sdflow_option key)
{
    double lo = 0, hi = 0;
    detail::check(nullptr, sdflow_option_bounds(key, &lo, &hi));
    return {lo, hi};
}

#define SDFLOW_HPP_KIND_NAMES(E, NAME, FROM)                                                              \
    inline std::string name(E kind)                                                                       \
    {                                                                                                     \
        const char *n = NAME(kind);                                                                       \
        if (!n)                                                                                           \
            detail::fail(SDFLOW_E_INVALID, "unknown " #E " " + std::to_string(static_cast<int>(kind)));   \
        return n;                                                                                         \
    }                                                                                                     \
    template <> inline E from_name<E>(const std::string &s)                                               \
    {                                                                                                     \
        E k{};                                                                                            \
        if (FROM(s.c_str(), &k) != SDFLOW_OK)                                                             \
            detail::fail(SDFLOW_E_INVALID, "no " #E " named '" + s + "'");                                \
        return k;                                                                                         \
    }
/** from_name<sdflow_sampler_kind>("pf_ode") and friends: the inverse of name(). */
template <class E> E from_name(const std::string &s);
SDFLOW_HPP_KIND_NAMES(sdflow_process_kind, sdflow_process_kind_name, sdflow_process_kind_from_name)
SDFLOW_HPP_KIND_NAMES(sdflow_model_kind, sdflow_model_kind_name, sdflow_model_kind_from_name)
SDFLOW_HPP_KIND_NAMES(sdflow_sampler_kind, sdflow_sampler_kind_name, sdflow_sampler_kind_from_name)
SDFLOW_HPP_KIND_NAMES(sdflow_density_kind, sdflow_density_kind_name, sdflow_density_kind_from_name)
SDFLOW_HPP_KIND_NAMES(sdflow_loss_kind, sdflow_trainer_kind_name, sdflow_trainer_kind_from_name)
#undef SDFLOW_HPP_KIND_NAMES
template <> inline sdflow_option from_name<sdflow_option>(const std::string &s) { return option_from_name(s); }

/** Raw Philox4x32-10 block function (counter, key) -> 4 words. */
inline std::array<std::uint32_t, 4> philox4x32(const std::array<std::uint32_t, 4> &ctr,
                                               const std::array<std::uint32_t, 2> &key) noexcept
{
    std::array<std::uint32_t, 4> out{};
    sdflow_rng_philox4x32(ctr.data(), key.data(), out.data());
    return out;
}
/** exp as the kernel sums compute it (sdflow_kernel_exp); @p out has x.size() elements. */
inline void kernel_exp(span<const double> x, span<double> out)
{
    detail::need(out, x.size(), "out");
    detail::check(nullptr, sdflow_kernel_exp(x.size(), x.data(), out.data()));
}

class process;
class model;

/** The context: options, callbacks, random numbers, metrics, couplings. */
class ctx {
public:
    /** A context with the default allocator (or @p alloc, copied) and seed 0. */
    explicit ctx(const sdflow_allocator *alloc = nullptr) : s_(new detail::ctx_state)
    {
        detail::check(nullptr, sdflow_ctx_create(&s_->c, alloc));
    }
    /** A context with SDFLOW_CTX_SEED = @p seed (any integer type; ctx(0) is seed 0). */
    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    explicit ctx(I seed) : ctx(static_cast<const sdflow_allocator *>(nullptr))
    {
        set(SDFLOW_CTX_SEED, static_cast<std::uint64_t>(seed));
    }
    ~ctx()
    {
        if (s_)
            sdflow_ctx_free(s_->c);
    }
    ctx(ctx &&) noexcept = default;
    ctx &operator=(ctx &&o) noexcept
    {
        if (this != &o) {
            if (s_)
                sdflow_ctx_free(s_->c);
            s_ = std::move(o.s_);
        }
        return *this;
    }
    ctx(const ctx &) = delete;
    ctx &operator=(const ctx &) = delete;

    /** The C handle (still owned by this object). */
    sdflow_ctx *get() const noexcept { return s_ ? s_->c : nullptr; }
    detail::ctx_state *state() const noexcept { return s_.get(); }

    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option(s_.get(), s_->c, key, value, sdflow_ctx_set_int, sdflow_ctx_set_double, sdflow_ctx_set_u64);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T>(s_.get(), s_->c, key, sdflow_ctx_get_int, sdflow_ctx_get_double,
                                     sdflow_ctx_get_u64);
    }
    /** The message of the last failure ("" if none). */
    std::string last_error() const { return sdflow_ctx_last_error(get()); }

    /** Log callback (empty function removes it). An exception it throws is
     *  rethrown by the next failing call on this ctx. */
    void set_log(std::function<void(int level, const char *msg)> fn)
    {
        s_->log = std::move(fn);
        detail::check(s_.get(), sdflow_ctx_set_log(s_->c, s_->log ? detail::log_tramp : nullptr, s_.get()));
    }
    /** Progress callback: return false to cancel (the run throws SDFLOW_E_CANCELLED);
     *  an exception it throws cancels the run and is rethrown from it. */
    void set_progress(std::function<bool(long done, long total)> fn)
    {
        s_->progress = std::move(fn);
        detail::check(s_.get(),
                      sdflow_ctx_set_progress(s_->c, s_->progress ? detail::progress_tramp : nullptr, s_.get()));
    }
    /** Sum-allreduce hook of data-parallel training: return false to fail the step. */
    void set_allreduce(std::function<bool(double *buf, std::size_t n)> fn)
    {
        s_->allreduce = std::move(fn);
        detail::check(s_.get(), sdflow_ctx_set_allreduce(s_->c, s_->allreduce ? detail::allreduce_tramp : nullptr,
                                                         s_.get()));
    }

    /** n x d standard normal draws keyed by (seed, stream, first_index + row). */
    void rng_normal(std::uint64_t stream, std::uint64_t first_index, std::size_t n, std::size_t d,
                    span<double> out) const
    {
        detail::need(out, detail::mul(n, d), "out");
        detail::check(s_.get(), sdflow_rng_normal(s_->c, stream, first_index, n, d, out.data()));
    }
    std::vector<double> rng_normal(std::uint64_t stream, std::uint64_t first_index, std::size_t n,
                                   std::size_t d) const
    {
        std::vector<double> out(detail::mul(n, d));
        rng_normal(stream, first_index, n, d, out);
        return out;
    }
    /** n x d uniform draws on [0, 1). */
    void rng_uniform(std::uint64_t stream, std::uint64_t first_index, std::size_t n, std::size_t d,
                     span<double> out) const
    {
        detail::need(out, detail::mul(n, d), "out");
        detail::check(s_.get(), sdflow_rng_uniform(s_->c, stream, first_index, n, d, out.data()));
    }
    std::vector<double> rng_uniform(std::uint64_t stream, std::uint64_t first_index, std::size_t n,
                                    std::size_t d) const
    {
        std::vector<double> out(detail::mul(n, d));
        rng_uniform(stream, first_index, n, d, out);
        return out;
    }

    /** Two-sample metrics of x (m x d) and y (n x d); m, n from the sizes. */
    estimate energy_distance(std::size_t d, span<const double> x, span<const double> y) const
    {
        estimate e{0, 0};
        detail::check(s_.get(), sdflow_metric_energy(s_->c, detail::rows(x.size(), d, "x"),
                                                     detail::rows(y.size(), d, "y"), d, x.data(), y.data(),
                                                     &e.value, &e.std));
        return e;
    }
    estimate mmd2(std::size_t d, span<const double> x, span<const double> y, double bandwidth = 0) const
    {
        estimate e{0, 0};
        detail::check(s_.get(), sdflow_metric_mmd2(s_->c, detail::rows(x.size(), d, "x"),
                                                   detail::rows(y.size(), d, "y"), d, x.data(), y.data(), bandwidth,
                                                   &e.value, &e.std));
        return e;
    }
    estimate sliced_wasserstein(std::size_t d, span<const double> x, span<const double> y, double p = 2,
                                long directions = 128, std::uint64_t stream = 0) const
    {
        estimate e{0, 0};
        detail::check(s_.get(), sdflow_metric_sliced_wasserstein(
                                    s_->c, detail::rows(x.size(), d, "x"), detail::rows(y.size(), d, "y"), d,
                                    x.data(), y.data(), p, directions, stream, &e.value,
                                    directions >= 2 ? &e.std : nullptr));
        return e;
    }

    /** Exact linear assignment of an n x n cost matrix: the permutation; @p total gets the minimum. */
    std::vector<std::size_t> assignment(std::size_t n, span<const double> cost, double *total = nullptr) const
    {
        detail::need(cost, detail::mul(n, n), "cost");
        std::vector<std::size_t> perm(n);
        detail::check(s_.get(), sdflow_assignment(s_->c, n, cost.data(), perm.data(), total));
        return perm;
    }
    /** Entropic OT plan (n x m) of a cost matrix; @p marginal_err gets the final L1 error. */
    std::vector<double> sinkhorn(std::size_t n, std::size_t m, span<const double> cost, double eps,
                                 long max_iter = 1000, double tol = 1e-9, double *marginal_err = nullptr) const
    {
        detail::need(cost, detail::mul(n, m), "cost");
        std::vector<double> plan(n * m);
        detail::check(s_.get(), sdflow_sinkhorn(s_->c, n, m, cost.data(), eps, max_iter, tol, plan.data(),
                                                marginal_err));
        return plan;
    }
    /** Pairs rows of x0 and x1 (both n x d): x0 row i goes with x1 row pair[i]. */
    std::vector<std::size_t> coupling_pair(sdflow_coupling kind, std::size_t d, span<const double> x0,
                                           span<const double> x1, double eps = 0.05, std::uint64_t stream = 0,
                                           std::uint64_t first_index = 0, double *cost_out = nullptr) const
    {
        std::size_t n = detail::rows(x0.size(), d, "x0");
        detail::need(x1, x0.size(), "x1");
        std::vector<std::size_t> pair(n);
        detail::check(s_.get(), sdflow_coupling_pair(s_->c, kind, n, d, x0.data(), x1.data(), eps, stream,
                                                     first_index, pair.data(), cost_out));
        return pair;
    }
    /** Kernel shard API: merges triple b into (mx, s, v) (n queries, dimension d). */
    void kernel_merge(std::size_t n, std::size_t d, span<double> mx, span<double> s, span<double> v,
                      span<const double> mx_b, span<const double> s_b, span<const double> v_b) const
    {
        std::size_t nd = detail::mul(n, d);
        detail::need(mx, n, "mx");
        detail::need(s, n, "s");
        detail::need(v, nd, "v");
        detail::need(mx_b, n, "mx_b");
        detail::need(s_b, n, "s_b");
        detail::need(v_b, nd, "v_b");
        detail::check(s_.get(), sdflow_kernel_merge(s_->c, n, d, mx.data(), s.data(), v.data(), mx_b.data(),
                                                    s_b.data(), v_b.data()));
    }
    /** Kernel shard API: outputs of merged triples (empty outputs are not computed). */
    inline void kernel_finalize(const process *p, std::size_t n, std::size_t d, std::size_t m_total,
                                span<const double> x, span<const double> t, span<const double> mx,
                                span<const double> s, span<const double> v, span<double> score, span<double> mean,
                                span<double> logp) const;

private:
    std::unique_ptr<detail::ctx_state> s_;
};

namespace detail {
/** Owns one C handle and remembers its ctx (for messages and callbacks). */
template <class T, void (*Free)(T *)> class handle {
public:
    handle() noexcept = default;
    handle(ctx_state *s, T *h) noexcept : s_(s), h_(h) {}
    ~handle() { Free(h_); }
    handle(handle &&o) noexcept : s_(o.s_), h_(o.h_) { o.h_ = nullptr; }
    handle &operator=(handle &&o) noexcept
    {
        if (this != &o) {
            Free(h_);
            s_ = o.s_;
            h_ = o.h_;
            o.h_ = nullptr;
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    T *get() const noexcept { return h_; }
    ctx_state *state() const noexcept { return s_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    T *release() noexcept
    {
        T *h = h_;
        h_ = nullptr;
        return h;
    }

protected:
    ctx_state *s_ = nullptr;
    T *h_ = nullptr;
};
} // namespace detail

/** A noising process (process.h). */
class process : public detail::handle<sdflow_process, sdflow_process_free> {
public:
    using handle::get; /* the C handle; get<T>(key) reads an option */
    process(const ctx &c, sdflow_process_kind kind) : handle(c.state(), nullptr)
    {
        detail::check(s_, sdflow_process_create(c.get(), kind, &h_));
    }
    /** Adopts a C handle of ctx @p c (e.g. from a model file). */
    process(const ctx &c, sdflow_process *adopt) noexcept : handle(c.state(), adopt) {}
    process(detail::ctx_state *s, sdflow_process *adopt) noexcept : handle(s, adopt) {}

    sdflow_process_kind kind() const noexcept { return sdflow_process_get_kind(h_); }
    bool is_interpolant() const noexcept { return sdflow_process_is_interpolant(h_) != 0; }
    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option<sdflow_process>(s_, h_, key, value, sdflow_process_set_int, sdflow_process_set_double,
                                           nullptr);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T, sdflow_process>(s_, h_, key, sdflow_process_get_int, sdflow_process_get_double,
                                                     nullptr);
    }
    /** Valid time range [t_eps, T]. */
    std::pair<double, double> time_range() const
    {
        double lo = 0, hi = 0;
        detail::check(s_, sdflow_process_time_range(h_, &lo, &hi));
        return {lo, hi};
    }
    /** alpha, sigma, f, g at the times t; an empty output is not computed. */
    void coefficients(span<const double> t, span<double> alpha, span<double> sigma, span<double> f = {},
                      span<double> g = {}) const
    {
        std::size_t n = t.size();
        detail::check(s_, sdflow_process_coefficients(h_, n, t.data(), detail::opt(alpha, n, "alpha"),
                                                      detail::opt(sigma, n, "sigma"), detail::opt(f, n, "f"),
                                                      detail::opt(g, n, "g")));
    }
    /** Interpolant coefficients a, b, a', b', gamma, gamma' at t; an empty output is not computed. */
    void interpolant(span<const double> t, span<double> a, span<double> b, span<double> da = {},
                     span<double> db = {}, span<double> gamma = {}, span<double> dgamma = {}) const
    {
        std::size_t n = t.size();
        detail::check(s_, sdflow_process_interpolant(h_, n, t.data(), detail::opt(a, n, "a"), detail::opt(b, n, "b"),
                                                     detail::opt(da, n, "da"), detail::opt(db, n, "db"),
                                                     detail::opt(gamma, n, "gamma"),
                                                     detail::opt(dgamma, n, "dgamma")));
    }
    /** n x d prior draws. */
    std::vector<double> prior_sample(std::uint64_t stream, std::uint64_t first_index, std::size_t n,
                                     std::size_t d) const
    {
        std::vector<double> out(detail::mul(n, d));
        detail::check(s_, sdflow_process_prior_sample(h_, stream, first_index, n, d, out.data()));
        return out;
    }
    /** Prior log-density at the rows of x (n x d). */
    std::vector<double> prior_logpdf(std::size_t d, span<const double> x) const
    {
        std::size_t n = detail::rows(x.size(), d, "x");
        std::vector<double> out(n);
        detail::check(s_, sdflow_process_prior_logpdf(h_, n, d, x.data(), out.data()));
        return out;
    }
    /** x_t = alpha(t) x0 + sigma(t) eps (x0: n x d, t: n); @p eps_out (empty: not written) gets eps. */
    std::vector<double> perturb(std::uint64_t stream, std::uint64_t first_index, std::size_t d,
                                span<const double> x0, span<const double> t, span<double> eps_out = {}) const
    {
        std::size_t n = detail::rows(x0.size(), d, "x0");
        detail::need(t, n, "t");
        std::vector<double> xt(x0.size());
        detail::check(s_, sdflow_process_perturb(h_, stream, first_index, n, d, x0.data(), t.data(), xt.data(),
                                                 detail::opt(eps_out, x0.size(), "eps_out")));
        return xt;
    }
    /** Forward Euler-Maruyama from t0 to t1 in @p steps steps. */
    std::vector<double> simulate(std::uint64_t stream, std::uint64_t first_index, std::size_t d,
                                 span<const double> x_in, double t0, double t1, long steps) const
    {
        std::size_t n = detail::rows(x_in.size(), d, "x_in");
        std::vector<double> out(x_in.size());
        detail::check(s_, sdflow_process_simulate(h_, stream, first_index, n, d, x_in.data(), t0, t1, steps,
                                                  out.data()));
        return out;
    }
    /** Converts outputs @p in of kind @p from at (x, t) into kind @p to. */
    std::vector<double> convert(std::size_t d, span<const double> x, span<const double> t, sdflow_output from,
                                span<const double> in, sdflow_output to) const
    {
        std::size_t n = detail::rows(x.size(), d, "x");
        detail::need(t, n, "t");
        detail::need(in, x.size(), "in");
        std::vector<double> out(x.size());
        detail::check(s_, sdflow_process_convert(h_, n, d, x.data(), t.data(), from, in.data(), to, out.data()));
        return out;
    }
};

namespace detail {
struct callback_state {
    ctx_state *s;
    model_fn fn;
    model_jvp_fn jvp;
};
inline int model_tramp(std::size_t n, std::size_t d, const double *x, const double *t, double *out, void *u) noexcept
{
    callback_state *cb = static_cast<callback_state *>(u);
    try {
        cb->fn(n, d, x, t, out);
        return 0;
    } catch (...) {
        cb->s->stash(std::current_exception());
        return 1;
    }
}
inline int jvp_tramp(std::size_t n, std::size_t d, const double *x, const double *t, const double *v, double *jv,
                     void *u) noexcept
{
    callback_state *cb = static_cast<callback_state *>(u);
    try {
        cb->jvp(n, d, x, t, v, jv);
        return 0;
    } catch (...) {
        cb->s->stash(std::current_exception());
        return 1;
    }
}
} // namespace detail

struct loaded_model;

/** A score model (model.h): gaussian, gmm, kernel, mlp or callback. */
class model : public detail::handle<sdflow_model, sdflow_model_free> {
public:
    using handle::get; /* the C handle; get<T>(key) reads an option */
    model(detail::ctx_state *s, sdflow_model *adopt) noexcept : handle(s, adopt) {}
    model(model &&) noexcept = default;
    model &operator=(model &&o) noexcept
    {
        if (this != &o) {
            handle::operator=(std::move(o)); /* frees the C model before its callback state */
            cb_ = std::move(o.cb_);
        }
        return *this;
    }
    ~model() { sdflow_model_free(release()); }

    /** N(mean, cov): d from mean.size(), cov d x d. */
    static model gaussian(const ctx &c, span<const double> mean, span<const double> cov)
    {
        std::size_t d = mean.size();
        detail::need(cov, detail::mul(d, d), "cov");
        sdflow_model *m = nullptr;
        detail::check(c.state(), sdflow_model_create_gaussian(c.get(), d, mean.data(), cov.data(), &m));
        return model(c.state(), m);
    }
    /** Mixture of k = weights.size() Gaussians in dimension d. */
    static model gmm(const ctx &c, std::size_t d, span<const double> weights, span<const double> means,
                     span<const double> covs)
    {
        std::size_t k = weights.size();
        detail::need(means, detail::mul(k, d), "means");
        detail::need(covs, detail::mul(detail::mul(k, d), d), "covs");
        sdflow_model *m = nullptr;
        detail::check(c.state(), sdflow_model_create_gmm(c.get(), k, d, weights.data(), means.data(), covs.data(), &m));
        return model(c.state(), m);
    }
    /** Kernel model of the rows of y (m x d). */
    static model kernel(const ctx &c, std::size_t d, span<const double> y)
    {
        std::size_t m_rows = detail::rows(y.size(), d, "y");
        sdflow_model *m = nullptr;
        detail::check(c.state(), sdflow_model_create_kernel(c.get(), m_rows, d, y.data(), &m));
        return model(c.state(), m);
    }
    /** MLP score model on R^d (set its architecture options before use). */
    static model mlp(const ctx &c, std::size_t d)
    {
        sdflow_model *m = nullptr;
        detail::check(c.state(), sdflow_model_create_mlp(c.get(), d, &m));
        return model(c.state(), m);
    }
    /** User model producing outputs of kind @p produces; an exception thrown
     *  by @p fn fails the call that evaluated it and is rethrown from there. */
    static model callback(const ctx &c, std::size_t d, sdflow_output produces, model_fn fn)
    {
        std::unique_ptr<detail::callback_state> cb(new detail::callback_state{c.state(), std::move(fn), nullptr});
        sdflow_model *m = nullptr;
        detail::check(c.state(),
                      sdflow_model_create_callback(c.get(), d, produces, detail::model_tramp, cb.get(), &m));
        model r(c.state(), m);
        r.cb_ = std::move(cb);
        return r;
    }
    /** Adds a JVP to a callback model (exact Jacobians and divergences). */
    void set_jvp(model_jvp_fn jvp)
    {
        if (!cb_)
            detail::fail(SDFLOW_E_UNSUPPORTED, "set_jvp: not a callback model made by sdflow::model::callback");
        cb_->jvp = std::move(jvp);
        detail::check(s_, sdflow_model_set_callback_jvp(h_, cb_->jvp ? detail::jvp_tramp : nullptr, cb_.get()));
    }
    static inline loaded_model load(const ctx &c, const std::string &path);
    static inline loaded_model load_buffer(const ctx &c, span<const unsigned char> buf);

    sdflow_model_kind kind() const noexcept { return sdflow_model_get_kind(h_); }
    std::size_t dim() const noexcept { return sdflow_model_dim(h_); }
    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option(s_, h_, key, value, sdflow_model_set_int, sdflow_model_set_double, sdflow_model_set_u64);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T>(s_, h_, key, sdflow_model_get_int, sdflow_model_get_double,
                                     sdflow_model_get_u64);
    }

    /** Output of kind @p kind at x (n x d) and t (n), under process @p p (nullptr: smoothing at sigma = t). */
    void eval(const process *p, span<const double> x, span<const double> t, sdflow_output kind,
              span<double> out)
    {
        std::size_t n = rows_of(x, t);
        detail::need(out, x.size(), "out");
        detail::check(s_, sdflow_model_eval(h_, raw(p), n, x.data(), t.data(), kind, out.data()));
    }
    std::vector<double> eval(const process *p, span<const double> x, span<const double> t, sdflow_output kind)
    {
        std::vector<double> out(x.size());
        eval(p, x, t, kind, out);
        return out;
    }
    std::vector<double> score(const process *p, span<const double> x, span<const double> t)
    {
        std::size_t n = rows_of(x, t);
        std::vector<double> out(x.size());
        detail::check(s_, sdflow_model_score(h_, raw(p), n, x.data(), t.data(), out.data()));
        return out;
    }
    /** Exact log-density of p_t at the rows of x. */
    std::vector<double> logpdf(const process *p, span<const double> x, span<const double> t)
    {
        std::size_t n = rows_of(x, t);
        std::vector<double> out(n);
        detail::check(s_, sdflow_model_logpdf(h_, raw(p), n, x.data(), t.data(), out.data()));
        return out;
    }
    /** Score Jacobians, n x d x d. */
    std::vector<double> jacobian(const process *p, span<const double> x, span<const double> t)
    {
        std::size_t n = rows_of(x, t);
        std::vector<double> out(detail::mul(x.size(), dim()));
        detail::check(s_, sdflow_model_jacobian(h_, raw(p), n, x.data(), t.data(), out.data()));
        return out;
    }
    std::vector<double> divergence(const process *p, span<const double> x, span<const double> t)
    {
        std::size_t n = rows_of(x, t);
        std::vector<double> out(n);
        detail::check(s_, sdflow_model_divergence(h_, raw(p), n, x.data(), t.data(), out.data()));
        return out;
    }
    /** QCSGM asymmetry: {asymmetry, its SE, normalized asymmetry, its SE}. */
    std::array<double, 4> asymmetry(const process *p, span<const double> x, span<const double> t,
                                    std::size_t probes = 0, std::uint64_t stream = 0)
    {
        std::size_t n = rows_of(x, t);
        std::array<double, 4> out{};
        detail::check(s_, sdflow_model_asymmetry(h_, raw(p), n, x.data(), t.data(), probes, stream, out.data()));
        return out;
    }
    /** n exact data samples (gaussian, gmm), n x d. */
    std::vector<double> sample(std::size_t n, std::uint64_t stream = 0, std::uint64_t first_index = 0)
    {
        std::vector<double> out(detail::mul(n, dim()));
        detail::check(s_, sdflow_model_sample(h_, stream, first_index, n, out.data()));
        return out;
    }

    /* MLP parameters */
    std::size_t param_count()
    {
        std::size_t c = 0;
        detail::check(s_, sdflow_model_param_count(h_, &c));
        return c;
    }
    std::size_t param_tensors()
    {
        std::size_t c = 0;
        detail::check(s_, sdflow_model_param_tensors(h_, &c));
        return c;
    }
    struct tensor_info {
        std::string name;
        std::size_t rows, cols;
    };
    tensor_info param_info(std::size_t index)
    {
        const char *nm = nullptr;
        tensor_info ti{"", 0, 0};
        detail::check(s_, sdflow_model_param_info(h_, index, &nm, &ti.rows, &ti.cols));
        ti.name = nm ? nm : "";
        return ti;
    }
    void get_param(const std::string &name, span<double> values)
    {
        detail::check(s_, sdflow_model_get_param(h_, name.c_str(), values.size(), values.data()));
    }
    void set_param(const std::string &name, span<const double> values)
    {
        detail::check(s_, sdflow_model_set_param(h_, name.c_str(), values.size(), values.data()));
    }
    std::vector<double> get_params()
    {
        std::vector<double> th(param_count());
        detail::check(s_, sdflow_model_get_params(h_, th.size(), th.data()));
        return th;
    }
    void set_params(span<const double> theta)
    {
        detail::need(theta, param_count(), "theta");
        detail::check(s_, sdflow_model_set_params(h_, theta.size(), theta.data()));
    }
    /** d/dtheta of sum_i w_i . f(x_i, t_i); @p grad_x (empty: not computed) gets d/dx. */
    std::vector<double> param_grad(const process *p, span<const double> x, span<const double> t,
                                   span<const double> w, span<double> grad_x = {})
    {
        std::size_t n = rows_of(x, t);
        detail::need(w, x.size(), "w");
        std::vector<double> g(param_count());
        detail::check(s_, sdflow_model_param_grad(h_, raw(p), n, x.data(), t.data(), w.data(), g.data(),
                                                  detail::opt(grad_x, x.size(), "grad_x")));
        return g;
    }
    /** d/dtheta of sum_i a_i^T J(x_i, t_i) b_i. */
    std::vector<double> param_grad_jac(const process *p, span<const double> x, span<const double> t,
                                       span<const double> a, span<const double> b)
    {
        std::size_t n = rows_of(x, t);
        detail::need(a, x.size(), "a");
        detail::need(b, x.size(), "b");
        std::vector<double> g(param_count());
        detail::check(s_, sdflow_model_param_grad_jac(h_, raw(p), n, x.data(), t.data(), a.data(), b.data(),
                                                      g.data()));
        return g;
    }
    /** Kernel shard partial sums (mx, s: n; v: n x d). */
    void kernel_partial(const process *p, span<const double> x, span<const double> t, span<double> mx,
                        span<double> s, span<double> v)
    {
        std::size_t n = rows_of(x, t);
        detail::need(mx, n, "mx");
        detail::need(s, n, "s");
        detail::need(v, x.size(), "v");
        detail::check(s_, sdflow_model_kernel_partial(h_, raw(p), n, x.data(), t.data(), mx.data(), s.data(),
                                                      v.data()));
    }

    /** Saves the model (and @p p unless nullptr) as a model file. */
    void save(const std::string &path, const process *p = nullptr)
    {
        detail::check(s_, sdflow_model_save(h_, raw(p), path.c_str()));
    }
    std::vector<unsigned char> save_buffer(const process *p = nullptr)
    {
        std::size_t size = 0;
        detail::check(s_, sdflow_model_save_buffer(h_, raw(p), nullptr, 0, &size));
        std::vector<unsigned char> buf(size);
        detail::check(s_, sdflow_model_save_buffer(h_, raw(p), buf.data(), buf.size(), &size));
        buf.resize(size);
        return buf;
    }

    static const sdflow_process *raw(const process *p) noexcept { return p ? p->get() : nullptr; }

private:
    std::size_t rows_of(span<const double> x, span<const double> t) const
    {
        std::size_t n = detail::rows(x.size(), dim(), "x");
        detail::need(t, n, "t");
        return n;
    }
    std::unique_ptr<detail::callback_state> cb_;
};

/** What a model file holds: the model and, if saved with one, its process. */
struct loaded_model {
    model m;
    std::unique_ptr<process> p; /**< nullptr when the file has no process */
};
inline loaded_model model::load(const ctx &c, const std::string &path)
{
    sdflow_model *m = nullptr;
    sdflow_process *p = nullptr;
    detail::check(c.state(), sdflow_model_load(c.get(), path.c_str(), &m, &p));
    return loaded_model{model(c.state(), m), p ? std::unique_ptr<process>(new process(c, p)) : nullptr};
}
inline loaded_model model::load_buffer(const ctx &c, span<const unsigned char> buf)
{
    sdflow_model *m = nullptr;
    sdflow_process *p = nullptr;
    detail::check(c.state(), sdflow_model_load_buffer(c.get(), buf.data(), buf.size(), &m, &p));
    return loaded_model{model(c.state(), m), p ? std::unique_ptr<process>(new process(c, p)) : nullptr};
}

inline void ctx::kernel_finalize(const process *p, std::size_t n, std::size_t d, std::size_t m_total,
                                 span<const double> x, span<const double> t, span<const double> mx,
                                 span<const double> s, span<const double> v, span<double> score, span<double> mean,
                                 span<double> logp) const
{
    std::size_t nd = detail::mul(n, d);
    detail::need(t, n, "t");
    detail::need(mx, n, "mx");
    detail::need(s, n, "s");
    detail::need(v, nd, "v");
    const double *xp = x.empty() ? nullptr : (detail::need(x, nd, "x"), x.data());
    detail::check(s_.get(), sdflow_kernel_finalize(s_->c, model::raw(p), n, d, m_total, xp, t.data(), mx.data(),
                                                   s.data(), v.data(), detail::opt(score, nd, "score"),
                                                   detail::opt(mean, nd, "mean"), detail::opt(logp, n, "logp")));
}

/** A transport algorithm (sampler.h). Its dimension is that of its bound models. */
class sampler : public detail::handle<sdflow_sampler, sdflow_sampler_free> {
public:
    using handle::get; /* the C handle; get<T>(key) reads an option */
    sampler(const ctx &c, sdflow_sampler_kind kind) : handle(c.state(), nullptr)
    {
        detail::check(s_, sdflow_sampler_create(c.get(), kind, &h_));
    }
    void set_process(const process &p) { detail::check(s_, sdflow_sampler_set_process(h_, p.get())); }
    void set_model(sdflow_role role, model &m)
    {
        detail::check(s_, sdflow_sampler_set_model(h_, role, m.get()));
        d_ = m.dim();
    }
    void unset_model(sdflow_role role) { detail::check(s_, sdflow_sampler_set_model(h_, role, nullptr)); }
    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option(s_, h_, key, value, sdflow_sampler_set_int, sdflow_sampler_set_double,
                           sdflow_sampler_set_u64);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T>(s_, h_, key, sdflow_sampler_get_int, sdflow_sampler_get_double,
                                     sdflow_sampler_get_u64);
    }
    /** Dimension of the bound models (0 before one is bound). */
    std::size_t dim() const noexcept { return d_; }
    /** n samples from the default start, n x d. */
    std::vector<double> run(std::size_t n)
    {
        std::vector<double> out(detail::mul(n, need_dim()));
        detail::check(s_, sdflow_sampler_run(h_, n, nullptr, out.data()));
        return out;
    }
    /** Transports the rows of x_init (n x d). */
    std::vector<double> run(span<const double> x_init)
    {
        std::size_t n = detail::rows(x_init.size(), need_dim(), "x_init");
        std::vector<double> out(x_init.size());
        detail::check(s_, sdflow_sampler_run(h_, n, x_init.data(), out.data()));
        return out;
    }
    /** Transports x_init into out (both n x d; may be the same array). */
    void run(std::size_t n, span<const double> x_init, span<double> out)
    {
        std::size_t nd = detail::mul(n, need_dim());
        detail::need(out, nd, "out");
        const double *xi = x_init.empty() ? nullptr : (detail::need(x_init, nd, "x_init"), x_init.data());
        detail::check(s_, sdflow_sampler_run(h_, n, xi, out.data()));
    }
    /** PF-ODE / interpolant: moves the rows of x_in from t_from to t_to. */
    std::vector<double> transport(double t_from, double t_to, span<const double> x_in)
    {
        std::size_t n = detail::rows(x_in.size(), need_dim(), "x_in");
        std::vector<double> out(x_in.size());
        detail::check(s_, sdflow_sampler_transport(h_, n, t_from, t_to, x_in.data(), out.data()));
        return out;
    }
    void set_time_grid(span<const double> times)
    {
        detail::check(s_, sdflow_sampler_set_time_grid(h_, times.size(), times.data()));
    }
    double stat(sdflow_stat which) const
    {
        double v = 0;
        detail::check(s_, sdflow_sampler_get_stat(h_, which, &v));
        return v;
    }
    /** DSB: @p iterations more IPF iterations. */
    void fit(long iterations) { detail::check(s_, sdflow_sampler_fit(h_, iterations)); }

private:
    std::size_t need_dim() const
    {
        if (d_ == 0)
            detail::fail(SDFLOW_E_STATE, "sampler has no model bound: its dimension is unknown");
        return d_;
    }
    std::size_t d_ = 0;
};

/** A log-density estimator (density.h). */
class density : public detail::handle<sdflow_density, sdflow_density_free> {
public:
    using handle::get; /* the C handle; get<T>(key) reads an option */
    density(const ctx &c, sdflow_density_kind kind) : handle(c.state(), nullptr)
    {
        detail::check(s_, sdflow_density_create(c.get(), kind, &h_));
    }
    void set_process(const process &p) { detail::check(s_, sdflow_density_set_process(h_, p.get())); }
    void set_model(model &m)
    {
        detail::check(s_, sdflow_density_set_model(h_, m.get()));
        d_ = m.dim();
    }
    /** Interpolant base rho_0 (nullptr: N(0, I)). */
    void set_base(model *base) { detail::check(s_, sdflow_density_set_base(h_, base ? base->get() : nullptr)); }
    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option(s_, h_, key, value, sdflow_density_set_int, sdflow_density_set_double,
                           sdflow_density_set_u64);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T>(s_, h_, key, sdflow_density_get_int, sdflow_density_get_double,
                                     sdflow_density_get_u64);
    }
    std::size_t dim() const noexcept { return d_; }
    /** Log-density (nats) of the rows of x; @p std_err (empty: not computed) gets each SE. */
    std::vector<double> logpdf(span<const double> x, span<double> std_err = {})
    {
        std::size_t n = detail::rows(x.size(), d_, "x");
        std::vector<double> out(n);
        detail::check(s_, sdflow_density_logpdf(h_, n, x.data(), out.data(), detail::opt(std_err, n, "std_err")));
        return out;
    }
    /** Bits per dimension of 0..255 data. */
    std::vector<double> bits_per_dim(span<const double> x, span<double> std_err = {})
    {
        std::size_t n = detail::rows(x.size(), d_, "x");
        std::vector<double> out(n);
        detail::check(s_, sdflow_density_bits_per_dim(h_, n, x.data(), out.data(),
                                                      detail::opt(std_err, n, "std_err")));
        return out;
    }

private:
    std::size_t d_ = 0;
};

namespace detail {
struct batch_state {
    ctx_state *s;
    batch_fn fn;
};
inline int batch_tramp(long step, std::uint64_t first_row, std::size_t rows_, std::size_t d, double *x0,
                       void *u) noexcept
{
    batch_state *b = static_cast<batch_state *>(u);
    try {
        b->fn(step, first_row, rows_, d, x0);
        return 0;
    } catch (...) {
        b->s->stash(std::current_exception());
        return 1;
    }
}
} // namespace detail

struct loaded_trainer;

/** Fits an MLP score model (trainer.h). */
class trainer : public detail::handle<sdflow_trainer, sdflow_trainer_free> {
public:
    using handle::get; /* the C handle; get<T>(key) reads an option */
    trainer(const ctx &c, sdflow_loss_kind kind) : handle(c.state(), nullptr)
    {
        detail::check(s_, sdflow_trainer_create(c.get(), kind, &h_));
    }
    trainer(trainer &&) noexcept = default;
    trainer &operator=(trainer &&o) noexcept
    {
        if (this != &o) {
            handle::operator=(std::move(o));
            batch_ = std::move(o.batch_);
            d_ = o.d_;
            m_ = o.m_;
        }
        return *this;
    }
    ~trainer() { sdflow_trainer_free(release()); }
    template <class V> void set(sdflow_option key, V value)
    {
        detail::set_option(s_, h_, key, value, sdflow_trainer_set_int, sdflow_trainer_set_double,
                           sdflow_trainer_set_u64);
    }
    template <class T = double> T get(sdflow_option key) const
    {
        return detail::get_option<T>(s_, h_, key, sdflow_trainer_get_int, sdflow_trainer_get_double,
                                     sdflow_trainer_get_u64);
    }
    void set_model(model &m)
    {
        detail::check(s_, sdflow_trainer_set_model(h_, m.get()));
        d_ = m.dim();
        m_ = m.get();
    }
    void set_process(const process &p) { detail::check(s_, sdflow_trainer_set_process(h_, p.get())); }
    /** Training data: rows of x (n x d, copied). */
    void set_data(span<const double> x)
    {
        std::size_t n = detail::rows(x.size(), need_dim(), "x");
        detail::check(s_, sdflow_trainer_set_data(h_, n, d_, x.data()));
    }
    /** Batch callback instead of data (empty function unbinds). */
    void set_batch_fn(batch_fn fn)
    {
        std::unique_ptr<detail::batch_state> b(fn ? new detail::batch_state{s_, std::move(fn)} : nullptr);
        detail::check(s_, sdflow_trainer_set_batch_fn(h_, need_dim(), b ? detail::batch_tramp : nullptr, b.get()));
        batch_ = std::move(b);
    }
    /** Held-out rows (n x d, copied); an empty view removes them. */
    void set_validation(span<const double> x)
    {
        std::size_t d = need_dim();
        std::size_t n = detail::rows(x.size(), d, "x");
        detail::check(s_, sdflow_trainer_set_validation(h_, n, d, n ? x.data() : nullptr));
    }
    void step() { detail::check(s_, sdflow_trainer_step(h_)); }
    void fit(long steps) { detail::check(s_, sdflow_trainer_fit(h_, steps)); }
    /** Loss of step @p step's batch; @p grad (empty: not computed) gets its gradient. */
    double eval_batch(long step, span<double> grad = {})
    {
        double loss = 0;
        double *g = nullptr;
        if (!grad.empty()) {
            if (!m_)
                detail::fail(SDFLOW_E_STATE, "trainer has no model bound");
            std::size_t pc = 0;
            detail::check(s_, sdflow_model_param_count(m_, &pc));
            detail::need(grad, pc, "grad");
            g = grad.data();
        }
        detail::check(s_, sdflow_trainer_eval_batch(h_, step, &loss, g));
        return loss;
    }
    double validate()
    {
        double loss = 0;
        detail::check(s_, sdflow_trainer_validate(h_, &loss));
        return loss;
    }
    double stat(sdflow_train_stat which) const
    {
        double v = 0;
        detail::check(s_, sdflow_trainer_get_stat(h_, which, &v));
        return v;
    }
    void copy_ema(model &m) { detail::check(s_, sdflow_trainer_copy_ema(h_, m.get())); }

    /** Interpolant loss only: the base at t = 0 is @p base (gaussian or gmm;
     *  not copied: it must outlive the trainer's steps); nullptr restores
     *  N(0, I). Replaces base data. */
    void set_base_model(const model *base)
    {
        if (base && d_ && base->dim() != d_)
            detail::fail(SDFLOW_E_INVALID, "base model has dimension " + std::to_string(base->dim()) +
                                               ", the trainer's model " + std::to_string(d_));
        detail::check(s_, sdflow_trainer_set_base_model(h_, base ? base->get() : nullptr));
    }
    /** Interpolant loss only: the base is a second data array (n x d rows,
     *  copied, finite); an empty view restores N(0, I). Replaces a base model. */
    void set_base_data(span<const double> x)
    {
        std::size_t d = need_dim();
        std::size_t n = detail::rows(x.size(), d, "base data");
        detail::check(s_, sdflow_trainer_set_base_data(h_, n, d, n ? x.data() : nullptr));
    }

    /** Saves a checkpoint (docs/model-files.md, "Trainer checkpoints") to
     *  @p path (via "<path>.tmp" and a rename). */
    void save_checkpoint(const std::string &path)
    {
        detail::check(s_, sdflow_trainer_checkpoint_save(h_, path.c_str()));
    }
    /** The checkpoint as bytes. */
    std::vector<unsigned char> save_checkpoint()
    {
        std::size_t size = 0;
        detail::check(s_, sdflow_trainer_checkpoint_save_buffer(h_, nullptr, 0, &size));
        std::vector<unsigned char> buf(size);
        detail::check(s_, sdflow_trainer_checkpoint_save_buffer(h_, buf.data(), buf.size(), &size));
        buf.resize(size);
        return buf;
    }
    /** Restores a checkpoint into this trainer, configured like the saver;
     *  the bound model's weights are replaced. Mismatch: SDFLOW_E_INVALID
     *  naming the first difference; malformed: SDFLOW_E_FORMAT; on failure
     *  nothing changes. */
    void restore_checkpoint(const std::string &path)
    {
        detail::check(s_, sdflow_trainer_checkpoint_restore(h_, path.c_str()));
    }
    void restore_checkpoint(span<const unsigned char> buf)
    {
        detail::check(s_, sdflow_trainer_checkpoint_restore_buffer(h_, buf.data(), buf.size()));
    }
    /** Rebuilds trainer, model and process from a checkpoint alone (bind the
     *  data before stepping); the ctx seed must equal the saved one. */
    static inline loaded_trainer load_checkpoint(const ctx &c, const std::string &path);
    static inline loaded_trainer load_checkpoint(const ctx &c, span<const unsigned char> buf);

private:
    trainer(detail::ctx_state *s, sdflow_trainer *adopt, std::size_t d, sdflow_model *m) noexcept
        : handle(s, adopt), d_(d), m_(m)
    {
    }
    static inline loaded_trainer adopt(const ctx &c, sdflow_trainer *t, sdflow_model *m, sdflow_process *p);
    std::size_t need_dim() const
    {
        if (d_ == 0)
            detail::fail(SDFLOW_E_STATE, "trainer has no model bound: its dimension is unknown");
        return d_;
    }
    std::unique_ptr<detail::batch_state> batch_;
    std::size_t d_ = 0;
    sdflow_model *m_ = nullptr;
};

/** What a checkpoint rebuilds: the model, the process (nullptr when the file
 *  has none) and the trainer bound to them. Declared in this order so that
 *  the trainer is destroyed first: it points at the model and process. */
struct loaded_trainer {
    model m;
    std::unique_ptr<process> p;
    trainer t;
};
inline loaded_trainer trainer::adopt(const ctx &c, sdflow_trainer *t, sdflow_model *m, sdflow_process *p)
{
    /* Nothing below throws before every handle has an owner. */
    model mm(c.state(), m);
    std::unique_ptr<process> pp;
    try {
        if (p)
            pp.reset(new process(c, p));
    } catch (...) {
        sdflow_trainer_free(t);
        sdflow_process_free(p);
        throw;
    }
    std::size_t d = mm.dim();
    return loaded_trainer{std::move(mm), std::move(pp), trainer(c.state(), t, d, m)};
}
inline loaded_trainer trainer::load_checkpoint(const ctx &c, const std::string &path)
{
    sdflow_trainer *t = nullptr;
    sdflow_model *m = nullptr;
    sdflow_process *p = nullptr;
    detail::check(c.state(), sdflow_trainer_checkpoint_load(c.get(), path.c_str(), &t, &m, &p));
    return adopt(c, t, m, p);
}
inline loaded_trainer trainer::load_checkpoint(const ctx &c, span<const unsigned char> buf)
{
    sdflow_trainer *t = nullptr;
    sdflow_model *m = nullptr;
    sdflow_process *p = nullptr;
    detail::check(c.state(), sdflow_trainer_checkpoint_load_buffer(c.get(), buf.data(), buf.size(), &t, &m, &p));
    return adopt(c, t, m, p);
}

} // namespace sdflow

#endif
