/* SPDX-License-Identifier: MIT */
/* The ODE integrator: Euler, Heun, RK4 and adaptive Dormand-Prince 5(4)
 * with a controller per row. Used by the PF-ODE sampler and the PF-ODE
 * density estimators; knows nothing of either. */
#include <math.h>
#include <string.h>
#include "ode_internal.h"

/* Dormand-Prince 5(4) tableau (algorithms.md §4.4). */
static const double dp_c[7] = { 0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1 };
static const double dp_a[7][6] = {
    { 0 },
    { 1.0 / 5 },
    { 3.0 / 40, 9.0 / 40 },
    { 44.0 / 45, -56.0 / 15, 32.0 / 9 },
    { 19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729 },
    { 9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656 },
    { 35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84 },
};
static const double dp_e[7] = { 71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525,
                                -1.0 / 40 };

static const char *op_name(const sdflow__ode_opts *o) { return o->what ? o->what : "ODE solve"; }

/* Evaluates the right-hand side at a state the solver made: a NaN/Inf in
 * the state is SDFLOW_E_NUMERIC naming the caller's row, step and time; the
 * rhs checks its own outputs (ode_internal.h), and its SDFLOW_E_NUMERIC
 * message gets the operation, step and time in front. One scan of the
 * state per evaluation; the inputs were validated at the API edge. */
static sdflow_status eval_rhs(sdflow_ctx *ctx, const sdflow__ode_opts *o, long step, size_t m, size_t dim,
                              const size_t *rows, const double *t, const double *y, double *dydt,
                              sdflow__ode_rhs rhs, void *user)
{
    size_t bad = sdflow__first_nonfinite_row(y, m, dim);
    if (bad < m)
        return sdflow__fail(ctx, SDFLOW_E_NUMERIC, "%s: state of sample %zu became non-finite at step %ld, t = %.17g",
                            op_name(o), rows[bad], step, t[bad]);
    sdflow_status st = rhs(user, m, rows, t, y, dydt);
    if (st == SDFLOW_E_NUMERIC)
        return sdflow__fail_prefix(ctx, st, "%s at step %ld, t = %.17g: ", op_name(o), step, t[0]);
    return st;
}

/* ---- fixed-step solvers ------------------------------------------------ */

static double grid_time(const sdflow__ode_opts *o, double t0, double t1, long k)
{
    if (o->grid)
        return o->grid[k];
    return k == o->steps ? t1 : t0 + (t1 - t0) * ((double)k / (double)o->steps);
}

/* ys = y + h * k for all rows (parallel over the flat array: elementwise). */
static void axpy_rows(int nt, size_t len, const double *y, double h, const double *k, double *ys)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < len; i++)
        ys[i] = y[i] + h * k[i];
}

static sdflow_status solve_fixed(sdflow_ctx *ctx, const sdflow__ode_opts *o, size_t n, size_t dim, double t0,
                                 double t1, double *y, sdflow__ode_rhs rhs, void *user, sdflow__ode_stats *stats)
{
    int nst = o->solver == SDFLOW_SOLVER_EULER ? 1 : o->solver == SDFLOW_SOLVER_HEUN ? 2 : 4;
    size_t len = n * dim;
    double *k = sdflow__alloc_array(ctx, (size_t)nst + 1, len * sizeof(double), "ODE stage buffers");
    double *tv = sdflow__alloc_array(ctx, n, sizeof(double), "ODE stage times");
    size_t *rows = sdflow__alloc_array(ctx, n, sizeof(size_t), "ODE row indices");
    sdflow_status st = SDFLOW_OK;
    if (!k || !tv || !rows) {
        st = SDFLOW_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
    double *k1 = k, *k2 = k + len, *k3 = k + 2 * len, *k4 = k + 3 * len, *ys = k + (size_t)nst * len;
    int nt = sdflow__threads_for(ctx, n);
    long done_steps = 0;
    for (long s = 0; s < o->steps; s++) {
        double ta = grid_time(o, t0, t1, s), tb = grid_time(o, t0, t1, s + 1), h = tb - ta;
        for (size_t i = 0; i < n; i++)
            tv[i] = ta;
        if ((st = eval_rhs(ctx, o, s, n, dim, rows, tv, y, k1, rhs, user)))
            break;
        if (nst == 1) {
            axpy_rows(nt, len, y, h, k1, y);
        } else if (nst == 2) {
            axpy_rows(nt, len, y, h, k1, ys);
            for (size_t i = 0; i < n; i++)
                tv[i] = tb;
            if ((st = eval_rhs(ctx, o, s, n, dim, rows, tv, ys, k2, rhs, user)))
                break;
#pragma omp parallel for num_threads(nt) schedule(static)
            for (size_t i = 0; i < len; i++)
                y[i] += 0.5 * h * (k1[i] + k2[i]);
        } else {
            double tm = ta + 0.5 * h;
            for (size_t i = 0; i < n; i++)
                tv[i] = tm;
            axpy_rows(nt, len, y, 0.5 * h, k1, ys);
            if ((st = eval_rhs(ctx, o, s, n, dim, rows, tv, ys, k2, rhs, user)))
                break;
            axpy_rows(nt, len, y, 0.5 * h, k2, ys);
            if ((st = eval_rhs(ctx, o, s, n, dim, rows, tv, ys, k3, rhs, user)))
                break;
            for (size_t i = 0; i < n; i++)
                tv[i] = tb;
            axpy_rows(nt, len, y, h, k3, ys);
            if ((st = eval_rhs(ctx, o, s, n, dim, rows, tv, ys, k4, rhs, user)))
                break;
#pragma omp parallel for num_threads(nt) schedule(static)
            for (size_t i = 0; i < len; i++)
                y[i] += h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        }
        done_steps = s + 1;
        if ((st = sdflow__progress(ctx, s + 1, o->steps, op_name(o))))
            break;
    }
    if (stats) {
        stats->nfe += (double)n * (double)nst * (double)done_steps;
        stats->accepted += (double)n * (double)done_steps;
    }
done:
    sdflow__free(ctx, k);
    sdflow__free(ctx, tv);
    sdflow__free(ctx, rows);
    return st;
}

/* ---- adaptive Dormand-Prince 5(4), one controller per row -------------- */

typedef struct dp_row {
    double t, h;    /* current time and signed step */
    long attempts;  /* attempted steps */
    long nfe, acc, rej;
    int rejected;   /* last attempt was rejected: no step growth now */
} dp_row;

typedef struct dp_work {
    sdflow_ctx *ctx;
    const sdflow__ode_opts *o;
    size_t n, dim;
    double t1, dir;
    double *y;
    double *K;      /* 6 stage slopes per row: K[(s * n + i) * dim] */
    double *ys, *ko; /* compact stage state and stage slope of the active rows */
    double *ts;     /* compact stage times */
    size_t *act;    /* caller row index of each active slot */
    dp_row *r;
    sdflow__ode_rhs rhs;
    void *user;
} dp_work;

static double *kslot(const dp_work *w, int s, size_t i) { return w->K + ((size_t)s * w->n + i) * w->dim; }

/* The time t + c h of a stage, never past t1: t + h rounds past t1 even when
 * h was clamped to t1 - t, and a stage time outside [t1, t0] is outside the
 * process's valid range when t1 is t_eps or T. A stage ending the step (c = 1)
 * of a step clamped to t1 (h == t1 - t) is t1 exactly. */
static double stage_time(const dp_work *w, double t, double c, double h)
{
    if (c == 1 && h == w->t1 - t)
        return w->t1;
    double ts = t + c * h;
    return (ts - w->t1) * w->dir > 0 ? w->t1 : ts;
}

/* Hairer's initial step (Hairer, Norsett & Wanner I, II.4; scipy select_initial_step).
 * K1 of the rows holds f(t0, y0). One extra evaluation per row. */
static sdflow_status initial_steps(dp_work *w, size_t m)
{
    const sdflow__ode_opts *o = w->o;
    size_t dim = w->dim;
    int nt = sdflow__threads_for(w->ctx, m);
    double span = fabs(w->t1 - w->r[w->act[0]].t);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t j = 0; j < m; j++) {
        size_t i = w->act[j];
        const double *y0 = w->y + i * dim, *f0 = kslot(w, 0, i);
        double d0 = 0, d1 = 0;
        for (size_t c = 0; c < dim; c++) {
            double sc = o->atol + o->rtol * fabs(y0[c]);
            d0 += (y0[c] / sc) * (y0[c] / sc);
            d1 += (f0[c] / sc) * (f0[c] / sc);
        }
        d0 = sqrt(d0 / (double)dim);
        d1 = sqrt(d1 / (double)dim);
        double h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
        if (h > span)
            h = span;
        w->r[i].h = h; /* |h0| until the second pass */
        for (size_t c = 0; c < dim; c++)
            w->ys[j * dim + c] = y0[c] + w->dir * h * f0[c];
    }
    for (size_t j = 0; j < m; j++)
        w->ts[j] = stage_time(w, w->r[w->act[j]].t, 1, w->dir * w->r[w->act[j]].h);
    sdflow_status st = eval_rhs(w->ctx, o, 0, m, dim, w->act, w->ts, w->ys, w->ko, w->rhs, w->user);
    if (st)
        return st;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t j = 0; j < m; j++) {
        size_t i = w->act[j];
        const double *y0 = w->y + i * dim, *f0 = kslot(w, 0, i), *f1 = w->ko + j * dim;
        double h = w->r[i].h, d1 = 0, d2 = 0;
        for (size_t c = 0; c < dim; c++) {
            double sc = o->atol + o->rtol * fabs(y0[c]);
            d1 += (f0[c] / sc) * (f0[c] / sc);
            d2 += ((f1[c] - f0[c]) / sc) * ((f1[c] - f0[c]) / sc);
        }
        d1 = sqrt(d1 / (double)dim);
        d2 = sqrt(d2 / (double)dim) / h;
        double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h * 1e-3) : pow(0.01 / fmax(d1, d2), 0.2);
        h1 = fmin(100 * h, h1);
        w->r[i].h = w->dir * fmin(h1, span);
        w->r[i].nfe++;
    }
    return SDFLOW_OK;
}

/* One attempted step of every active row (m rows in w->act). */
static sdflow_status dp_round(dp_work *w, size_t m, long round)
{
    const sdflow__ode_opts *o = w->o;
    size_t dim = w->dim;
    int nt = sdflow__threads_for(w->ctx, m);
    sdflow_status st;
    for (int s = 1; s < 7; s++) {
        /* stage s input; s = 6 is the 5th-order solution y_new (FSAL) */
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t j = 0; j < m; j++) {
            size_t i = w->act[j];
            const dp_row *r = &w->r[i];
            const double *y0 = w->y + i * dim;
            double *ys = w->ys + j * dim;
            for (size_t c = 0; c < dim; c++) {
                double acc = 0;
                for (int l = 0; l < s; l++)
                    acc += dp_a[s][l] * kslot(w, l, i)[c];
                ys[c] = y0[c] + r->h * acc;
            }
            w->ts[j] = stage_time(w, r->t, dp_c[s], r->h);
        }
        if ((st = eval_rhs(w->ctx, o, round, m, dim, w->act, w->ts, w->ys, w->ko, w->rhs, w->user)))
            return st;
        if (s < 6) {
#pragma omp parallel for num_threads(nt) schedule(static)
            for (size_t j = 0; j < m; j++)
                memcpy(kslot(w, s, w->act[j]), w->ko + j * dim, dim * sizeof(double));
        }
    }
    /* error estimate, accept/reject and the next step, per row */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t j = 0; j < m; j++) {
        size_t i = w->act[j];
        dp_row *r = &w->r[i];
        double *y0 = w->y + i * dim, *yn = w->ys + j * dim, *k7 = w->ko + j * dim;
        double err = 0;
        for (size_t c = 0; c < dim; c++) {
            double e = dp_e[6] * k7[c];
            for (int l = 0; l < 6; l++)
                e += dp_e[l] * kslot(w, l, i)[c];
            e *= r->h;
            double sc = o->atol + o->rtol * fmax(fabs(y0[c]), fabs(yn[c]));
            err += (e / sc) * (e / sc);
        }
        err = sqrt(err / (double)dim);
        r->nfe += 6;
        r->attempts++;
        if (err <= 1) {
            int last = r->h == w->t1 - r->t || (r->t + r->h - w->t1) * w->dir >= 0;
            r->t = last ? w->t1 : r->t + r->h;
            memcpy(y0, yn, dim * sizeof(double));
            memcpy(kslot(w, 0, i), k7, dim * sizeof(double));
            r->acc++;
            double fac = err == 0 ? 10 : fmin(10, fmax(0.2, 0.9 * pow(err, -0.2)));
            if (r->rejected && fac > 1)
                fac = 1;
            r->h *= fac;
            r->rejected = 0;
        } else {
            r->rej++;
            r->h *= fmax(0.2, 0.9 * pow(err, -0.2)); /* NaN err: fmax gives 0.2 */
            r->rejected = 1;
        }
        /* never step past t1 */
        if ((r->t + r->h - w->t1) * w->dir > 0)
            r->h = w->t1 - r->t;
    }
    return SDFLOW_OK;
}

static sdflow_status solve_dopri5(sdflow_ctx *ctx, const sdflow__ode_opts *o, size_t n, size_t dim, double t0,
                                  double t1, double *y, sdflow__ode_rhs rhs, void *user, sdflow__ode_stats *stats)
{
    size_t len = n * dim;
    dp_work w = { .ctx = ctx, .o = o, .n = n, .dim = dim, .t1 = t1, .dir = t1 > t0 ? 1.0 : -1.0, .y = y,
                  .rhs = rhs, .user = user };
    w.K = sdflow__alloc_array(ctx, 8, len * sizeof(double), "DOPRI5 stage buffers");
    w.ts = sdflow__alloc_array(ctx, n, sizeof(double), "DOPRI5 stage times");
    w.act = sdflow__alloc_array(ctx, n, sizeof(size_t), "DOPRI5 active rows");
    w.r = sdflow__calloc_array(ctx, n, sizeof(dp_row), "DOPRI5 row controllers");
    sdflow_status st = SDFLOW_OK;
    if (!w.K || !w.ts || !w.act || !w.r) {
        st = SDFLOW_E_NOMEM;
        goto done;
    }
    w.ys = w.K + 6 * len;
    w.ko = w.K + 7 * len;
    for (size_t i = 0; i < n; i++) {
        w.act[i] = i;
        w.ts[i] = t0;
        w.r[i].t = t0;
        w.r[i].h = w.dir * o->h_init;
    }
    /* FSAL start: K1 = f(t0, y0) for every row */
    if ((st = eval_rhs(ctx, o, 0, n, dim, w.act, w.ts, y, w.ko, rhs, user)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        memcpy(kslot(&w, 0, i), w.ko + i * dim, dim * sizeof(double));
        w.r[i].nfe = 1;
        if ((t1 - (t0 + w.r[i].h)) * w.dir < 0)
            w.r[i].h = t1 - t0;
    }
    if (o->h_init <= 0 && (st = initial_steps(&w, n)))
        goto done;
    size_t m = n;
    for (long round = 1; m > 0; round++) {
        if ((st = dp_round(&w, m, round)))
            goto done;
        /* drop finished rows (keeping order), check limits */
        size_t k = 0;
        double prog = 1;
        for (size_t j = 0; j < m; j++) {
            size_t i = w.act[j];
            dp_row *r = &w.r[i];
            if (r->t == t1)
                continue;
            if (r->attempts >= o->max_steps) {
                st = sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                                  "%s: sample %zu needs more than max_steps=%ld steps (stuck at t = %.17g, h = %g)",
                                  op_name(o), i, o->max_steps, r->t, r->h);
                goto done;
            }
            if (fabs(r->h) <= 8 * 2.220446049250313e-16 * fmax(fabs(r->t), fabs(t1 - t0))) {
                st = sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                                  "%s: step size underflow for sample %zu at step %ld, t = %.17g (h = %g)",
                                  op_name(o), i, r->attempts, r->t, r->h);
                goto done;
            }
            prog = fmin(prog, (r->t - t0) / (t1 - t0));
            w.act[k++] = i;
        }
        m = k;
        /* adaptive runs report per-mille of the slowest row's progress in time */
        if ((st = sdflow__progress(ctx, (long)floor(1000 * prog), 1000, op_name(o))))
            goto done;
    }
done:
    if (stats && w.r)
        for (size_t i = 0; i < n; i++) {
            stats->nfe += (double)w.r[i].nfe;
            stats->accepted += (double)w.r[i].acc;
            stats->rejected += (double)w.r[i].rej;
        }
    sdflow__free(ctx, w.K);
    sdflow__free(ctx, w.ts);
    sdflow__free(ctx, w.act);
    sdflow__free(ctx, w.r);
    return st;
}

sdflow_status sdflow__ode_solve(sdflow_ctx *ctx, const sdflow__ode_opts *o, size_t n, size_t dim, double t0,
                                double t1, double *y, sdflow__ode_rhs rhs, void *user, sdflow__ode_stats *stats)
{
    if (n == 0 || t0 == t1)
        return SDFLOW_OK;
    switch (o->solver) {
    case SDFLOW_SOLVER_EULER:
    case SDFLOW_SOLVER_HEUN:
    case SDFLOW_SOLVER_RK4:
        if (o->steps < 1)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s: steps=%ld must be >= 1", op_name(o), o->steps);
        return solve_fixed(ctx, o, n, dim, t0, t1, y, rhs, user, stats);
    case SDFLOW_SOLVER_DOPRI5:
        if (!(o->rtol > 0) || !(o->atol > 0) || o->max_steps < 1 || !(o->h_init >= 0))
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s: need rtol=%g > 0, atol=%g > 0, max_steps=%ld >= 1, h_init=%g >= 0",
                                op_name(o), o->rtol, o->atol, o->max_steps, o->h_init);
        return solve_dopri5(ctx, o, n, dim, t0, t1, y, rhs, user, stats);
    }
    return sdflow__fail(ctx, SDFLOW_E_INVALID, "%s: unknown solver %d", op_name(o), o->solver);
}
