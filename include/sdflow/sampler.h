/* SPDX-License-Identifier: MIT */
/**
 * @file sampler.h
 * @brief Transport algorithms: reverse-time SDE, predictor-corrector,
 *        probability-flow ODE, few-step solvers, Score Difference flow,
 *        stochastic-interpolant flows and the diffusion Schrodinger bridge
 *        (DSB, fitted by IPF with sdflow_sampler_fit()).
 *
 * A sampler is bound to a process and to one or more models (by role), its
 * options are set with enum keys, then sdflow_sampler_run() transports n
 * samples. Sample i of a run uses random numbers keyed by
 * (seed, stream, SDFLOW_OPT_FIRST_INDEX + i, step) only, so results are
 * bit-identical for any split of a job into runs and any thread count.
 *
 * Thread safety: not safe on the same sampler concurrently; distinct
 * samplers may run in parallel, even when they share a ctx, process or
 * model (kernel models included: model.h).
 */
#ifndef SDFLOW_SAMPLER_H
#define SDFLOW_SAMPLER_H

#include "model.h"

SDFLOW_BEGIN_DECLS

typedef struct sdflow_sampler sdflow_sampler;

/** ODE solvers (SDFLOW_OPT_SOLVER). */
typedef enum sdflow_solver {
    SDFLOW_SOLVER_EULER = 0,
    SDFLOW_SOLVER_HEUN = 1,
    SDFLOW_SOLVER_RK4 = 2,
    SDFLOW_SOLVER_DOPRI5 = 3    /**< adaptive Dormand-Prince 5(4), step size per sample */
} sdflow_solver;

/** Time grids of reverse-time samplers (SDFLOW_OPT_TIME_GRID). */
typedef enum sdflow_time_grid {
    SDFLOW_GRID_UNIFORM = 0,    /**< t_k = T - k (T - t_min)/N */
    SDFLOW_GRID_QUADRATIC = 1,  /**< steps shrink quadratically towards t_min */
    SDFLOW_GRID_LOGSNR = 2,     /**< uniform in log-SNR */
    SDFLOW_GRID_KARRAS = 3,     /**< Karras et al. 2022: uniform in (sigma/alpha)^(1/rho), t = sigma^-1 of the process */
    SDFLOW_GRID_CUSTOM = 4      /**< the times given to sdflow_sampler_set_time_grid() */
} sdflow_time_grid;

/** SD-flow start distributions (SDFLOW_OPT_START), used when x_init is NULL. */
typedef enum sdflow_start {
    SDFLOW_START_MATCHED = 0,   /**< N(mean, diag(var)) of the kernel target's samples (other targets: N(0, I)) */
    SDFLOW_START_NORMAL = 1,    /**< N(0, I) */
    SDFLOW_START_MODEL = 2      /**< exact samples of the model bound as SDFLOW_ROLE_START (sdflow_model_sample) */
} sdflow_start;

/** DSB step-size schedules (SDFLOW_OPT_DSB_SCHEDULE), as the reference code's
 *  get_gammas: a ramp of N/2 steps from gamma_min to gamma_max and its mirror. */
typedef enum sdflow_dsb_schedule {
    SDFLOW_DSB_CONSTANT = 0,    /**< gamma_k = gamma_max */
    SDFLOW_DSB_SYMMETRIC_LINEAR = 1,    /**< linspace(gamma_min, gamma_max, N/2), then reversed (N even) */
    SDFLOW_DSB_SYMMETRIC_GEOMETRIC = 2  /**< geomspace(gamma_min, gamma_max, N/2), then reversed (N even) */
} sdflow_dsb_schedule;

/** DSB reference drifts (SDFLOW_OPT_DSB_REFERENCE). */
typedef enum sdflow_dsb_reference {
    SDFLOW_DSB_OU = 0,          /**< f(x) = -(x - prior_mean)/prior_var: Langevin toward the Gaussian prior */
    SDFLOW_DSB_BROWNIAN = 1     /**< f = 0 */
} sdflow_dsb_reference;

/** Time label of the transition between steps k and k + 1 given to DSB
 *  networks (SDFLOW_OPT_DSB_TIME_INPUT); both are > 0. */
typedef enum sdflow_dsb_time {
    SDFLOW_DSB_TIME_CUMULATIVE = 0, /**< t_{k+1} = gamma_1 + ... + gamma_{k+1} */
    SDFLOW_DSB_TIME_INDEX = 1       /**< k + 1 */
} sdflow_dsb_time;

/** Direction of a DSB run (SDFLOW_OPT_DSB_DIRECTION). */
typedef enum sdflow_dsb_direction {
    SDFLOW_DSB_PRIOR_TO_DATA = 0, /**< backward chain from the k = N end (generation) */
    SDFLOW_DSB_DATA_TO_PRIOR = 1  /**< forward chain from the k = 0 end */
} sdflow_dsb_direction;

typedef enum sdflow_sampler_kind {
    SDFLOW_SAMPLER_REVERSE_SDE = 1, /**< Euler-Maruyama on the reverse-time SDE */
    SDFLOW_SAMPLER_PC = 2,          /**< Euler-Maruyama predictor + Langevin corrector */
    SDFLOW_SAMPLER_PF_ODE = 3,      /**< probability-flow ODE (Euler, Heun, RK4, DOPRI5) */
    SDFLOW_SAMPLER_SDFLOW = 4,      /**< Score Difference flow (Weber 2023) */
    SDFLOW_SAMPLER_DDIM = 5,        /**< DDIM (Song et al. 2021); SDFLOW_OPT_ETA = 0 deterministic, > 0 stochastic */
    SDFLOW_SAMPLER_DPMPP_2M = 6,    /**< DPM-Solver++ 2M, data-prediction multistep (Lu et al. 2022), order 2 */
    SDFLOW_SAMPLER_DPMPP_3M = 7,    /**< DPM-Solver++ 3M, order 3 */
    SDFLOW_SAMPLER_DPMPP_2M_SDE = 8,/**< DPM-Solver++ 2M SDE (SDFLOW_OPT_ETA, default 1) */
    SDFLOW_SAMPLER_DPMPP_3M_SDE = 9,/**< DPM-Solver++ 3M SDE (SDFLOW_OPT_ETA, default 1) */
    SDFLOW_SAMPLER_EDM_HEUN = 10,   /**< EDM Heun (Karras et al. 2022, Alg. 2) with optional churn */
    SDFLOW_SAMPLER_DSB = 11,        /**< diffusion Schrodinger bridge (De Bortoli et al. 2021), docs/dsb.md */
    SDFLOW_SAMPLER_INTERPOLANT = 12 /**< stochastic-interpolant flow (Albergo & Vanden-Eijnden 2023): integrates the
                                         velocity of SDFLOW_ROLE_VELOCITY from t = 0 (base) to t = 1 (data), or back
                                         with sdflow_sampler_transport(); the SDE variant with
                                         SDFLOW_OPT_INTERP_DIFFUSION > 0. Needs an interpolant process. */
} sdflow_sampler_kind;

/** Roles of models bound to a sampler. */
typedef enum sdflow_role {
    SDFLOW_ROLE_SCORE = 0,   /**< the score model of diffusion samplers */
    SDFLOW_ROLE_TARGET = 1,  /**< SD flow: target distribution */
    SDFLOW_ROLE_SOURCE = 2,  /**< SD flow: source/current distribution (NULL: the particles themselves) */
    SDFLOW_ROLE_START = 3,   /**< SD flow: a gaussian or gmm model whose samples start the flow (SDFLOW_START_MODEL) */
    SDFLOW_ROLE_FORWARD = 4, /**< DSB: network of the forward transition means F_k (NULL: exact affine maps) */
    SDFLOW_ROLE_BACKWARD = 5,/**< DSB: network of the backward transition means B_k (NULL: exact affine maps) */
    SDFLOW_ROLE_DATA = 6,    /**< DSB: the k = 0 end (gaussian or gmm: exact samples; kernel: its rows) */
    SDFLOW_ROLE_PRIOR = 7,   /**< DSB: the k = N end (NULL: the Gaussian prior N(prior_mean, prior_var I)) */
    SDFLOW_ROLE_VELOCITY = 8,/**< interpolant: the velocity field v(t, x), evaluated as SDFLOW_OUT_VELOCITY (a velocity
                                  model as is; a score-like model through the process, N(0, I) base only) */
    SDFLOW_ROLE_DENOISER = 9,/**< interpolant SDE: a model whose native output is eta(t, x) = E[z | x_t = x], the latent
                                  noise of gamma(t) z; score s = -eta / gamma */
    SDFLOW_ROLE_BASE = 10    /**< interpolant: the base at t = 0, a model with sdflow_model_sample (gaussian, gmm) whose
                                  draws start a run when x_init is NULL (unbound: N(0, I), the process prior) */
} sdflow_role;

/** Statistics of the last run. */
typedef enum sdflow_stat {
    SDFLOW_STAT_NFE = 0,                /**< model evaluations (rows x calls / n) per sample, summed over samples */
    SDFLOW_STAT_STEPS_ACCEPTED = 1,     /**< accepted steps, summed over samples */
    SDFLOW_STAT_STEPS_REJECTED = 2,     /**< rejected steps, summed over samples */
    SDFLOW_STAT_MEMORIZATION_RATIO = 3, /**< SD flow: mean NN distance of the outputs to the targets / the same for
                                             fresh data (SDFLOW_STAT_FRESH_NN): < 1 toward copies, > 1 still smoothed */
    SDFLOW_STAT_SIGMA_MIN = 4,          /**< SD flow: smallest smoothing used (the last level's sigma) */
    SDFLOW_STAT_SIGMA_MAX = 5,          /**< SD flow: largest smoothing used (the first level's sigma) */
    SDFLOW_STAT_H_NN = 6,               /**< SD flow: median nearest-neighbour distance h_NN within the targets */
    SDFLOW_STAT_FRESH_NN = 7,           /**< SD flow: mean leave-one-out NN distance of the targets (fresh-data scale) */
    SDFLOW_STAT_LEVELS = 8,             /**< SD flow: sigma levels run, including a noise-free finishing level */
    SDFLOW_STAT_SIGMA_RATIO = 9,        /**< SD flow: sigma_{l+1} / sigma_l of the geometric schedule (level l runs at
                                             SIGMA_MAX x SIGMA_RATIO^l until SIGMA_MIN) */
    SDFLOW_STAT_HALF_BRIDGES = 10,      /**< DSB: half-bridges fitted so far (2 per IPF iteration; backward first) */
    SDFLOW_STAT_FIT_MSE = 11,           /**< DSB: mean squared regression residual per coordinate of the last
                                             half-bridge fitted */
    SDFLOW_STAT_KINETIC_ENERGY = 12     /**< interpolant (SDFLOW_OPT_INTERP_KINETIC): mean over samples of the path's
                                             int |v(t, x(t))|^2 dt between the run's times */
} sdflow_stat;

SDFLOW_API sdflow_status sdflow_sampler_create(sdflow_ctx *ctx, sdflow_sampler_kind kind, sdflow_sampler **out);
SDFLOW_API void sdflow_sampler_free(sdflow_sampler *s);
/** "reverse_sde", "pc", "pf_ode", "sdflow"; NULL when unknown. */
SDFLOW_API const char *sdflow_sampler_kind_name(sdflow_sampler_kind kind);
SDFLOW_API sdflow_status sdflow_sampler_kind_from_name(const char *name, sdflow_sampler_kind *out);

/** Binds the noising process (not copied; must outlive the sampler's runs).
 *  A process or model of another context is refused with SDFLOW_E_INVALID. */
SDFLOW_API sdflow_status sdflow_sampler_set_process(sdflow_sampler *s, const sdflow_process *p);
/** Binds a model to a role (not copied; must outlive the sampler's runs). NULL unbinds. */
SDFLOW_API sdflow_status sdflow_sampler_set_model(sdflow_sampler *s, sdflow_role role, sdflow_model *m);

SDFLOW_API sdflow_status sdflow_sampler_set_int(sdflow_sampler *s, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_sampler_set_double(sdflow_sampler *s, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_sampler_set_u64(sdflow_sampler *s, sdflow_option key, uint64_t value);
SDFLOW_API sdflow_status sdflow_sampler_get_int(const sdflow_sampler *s, sdflow_option key, long *value);
SDFLOW_API sdflow_status sdflow_sampler_get_double(const sdflow_sampler *s, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_sampler_get_u64(const sdflow_sampler *s, sdflow_option key, uint64_t *value);

/** Transports n samples (n x d). @p x_init == NULL draws the start from the
 *  prior (diffusion samplers), from SDFLOW_OPT_START (SD flow) or from the
 *  base (interpolant: SDFLOW_ROLE_BASE, else N(0, I)); an interpolant run
 *  given x_init (e.g. rows of a second data set) starts from those. @p x_out may
 *  alias @p x_init. On failure or cancellation x_out holds the state reached
 *  at the last completed step (for SDFLOW_E_INVALID it is untouched). */
SDFLOW_API sdflow_status sdflow_sampler_run(sdflow_sampler *s, size_t n, const double *x_init, double *x_out);
/** PF-ODE and interpolant only: transports n samples from time @p t_from to
 *  @p t_to (either direction; PF-ODE encoding is t_from < t_to, interpolant
 *  encoding -- data to base -- is t_from > t_to). @p x_out may alias @p x_in. */
SDFLOW_API sdflow_status sdflow_sampler_transport(sdflow_sampler *s, size_t n, double t_from, double t_to,
                                                  const double *x_in, double *x_out);
/** Sets a custom time grid: @p n >= 2 times, strictly decreasing (or
 * strictly increasing: used reversed), finite, within the process range
 * [t_eps, T] at run time. Selects SDFLOW_GRID_CUSTOM and sets
 * SDFLOW_OPT_STEPS to n - 1; t_start and t_min become the grid's ends.
 * The times are copied. Duplicate or unordered times are SDFLOW_E_INVALID. */
SDFLOW_API sdflow_status sdflow_sampler_set_time_grid(sdflow_sampler *s, size_t n, const double *times);

/** A statistic of the last run (DSB: SDFLOW_STAT_HALF_BRIDGES and
 *  SDFLOW_STAT_FIT_MSE describe the fit, not the run). */
SDFLOW_API sdflow_status sdflow_sampler_get_stat(const sdflow_sampler *s, sdflow_stat stat, double *value);

/** DSB only: runs @p iterations more IPF iterations (each a backward then a
 *  forward half-bridge, docs/dsb.md), continuing from the half-bridges
 *  already fitted. With SDFLOW_ROLE_FORWARD and SDFLOW_ROLE_BACKWARD
 *  unbound the means are exact per-step affine maps fitted by least
 *  squares over SDFLOW_OPT_DSB_NPAR chains (memory O(N d^2 + batch d), no
 *  trajectory cache). With MLP models bound to both roles they are trained
 *  in place: a trajectory cache of SDFLOW_OPT_DSB_NPAR chains (2 N npar d
 *  doubles, refilled every SDFLOW_OPT_DSB_CACHE_REFRESH steps) and
 *  SDFLOW_OPT_DSB_TRAIN_STEPS Adam steps (SDFLOW_OPT_DSB_LR) on minibatches
 *  of SDFLOW_OPT_DSB_BATCH per half-bridge. A sampler keeps the kind it
 *  was first fitted with (switching: SDFLOW_E_STATE). Progress goes
 *  through the ctx callback (done/total over all half-bridges of the call:
 *  chain batches, and SGD steps); on cancellation or failure the means
 *  (affine maps or network weights) of the last finished half-bridge are
 *  kept and SDFLOW_E_CANCELLED (or the error) is returned. Deterministic
 *  in the ctx seed and SDFLOW_OPT_STREAM for any thread count. */
SDFLOW_API sdflow_status sdflow_sampler_fit(sdflow_sampler *s, long iterations);

SDFLOW_END_DECLS
#endif
