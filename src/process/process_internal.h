/* SPDX-License-Identifier: MIT */
/* Internal: process body and coefficient helpers shared by models, samplers
 * and density estimators. */
#ifndef SDFLOW_PROCESS_INTERNAL_H
#define SDFLOW_PROCESS_INTERNAL_H

#include "ctx_internal.h"

struct sdflow_process {
    sdflow_ctx *ctx;
    sdflow_process_kind kind;
    /* options (the store in process.c) */
    double beta_min, beta_max;
    double sigma_min, sigma_max;
    double cosine_s;
    double t_max, t_eps;
    long ve_exact_std;
    double interp_eps; /* interpolant kinds: gamma(t)^2 = interp_eps t (1 - t) */
    int t_max_set; /* user chose T: the cosine default no longer follows cosine_s */
};

/* Coefficients at one time: x_t = alpha x0 + sigma eps, dx = f x dt + g dW. */
typedef struct sdflow__coef {
    double alpha, sigma, f, g2;
} sdflow__coef;

/* Interpolant coefficients at one time (interpolant kinds only):
 * x_t = a x0 + b x1 + gamma z, derivatives da, db, dgamma (0 where gamma' is
 * infinite: t = 0, 1). */
typedef struct sdflow__interp {
    double a, b, gamma, da, db, dgamma;
} sdflow__interp;
int sdflow__process_is_interp(const sdflow_process *p);
void sdflow__process_interp(const sdflow_process *p, double t, sdflow__interp *c);

/* p == NULL is pure Gaussian smoothing: alpha = 1, sigma = t, f = 0, g2 = 2t. */
void sdflow__process_coef(const sdflow_process *p, double t, sdflow__coef *c);
/* Standard deviation of the prior N(0, s^2 I) at T. */
double sdflow__process_prior_std(const sdflow_process *p);
/* Valid evaluation range; for p == NULL: (0, inf). */
void sdflow__process_range(const sdflow_process *p, double *lo, double *hi);
/* Checks n times against the valid range, naming the bad entry. */
sdflow_status sdflow__check_times(sdflow_ctx *ctx, const sdflow_process *p, size_t n, const double *t,
                                  const char *name);

/* Log-SNR lambda(t) = log(alpha^2 / sigma^2), decreasing in t for every
 * process (schedule.c). */
double sdflow__process_log_snr(const sdflow_process *p, double t);
/* Time of log-SNR lambda: closed-form inverse of each process's schedule,
 * clamped to [t_eps, T]. */
double sdflow__process_time_of_log_snr(const sdflow_process *p, double lam);
/* Fills grid[0..steps] with the times of a sdflow_time_grid kind from t_from
 * to t_to (either direction): grid[0] = t_from, grid[steps] = t_to exactly.
 * Quadratic and log-SNR grids are dense at the smaller time. */
void sdflow__process_time_grid(const sdflow_process *p, int kind, long steps, double t_from, double t_to,
                               double *grid);
/* sigma~(t) = sigma / alpha, strictly increasing in t, and its inverse
 * (clamped to [t_eps, T]). */
double sdflow__process_sigma_ratio(const sdflow_process *p, double t);
double sdflow__process_time_of_sigma_ratio(const sdflow_process *p, double ratio);
/* Karras rho-grid grid[0..steps] from t = hi down to t = lo: uniform in
 * sigma~^(1/rho), mapped to t through the inverse of sigma~. */
void sdflow__process_karras_grid(const sdflow_process *p, long steps, double hi, double lo, double rho,
                                 double *grid);

/* Every conversion between parameterizations is affine in (value, x):
 * to_score:   score = a * value + b * x
 * from_score: value = a * score + b * x
 * Returns 0 where the conversion divides by ~0 (e.g. x0 at alpha = 0). */
typedef struct sdflow__affine {
    double a, b;
} sdflow__affine;
int sdflow__to_score(sdflow_output kind, const sdflow__coef *c, sdflow__affine *m);
int sdflow__from_score(sdflow_output kind, const sdflow__coef *c, sdflow__affine *m);
/* Composition: out(kind to) = a * in(kind from) + b * x. */
int sdflow__conversion(sdflow_output from, sdflow_output to, const sdflow__coef *c, sdflow__affine *m);

/* The probability-flow velocity of a score, the one place it is formed
 * (PF-ODE sampler drift, PF-ODE likelihood, velocity fields): for each of
 * n rows at time t[i],
 *   v[i ldv + j]     = f x[i d + j] - g^2/2 s[i d + j]     (j < d)
 *   v[i ldv + d + k] = d f          - g^2/2 ds[i L + k]    (k < L, L may be 0)
 * i.e. v = f x - g^2/2 s and div v = d f - g^2/2 div s (or a probe's
 * quadratic form of the score). The coefficients are computed once per run
 * of equal times (fixed-step solvers evaluate all rows at one time). v may
 * be s when ldv == d. Returns the first row whose outputs are not all
 * finite, or n (the check is fused into the same pass). */
size_t sdflow__process_velocity_of_score(const sdflow_process *p, size_t n, size_t d, const double *t,
                                         const double *x, const double *s, size_t L, const double *ds, double *v,
                                         size_t ldv);

#endif
