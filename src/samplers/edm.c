/* SPDX-License-Identifier: MIT */
/* EDM Heun sampler (Karras et al. 2022, Algorithm 2; k-diffusion's
 * sample_heun) for any process: in the scaled state y = x / alpha the
 * PF-ODE is dy / dsigma~ = (y - D) / sigma~ with sigma~ = sigma / alpha,
 * whatever alpha(t) is. Step k from t to u (sigma~ s_t to s_u):
 *   churn: gamma = min(S_churn / N, sqrt 2 - 1) where S_tmin <= s_t <= S_tmax,
 *          s^ = s_t (1 + gamma) (at most sigma~(T)), t^ = sigma~^-1(s^),
 *          y += S_noise sqrt(s^2 - s_t^2) z;
 *   Euler  y' = y + (s_u - s^) d,  d = (y - D(y, t^)) / s^;
 *   Heun   y  = y + (s_u - s^) (d + d') / 2, d' = (y' - D(y', u)) / s_u,
 *          skipped when s_u = 0 (Euler there: d' divides by zero) and, the
 *          lower-order-final rule of the DPM-Solver++ samplers, on the
 *          last step when N < 15: with s_u << s^ the Heun slope
 *          (y' - D') / s_u amplifies the predictor's error by s^ / s_u,
 *          which blew up 1..4-step runs (k-diffusion ends on sigma = 0 and
 *          takes Euler there for the same reason).
 * Two model evaluations per step (2N NFE; 2N - 1 when N < 15). Without
 * churn it is deterministic and of order 2. */
#include <math.h>
#include <string.h>
#include "fewstep_internal.h"

#define TAG_CHURN 0x63687572ull /* "chur" */
#define LOWER_ORDER_FINAL_BELOW 15 /* as in dpmpp.c */

/* xe = alpha y for all rows (the model's input at the evaluation time). */
static void unscale(const sdflow__fs *w, double alpha, const double *y, double *xe)
{
    size_t len = w->n * w->d;
#pragma omp parallel for num_threads(w->nt) schedule(static)
    for (size_t i = 0; i < len; i++)
        xe[i] = alpha * y[i];
}

sdflow_status sdflow__edm_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow__fs w;
    const sdflow__fs_opts *o = sdflow__fs_opts_of(s);
    sdflow_status st = sdflow__fs_open(&w, s, plan, n, 5);
    double *y = sdflow__fs_buf(&w, 0), *D = sdflow__fs_buf(&w, 1), *xe = sdflow__fs_buf(&w, 2);
    double *yp = sdflow__fs_buf(&w, 3), *D2 = sdflow__fs_buf(&w, 4);
    const sdflow_process *p = s->proc;
    size_t d = w.d, len = n * d;
    double T = p->t_max, sT = sdflow__process_sigma_ratio(p, T);
    double gmax = fmin(o->s_churn / (double)w.N, sqrt(2.0) - 1);
    if (!st) { /* y = x / alpha(t_start) */
        sdflow__coef c0;
        sdflow__process_coef(p, w.grid[0], &c0);
        for (size_t i = 0; i < len; i++)
            y[i] = x[i] / c0.alpha;
    }
    for (long k = 0; k < w.N && !st; k++) {
        double t = w.grid[k], u = w.grid[k + 1];
        sdflow__coef ct, cu;
        sdflow__process_coef(p, t, &ct);
        sdflow__process_coef(p, u, &cu);
        double sc = ct.sigma / ct.alpha, su = cu.sigma / cu.alpha, th = t, sh = sc, ah = ct.alpha;
        double gamma = o->s_tmin <= sc && sc <= o->s_tmax ? gmax : 0;
        if (gamma > 0 && sc < sT) {
            th = sdflow__process_time_of_sigma_ratio(p, fmin(sc * (1 + gamma), sT));
            th = th < t ? t : th > T ? T : th;
            sdflow__coef ch;
            sdflow__process_coef(p, th, &ch);
            sh = ch.sigma / ch.alpha; /* the level the model sees at th */
            ah = ch.alpha;
            double add = o->s_noise * sqrt(fmax(0, sh * sh - sc * sc));
#pragma omp parallel for num_threads(w.nt) schedule(static)
            for (size_t i = 0; i < n; i++) {
                const double *z = sdflow__fs_noise(&w, TAG_CHURN, k, i);
                for (size_t j = 0; j < d; j++)
                    y[i * d + j] += add * z[j];
            }
        }
        unscale(&w, ah, y, xe);
        if ((st = sdflow__fs_denoised(&w, xe, th, k, D)))
            break;
        double dt = su - sh;
        /* Euler predictor y' = y + dt d, d = (y - D) / s^ (kept in D) */
#pragma omp parallel for num_threads(w.nt) schedule(static)
        for (size_t i = 0; i < len; i++) {
            D[i] = (y[i] - D[i]) / sh;
            yp[i] = y[i] + dt * D[i];
        }
        if (su > 0 && !(k == w.N - 1 && w.N < LOWER_ORDER_FINAL_BELOW)) {
            unscale(&w, cu.alpha, yp, xe);
            if ((st = sdflow__fs_denoised(&w, xe, u, k, D2)))
                break;
#pragma omp parallel for num_threads(w.nt) schedule(static)
            for (size_t i = 0; i < len; i++)
                y[i] += 0.5 * dt * (D[i] + (yp[i] - D2[i]) / su);
        } else {
            memcpy(y, yp, len * sizeof *y);
        }
        if (!st)
            st = sdflow__fs_step_done(&w, k);
    }
    if (!st) {
        sdflow__coef cn;
        sdflow__process_coef(p, w.grid[w.N], &cn);
        for (size_t i = 0; i < len; i++)
            x[i] = cn.alpha * y[i];
    }
    st = sdflow__fs_finish(&w, x, st);
    sdflow__fs_close(&w);
    return st;
}

const sdflow__sampler_kind_ops sdflow__edm_heun_kind =
    SDFLOW__SCORE_GRID_KIND_OPTS(SDFLOW_SAMPLER_EDM_HEUN, "edm_heun", sdflow__edm_run, &sdflow__fs_store,
                                 sizeof(sdflow__fs_opts), NULL);
