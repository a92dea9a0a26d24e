/* SPDX-License-Identifier: MIT */
/**
 * @file trainer.h
 * @brief Fitting an MLP score model: denoising score matching (DSM), the
 * QCSGM asymmetry penalty, Adam/AdamW, schedules, clipping, EMA.
 *
 * A trainer is created with a loss kind, bound to an MLP model
 * (sdflow_model_create_mlp), a process and the data (an n x d array, copied,
 * or a batch callback), then advanced with sdflow_trainer_step() or
 * sdflow_trainer_fit(). The trained weights live in the bound model; the EMA
 * weights can be copied into any MLP of the same architecture with
 * sdflow_trainer_copy_ema(). See docs/training.md.
 *
 * Determinism: the batch of step k (data rows, times, noise, probes) is drawn
 * from Philox keyed by (ctx seed, SDFLOW_OPT_STREAM, k, global row index), so
 * the same seed gives bit-identical weights for any SDFLOW_CTX_THREADS.
 *
 * Data parallel: with SDFLOW_TRAIN_WORLD_SIZE = R and SDFLOW_TRAIN_RANK = r,
 * this process computes the rows [r B / R, (r + 1) B / R) of the global
 * batch of size B = SDFLOW_TRAIN_BATCH, and the ctx allreduce hook
 * (sdflow_ctx_set_allreduce) is called once per step on the flat vector
 * (gradient, loss terms); its nonzero return stops with SDFLOW_E_CALLBACK.
 *
 * Thread safety: not safe on the same trainer concurrently, nor while its
 * bound model is used elsewhere; distinct trainers with distinct models may
 * run in parallel, even when they share a ctx and a process.
 */
#ifndef SDFLOW_TRAINER_H
#define SDFLOW_TRAINER_H

#include "model.h"

SDFLOW_BEGIN_DECLS

typedef struct sdflow_trainer sdflow_trainer;

/** Loss kinds ("dsm", "interpolant", "dsb_mean"). */
typedef enum sdflow_loss_kind {
    SDFLOW_LOSS_DSM = 0,        /**< denoising score matching (algorithms.md section 3) + optional QCSGM penalty */
    SDFLOW_LOSS_INTERPOLANT = 1,/**< interpolant velocity loss E|v_hat - dI/dt|^2 (algorithms.md section 8; needs an
                                     interpolant process and an MLP with SDFLOW_OUT_VELOCITY; the data are x1 at t = 1,
                                     the base at t = 0 N(0, I), a model (sdflow_trainer_set_base_model) or a second
                                     data array (sdflow_trainer_set_base_data); options SDFLOW_OPT_COUPLING,
                                     SDFLOW_OPT_COUPLING_EPS).
                                     STAT_LOSS reports mean |v_hat|^2 - 2 dI . v_hat (minimum -int E|v|^2 dt),
                                     STAT_DSM_LOSS the mean |v_hat - dI|^2; same gradient. docs/interpolants.md */
    SDFLOW_LOSS_DSB_MEAN = 2    /**< Schroedinger-bridge mean matching (algorithms.md section 9), the regression of one
                                     IPF half-bridge: data rows of 2d + 1 values (s, x, y) -- the network's time input
                                     s, the state x, the mean target y -- and the row loss |mean_hat(x, s) - y|^2
                                     (/ d with SDFLOW_TRAIN_REDUCE_MEAN), mean_hat = x + N(x, s) (residual, default)
                                     or N(x, s) (SDFLOW_TRAIN_DSB_MEAN_MATCH = 1), N the MLP's native output. No
                                     process (the network sees s itself: SDFLOW_OPT_MLP_TIME_INPUT = 0). The DSB
                                     sampler's network fits use it (sdflow_sampler_fit). docs/dsb.md */
} sdflow_loss_kind;

/** DSM weightings (SDFLOW_TRAIN_WEIGHTING). Per row, with eps_hat the
 *  model's noise prediction and z the noise drawn: */
typedef enum sdflow_dsm_weighting {
    SDFLOW_WEIGHT_SIGMA2 = 0,     /**< |eps_hat - z|^2 (lambda = sigma^2, the "eps loss"; default) */
    SDFLOW_WEIGHT_LIKELIHOOD = 1, /**< g^2 |s_hat + z/sigma|^2 = (g^2/sigma^2) |eps_hat - z|^2 (Song et al. 2021) */
    SDFLOW_WEIGHT_V = 2           /**< |v_hat - v|^2, v = alpha z - sigma x0 (Salimans & Ho 2022) */
} sdflow_dsm_weighting;

/** Time sampling (SDFLOW_TRAIN_T_SAMPLING). Either map takes a uniform u in
 *  [0, 1); with SDFLOW_TRAIN_STRATIFIED = 1 the batch uses u_b = (u + b)/B
 *  for global row b and one uniform u per step. */
typedef enum sdflow_t_sampling {
    SDFLOW_TSAMPLE_UNIFORM = 0,   /**< t uniform on [t_eps, T] */
    SDFLOW_TSAMPLE_IMPORTANCE = 1 /**< t with density g^2/sigma^2 / Z (uniform in log-SNR), rows reweighted */
} sdflow_t_sampling;

/** Optimizers (SDFLOW_TRAIN_OPTIMIZER), PyTorch's update formulas. */
typedef enum sdflow_optimizer {
    SDFLOW_OPTIM_ADAM = 0, /**< Adam; weight decay added to the gradient (L2), as torch.optim.Adam */
    SDFLOW_OPTIM_ADAMW = 1 /**< AdamW; decoupled weight decay theta *= 1 - lr wd, as torch.optim.AdamW */
} sdflow_optimizer;

/** Learning-rate schedules (SDFLOW_TRAIN_SCHEDULE), after a linear warmup
 *  lr (k + 1)/W over the first W = SDFLOW_TRAIN_WARMUP steps. */
typedef enum sdflow_lr_schedule {
    SDFLOW_LR_CONSTANT = 0,
    SDFLOW_LR_COSINE = 1 /**< lr_min + (lr - lr_min)(1 + cos(pi p))/2, p = (k - W)/(total - W) clamped to [0, 1] */
} sdflow_lr_schedule;

/** Statistics (sdflow_trainer_get_stat). */
typedef enum sdflow_train_stat {
    SDFLOW_TRAIN_STAT_STEP = 0,         /**< completed steps */
    SDFLOW_TRAIN_STAT_LOSS = 1,         /**< total loss of the last step's batch (DSM + gamma x penalty) */
    SDFLOW_TRAIN_STAT_RUNNING_LOSS = 2, /**< bias-corrected exponential average (factor 0.99) of STAT_LOSS */
    SDFLOW_TRAIN_STAT_GRAD_NORM = 3,    /**< global gradient norm of the last step, before clipping */
    SDFLOW_TRAIN_STAT_LR = 4,           /**< learning rate of the last step */
    SDFLOW_TRAIN_STAT_VAL_LOSS = 5,     /**< last validation loss (SDFLOW_E_STATE before the first one) */
    SDFLOW_TRAIN_STAT_DSM_LOSS = 6,     /**< DSM part of the last step's loss */
    SDFLOW_TRAIN_STAT_PENALTY = 7       /**< last step's QCSGM estimate E[sigma^2 |(J - J^T) v|^2] (J: score Jacobian),
                                             not multiplied by gamma; 0 when the penalty is off */
} sdflow_train_stat;

/** Batch callback: fills @p x0 (rows x d, row-major) with the data rows
 *  [first_row, first_row + rows) of the global batch of step @p step
 *  (0-based). For deterministic training the rows must depend only on
 *  (step, row index). Return 0 on success; nonzero stops with
 *  SDFLOW_E_CALLBACK before the step changes anything. Called from the
 *  thread that called step/fit. */
typedef int (*sdflow_batch_fn)(long step, uint64_t first_row, size_t rows, size_t d, double *x0, void *user_data);

/** Creates a trainer of a loss kind with the defaults of docs/training.md.
 *  On failure *out is NULL. Thread safety: safe on a shared ctx. */
SDFLOW_API sdflow_status sdflow_trainer_create(sdflow_ctx *ctx, sdflow_loss_kind kind, sdflow_trainer **out);
/** Frees a trainer (not the bound model, process or callback data); NULL is a no-op. */
SDFLOW_API void sdflow_trainer_free(sdflow_trainer *t);
/** "dsm"; NULL when unknown. Thread safety: safe. */
SDFLOW_API const char *sdflow_trainer_kind_name(sdflow_loss_kind kind);
SDFLOW_API sdflow_status sdflow_trainer_kind_from_name(const char *name, sdflow_loss_kind *out);

/** SDFLOW_TRAIN_* options and SDFLOW_OPT_STREAM (options.h). Optimizer and
 *  schedule options may change between steps; SDFLOW_TRAIN_RANK/WORLD_SIZE
 *  only before the first step (else SDFLOW_E_STATE).
 *  Thread safety: not safe on the same trainer concurrently. */
SDFLOW_API sdflow_status sdflow_trainer_set_int(sdflow_trainer *t, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_trainer_set_double(sdflow_trainer *t, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_trainer_set_u64(sdflow_trainer *t, sdflow_option key, uint64_t value);
SDFLOW_API sdflow_status sdflow_trainer_get_int(const sdflow_trainer *t, sdflow_option key, long *value);
SDFLOW_API sdflow_status sdflow_trainer_get_double(const sdflow_trainer *t, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_trainer_get_u64(const sdflow_trainer *t, sdflow_option key, uint64_t *value);

/** Binds the MLP model to train (not copied: it must outlive the trainer's
 *  steps, and its weights are updated in place). Binding a model resets the
 *  optimizer state, the EMA (to the model's current weights) and the step
 *  count. Another kind than SDFLOW_MODEL_MLP: SDFLOW_E_UNSUPPORTED. */
SDFLOW_API sdflow_status sdflow_trainer_set_model(sdflow_trainer *t, sdflow_model *m);
/** Binds the noising process (not copied; must outlive the trainer's steps). */
SDFLOW_API sdflow_status sdflow_trainer_set_process(sdflow_trainer *t, const sdflow_process *p);
/** Training data: n rows of d doubles, **copied** (the caller may free @p x
 *  after the call). Must be finite; d must equal the model's dimension.
 *  Replaces a batch callback. Rows of a batch are drawn with replacement,
 *  row b of step k at index floor(u n), u keyed by (seed, stream, k, b). */
SDFLOW_API sdflow_status sdflow_trainer_set_data(sdflow_trainer *t, size_t n, size_t d, const double *x);
/** Batch callback instead of a data array (data that does not fit in
 *  memory); @p d is the data dimension. NULL @p fn unbinds. Replaces the data array. */
SDFLOW_API sdflow_status sdflow_trainer_set_batch_fn(sdflow_trainer *t, size_t d, sdflow_batch_fn fn,
                                                     void *user_data);
/** SDFLOW_LOSS_INTERPOLANT only: the base distribution at t = 0 (default
 *  N(0, I)) is a model drawn with sdflow_model_sample (gaussian, gmm; not
 *  copied, must outlive the trainer's steps; row b of step k keyed by
 *  (seed, stream, k, b)). NULL restores N(0, I). Replaces base data.
 *  Another loss kind: SDFLOW_E_UNSUPPORTED; a model that cannot sample:
 *  SDFLOW_E_UNSUPPORTED; d other than the model's: SDFLOW_E_INVALID. */
SDFLOW_API sdflow_status sdflow_trainer_set_base_model(sdflow_trainer *t, sdflow_model *base);
/** SDFLOW_LOSS_INTERPOLANT only: the base is a second data array (n x d,
 *  **copied**, finite), rows drawn uniformly with replacement keyed like
 *  the data rows -- neither end has to be Gaussian. n = 0 with x = NULL
 *  restores N(0, I). Replaces a base model. */
SDFLOW_API sdflow_status sdflow_trainer_set_base_data(sdflow_trainer *t, size_t n, size_t d, const double *x);
/** Held-out data (n x d, copied) for sdflow_trainer_validate(): the loss on
 *  every row with one fixed draw of times and noise (keyed by the seed and
 *  stream, not the step), so values are comparable between steps. n = 0
 *  with x = NULL removes it. */
SDFLOW_API sdflow_status sdflow_trainer_set_validation(sdflow_trainer *t, size_t n, size_t d, const double *x);

/** One optimization step. All bindings and the data are checked first
 *  (NaN data, n < batch, wrong d: SDFLOW_E_INVALID or SDFLOW_E_STATE before
 *  anything changes). A non-finite loss or gradient stops with
 *  SDFLOW_E_NUMERIC naming the step, leaving weights, optimizer state, EMA
 *  and step count as they were. */
SDFLOW_API sdflow_status sdflow_trainer_step(sdflow_trainer *t);
/** @p steps steps, calling the ctx progress callback after each (done,
 *  total = steps). Cancel: SDFLOW_E_CANCELLED with the weights of the last
 *  completed step. With a validation set, the validation loss is computed
 *  every SDFLOW_TRAIN_VAL_EVERY steps (0: only at the end). */
SDFLOW_API sdflow_status sdflow_trainer_fit(sdflow_trainer *t, long steps);
/** The loss of the batch of step @p step (>= 0; the next step is
 *  SDFLOW_TRAIN_STAT_STEP) at the model's current weights, and with @p grad
 *  not NULL its gradient (sdflow_model_param_count values), without changing
 *  the model, the optimizer or the step count. Computes the whole global
 *  batch (every rank's rows) and calls no allreduce hook. For gradient
 *  checks and custom optimizers. */
SDFLOW_API sdflow_status sdflow_trainer_eval_batch(sdflow_trainer *t, long step, double *loss, double *grad);
/** Loss of the current weights (not the EMA) on the validation set; also
 *  stored as SDFLOW_TRAIN_STAT_VAL_LOSS. SDFLOW_E_STATE without one. */
SDFLOW_API sdflow_status sdflow_trainer_validate(sdflow_trainer *t, double *loss);
/** A statistic (sdflow_train_stat). SDFLOW_E_STATE for a value that does not exist yet. */
SDFLOW_API sdflow_status sdflow_trainer_get_stat(const sdflow_trainer *t, sdflow_train_stat stat, double *value);
/** Copies the EMA weights into @p m, an MLP with the bound model's
 *  parameter count (it may be the bound model itself). The EMA starts from
 *  the bound model's weights at the first step (or at this call, if it
 *  comes first). */
SDFLOW_API sdflow_status sdflow_trainer_copy_ema(sdflow_trainer *t, sdflow_model *m);

/* ---- checkpoints ------------------------------------------------------- */

/** Saves the trainer's resumable state as a checkpoint (docs/model-files.md,
 *  "Trainer checkpoints"): a model file of the bound model (and process,
 *  when bound) plus the Adam/AdamW moments, the EMA weights, the step and
 *  update counts (the EMA warm-up and the learning-rate schedule position
 *  follow from them; a checkpoint taken from the progress callback inside
 *  sdflow_trainer_fit() also records the fit's cosine horizon), the
 *  statistics, every trainer option, the ctx seed and a fingerprint of the
 *  data array (rows and a 64-bit hash). Every random draw of step k is keyed
 *  by (seed, SDFLOW_OPT_STREAM, k, row), so these are the RNG position.
 *  Always F64, with a checksum of the tensor bytes. A trainer that has not
 *  stepped yet saves step 0 (moments zero, EMA = weights).
 *  Path form: written to "<path>.tmp" and renamed, like sdflow_model_save().
 *  @return SDFLOW_E_STATE without a bound model, SDFLOW_E_IO when the file
 *  cannot be written. Thread safety: not concurrently with steps of @p t. */
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_save(sdflow_trainer *t, const char *path);
/** Checkpoint into the caller's buffer: *@p size always receives its size;
 *  with @p buf NULL nothing else happens (a size query); with @p cap < *size
 *  it fails with SDFLOW_E_INVALID and writes nothing. */
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_save_buffer(sdflow_trainer *t, void *buf, size_t cap,
                                                               size_t *size);
/** Restores a checkpoint into @p t, a trainer configured like the one that
 *  saved it: the same loss kind, every option equal (except
 *  SDFLOW_TRAIN_RANK, which is not saved: each rank restores the same
 *  file), the same ctx seed, a bound MLP of the same architecture (dimension,
 *  every architecture option, parameter count; its weights are replaced),
 *  the same process kind and options (or none bound when the file has
 *  none), and, when @p t has data bound, the same data (rows and hash for an
 *  array; a callback when the saver had one). Continuing then gives
 *  bit-identical weights, moments, EMA and statistics to the uninterrupted
 *  run, for any SDFLOW_CTX_THREADS. To change an option on resume, restore
 *  first, then set it. The input is read as hostile, like
 *  sdflow_model_load_buffer().
 *  @return SDFLOW_E_FORMAT (byte offset and reason) for a malformed file or
 *  one that is not a checkpoint, SDFLOW_E_INVALID naming the first
 *  difference for a mismatch, SDFLOW_E_STATE without a bound model. On
 *  failure @p t, its model and its statistics are unchanged. */
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_restore(sdflow_trainer *t, const char *path);
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_restore_buffer(sdflow_trainer *t, const void *buf, size_t size);
/** Rebuilds a trainer from a checkpoint alone: *@p trainer gets a new
 *  trainer of the file's loss kind with the file's options and state,
 *  bound to *@p model (a new MLP with the saved weights) and *@p process
 *  (the file's process, NULL when it has none); the caller owns all three
 *  (free the trainer first or together) and binds the data
 *  (sdflow_trainer_set_data or _set_batch_fn; not checked against the
 *  fingerprint) before stepping. The ctx seed must equal the saved one
 *  (SDFLOW_E_INVALID naming it otherwise). On failure all outputs are NULL. */
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_load(sdflow_ctx *ctx, const char *path, sdflow_trainer **trainer,
                                                        sdflow_model **model, sdflow_process **process);
SDFLOW_API sdflow_status sdflow_trainer_checkpoint_load_buffer(sdflow_ctx *ctx, const void *buf, size_t size,
                                                               sdflow_trainer **trainer, sdflow_model **model,
                                                               sdflow_process **process);

SDFLOW_END_DECLS
#endif
