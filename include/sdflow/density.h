/* SPDX-License-Identifier: MIT */
/**
 * @file density.h
 * @brief Log-density estimators: PF-ODE (exact divergence, Hutchinson) and Li-Yan.
 *
 * Thread safety: not safe on the same estimator concurrently; distinct
 * estimators may run in parallel, even when they share a ctx.
 */
#ifndef SDFLOW_DENSITY_H
#define SDFLOW_DENSITY_H

#include "model.h"
#include "sampler.h" /* sdflow_solver: the PF-ODE estimators integrate with the samplers' ODE solvers */

SDFLOW_BEGIN_DECLS

typedef struct sdflow_density sdflow_density;

/** Hutchinson probe distributions (SDFLOW_OPT_PROBE_KIND). */
typedef enum sdflow_probe {
    SDFLOW_PROBE_RADEMACHER = 0,
    SDFLOW_PROBE_GAUSSIAN = 1
} sdflow_probe;

/** Divergence methods of exact estimators (SDFLOW_OPT_DIVERGENCE). */
typedef enum sdflow_divergence {
    SDFLOW_DIV_AUTO = 0,        /**< analytic Jacobian if the model has one, else JVP callback, else differences */
    SDFLOW_DIV_ANALYTIC = 1,
    SDFLOW_DIV_FINITE_DIFF = 2  /**< central differences, step h = cbrt(eps) (1 + |x_i|); error O(h^2) */
} sdflow_divergence;

typedef enum sdflow_density_kind {
    SDFLOW_DENSITY_PF_ODE_EXACT = 1,      /**< PF-ODE with the exact divergence */
    SDFLOW_DENSITY_PF_ODE_HUTCHINSON = 2, /**< PF-ODE with Hutchinson trace probes */
    SDFLOW_DENSITY_LIYAN = 3              /**< score-based formula of Li & Yan (2024) */
} sdflow_density_kind;

SDFLOW_API sdflow_status sdflow_density_create(sdflow_ctx *ctx, sdflow_density_kind kind, sdflow_density **out);
SDFLOW_API void sdflow_density_free(sdflow_density *e);
/** "pf_ode_exact", "pf_ode_hutchinson", "liyan"; NULL when unknown. */
SDFLOW_API const char *sdflow_density_kind_name(sdflow_density_kind kind);
SDFLOW_API sdflow_status sdflow_density_kind_from_name(const char *name, sdflow_density_kind *out);

/** Bind the process and the model (not copied; they must outlive the
 *  estimator's calls). Objects of another context: SDFLOW_E_INVALID.
 *  With an interpolant process (t = 0 base, t = 1 data) the PF-ODE kinds
 *  integrate the model's velocity (SDFLOW_OUT_VELOCITY) from
 *  t = SDFLOW_OPT_INTERP_TIME (default 1) down to 0 with the exact or
 *  Hutchinson divergence: log rho_t(x) = log rho_0(x(0)) - int_0^t div v;
 *  rho_0 is the base of sdflow_density_set_base(). A velocity-native model
 *  runs to t = 0 exactly; a score-like model (e.g. a gmm data model, whose
 *  velocity through the process is undefined at t = 0) needs
 *  SDFLOW_OPT_T_MIN > 0, where rho_{t_min} is taken as the base (an
 *  O(t_min) error). */
SDFLOW_API sdflow_status sdflow_density_set_process(sdflow_density *e, const sdflow_process *p);
SDFLOW_API sdflow_status sdflow_density_set_model(sdflow_density *e, sdflow_model *m);
/** Interpolant likelihood only: the base rho_0 at t = 0, a model with a
 *  closed-form data log-density (gaussian, gmm; not copied). NULL (default):
 *  N(0, I). */
SDFLOW_API sdflow_status sdflow_density_set_base(sdflow_density *e, sdflow_model *base);
SDFLOW_API sdflow_status sdflow_density_set_int(sdflow_density *e, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_density_set_double(sdflow_density *e, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_density_set_u64(sdflow_density *e, sdflow_option key, uint64_t value);
SDFLOW_API sdflow_status sdflow_density_get_int(const sdflow_density *e, sdflow_option key, long *value);
SDFLOW_API sdflow_status sdflow_density_get_double(const sdflow_density *e, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_density_get_u64(const sdflow_density *e, sdflow_option key, uint64_t *value);

/** Log-density in nats at n points (n x d). @p std_err (may be NULL) receives
 *  the standard error of each estimate (0 for exact estimators). */
SDFLOW_API sdflow_status sdflow_density_logpdf(sdflow_density *e, size_t n, const double *x,
                                               double *logp, double *std_err);
/** Bits per dimension -log p/(d ln 2) - log2(a) + 8 for data on a 0..255
 *  grid mapped to the model as x = a ((k + u)/256 - 1/2), a =
 *  SDFLOW_OPT_DATA_SCALE (a = 2 gives [-1, 1]); u is uniform on [0, 1) per
 *  coordinate when SDFLOW_OPT_DEQUANTIZE is set, else 1/2. @p x holds the
 *  integer levels k as doubles. */
SDFLOW_API sdflow_status sdflow_density_bits_per_dim(sdflow_density *e, size_t n, const double *x,
                                                     double *bpd, double *std_err);

SDFLOW_END_DECLS
#endif
