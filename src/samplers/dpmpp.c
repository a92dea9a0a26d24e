/* SPDX-License-Identifier: MIT */
/* DPM-Solver++ multistep samplers (Lu et al. 2022, data prediction): 2M and
 * 3M on the probability-flow ODE, and their SDE variants (Gonzalez et al.;
 * k-diffusion's sample_dpmpp_2m_sde, midpoint form, and
 * sample_dpmpp_3m_sde). Scaled state y = x / alpha, sigma~ = sigma / alpha,
 * lambda = -log sigma~, h = lambda_u - lambda_t, D_k the data predictions of
 * the previous steps, r_j = h_{k-j} / h:
 *   y_u = (s_u / s_t) e^{-eta h} y_t + (1 - e^{-(1 + eta) h}) D_k + correction
 *         + s_noise s_u sqrt(1 - e^{-2 eta h}) z.
 * 2M correction (1 - e^{-(1+eta) h}) (D_k - D_{k-1}) / (2 r_1); 3M the
 * phi_2 / phi_3 divided differences below (hh = (1 + eta) h,
 * phi_2 = 1 + expm1(-hh) / hh, phi_3 = phi_2 / hh - 1/2). Order at step k (0-based, N
 * steps): min(order, k + 1) (the history available), and -- the
 * lower-order-final rule -- at most N - k when N < 15, so the last step is
 * first order and the one before at most second order for every N < 15,
 * odd or even (DPM-Solver's default for few steps, where it stabilises the
 * final, stiffest steps; for N >= 15 full order keeps the proven global
 * order). A final sigma~ = 0 (t where sigma vanishes) gives y = D exactly:
 * no log(0), no 0 * inf. Each step costs one model evaluation: N NFE. */
#include <math.h>
#include "fewstep_internal.h"

#define TAG_DPMPP 0x64706d73ull /* "dpms" */
#define LOWER_ORDER_FINAL_BELOW 15

/* What distinguishes the four kinds: the order here, the noise by their
 * options (only the SDE variants have eta and s_noise). */
typedef struct dpmpp_param {
    int order;
} dpmpp_param;
static const dpmpp_param order2 = { 2 }, order3 = { 3 };

sdflow_status sdflow__dpmpp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow__fs w;
    sdflow_status st = sdflow__fs_open(&w, s, plan, n, 3);
    const sdflow__fs_opts *o = sdflow__fs_opts_of(s); /* NULL: 2M / 3M on the ODE */
    int order = ((const dpmpp_param *)s->ops->param)->order;
    double eta = o ? o->eta : 0;
    double *D = sdflow__fs_buf(&w, 0), *D1 = sdflow__fs_buf(&w, 1), *D2 = sdflow__fs_buf(&w, 2);
    double h1 = 0, h2 = 0; /* step sizes in lambda of the two previous steps */
    for (long k = 0; k < w.N && !st; k++) {
        sdflow__coef ct, cu;
        if ((st = sdflow__fs_step_begin(&w, x, k, D, &ct, &cu)))
            break;
        double st_ = ct.sigma / ct.alpha, su = cu.sigma / cu.alpha;
        long p = order < k + 1 ? order : k + 1;
        if (w.N < LOWER_ORDER_FINAL_BELOW && w.N - k < p)
            p = w.N - k;
        double h = log(st_) - log(su), eh = eta * h, hh = h + eh;
        double a = su > 0 ? su / st_ * exp(-eh) : 0, b = su > 0 ? -expm1(-hh) : 1;
        /* correction weights on (D - D1) and (D1 - D2) */
        double w1 = 0, w2 = 0;
        if (su > 0 && p >= 2) {
            double r0 = h1 / h;
            if (order == 2) {
                w1 = 0.5 * b / r0;
            } else {
                double phi2 = expm1(-hh) / hh + 1, phi3 = phi2 / hh - 0.5;
                if (p == 2) {
                    w1 = phi2 / r0;
                } else {
                    /* d1_0 = (D - D1) / r0, d1_1 = (D1 - D2) / r1 (~ h D' at the
                     * midpoints), d1 = d1_0 + (d1_0 - d1_1) r0 / q ~ h D',
                     * d2 = (d1_0 - d1_1) / q ~ h^2 D'' / 2, q = r0 + r1;
                     * y += phi2 d1 - 2 phi3 d2: the exponential integral of
                     * tau^2 D'' / 2 is -phi3 h^2 D'' (see docs/design.md on
                     * the factor 2) */
                    double r1 = h2 / h, q = r0 + r1;
                    double c0 = (phi2 * (1 + r0 / q) - 2 * phi3 / q) / r0, c1 = (phi2 * r0 / q - 2 * phi3 / q) / r1;
                    w1 = c0;
                    w2 = -c1;
                }
            }
        }
        double noise = su > 0 && eh > 0 ? o->s_noise * su * sqrt(-expm1(-2 * eh)) : 0;
        size_t d = w.d;
#pragma omp parallel for num_threads(w.nt) schedule(static)
        for (size_t i = 0; i < n; i++) {
            double *xi = x + i * d;
            const double *Di = D + i * d, *E1 = D1 + i * d, *E2 = D2 + i * d;
            const double *z = noise > 0 ? sdflow__fs_noise(&w, TAG_DPMPP, k, i) : NULL;
            for (size_t j = 0; j < d; j++) {
                double y = a * (xi[j] / ct.alpha) + b * Di[j];
                if (w1 != 0)
                    y += w1 * (Di[j] - E1[j]);
                if (w2 != 0)
                    y += w2 * (E1[j] - E2[j]);
                if (z)
                    y += noise * z[j];
                xi[j] = cu.alpha * y;
            }
        }
        double *tmp = D2; /* history: D2 <- D1 <- D */
        D2 = D1;
        D1 = D;
        D = tmp;
        h2 = h1;
        h1 = h;
        st = sdflow__fs_step_done(&w, k);
    }
    st = sdflow__fs_finish(&w, x, st);
    sdflow__fs_close(&w);
    return st;
}

const sdflow__sampler_kind_ops sdflow__dpmpp_2m_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_DPMPP_2M, "dpmpp_2m", sdflow__dpmpp_run, NULL, 0, &order2);

const sdflow__sampler_kind_ops sdflow__dpmpp_3m_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_DPMPP_3M, "dpmpp_3m", sdflow__dpmpp_run, NULL, 0, &order3);

const sdflow__sampler_kind_ops sdflow__dpmpp_2m_sde_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_DPMPP_2M_SDE, "dpmpp_2m_sde", sdflow__dpmpp_run, &sdflow__fs_store,
                                 sizeof(sdflow__fs_opts), &order2);

const sdflow__sampler_kind_ops sdflow__dpmpp_3m_sde_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_DPMPP_3M_SDE, "dpmpp_3m_sde", sdflow__dpmpp_run, &sdflow__fs_store,
                                 sizeof(sdflow__fs_opts), &order3);
