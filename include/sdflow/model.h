/* SPDX-License-Identifier: MIT */
/**
 * @file model.h
 * @brief Score models: anything that gives a score-like field for (x, t).
 *
 * Evaluation takes a process @p p that defines the noising
 * x_t = alpha(t) x_0 + sigma(t) eps. With @p p == NULL the model is smoothed
 * by pure Gaussian noise of standard deviation t: alpha = 1, sigma = t
 * (the "sigma-parameterized" view used by SD flow and kernel estimators).
 *
 * Arrays are row-major doubles: x is n x d, t has n entries (one time per
 * row), outputs are n x d unless stated. Inputs are checked for NaN/Inf.
 *
 * Thread safety: evaluation functions do not modify the model and may run
 * concurrently on one model (a callback model: if its callback allows it;
 * a kernel model's cached workspace serves one call at a time, and a
 * concurrent call works in a block of its own, with the same results). Setting options
 * or freeing a model is not safe concurrently with any use of it. Distinct
 * models may be used in parallel.
 */
#ifndef SDFLOW_MODEL_H
#define SDFLOW_MODEL_H

#include "process.h"

SDFLOW_BEGIN_DECLS

typedef struct sdflow_model sdflow_model;

/** MLP activations (SDFLOW_OPT_MLP_ACTIVATION). */
typedef enum sdflow_activation {
    SDFLOW_ACT_SILU = 0,
    SDFLOW_ACT_TANH = 1,
    SDFLOW_ACT_SOFTPLUS = 2,
    SDFLOW_ACT_GELU = 3,  /**< tanh approximation (PyTorch approximate="tanh") */
    SDFLOW_ACT_RELU = 4   /**< first order only: refused for the energy output */
} sdflow_activation;

/** SDFLOW_OPT_MLP_OUTPUT value of an energy MLP: scalar E(x, t), score = -grad_x E. */
#define SDFLOW_MLP_ENERGY 5

typedef enum sdflow_model_kind {
    SDFLOW_MODEL_GAUSSIAN = 1,
    SDFLOW_MODEL_GMM = 2,
    SDFLOW_MODEL_KERNEL = 3,
    SDFLOW_MODEL_MLP = 4,
    SDFLOW_MODEL_CALLBACK = 5
} sdflow_model_kind;

/** User model: writes n x d outputs (of the kind given at creation) for
 *  points x (n x d) at times t (n). Return 0 on success; nonzero makes the
 *  calling function fail with SDFLOW_E_CALLBACK. */
typedef int (*sdflow_model_fn)(size_t n, size_t d, const double *x, const double *t,
                               double *out, void *user_data);
/** Optional Jacobian-vector product of a user model's output:
 *  jv[i] = J_out(x[i], t[i]) v[i] for each row i. Same return convention. */
typedef int (*sdflow_model_jvp_fn)(size_t n, size_t d, const double *x, const double *t,
                                   const double *v, double *jv, void *user_data);

/** Gaussian data N(mean, cov) with cov d x d symmetric positive definite
 *  (checked by Cholesky). Data are copied. */
SDFLOW_API sdflow_status sdflow_model_create_gaussian(sdflow_ctx *ctx, size_t d, const double *mean,
                                                      const double *cov, sdflow_model **out);
/** Gaussian mixture: @p weights (k, positive, sum 1 within 1e-12 relative),
 *  @p means (k x d), @p covs (k x d x d, each SPD). Data are copied. */
SDFLOW_API sdflow_status sdflow_model_create_gmm(sdflow_ctx *ctx, size_t k, size_t d, const double *weights,
                                                 const double *means, const double *covs, sdflow_model **out);
/** User callback producing outputs of kind @p produces. */
SDFLOW_API sdflow_status sdflow_model_create_callback(sdflow_ctx *ctx, size_t d, sdflow_output produces,
                                                      sdflow_model_fn fn, void *user_data, sdflow_model **out);
/** Adds a JVP callback to a callback model, enabling exact divergences. */
SDFLOW_API sdflow_status sdflow_model_set_callback_jvp(sdflow_model *m, sdflow_model_jvp_fn fn, void *user_data);

SDFLOW_API void sdflow_model_free(sdflow_model *m);
SDFLOW_API sdflow_model_kind sdflow_model_get_kind(const sdflow_model *m);
SDFLOW_API size_t sdflow_model_dim(const sdflow_model *m);
/** "gaussian", "gmm", "kernel", "mlp", "callback"; NULL when unknown. */
SDFLOW_API const char *sdflow_model_kind_name(sdflow_model_kind kind);
SDFLOW_API sdflow_status sdflow_model_kind_from_name(const char *name, sdflow_model_kind *out);

/** Typed model options (kernel: SDFLOW_OPT_BLOCK_Q, SDFLOW_OPT_BLOCK_Y;
 *  mlp: see its constructor). A key the kind does not have gives
 *  SDFLOW_E_UNSUPPORTED, a value of the wrong type or out of bounds
 *  SDFLOW_E_INVALID, a NULL model or value pointer SDFLOW_E_INVALID.
 *  Thread safety: not safe on the same model concurrently with any use of it. */
SDFLOW_API sdflow_status sdflow_model_set_int(sdflow_model *m, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_model_get_int(const sdflow_model *m, sdflow_option key, long *value);
SDFLOW_API sdflow_status sdflow_model_set_double(sdflow_model *m, sdflow_option key, double value);
SDFLOW_API sdflow_status sdflow_model_get_double(const sdflow_model *m, sdflow_option key, double *value);
SDFLOW_API sdflow_status sdflow_model_set_u64(sdflow_model *m, sdflow_option key, uint64_t value);
SDFLOW_API sdflow_status sdflow_model_get_u64(const sdflow_model *m, sdflow_option key, uint64_t *value);

/** Evaluates the model at n points and writes output kind @p kind.
 *  @p t entries must lie in the process's valid range ((0, inf) without a process). */
SDFLOW_API sdflow_status sdflow_model_eval(sdflow_model *m, const sdflow_process *p, size_t n,
                                           const double *x, const double *t, sdflow_output kind, double *out);
/** Shortcut for sdflow_model_eval(..., SDFLOW_OUT_SCORE, ...). */
SDFLOW_API sdflow_status sdflow_model_score(sdflow_model *m, const sdflow_process *p, size_t n,
                                            const double *x, const double *t, double *score);
/** Exact log-density of the noised distribution p_t at n points
 *  (gaussian, gmm, kernel); SDFLOW_E_UNSUPPORTED for other kinds. */
SDFLOW_API sdflow_status sdflow_model_logpdf(sdflow_model *m, const sdflow_process *p, size_t n,
                                             const double *x, const double *t, double *logp);
/** Jacobian of the score, n x d x d (row i, then d x d row-major, J[a][b] =
 *  d score_a / d x_b). Analytic for gaussian, gmm and kernel; callback models
 *  need a JVP callback. */
SDFLOW_API sdflow_status sdflow_model_jacobian(sdflow_model *m, const sdflow_process *p, size_t n,
                                               const double *x, const double *t, double *jac);
/** Divergence (trace of the Jacobian) of the score at n points. */
SDFLOW_API sdflow_status sdflow_model_divergence(sdflow_model *m, const sdflow_process *p, size_t n,
                                                 const double *x, const double *t, double *div);
/** QCSGM diagnostic: how far the score's Jacobian J(x_i, t_i) is from
 *  symmetric (a conservative field, the gradient of a log-density, has
 *  J = J^T), at n rows x (n x d), t (n) (docs/asymmetry.md).
 *  Writes out[0] = sqrt(mean_i ||J_i - J_i^T||_F^2), the asymmetry (RMS over
 *  the rows; for n = 1 the row's ||J - J^T||_F), out[2] = sqrt(sum_i
 *  ||J_i - J_i^T||_F^2 / sum_i ||J_i||_F^2), the normalized asymmetry (in
 *  [0, sqrt 2]), and their standard errors in out[1], out[3].
 *  @p probes = 0: exact, from the full Jacobian of every row (SEs 0).
 *  @p probes = K >= 2: Hutchinson estimate with K Rademacher probes v per
 *  row, 2 (|J v|^2 - v . J (J v)) for ||J - J^T||_F^2 and |J v|^2 for
 *  ||J||_F^2 (two Jacobian-vector products per probe, no transpose needed);
 *  probe k of row i is keyed by (ctx seed, @p stream, i, k). The SEs are
 *  those of the probe noise at the given rows (sample variance of the K
 *  probes per row; delta method for the ratio and the square roots), so the
 *  exact value lies within a few SE. An estimate of a square below 0 (near
 *  a symmetric J) reports 0. probes = 1 is SDFLOW_E_INVALID.
 *  Needs exact derivatives (gaussian, gmm, kernel, mlp; a callback model
 *  with a JVP), else SDFLOW_E_UNSUPPORTED; J = 0 at every row makes the
 *  ratio undefined: SDFLOW_E_NUMERIC. Thread safety: as for evaluation. */
SDFLOW_API sdflow_status sdflow_model_asymmetry(sdflow_model *m, const sdflow_process *p, size_t n,
                                                const double *x, const double *t, size_t probes, uint64_t stream,
                                                double out[4]);
/** Draws n exact samples of the data distribution (t = 0) of a gaussian or gmm
 *  model; row i keyed by (seed, stream, first_index + i). */
SDFLOW_API sdflow_status sdflow_model_sample(sdflow_model *m, uint64_t stream, uint64_t first_index,
                                             size_t n, double *out);

/* ---- neural (MLP) score model ---------------------------------------- */

/** MLP score model on R^d (docs/mlp.md): Fourier time features, hidden
 *  layers (SDFLOW_OPT_MLP_DEPTH x SDFLOW_OPT_MLP_WIDTH, activation
 *  SDFLOW_OPT_MLP_ACTIVATION, optional residual blocks) and a linear output
 *  of kind SDFLOW_OPT_MLP_OUTPUT (default epsilon; SDFLOW_MLP_ENERGY: scalar
 *  energy, score = -grad_x E). Architecture options are set with
 *  sdflow_model_set_int before the parameters exist; the parameters are
 *  created on first evaluation or parameter access, initialized like
 *  PyTorch's nn.Linear default (U(-1/sqrt(fan_in), 1/sqrt(fan_in))) from the
 *  ctx seed; later architecture changes fail with SDFLOW_E_STATE.
 *  Jacobian, divergence, JVP and Hutchinson forms are exact (forward-mode
 *  passes over all d directions at once). Results of a row are bit-identical
 *  for any batch split and SDFLOW_CTX_THREADS (docs/mlp.md, "Determinism").
 *  Thread safety: evaluation may run concurrently on one model; setting
 *  parameters or options must not overlap evaluation. */
SDFLOW_API sdflow_status sdflow_model_create_mlp(sdflow_ctx *ctx, size_t d, sdflow_model **out);
/** Number of trainable parameters (the flat vector: every tensor except
 *  the buffer "time_embed.freqs", in tensor order). MLP models only. */
SDFLOW_API sdflow_status sdflow_model_param_count(sdflow_model *m, size_t *count);
/** Number of named tensors (PyTorch state_dict entries). */
SDFLOW_API sdflow_status sdflow_model_param_tensors(sdflow_model *m, size_t *count);
/** Tensor @p index: name ("layers.0.weight", ...; valid while the model
 *  lives), rows and columns (cols = 0 for 1-D tensors). Outputs may be NULL. */
SDFLOW_API sdflow_status sdflow_model_param_info(sdflow_model *m, size_t index, const char **name, size_t *rows,
                                                 size_t *cols);
/** Copies tensor @p name (row-major, exactly @p count values) out / in.
 *  Values set must be finite. */
SDFLOW_API sdflow_status sdflow_model_get_param(sdflow_model *m, const char *name, size_t count, double *values);
SDFLOW_API sdflow_status sdflow_model_set_param(sdflow_model *m, const char *name, size_t count,
                                                const double *values);
/** All trainable parameters as one flat vector of sdflow_model_param_count values. */
SDFLOW_API sdflow_status sdflow_model_get_params(sdflow_model *m, size_t count, double *theta);
SDFLOW_API sdflow_status sdflow_model_set_params(sdflow_model *m, size_t count, const double *theta);
/** Reverse mode: grad (param_count values, overwritten) = d/dtheta of
 *  sum_i w_i . f(x_i, t_i), f the model's native output (the network output,
 *  or the score -grad_x E for an energy MLP); @p grad_x (n x d, may be NULL)
 *  gets d/dx of the same sum. */
SDFLOW_API sdflow_status sdflow_model_param_grad(sdflow_model *m, const sdflow_process *p, size_t n,
                                                 const double *x, const double *t, const double *w, double *grad,
                                                 double *grad_x);
/** Second order: grad = d/dtheta of sum_i a_i^T J(x_i, t_i) b_i, J the
 *  Jacobian of the native output (a, b: n x d). SDFLOW_E_UNSUPPORTED for an
 *  energy MLP (third order) and for ReLU (no second derivative). */
SDFLOW_API sdflow_status sdflow_model_param_grad_jac(sdflow_model *m, const sdflow_process *p, size_t n,
                                                     const double *x, const double *t, const double *a,
                                                     const double *b, double *grad);

/* ---- kernel (empirical) score model ---------------------------------- */

/** Kernel (empirical) model of the m x d sample set @p y (copied): under a
 *  process p its noised distribution is (1/m) sum_j N(alpha(t) y_j,
 *  sigma(t)^2 I); with p == NULL it is the Gaussian smoothing of the samples
 *  at sigma = t. Score (native output), log-density, analytic Jacobian
 *  alpha^2 Cov_w(y)/sigma^4 - I/sigma^2 and divergence are exact for that
 *  mixture. Sums over y are blocked (options SDFLOW_OPT_BLOCK_Q, default
 *  256, and SDFLOW_OPT_BLOCK_Y, default 4096, via sdflow_model_set_int) with
 *  an online log-sum-exp, so memory is O(block_q x block_y + block_q x d),
 *  never O(n x m); stable for sigma from 1e-3 to 1e3 times the data scale.
 *  Results are bit-identical for any SDFLOW_CTX_THREADS on one machine.
 *  Thread safety: evaluation may run concurrently on one model: the model
 *  caches its workspace (grown through the allocator's realloc hook) for one
 *  call at a time, and a call that finds it in use allocates its own for
 *  the call, so results never depend on concurrency. */
SDFLOW_API sdflow_status sdflow_model_create_kernel(sdflow_ctx *ctx, size_t m, size_t d, const double *y,
                                                    sdflow_model **out);

/** Shard API: partial sums of a kernel model whose samples are one shard of
 *  a larger set, at n queries x (n x d) and times t (n). With logits
 *  l_j = -|x - alpha y_j|^2 / (2 sigma^2) over the shard's samples it writes
 *  per query mx[i] = max_j l_j (-inf never occurs for a non-empty shard),
 *  s[i] = sum_j e^(l_j - mx[i]) and v[i*d + k] = sum_j e^(l_j - mx[i]) y_jk
 *  (data coordinates). Triples of shards combine with sdflow_kernel_merge()
 *  in any order and sdflow_kernel_finalize() turns them into the score, mean
 *  or log-density of the whole set (equal to the unsharded model up to
 *  rounding). For MPI: Allreduce(MAX) on mx, rescale s and v by
 *  e^(mx_r - mx) locally, Allreduce(SUM) on (s, v).
 *  Thread safety: as for evaluating the model. */
SDFLOW_API sdflow_status sdflow_model_kernel_partial(sdflow_model *m, const sdflow_process *p, size_t n,
                                                     const double *x, const double *t, double *mx, double *s,
                                                     double *v);
/** Exact merge of two partial triples, in place into (mx, s, v): per query
 *  mx = max(mx, mx_b), s = e^(mx - new) s + e^(mx_b - new) s_b, likewise v.
 *  A side with mx = -inf and s = 0 is empty and leaves the other unchanged.
 *  Associative and commutative up to rounding.
 *  Thread safety: safe on a shared ctx, except for the error message on failure. */
SDFLOW_API sdflow_status sdflow_kernel_merge(sdflow_ctx *ctx, size_t n, size_t d, double *mx, double *s, double *v,
                                             const double *mx_b, const double *s_b, const double *v_b);
/** Turns merged triples of a set of @p m_total samples into outputs at the
 *  queries x (n x d) and times t under process p (NULL: smoothing at
 *  sigma = t): @p mean (n x d) = v / s, the kernel posterior mean E[y | x];
 *  @p score (n x d) = (alpha mean - x) / sigma^2; @p logp (n) = mx + log s -
 *  log m_total - d/2 log(2 pi sigma^2). Any output may be NULL (x may be NULL
 *  when score is). Thread safety: safe on a shared ctx, except for the error
 *  message on failure. */
SDFLOW_API sdflow_status sdflow_kernel_finalize(sdflow_ctx *ctx, const sdflow_process *p, size_t n, size_t d,
                                                size_t m_total, const double *x, const double *t,
                                                const double *mx, const double *s, const double *v,
                                                double *score, double *mean, double *logp);
/** The exponential the kernel sums use: out[i] = exp(x[i]) within 2 ulp for
 *  x in [-708, 709], 0 below -708 (weights that small are below double
 *  resolution of any sum with a term of 1), exp(709) above 709. Vectorizable;
 *  exposed so tests and bindings can reproduce kernel weights exactly.
 *  @return SDFLOW_E_INVALID if x or out is NULL. Thread safety: safe. */
SDFLOW_API sdflow_status sdflow_kernel_exp(size_t n, const double *x, double *out);

SDFLOW_END_DECLS
#endif
