/* SPDX-License-Identifier: MIT */
/* Internal: the model handle and the operations each model kind provides.
 * Every kind implements eval in its own parameterization ("native"); the
 * generic layer in model.c validates inputs, converts outputs through the
 * process and checks results, so kinds never repeat that work. */
#ifndef SDFLOW_MODEL_INTERNAL_H
#define SDFLOW_MODEL_INTERNAL_H

#include "process_internal.h"

/* For hot row kernels specialized on a constant (the dimension d) by their
 * callers: forced inlining makes the compiler emit one unrolled copy each. */
#if defined(__GNUC__)
#  define SDFLOW__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#  define SDFLOW__ALWAYS_INLINE inline
#endif

typedef struct sdflow__model_ops {
    /* n x d native outputs at validated inputs. Required. */
    sdflow_status (*eval)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                          double *out);
    /* log p_t at n points; NULL: unsupported. */
    sdflow_status (*logpdf)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                            double *logp);
    /* n x d x d Jacobian of the native output; NULL: unsupported. */
    sdflow_status (*jacobian)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                              const double *t, double *jac);
    /* Trace of the native Jacobian; NULL: derived from jacobian. */
    sdflow_status (*divergence)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                const double *t, double *div);
    /* Exact data samples; NULL: unsupported. */
    sdflow_status (*sample)(sdflow_model *m, uint64_t stream, uint64_t first_index, size_t n, double *out);
    /* Frees impl. */
    void (*destroy)(sdflow_model *m);
    /* n x d Jacobian-vector products J_native(x_i, t_i) v_i; NULL: none
     * (derivatives.c then uses the Jacobian or central differences). */
    sdflow_status (*jvp)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                         const double *v, double *jv);
    /* Native output and the trace of its Jacobian in one pass (the PF-ODE
     * likelihood needs both at every point); NULL: eval, then divergence. */
    sdflow_status (*eval_div)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                              double *out, double *div);
    /* Native output (skipped when out is NULL) and the quadratic forms
     * q[i K + k] = v_ik^T J_native(x_i, t_i) v_ik for K directions per row
     * (v: n x K x d) in one pass: Hutchinson probes without forming J v. */
    sdflow_status (*eval_quadform)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                   const double *t, size_t K, const double *v, double *out, double *q);
    /* The kind's options (int, double and u64) over the option store: the
     * slots are fields of impl, the hooks get the model as owner. NULL: the
     * kind has none. */
    const sdflow__opt_store *options;
} sdflow__model_ops;

struct sdflow_model {
    sdflow_ctx *ctx;
    sdflow_model_kind kind;
    size_t d;
    sdflow_output native; /* parameterization eval produces */
    const sdflow__model_ops *ops;
    void *impl;
};

/* Allocates the handle; impl is owned by the handle from then on (ops->destroy). */
sdflow_status sdflow__model_new(sdflow_ctx *ctx, sdflow_model_kind kind, size_t d, sdflow_output native,
                                const sdflow__model_ops *ops, void *impl, sdflow_model **out);
/* Shared argument checks of every evaluation entry point: handle, n, sizes,
 * finite x, times in the process's range, output pointer. */
sdflow_status sdflow__model_check_eval_args(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                           const double *t, const void *out, const char *out_name);
/* The evaluation of internal callers, whose inputs were validated once at
 * their API edge (the dispatcher) and whose solvers check their own states:
 * no scan of x or t, the conversion to kind, and one scan of the output
 * that reports a NaN/Inf as SDFLOW_E_NUMERIC "model output is NaN/Inf for
 * sample rows[i]" (rows: the caller's sample of each batch row, NULL: i). */
sdflow_status sdflow__model_eval_rows(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                      const double *t, sdflow_output kind, double *out, const size_t *rows);
/* The affine map (out = a.a * native + a.b * x) from output kind from to
 * kind to at time t; SDFLOW_E_NUMERIC with a message where it is undefined. */
sdflow_status sdflow__model_conversion_at(sdflow_model *m, const sdflow_process *p, double t, sdflow_output from,
                                         sdflow_output to, sdflow__affine *a);

/* The data a gaussian or gmm model was created from (k = 1 for gaussian):
 * weights (k), means (k x d), covariances (k x d x d), exactly as given.
 * Returns 0 for other kinds. */
int sdflow__gmm_source(const sdflow_model *m, size_t *k, const double **weights, const double **means,
                       const double **covs);

/* Symmetric eigendecomposition by cyclic Jacobi: a (d x d, destroyed) ->
 * eigenvalues w, eigenvectors as columns of v (row-major d x d). */
void sdflow__sym_eigen(size_t d, double *a, double *w, double *v);
/* Cholesky a = L L^T in place (lower triangle); returns the failing pivot
 * index + 1, or 0 on success. */
size_t sdflow__cholesky(size_t d, double *a);

/* ---- derivatives of the score (derivatives.c) ---------------------------
 * method is an sdflow_divergence value: SDFLOW_DIV_AUTO uses the model's
 * JVP op, else its Jacobian, else central differences; SDFLOW_DIV_ANALYTIC
 * fails with SDFLOW_E_UNSUPPORTED when the model has neither;
 * SDFLOW_DIV_FINITE_DIFF always differences the score. Central differences
 * use the step h = cbrt(DBL_EPSILON) (1 + |x|_inf) / |v|_inf along v (per
 * axis for divergences: h_j = cbrt(DBL_EPSILON) (1 + |x_j|)); their error is
 * h^2/6 |third derivative| + DBL_EPSILON |score| / h, about 1e-10 relative
 * for a score that varies on the unit scale. */

/* 1 when the model gives exact score derivatives (JVP, Jacobian or divergence op). */
int sdflow__model_has_derivatives(const sdflow_model *m);
/* Rows per block so that a derivative's temporaries stay near 2^20 doubles. */
size_t sdflow__deriv_block_rows(size_t n, size_t per_row);
/* The points of nb rows from i0 for K directions per row (v: n x K x d):
 * times tr[r] = tr[nr + r] = t_i (nr = nb K); with fd, xr[r] = x_i + h_r v_r
 * and xr[nr + r] = x_i - h_r v_r with the step above in hs[r], else xr[r] = x_i. */
void sdflow__deriv_points(size_t d, size_t K, const double *x, const double *t, const double *v, size_t i0, size_t nb,
                          int fd, double *xr, double *tr, double *hs);
/* q[i K + k] = v_ik^T J(x_i, t_i) v_ik for the Jacobian J of the score and
 * the K directions v (n x K x d) of each row. */
sdflow_status sdflow__model_score_quadform(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                           const double *t, size_t K, const double *v, int method, double *q);
/* Score and the quadratic forms above in one model pass where the model has
 * an eval_quadform op (exact methods), else the model's score and the call
 * above. Internal callers only (inputs validated at their API edge, as
 * sdflow__model_eval_rows): x and t are not scanned; a NaN/Inf output names
 * the caller's sample rows[i] (rows NULL: i). */
sdflow_status sdflow__model_score_and_quadform(sdflow_model *m, const sdflow_process *p, size_t n,
                                               const double *x, const double *t, size_t K, const double *v,
                                               int method, double *score, double *q, const size_t *rows);
/* Divergence of the score: sdflow_model_divergence for exact methods, 2 d
 * score evaluations per row for central differences. */
sdflow_status sdflow__model_score_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                             const double *t, int method, double *div);
/* Score and its divergence at n points: one pass through the model's
 * eval_div op when it has one (exact methods), else the two calls above.
 * Internal callers only, rows as sdflow__model_score_and_quadform. */
sdflow_status sdflow__model_score_and_divergence(sdflow_model *m, const sdflow_process *p, size_t n,
                                                 const double *x, const double *t, int method, double *score,
                                                 double *div, const size_t *rows);

/* ---- velocity fields (velocity.c) ---------------------------------------
 * The SDFLOW_OUT_VELOCITY output of a model and the derivatives of that
 * field, for interpolant flows (and any velocity-native model): a model whose
 * native output is VELOCITY is used as is -- valid at every t of the process,
 * including the ends t = 0, 1 of an interpolant -- with its own JVP op,
 * Jacobian or eval_div/eval_quadform ops (SDFLOW_DIV_AUTO / ANALYTIC), or
 * central differences of the velocity (FINITE_DIFF, or AUTO without exact
 * derivatives). Other models go through the score: v = f x - g^2/2 s and
 * div v = d f - g^2/2 div s (SDFLOW_E_NUMERIC where f or g^2 is infinite,
 * e.g. t = 0 of an interpolant). */
sdflow_status sdflow__model_velocity_and_divergence(sdflow_model *m, const sdflow_process *p, size_t n,
                                                    const double *x, const double *t, int method, double *v,
                                                    double *div);
/* Velocity and the quadratic forms q[i K + k] = u_ik^T J_v u_ik of K probe
 * directions per row (u: n x K x d). */
sdflow_status sdflow__model_velocity_and_quadform(sdflow_model *m, const sdflow_process *p, size_t n,
                                                  const double *x, const double *t, size_t K, const double *u,
                                                  int method, double *v, double *q);

#endif
