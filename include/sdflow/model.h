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
 * Thread safety: evaluation functions do not modify the model, except for
 * models with internal workspaces (kernel), which are documented as not safe
 * to evaluate concurrently. Distinct models may be used in parallel.
 */
#ifndef SDFLOW_MODEL_H
#define SDFLOW_MODEL_H

#include "process.h"

SDFLOW_BEGIN_DECLS

typedef struct sdflow_model sdflow_model;

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

/** Model options (kernel: SDFLOW_OPT_BLOCK_Q, SDFLOW_OPT_BLOCK_Y). */
SDFLOW_API sdflow_status sdflow_model_set_int(sdflow_model *m, sdflow_option key, long value);
SDFLOW_API sdflow_status sdflow_model_get_int(const sdflow_model *m, sdflow_option key, long *value);

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
/** Draws n exact samples of the data distribution (t = 0) of a gaussian or gmm
 *  model; row i keyed by (seed, stream, first_index + i). */
SDFLOW_API sdflow_status sdflow_model_sample(sdflow_model *m, uint64_t stream, uint64_t first_index,
                                             size_t n, double *out);

/* ---- kernel (empirical) score model ---------------------------------- */
/* (declarations for sdflow_model_create_kernel and its shard API follow) */

SDFLOW_END_DECLS
#endif
