/* SPDX-License-Identifier: MIT */
/* The noise-to-signal ratio sigma~(t) = sigma(t) / alpha(t) of a process, its
 * inverse, and the Karras et al. (2022) rho-grid built on them. sigma~ is
 * the noise level of the scaled state x / alpha (EDM's sigma, k-diffusion's
 * sigmas) and log sigma~ = -lambda / 2 with lambda the log-SNR; every
 * process has it strictly increasing in t. */
#include <math.h>
#include "process_internal.h"

double sdflow__process_sigma_ratio(const sdflow_process *p, double t)
{
    sdflow__coef c;
    sdflow__process_coef(p, t, &c);
    return c.sigma / c.alpha;
}

double sdflow__process_t_of_ratio(const sdflow_process *p, double ratio, double lo, double hi)
{
    /* bisection on log sigma~ (monotone; no closed form is needed, and one
     * code path serves VP, VP-cosine, sub-VP and VE alike) */
    double target = log(ratio), a = lo, b = hi;
    if (!(target > log(sdflow__process_sigma_ratio(p, lo))))
        return lo;
    if (!(target < log(sdflow__process_sigma_ratio(p, hi))))
        return hi;
    for (int it = 0; it < 200 && b - a > 4e-16 * b; it++) {
        double mid = 0.5 * (a + b);
        if (log(sdflow__process_sigma_ratio(p, mid)) < target)
            a = mid;
        else
            b = mid;
    }
    return 0.5 * (a + b);
}

void sdflow__process_karras_grid(const sdflow_process *p, long steps, double hi, double lo, double rho,
                                 double *grid)
{
    /* sigma~_k = (smax^(1/rho) + k/N (smin^(1/rho) - smax^(1/rho)))^rho,
     * k = 0..N, ends exactly at the given times (k-diffusion's
     * get_sigmas_karras without the appended 0: the grid ends at t_min) */
    double smax = pow(sdflow__process_sigma_ratio(p, hi), 1 / rho);
    double smin = pow(sdflow__process_sigma_ratio(p, lo), 1 / rho);
    grid[0] = hi;
    grid[steps] = lo;
    for (long k = 1; k < steps; k++) {
        double r = pow(smax + (double)k / (double)steps * (smin - smax), rho);
        grid[k] = sdflow__process_t_of_ratio(p, r, lo, hi);
    }
}
