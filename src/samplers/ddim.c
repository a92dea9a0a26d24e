/* SPDX-License-Identifier: MIT */
/* DDIM (Song, Meng & Ermon 2021) for any process, written in the scaled
 * state y = x / alpha with noise level sigma~ = sigma / alpha (so VP, sub-VP,
 * cosine and VE share one update). From t to u:
 *   y_u = D + (s_down / s_t) (y_t - D) + s_noise s_up z,
 *   s_up = min(s_u, eta s_u sqrt(1 - s_u^2 / s_t^2)),  s_down = sqrt(s_u^2 - s_up^2)
 * (k-diffusion's get_ancestral_step). For VP this s_up is exactly DDIM's
 * sigma_t(eta) / alpha; eta = 0 is the deterministic DDIM (the first-order
 * DPM-Solver++ step, order 1 on the PF-ODE), eta = 1 the DDPM ancestral
 * sampler. The s_u = 0 end gives y_u = D without a log or a division by
 * zero. */
#include <math.h>
#include "fewstep_internal.h"

#define TAG_DDIM 0x6464696dull /* "ddim" */

sdflow_status sdflow__ddim_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow__fs w;
    const sdflow__fs_opts *o = sdflow__fs_opts_of(s);
    sdflow_status st = sdflow__fs_open(&w, s, plan, n, 1);
    double *D = w.buf;
    for (long k = 0; k < w.N && !st; k++) {
        sdflow__coef ct, cu;
        if ((st = sdflow__fs_step_begin(&w, x, k, D, &ct, &cu)))
            break;
        double st_ = ct.sigma / ct.alpha, su = cu.sigma / cu.alpha;
        double up = o->eta > 0 ? fmin(su, o->eta * su * sqrt(fmax(0, 1 - (su / st_) * (su / st_)))) : 0;
        double keep = sqrt(fmax(0, su * su - up * up)) / st_, noise = o->s_noise * up;
        size_t d = w.d;
#pragma omp parallel for num_threads(w.nt) schedule(static)
        for (size_t i = 0; i < n; i++) {
            double *xi = x + i * d;
            const double *Di = D + i * d, *z = up > 0 ? sdflow__fs_noise(&w, TAG_DDIM, k, i) : NULL;
            for (size_t j = 0; j < d; j++) {
                double y = Di[j] + keep * (xi[j] / ct.alpha - Di[j]);
                xi[j] = cu.alpha * (z ? y + noise * z[j] : y);
            }
        }
        st = sdflow__fs_step_done(&w, k);
    }
    st = sdflow__fs_finish(&w, x, st);
    sdflow__fs_close(&w);
    return st;
}

const sdflow__sampler_kind_ops sdflow__ddim_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_DDIM, "ddim", sdflow__ddim_run, &sdflow__fs_store,
                                 sizeof(sdflow__fs_opts), NULL);
