/* SPDX-License-Identifier: MIT */
/* The stochastic-interpolant sampler (algorithms.md §8; Albergo, Boffi &
 * Vanden-Eijnden 2023): t = 0 is the base, t = 1 the data. The ODE
 * dx/dt = v(t, x) runs with the solvers of src/solvers/ in either
 * direction; the SDE variant (interp_diffusion eps_s > 0) runs
 * Euler-Maruyama on
 *   forward  (t up):   dX = (v + eps_s s) dt + sqrt(2 eps_s) dW
 *   backward (t down): dX = (v - eps_s s) dt + sqrt(2 eps_s) dW (reversed time)
 * which keeps the interpolant's marginals rho_t for any eps_s >= 0 (their
 * Fokker-Planck equations reduce to the transport equation of v), with the
 * score s = -eta / gamma from the denoiser eta = E[z | x_t]. */
#include <math.h>
#include <string.h>
#include "ode_internal.h"
#include "sampler_internal.h"

#define TAG_SDE 0x69736465ull /* "isde" */

/* The interpolant's own options (s->priv): base (t = 0) to data (t = 1). */
typedef struct interp_opts {
    double t0, t1;    /* run times */
    double diffusion; /* eps_s of the SDE variant; 0: the ODE */
    long kinetic;     /* also integrate the kinetic energy */
} interp_opts;

#define K_INT SDFLOW__KIND_BIT(SDFLOW_SAMPLER_INTERPOLANT)
#define SLOT(key, field, def) SDFLOW__PRIV_SLOT(interp_opts, key, K_INT, field, def)
static const sdflow__opt_slot interp_slots[] = {
    SLOT(SDFLOW_OPT_INTERP_T0, t0, 0),
    SLOT(SDFLOW_OPT_INTERP_T1, t1, 1.0),
    SLOT(SDFLOW_OPT_INTERP_DIFFUSION, diffusion, 0),
    SLOT(SDFLOW_OPT_INTERP_KINETIC, kinetic, 0),
};
static const sdflow__opt_store interp_store = { "sampler", interp_slots, sizeof interp_slots / sizeof interp_slots[0],
                                                NULL, NULL };

static const interp_opts *interp_of(const sdflow_sampler *s) { return s->priv; }

typedef struct interp_rhs {
    sdflow_model *m;
    const sdflow_process *p;
    size_t d;
    int kinetic;     /* state is (x, E) with dE/dt = sign |v|^2 */
    double sign;     /* +1 forward in t, -1 backward: E grows in both directions */
    double *xs, *vs; /* compact positions and velocities (kinetic only) */
} interp_rhs;

static sdflow_status velocity_rhs(void *user, size_t n, const size_t *rows, const double *t, const double *y,
                                  double *dydt)
{
    const interp_rhs *u = user;
    size_t d = u->d;
    if (!u->kinetic)
        return sdflow__model_eval_rows(u->m, u->p, n, y, t, SDFLOW_OUT_VELOCITY, dydt, rows);
    for (size_t i = 0; i < n; i++)
        memcpy(u->xs + i * d, y + i * (d + 1), d * sizeof(double));
    sdflow_status st = sdflow__model_eval_rows(u->m, u->p, n, u->xs, t, SDFLOW_OUT_VELOCITY, u->vs, rows);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        double e = 0;
        for (size_t j = 0; j < d; j++) {
            double v = u->vs[i * d + j];
            dydt[i * (d + 1) + j] = v;
            e += v * v;
        }
        dydt[i * (d + 1) + d] = u->sign * e;
        if (!isfinite(e)) /* |v|^2 can overflow from a finite v */
            return sdflow__fail(u->m->ctx, SDFLOW_E_NUMERIC, "right-hand side is NaN/Inf for sample %zu", rows[i]);
    }
    return SDFLOW_OK;
}

static sdflow_status run_ode(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow_ctx *ctx = s->ctx;
    sdflow_model *m = s->model[SDFLOW_ROLE_VELOCITY];
    const interp_opts *io = interp_of(s);
    size_t d = m->d, dim = d + (io->kinetic ? 1 : 0);
    interp_rhs u = { .m = m, .p = s->proc, .d = d, .kinetic = io->kinetic != 0,
                     .sign = plan->t_to > plan->t_from ? 1.0 : -1.0 };
    double *y = x;
    sdflow_status st = SDFLOW_OK;
    if (u.kinetic) {
        if (!sdflow__size_ok(n, dim))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu rows of %zu state entries overflow size_t", n, dim);
        y = sdflow__calloc_array(ctx, n, dim * sizeof(double), "ODE state with kinetic energy");
        u.xs = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE positions");
        u.vs = sdflow__alloc_array(ctx, n, d * sizeof(double), "ODE velocities");
        if (!y || !u.xs || !u.vs)
            st = SDFLOW_E_NOMEM;
        for (size_t i = 0; i < n && !st; i++)
            memcpy(y + i * dim, x + i * d, d * sizeof(double));
    }
    sdflow__ode_opts o = { .solver = (int)s->solver, .steps = s->steps, .grid = plan->grid, .rtol = s->rtol,
                           .atol = s->atol, .h_init = s->h_init, .max_steps = s->max_steps,
                           .what = "interpolant sampler" };
    sdflow__ode_stats stats = { 0, 0, 0 };
    if (!st)
        st = sdflow__ode_solve(ctx, &o, n, dim, plan->t_from, plan->t_to, y, velocity_rhs, &u, &stats);
    s->stats[SDFLOW_STAT_NFE] += stats.nfe;
    s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += stats.accepted;
    s->stats[SDFLOW_STAT_STEPS_REJECTED] += stats.rejected;
    if (u.kinetic && y) {
        /* x holds the last completed state either way (the solver works in y) */
        double e = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(x + i * d, y + i * dim, d * sizeof(double));
            e += y[i * dim + d];
        }
        if (!st)
            s->stats[SDFLOW_STAT_KINETIC_ENERGY] = e / (double)n;
        sdflow__free(ctx, y);
    }
    sdflow__free(ctx, u.xs);
    sdflow__free(ctx, u.vs);
    return st;
}

/* Euler-Maruyama on plan->grid; the drift and score at the left end of each
 * step. Where gamma(t_k) = 0 (the ends t = 0, 1) the score -eta/gamma is
 * undefined: that step is a plain Euler step of the ODE (an O(h) change of
 * one step, inside the scheme's O(h) weak error). */
static sdflow_status run_sde(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    sdflow_ctx *ctx = s->ctx;
    sdflow_model *m = s->model[SDFLOW_ROLE_VELOCITY], *den = s->model[SDFLOW_ROLE_DENOISER];
    size_t d = m->d;
    long N = s->steps;
    double eps = interp_of(s)->diffusion, ke = 0;
    double *v = sdflow__alloc_array(ctx, n, d * sizeof(double), "velocities");
    double *eta = sdflow__alloc_array(ctx, n, d * sizeof(double), "denoiser outputs");
    double *tv = sdflow__alloc_array(ctx, n, sizeof(double), "times");
    double *z = sdflow__alloc_array(ctx, d, sizeof(double), "noise row");
    double *x_step = sdflow__alloc_array(ctx, n, d * sizeof(double), "step start state");
    sdflow_status st = v && eta && tv && z && x_step ? SDFLOW_OK : SDFLOW_E_NOMEM;
    for (long k = 0; k < N && !st; k++) {
        double t = plan->grid[k], h = plan->grid[k + 1] - t, ah = fabs(h);
        sdflow__interp c;
        sdflow__process_interp(s->proc, t, &c);
        int noisy = c.gamma > 0;
        for (size_t i = 0; i < n; i++)
            tv[i] = t;
        memcpy(x_step, x, n * d * sizeof *x);
        if ((st = sdflow_model_eval(m, s->proc, n, x, tv, SDFLOW_OUT_VELOCITY, v)))
            break;
        s->stats[SDFLOW_STAT_NFE] += (double)n;
        if (noisy) {
            /* the denoiser's native output is eta = E[z | x_t] itself */
            if ((st = sdflow_model_eval(den, s->proc, n, x, tv, den->native, eta)))
                break;
            s->stats[SDFLOW_STAT_NFE] += (double)n;
        }
        uint64_t stream = sdflow__stream(s->stream, TAG_SDE, (uint64_t)k);
        double sq = sqrt(2.0 * eps * ah), es = eps * ah / (noisy ? c.gamma : 1.0);
        for (size_t i = 0; i < n; i++) {
            double *xi = x + i * d;
            const double *vi = v + i * d, *ei = eta + i * d;
            if (noisy)
                sdflow__rng_normal_row(ctx->seed, stream, s->first_index + i, 0, d, z);
            for (size_t j = 0; j < d; j++) {
                ke += vi[j] * vi[j] * ah;
                /* forward: + h (v + eps s); backward: - |h| (v - eps s); s = -eta / gamma */
                xi[j] += h * vi[j];
                if (noisy)
                    xi[j] += -es * ei[j] + sq * z[j];
            }
        }
        s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += (double)n;
        if ((st = sdflow__check_result(ctx, x, n, d, "interpolant SDE state"))) {
            memcpy(x, x_step, n * d * sizeof *x); /* the last completed step */
            break;
        }
        st = sdflow__progress(ctx, k + 1, N, plan->what);
    }
    if (!st && interp_of(s)->kinetic)
        s->stats[SDFLOW_STAT_KINETIC_ENERGY] = ke / (double)n;
    sdflow__free(ctx, v);
    sdflow__free(ctx, eta);
    sdflow__free(ctx, tv);
    sdflow__free(ctx, z);
    sdflow__free(ctx, x_step);
    return st;
}

sdflow_status sdflow__interp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x)
{
    return interp_of(s)->diffusion > 0 ? run_sde(s, plan, n, x) : run_ode(s, plan, n, x);
}

/* The ODE with adaptive DOPRI5 picks its own times; the SDE steps on a grid. */
static int interp_uses_grid(const sdflow_sampler *s)
{
    return interp_of(s)->diffusion > 0 || s->solver != SDFLOW_SOLVER_DOPRI5;
}

/* The interpolant's own checks, in check_run's order (the messages of
 * several failing checks name the first). */
static sdflow_status interp_check(sdflow_sampler *s, const sdflow_model *m, const double *x_in, int run, int phase)
{
    sdflow_ctx *ctx = s->ctx;
    const interp_opts *o = interp_of(s);
    if (phase == SDFLOW__SK_CHECK_BIND) {
        for (int r = SDFLOW_ROLE_DENOISER; r <= SDFLOW_ROLE_BASE; r++)
            if (s->model[r] && s->model[r]->d != m->d)
                return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s model d=%zu differs from velocity d=%zu",
                                    r == SDFLOW_ROLE_BASE ? "base" : "denoiser", s->model[r]->d, m->d);
        if (o->diffusion > 0 && !s->model[SDFLOW_ROLE_DENOISER])
            return sdflow__fail(ctx, SDFLOW_E_STATE,
                                "interp_diffusion=%g needs a denoiser model (SDFLOW_ROLE_DENOISER) for the score",
                                o->diffusion);
        if (s->time_grid == SDFLOW_GRID_CUSTOM)
            return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED,
                                "the interpolant sampler steps on a uniform grid (no custom grid)");
    } else if (phase == SDFLOW__SK_CHECK_INPUT) {
        if (run && o->t0 == o->t1)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "interp_t0 = interp_t1 = %g: nothing to transport",
                                o->t0);
    } else if (phase == SDFLOW__SK_CHECK_START && run && !x_in && o->t0 != 0) {
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "interp_t0=%g: a run that does not start at the base (t = 0) needs x_init", o->t0);
    }
    return SDFLOW_OK;
}

static void interp_run_times(const sdflow_sampler *s, double *t_from, double *t_to)
{
    const interp_opts *o = interp_of(s);
    *t_from = o->t0;
    *t_to = o->t1;
}

const sdflow__sampler_kind_ops sdflow__interpolant_kind = {
    .kind = SDFLOW_SAMPLER_INTERPOLANT, .name = "interpolant",
    .roles = SDFLOW__ROLE_RANGE(SDFLOW_ROLE_VELOCITY, SDFLOW_ROLE_BASE),
    .roles_hint = "use SDFLOW_ROLE_VELOCITY / SDFLOW_ROLE_DENOISER / SDFLOW_ROLE_BASE",
    .primary = SDFLOW_ROLE_VELOCITY, .primary_name = "velocity", .process = SDFLOW__SK_PROC_INTERP,
    .flags = SDFLOW__SK_STEPPED, .start_role = SDFLOW_ROLE_BASE, .transport = 1, .uses_grid = interp_uses_grid,
    .check = interp_check, .run_times = interp_run_times, .run = sdflow__interp_run, .opts = &interp_store,
    .priv_size = sizeof(interp_opts),
};
