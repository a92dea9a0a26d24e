/* SPDX-License-Identifier: MIT */
/**
 * @file process.h
 * @brief Forward noising processes: x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I).
 *
 * Every process is a linear SDE dx = f(t) x dt + g(t) dW with
 * f = d log(alpha)/dt and g^2 = d(sigma^2)/dt - 2 f sigma^2. The process also
 * owns the conversions between model parameterizations (score, eps, x0,
 * velocity), so there is exactly one place where they are computed.
 *
 * Thread safety: a process is read-only after its options are set; one
 * process may be shared by objects used concurrently, but not while its
 * options change.
 */
#ifndef SDFLOW_PROCESS_H
#define SDFLOW_PROCESS_H

#include "ctx.h"

SDFLOW_BEGIN_DECLS

typedef struct sdflow_process sdflow_process;

typedef enum sdflow_process_kind {
    SDFLOW_PROCESS_VP = 1,         /**< variance preserving, linear beta(t) */
    SDFLOW_PROCESS_VP_COSINE = 2,  /**< variance preserving, cosine alpha(t) (Nichol & Dhariwal) */
    SDFLOW_PROCESS_SUBVP = 3,      /**< sub-VP: alpha as VP, sigma = 1 - exp(-B(t)) */
    SDFLOW_PROCESS_VE = 4          /**< variance exploding, geometric sigma(t) */
} sdflow_process_kind;

/** Model output parameterizations. */
typedef enum sdflow_output {
    SDFLOW_OUT_SCORE = 0,     /**< grad_x log p_t(x) */
    SDFLOW_OUT_EPS = 1,       /**< E[eps | x_t] = -sigma score */
    SDFLOW_OUT_X0 = 2,        /**< E[x_0 | x_t] = (x + sigma^2 score)/alpha */
    SDFLOW_OUT_VELOCITY = 3,  /**< probability-flow drift f x - g^2/2 score */
    SDFLOW_OUT_V = 4          /**< v-prediction alpha eps - sigma x0 (Salimans & Ho) */
} sdflow_output;

SDFLOW_API sdflow_status sdflow_process_create(sdflow_ctx *ctx, sdflow_process_kind kind, sdflow_process **out);
SDFLOW_API void sdflow_process_free(sdflow_process *p);
SDFLOW_API sdflow_process_kind sdflow_process_get_kind(const sdflow_process *p);
/** "vp", "vp_cosine", "subvp", "ve"; NULL when unknown. */
SDFLOW_API const char *sdflow_process_kind_name(sdflow_process_kind kind);
SDFLOW_API sdflow_status sdflow_process_kind_from_name(const char *name, sdflow_process_kind *out);

/** SDFLOW_PROC_* options. Changing an option is checked against the others
 *  (e.g. sigma_min < sigma_max) and leaves the process unchanged on failure. */
SDFLOW_API sdflow_status sdflow_process_set_double(sdflow_process *p, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_process_set_int(sdflow_process *p, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_process_get_double(const sdflow_process *p, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_process_get_int(const sdflow_process *p, sdflow_option key, long *value);

/** Valid time range [t_eps, T]; either output may be NULL. */
SDFLOW_API sdflow_status sdflow_process_time_range(const sdflow_process *p, double *t_eps, double *t_max);

/** Coefficients at n times: alpha(t), sigma(t), drift coefficient f(t) and
 *  diffusion g(t). Any output may be NULL. Times must lie in [0, T]
 *  (t = 0 is allowed here: alpha = 1, sigma = 0 or sigma_min for VE). */
SDFLOW_API sdflow_status sdflow_process_coefficients(const sdflow_process *p, size_t n, const double *t,
                                                     double *alpha, double *sigma, double *f, double *g);

/** n x d draws from the prior N(0, s^2 I) at time T (s = 1, VE: sigma(T)).
 *  Row i depends on (seed, stream, first_index + i) only. */
SDFLOW_API sdflow_status sdflow_process_prior_sample(const sdflow_process *p, uint64_t stream,
                                                     uint64_t first_index, size_t n, size_t d, double *out);
/** Log-density of the prior at n points. */
SDFLOW_API sdflow_status sdflow_process_prior_logpdf(const sdflow_process *p, size_t n, size_t d,
                                                     const double *x, double *logp);

/** Forward marginal sample x_t = alpha(t) x0 + sigma(t) eps with eps keyed by
 *  (seed, stream, first_index + i); @p eps_out (may be NULL) receives eps.
 *  @p t holds n times in [t_eps, T]. */
SDFLOW_API sdflow_status sdflow_process_perturb(const sdflow_process *p, uint64_t stream, uint64_t first_index,
                                                size_t n, size_t d, const double *x0, const double *t,
                                                double *xt, double *eps_out);

/** Forward Euler-Maruyama simulation of the SDE from t0 to t1 (t0 < t1) in
 *  @p steps equal steps: x_out may alias x_in. Noise keyed like perturb. */
SDFLOW_API sdflow_status sdflow_process_simulate(const sdflow_process *p, uint64_t stream, uint64_t first_index,
                                                 size_t n, size_t d, const double *x_in, double t0, double t1,
                                                 long steps, double *x_out);

/** Converts n x d model outputs @p in of kind @p from at points x, times t
 *  (one per row, in [t_eps, T]) into kind @p to. @p out may alias @p in.
 *  Fails with SDFLOW_E_NUMERIC where a conversion divides by ~0
 *  (x0 at alpha = 0). */
SDFLOW_API sdflow_status sdflow_process_convert(const sdflow_process *p, size_t n, size_t d,
                                                const double *x, const double *t,
                                                sdflow_output from, const double *in,
                                                sdflow_output to, double *out);

SDFLOW_END_DECLS
#endif
