/* SPDX-License-Identifier: MIT */
/**
 * @file options.h
 * @brief Enum-keyed options shared by every object, with bounds and names.
 *
 * Each object (ctx, process, model, sampler, density) has typed setters
 * (`*_set_int`, `*_set_double`, `*_set_u64`) and getters keyed by this enum.
 * A key applies to the objects its group names; passing it to another object
 * gives SDFLOW_E_UNSUPPORTED. Using the setter of the wrong type gives
 * SDFLOW_E_INVALID (bindings may use that to probe a key's type). Out-of-range
 * values give SDFLOW_E_INVALID with the bounds in the message: values are
 * never silently clamped. New options are new enum values; numbers are never
 * reused.
 */
#ifndef SDFLOW_OPTIONS_H
#define SDFLOW_OPTIONS_H

#include "status.h"

SDFLOW_BEGIN_DECLS

typedef enum sdflow_option {
    /* ctx (100..149) */
    SDFLOW_CTX_SEED = 100,        /**< u64: base seed of every random stream (default 0) */
    SDFLOW_CTX_THREADS = 101,     /**< int 1..256: threads of libsdflow's own loops (default 1).
                                       OpenBLAS's own pool is process-global; see SDFLOW_CTX_BLAS_POOL. */
    SDFLOW_CTX_LOG_LEVEL = 102,   /**< int 0..4: most verbose level sent to the log callback (default 2) */
    SDFLOW_CTX_BLAS_POOL = 103,   /**< int sdflow_blas_pool: who threads the GEMMs that libsdflow's
                                       own parallel loops issue (default SDFLOW_BLAS_POOL_HOST) */

    /* process (150..199) */
    SDFLOW_PROC_BETA_MIN = 150,   /**< double: VP/sub-VP beta(0) (default 0.1) */
    SDFLOW_PROC_BETA_MAX = 151,   /**< double: VP/sub-VP beta(1) (default 20) */
    SDFLOW_PROC_SIGMA_MIN = 152,  /**< double: VE sigma(0) (default 0.01) */
    SDFLOW_PROC_SIGMA_MAX = 153,  /**< double: VE sigma(1) (default 50) */
    SDFLOW_PROC_COSINE_S = 154,   /**< double: VP-cosine offset s (default 0.008) */
    SDFLOW_PROC_T_MAX = 155,      /**< double: horizon T (default 1; VP-cosine: the t where alpha(T) = e^-5, about 0.992,
                                       recomputed when cosine_s changes until T is set) */
    SDFLOW_PROC_T_EPS = 156,      /**< double: smallest valid time (default 1e-5) */
    SDFLOW_PROC_VE_EXACT_STD = 157, /**< int 0/1: VE std sqrt(sigma(t)^2 - sigma_min^2) instead of sigma(t) (default 0) */
    /* interpolant processes (160..179) */
    SDFLOW_PROC_INTERP_EPS = 160, /**< double >= 0: noise scale eps of gamma(t) = sqrt(eps t (1 - t)) of the
                                       interpolant kinds (default 0: deterministic interpolant) */

    /* samplers (200..299) */
    SDFLOW_OPT_STEPS = 200,       /**< int: number of (outer) steps */
    SDFLOW_OPT_SIGMA_MAX = 201,   /**< double: largest smoothing of SD flow (0: from the target set) */
    SDFLOW_OPT_FIRST_INDEX = 202, /**< u64: global index of the first sample of this run (sharding) */
    SDFLOW_OPT_SIGMA_MIN = 203,   /**< double: smallest smoothing of SD flow (0: SDFLOW_OPT_SIGMA_MIN_NN, or the
                                       adaptive stop of docs/sdflow.md) */
    SDFLOW_OPT_T_MIN = 204,       /**< double: final time of reverse-time samplers */
    SDFLOW_OPT_TIME_GRID = 205,   /**< int: sdflow_time_grid */
    SDFLOW_OPT_DENOISE = 206,     /**< int 0/1: final Tweedie denoising step */
    SDFLOW_OPT_SOLVER = 207,      /**< int: sdflow_solver */
    SDFLOW_OPT_SNR = 208,         /**< double: Langevin corrector signal-to-noise ratio (default 0.16) */
    SDFLOW_OPT_CORRECTOR_STEPS = 209, /**< int: Langevin steps per predictor step (default 1) */
    SDFLOW_OPT_MAX_STEPS = 210,   /**< int: adaptive solver step limit per sample */
    SDFLOW_OPT_H_INIT = 211,      /**< double: adaptive solver initial step (0: automatic) */
    SDFLOW_OPT_STEP_FRAC = 212,   /**< double: SD-flow step size as a fraction of sigma^2 (default 1) */
    SDFLOW_OPT_INNER_STEPS = 213, /**< int: SD-flow steps per smoothing level (default 10) */
    SDFLOW_OPT_NOISE = 214,       /**< double: SD-flow noise injection scale (default 0) */
    SDFLOW_OPT_SELF_EXCLUDE = 215,/**< int 0/1: SD-flow leave-one-out source score (default 0) */
    SDFLOW_OPT_EVAL_NOISY = 216,  /**< int 0/1: SD-flow evaluates the difference at noisy copies (default 0) */
    SDFLOW_OPT_T_START = 217,     /**< double: start time of reverse-time samplers (default: process T) */
    SDFLOW_OPT_STREAM = 218,      /**< u64: random stream of this object (default depends on kind) */
    SDFLOW_OPT_BLOCK_Q = 219,     /**< int: query block size of kernel computations (default 256) */
    SDFLOW_OPT_BLOCK_Y = 220,     /**< int: reference block size of kernel computations (default 4096) */
    SDFLOW_OPT_SIGMA_MIN_NN = 221,/**< double: SD-flow sigma_min as a multiple of the targets' median NN spacing h_NN
                                       (default 0: adaptive stop where the particles are as far from the targets
                                       as fresh data; SDFLOW_OPT_SIGMA_MIN, when set, wins) */
    SDFLOW_OPT_START = 222,       /**< int: sdflow_start, SD-flow start when x_init is NULL (default matched) */
    SDFLOW_OPT_ETA = 223,         /**< double: noise level of DDIM (default 0) and DPM-Solver++ SDE samplers (default 1) */
    SDFLOW_OPT_S_CHURN = 224,     /**< double: EDM Heun churn S_churn (default 0: deterministic) */
    SDFLOW_OPT_S_TMIN = 225,      /**< double: EDM churn only where sigma/alpha >= S_tmin (default 0) */
    SDFLOW_OPT_S_TMAX = 226,      /**< double: EDM churn only where sigma/alpha <= S_tmax (default inf) */
    SDFLOW_OPT_S_NOISE = 227,     /**< double: noise scale of DDIM, DPM-Solver++ SDE and EDM churn (default 1) */
    SDFLOW_OPT_RHO = 228,         /**< double: exponent rho of SDFLOW_GRID_KARRAS (default 7) */

    /* diffusion Schrodinger bridge sampler (900..949), docs/dsb.md */
    SDFLOW_OPT_DSB_SCHEDULE = 900,  /**< int: sdflow_dsb_schedule of the steps gamma_1..gamma_N (default constant) */
    SDFLOW_OPT_DSB_GAMMA_MIN = 901, /**< double: smallest step of the symmetric ramps (default 0.01) */
    SDFLOW_OPT_DSB_GAMMA_MAX = 902, /**< double: the constant step, largest step of the ramps (default 0.01) */
    SDFLOW_OPT_DSB_REFERENCE = 903, /**< int: sdflow_dsb_reference drift of the reference chain (default OU) */
    SDFLOW_OPT_DSB_PRIOR_MEAN = 904,/**< double: mean of every coordinate of the Gaussian prior (default 0) */
    SDFLOW_OPT_DSB_PRIOR_VAR = 905, /**< double: variance v of the prior N(mean, v I), OU drift -(x - mean)/v (default 1) */
    SDFLOW_OPT_DSB_MEAN_MATCH = 906,/**< int 0/1: networks output the mean (1) or the residual mean - x (0, default) */
    SDFLOW_OPT_DSB_TIME_INPUT = 907,/**< int: sdflow_dsb_time time label given to the networks (default cumulative) */
    SDFLOW_OPT_DSB_DIRECTION = 908, /**< int: sdflow_dsb_direction of sdflow_sampler_run (default prior to data) */
    SDFLOW_OPT_DSB_NPAR = 909,      /**< int: chains simulated per half-bridge (default 10000) */
    SDFLOW_OPT_DSB_BATCH = 910,     /**< int: chains simulated at once, and the SGD minibatch of networks (default 512) */
    SDFLOW_OPT_DSB_TRAIN_STEPS = 911,   /**< int: SGD steps per half-bridge when fitting networks (default 10000) */
    SDFLOW_OPT_DSB_CACHE_REFRESH = 912, /**< int: SGD steps between refills of the trajectory cache (default 0: one
                                             fill per half-bridge) */
    SDFLOW_OPT_DSB_LR = 913,            /**< double: Adam learning rate of network fits (default 1e-4) */
    SDFLOW_OPT_DSB_LR_COSINE = 914,     /**< int 0/1: cosine decay of the rate to 0 over each half-bridge (default 0:
                                             constant, as the reference code) */

    /* adaptive solvers (300..349) */
    SDFLOW_OPT_RTOL = 300,        /**< double: relative tolerance (default 1e-5) */
    SDFLOW_OPT_ATOL = 301,        /**< double: absolute tolerance (default 1e-5) */

    /* density estimators (400..449) */
    SDFLOW_OPT_PROBES = 400,      /**< int: Hutchinson probes per sample (default 1) */
    SDFLOW_OPT_PROBE_KIND = 401,  /**< int: sdflow_probe */
    SDFLOW_OPT_LIYAN_TIMES = 402, /**< int: Li-Yan quadrature points (default 256) */
    SDFLOW_OPT_LIYAN_DRAWS = 403, /**< int: Li-Yan noise draws per point (default 1, antithetic pairs) */
    SDFLOW_OPT_LAMBDA_MIN = 404,  /**< double: Li-Yan smallest log-SNR (default -15) */
    SDFLOW_OPT_LAMBDA_MAX = 405,  /**< double: Li-Yan largest log-SNR (default 15) */
    SDFLOW_OPT_DATA_SCALE = 406,  /**< double: a in x_model = a x_01 + b for bits/dim (default 2) */
    SDFLOW_OPT_DEQUANTIZE = 407,  /**< int 0/1: uniform dequantization of 0..255 data for bits/dim */
    SDFLOW_OPT_DIVERGENCE = 408,  /**< int: sdflow_divergence method of exact estimators */

    /* metrics (500..549): 500 (bandwidth) and 501 (directions) are retired, never reused -- no
       object accepted them; the metric functions take these as arguments (metrics.h) */

    /* stochastic interpolants: sampler, density and trainer (850..899); t = 0 base, t = 1 data */
    SDFLOW_OPT_INTERP_T0 = 850,       /**< double in [0, 1]: start time of an interpolant sampler run (default 0, the base) */
    SDFLOW_OPT_INTERP_T1 = 851,       /**< double in [0, 1]: end time of an interpolant sampler run (default 1, the data) */
    SDFLOW_OPT_INTERP_DIFFUSION = 852,/**< double >= 0: diffusion eps_s of the interpolant SDE dX = (v +- eps_s s) dt +
                                           sqrt(2 eps_s) dW (default 0: the ODE); needs SDFLOW_ROLE_DENOISER */
    SDFLOW_OPT_INTERP_KINETIC = 853,  /**< int 0/1: interpolant sampler accumulates the kinetic energy int |v|^2 dt of each
                                           path (SDFLOW_STAT_KINETIC_ENERGY; default 0) */
    SDFLOW_OPT_INTERP_TIME = 854,     /**< double in (0, 1]: time t of the density rho_t an interpolant density estimator
                                           evaluates (default 1, the data) */
    SDFLOW_OPT_COUPLING = 855,        /**< int: sdflow_coupling of x0 and x1 in interpolant training (default independent) */
    SDFLOW_OPT_COUPLING_EPS = 856,    /**< double > 0: Sinkhorn coupling regularization x mean cost (default 0.05) */

    /* MLP model architecture (set before the parameters exist) */
    SDFLOW_OPT_MLP_DEPTH = 600,      /**< int 1..64: hidden layers (default 3) */
    SDFLOW_OPT_MLP_WIDTH = 601,      /**< int 1..65536: hidden width (default 128) */
    SDFLOW_OPT_MLP_ACTIVATION = 602, /**< int: sdflow_activation (default SiLU) */
    SDFLOW_OPT_MLP_FREQS = 603,      /**< int 0..4096: Fourier time frequencies (default 32) */
    SDFLOW_OPT_MLP_RESIDUAL = 604,   /**< int: 0 none (default); 1 residual blocks z + W2 act(W1 z + b1) + b2 after an
                                          input layer (depth odd: 1 + 2 blocks); 2 hidden layers 2.. as z + act(W z + b) */
    SDFLOW_OPT_MLP_OUTPUT = 605,     /**< int: an sdflow_output (default SDFLOW_OUT_EPS) or SDFLOW_MLP_ENERGY */
    SDFLOW_OPT_MLP_TIME_INPUT = 606, /**< int 0/1: Fourier features of t (0, default) or of log(sigma(t))/4 (1) */
    SDFLOW_OPT_MLP_LEARN_FREQS = 607, /**< int 0/1: the Fourier frequencies are trainable parameters (default 0) */
    SDFLOW_OPT_MLP_FREQ_SCALE = 608,  /**< double > 0: initial frequencies f_k = scale (k + 1) (default 0.5) */

    /* trainer (700..749); the trainer also takes SDFLOW_OPT_STREAM */
    SDFLOW_TRAIN_BATCH = 700,        /**< int: global batch size B (default 128) */
    SDFLOW_TRAIN_WEIGHTING = 701,    /**< int: sdflow_dsm_weighting (default SDFLOW_WEIGHT_SIGMA2) */
    SDFLOW_TRAIN_T_SAMPLING = 702,   /**< int: sdflow_t_sampling (default uniform) */
    SDFLOW_TRAIN_STRATIFIED = 703,   /**< int 0/1: stratified times u_b = (u + b)/B (default 0) */
    SDFLOW_TRAIN_T_EPS = 704,        /**< double: smallest training time (default 0: the process's t_eps) */
    SDFLOW_TRAIN_REDUCE_MEAN = 705,  /**< int 0/1: mean over dimensions instead of the sum (default 0) */
    SDFLOW_TRAIN_LR = 706,           /**< double: peak learning rate (default 1e-3) */
    SDFLOW_TRAIN_BETA1 = 707,        /**< double: Adam beta1 (default 0.9) */
    SDFLOW_TRAIN_BETA2 = 708,        /**< double: Adam beta2 (default 0.999) */
    SDFLOW_TRAIN_ADAM_EPS = 709,     /**< double: Adam epsilon (default 1e-8) */
    SDFLOW_TRAIN_WEIGHT_DECAY = 710, /**< double: weight decay (default 0) */
    SDFLOW_TRAIN_OPTIMIZER = 711,    /**< int: sdflow_optimizer (default Adam) */
    SDFLOW_TRAIN_SCHEDULE = 712,     /**< int: sdflow_lr_schedule (default constant) */
    SDFLOW_TRAIN_WARMUP = 713,       /**< int: linear warmup steps (default 0) */
    SDFLOW_TRAIN_TOTAL_STEPS = 714,  /**< int: cosine horizon in steps (default 0: the end of the running fit) */
    SDFLOW_TRAIN_LR_MIN = 715,       /**< double: final learning rate of the cosine schedule (default 0) */
    SDFLOW_TRAIN_CLIP_NORM = 716,    /**< double: global gradient-norm clip (default 0: off) */
    SDFLOW_TRAIN_EMA_DECAY = 717,    /**< double: EMA decay (default 0.999; 0: EMA = weights) */
    SDFLOW_TRAIN_EMA_WARMUP = 718,   /**< int 0/1: decay min(decay, (1 + k)/(10 + k)) at update k (default 1) */
    SDFLOW_TRAIN_QCSGM_WEIGHT = 719, /**< double: QCSGM penalty weight gamma (default 0: off) */
    SDFLOW_TRAIN_QCSGM_PROBES = 720, /**< int: Rademacher probes K per row of the penalty (default 1) */
    SDFLOW_TRAIN_RANK = 721,         /**< int: rank r of this process in data-parallel training (default 0) */
    SDFLOW_TRAIN_WORLD_SIZE = 722,   /**< int: number of processes R (default 1) */
    SDFLOW_TRAIN_VAL_EVERY = 723,    /**< int: fit() validates every this many steps (default 0: at the end) */
    SDFLOW_TRAIN_DSB_MEAN_MATCH = 930, /**< int 0/1: SDFLOW_LOSS_DSB_MEAN network outputs the mean (1) or the residual
                                            mean - x (0, default) */

    /* model files, ctx options (800..849; io.h) */
    SDFLOW_CTX_FILE_MAX_BYTES = 800, /**< u64 >= 16: largest file or buffer the model loaders accept, in bytes
                                          (default 2^30 = 1 GiB); larger input fails with SDFLOW_E_FORMAT
                                          before anything is allocated for it */
    SDFLOW_CTX_FILE_DTYPE = 801      /**< int sdflow_dtype: element type the model savers write (default
                                          SDFLOW_DTYPE_F64, bit-exact; SDFLOW_DTYPE_F32 rounds) */
} sdflow_option;

/* The value enums of int options live with the objects that use them:
 * sdflow_solver, sdflow_time_grid, sdflow_start and the DSB enums in
 * sampler.h, sdflow_probe and sdflow_divergence in density.h,
 * sdflow_activation in model.h, sdflow_dtype in io.h (all included by
 * sdflow.h, with the same names and values as before). */

/** Value type of an option key. */
typedef enum sdflow_option_type {
    SDFLOW_TYPE_NONE = 0,   /**< unknown key */
    SDFLOW_TYPE_INT = 1,
    SDFLOW_TYPE_DOUBLE = 2,
    SDFLOW_TYPE_U64 = 3
} sdflow_option_type;

/** @return the value type of @p key, SDFLOW_TYPE_NONE when unknown. Thread safety: safe. */
SDFLOW_API sdflow_option_type sdflow_option_get_type(sdflow_option key);
/** Valid range [lo, hi] of @p key (u64 keys report their full range as doubles).
 *  @return SDFLOW_E_UNSUPPORTED for an unknown key, SDFLOW_E_INVALID for NULL outputs.
 *  Thread safety: safe. */
SDFLOW_API sdflow_status sdflow_option_bounds(sdflow_option key, double *lo, double *hi);
/** @return the key's name without prefix ("steps", "seed", ...), NULL when unknown. Thread safety: safe. */
SDFLOW_API const char *sdflow_option_name(sdflow_option key);
/** Looks up a key by the name sdflow_option_name() gives.
 *  @return SDFLOW_E_UNSUPPORTED when no key has that name. Thread safety: safe. */
SDFLOW_API sdflow_status sdflow_option_from_name(const char *name, sdflow_option *out);

SDFLOW_END_DECLS
#endif
