/* SPDX-License-Identifier: MIT */
/* Process time maths shared by samplers and density estimators: log-SNR,
 * its inverse and the samplers' time grids (the only place they live). */
#include <math.h>
#include "process_internal.h"

#define HALF_PI 1.57079632679489661923

double sdflow__process_log_snr(const sdflow_process *p, double t)
{
    sdflow__coef c;
    sdflow__process_coef(p, t, &c);
    return 2.0 * (log(c.alpha) - log(c.sigma));
}

/* log(1 + e^z) without overflow. */
static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

double sdflow__process_time_of_log_snr(const sdflow_process *p, double lam)
{
    double t = p->t_max;
    switch (p->kind) {
    case SDFLOW_PROCESS_VP:
    case SDFLOW_PROCESS_SUBVP: {
        double B; /* B(t) = int_0^t beta */
        if (p->kind == SDFLOW_PROCESS_VP) {
            B = softplus(-lam); /* e^-B = alpha^2 = sigmoid(lambda) */
        } else {
            /* a = e^-B solves e^lambda (1 - a)^2 = a (alpha^2 = a, sigma = 1 - a) */
            double el = exp(lam), r = sqrt(4.0 * el + 1.0), q = 2.0 * el + 1.0 + r;
            B = lam < 0 ? -log(2.0 * el / q) : -log1p(-(1.0 + r) / q);
        }
        double b0 = p->beta_min, db = p->beta_max - p->beta_min;
        t = 2.0 * B / (b0 + sqrt(b0 * b0 + 2.0 * db * B)); /* root of b0 t + db t^2 / 2 = B */
        break;
    }
    case SDFLOW_PROCESS_VP_COSINE: {
        /* cos th = cos th0 alpha with alpha^2 = sigmoid(lambda). acos of a
         * number near 1 and (1 + s) th / (pi/2) - s both cancel at small t
         * (8e-10 relative at t_eps); instead, with
         *   D = sin^2 th - sin^2 th0 = cos^2 th0 (1 - alpha^2) = cos^2 th0 sigmoid(-lambda),
         * th = atan2(sqrt(sin^2 th0 + D), cos th0 alpha) and, near th0,
         * th - th0 = asin(D / sin(th + th0)) (sin(a - b) sin(a + b) = sin^2 a - sin^2 b) */
        double s = p->cosine_s, th0 = s / (1 + s) * HALF_PI, c0 = cos(th0), s0 = sin(th0);
        double a2 = 1.0 / (1.0 + exp(-lam)), D = c0 * c0 / (1.0 + exp(lam));
        double th = atan2(sqrt(s0 * s0 + D), c0 * sqrt(a2));
        double dth = th > 2 * th0 ? th - th0 : asin(D / sin(th + th0));
        t = dth * (1 + s) / HALF_PI;
        break;
    }
    case SDFLOW_PROCESS_VE: {
        double lr = log(p->sigma_max / p->sigma_min); /* sigma = e^-lambda/2 (alpha = 1) */
        if (p->ve_exact_std)
            t = 0.5 * log1p(exp(-lam) / (p->sigma_min * p->sigma_min)) / lr;
        else
            t = (-0.5 * lam - log(p->sigma_min)) / lr;
        break;
    }
    case SDFLOW_PROCESS_INTERP_LINEAR:
    case SDFLOW_PROCESS_INTERP_TRIG:
        break; /* diffusion samplers refuse interpolant processes (their log-SNR increases in t) */
    }
    return t < p->t_eps ? p->t_eps : t > p->t_max ? p->t_max : t;
}

void sdflow__process_time_grid(const sdflow_process *p, int kind, long steps, double t_from, double t_to,
                               double *grid)
{
    double hi = fmax(t_from, t_to), lo = fmin(t_from, t_to);
    double l_hi = 0, l_lo = 0;
    if (kind == SDFLOW_GRID_LOGSNR) {
        l_hi = sdflow__process_log_snr(p, hi);
        l_lo = sdflow__process_log_snr(p, lo);
    }
    /* built from hi down to lo, reversed below when t_from < t_to */
    for (long k = 0; k <= steps; k++) {
        double u = (double)k / (double)steps, t;
        if (kind == SDFLOW_GRID_QUADRATIC) {
            t = lo + (hi - lo) * (1 - u) * (1 - u);
        } else if (kind == SDFLOW_GRID_LOGSNR && l_hi < l_lo) {
            /* the closed-form inverse of each process's log-SNR (it replaced
             * a 200-step bisection: docs/design.md, "Log-SNR grids"), kept
             * inside [lo, hi] where rounding would step past an end */
            t = sdflow__process_time_of_log_snr(p, l_hi + u * (l_lo - l_hi));
            t = t < lo ? lo : t > hi ? hi : t;
        } else {
            t = hi - u * (hi - lo);
        }
        grid[k] = k == 0 ? hi : k == steps ? lo : t;
    }
    if (t_from < t_to)
        for (long k = 0; k < steps - k; k++) {
            double tmp = grid[k];
            grid[k] = grid[steps - k];
            grid[steps - k] = tmp;
        }
}

/* sigma~ = sigma / alpha: the noise level of the scaled state x / alpha
 * (EDM's sigma, k-diffusion's sigmas), log sigma~ = -lambda / 2, strictly
 * increasing in t for every process. */
double sdflow__process_sigma_ratio(const sdflow_process *p, double t)
{
    sdflow__coef c;
    sdflow__process_coef(p, t, &c);
    return c.sigma / c.alpha;
}

double sdflow__process_time_of_sigma_ratio(const sdflow_process *p, double ratio)
{
    return sdflow__process_time_of_log_snr(p, -2.0 * log(ratio));
}

void sdflow__process_karras_grid(const sdflow_process *p, long steps, double hi, double lo, double rho,
                                 double *grid)
{
    /* sigma~_k = (smax^(1/rho) + k/N (smin^(1/rho) - smax^(1/rho)))^rho,
     * k = 0..N, ends exactly at the given times (k-diffusion's
     * get_sigmas_karras without the appended 0: the grid ends at t_min);
     * t_k through the closed-form inverse of the log-SNR */
    double smax = pow(sdflow__process_sigma_ratio(p, hi), 1 / rho);
    double smin = pow(sdflow__process_sigma_ratio(p, lo), 1 / rho);
    grid[0] = hi;
    grid[steps] = lo;
    for (long k = 1; k < steps; k++) {
        double t = sdflow__process_time_of_sigma_ratio(p, pow(smax + (double)k / (double)steps * (smin - smax), rho));
        grid[k] = t < lo ? lo : t > hi ? hi : t;
    }
}
