/* SPDX-License-Identifier: MIT */
/**
 * @file process.h
 * @brief Forward noising processes x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I)
 *        and stochastic-interpolant schedules.
 *
 * Every process is a linear SDE dx = f(t) x dt + g(t) dW with
 * f = d log(alpha)/dt and g^2 = d(sigma^2)/dt - 2 f sigma^2. The process also
 * owns the conversions between model parameterizations (score, eps, x0,
 * velocity), so there is exactly one place where they are computed.
 *
 * **Time convention of interpolant kinds** (SDFLOW_PROCESS_INTERP_*), one
 * rule everywhere in the API: t = 0 is the base (x0, e.g. N(0, I)) and t = 1
 * is the data (x1) -- the opposite of the diffusion kinds, where t = 0 is the
 * data and t = T the noise. An interpolant process is
 * x_t = a(t) x0 + b(t) x1 + gamma(t) z, z ~ N(0, I) independent, with
 * a(0) = b(1) = 1, a(1) = b(0) = 0 and gamma(t) = sqrt(eps t (1 - t))
 * (eps = SDFLOW_PROC_INTERP_EPS, default 0: the deterministic interpolant);
 * sdflow_process_interpolant() gives a, b, gamma and their derivatives. Its
 * valid time range is the closed interval [0, 1] (t_eps = 0, T = 1). The
 * diffusion-style queries see it as the process of a standard Gaussian base:
 * alpha(t) = b(t) (the data coefficient), sigma(t) = sqrt(a^2 + gamma^2),
 * f = b'/b and g = sqrt(2 f sigma^2 - d sigma^2/dt), the noise of the
 * equivalent noising SDE that runs from t = 1 down to t = 0; with these the
 * SDFLOW_OUT_VELOCITY conversion of a score is exactly the interpolant
 * velocity v = (b'/b) x + sigma (sigma b'/b - sigma') s (algorithms.md §8). f
 * and g are infinite at t = 0 (b(0) = 0), so score <-> velocity conversions
 * are undefined there (SDFLOW_E_NUMERIC); velocity models need none. The prior
 * of an interpolant process is its base N(0, I) at t = 0. Diffusion samplers
 * and the Li-Yan estimator refuse interpolant processes; use
 * SDFLOW_SAMPLER_INTERPOLANT and the PF-ODE density kinds (docs/interpolants.md).
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
    SDFLOW_PROCESS_VE = 4,         /**< variance exploding, geometric sigma(t) */
    SDFLOW_PROCESS_INTERP_LINEAR = 5, /**< interpolant a = 1 - t, b = t (t = 0 base, t = 1 data) */
    SDFLOW_PROCESS_INTERP_TRIG = 6    /**< interpolant a = cos(pi t/2), b = sin(pi t/2): the default interpolant */
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
/** "vp", "vp_cosine", "subvp", "ve", "interp_linear", "interp_trig"; NULL when unknown. */
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
 *  (t = 0 is allowed here: alpha = 1, sigma = 0 or sigma_min for VE).
 *  Interpolant kinds: see the file comment; f or g requested at t = 0 is
 *  SDFLOW_E_INVALID (they are infinite there). */
SDFLOW_API sdflow_status sdflow_process_coefficients(const sdflow_process *p, size_t n, const double *t,
                                                     double *alpha, double *sigma, double *f, double *g);

/** Interpolant coefficients at n times t in [0, 1] of an interpolant kind:
 *  x_t = a x0 + b x1 + gamma z and the time derivatives a', b', gamma'
 *  (d/dt I = a' x0 + b' x1 + gamma' z). Any output may be NULL. gamma' is
 *  infinite at t = 0 and t = 1 when eps > 0 (gamma = sqrt(eps t (1 - t))):
 *  there @p dgamma receives 0 -- the loss and the samplers never multiply it
 *  by a nonzero z at those ends (gamma = 0), so the documented value is the
 *  one that keeps d/dt I finite. SDFLOW_E_INVALID for a diffusion kind. */
SDFLOW_API sdflow_status sdflow_process_interpolant(const sdflow_process *p, size_t n, const double *t, double *a,
                                                    double *b, double *da, double *db, double *gamma,
                                                    double *dgamma);
/** 1 for the interpolant kinds (t = 0 base, t = 1 data), 0 otherwise (NULL: 0). */
SDFLOW_API int sdflow_process_is_interpolant(const sdflow_process *p);

/** n x d draws from the prior N(0, s^2 I) at time T (s = 1, VE: sigma(T);
 *  interpolant kinds: the base N(0, I) at t = 0).
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
 *  @p steps equal steps: x_out may alias x_in. Noise keyed like perturb.
 *  SDFLOW_E_UNSUPPORTED for interpolant kinds (their noising runs toward t = 0). */
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
