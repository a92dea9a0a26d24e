/* SPDX-License-Identifier: MIT */
/* Internal: the density-estimator handle shared by the generic layer
 * (density.c) and the algorithm files (pf_ode_density.c, liyan.c,
 * interp_density.c), and the kinds' descriptors. */
#ifndef SDFLOW_DENSITY_INTERNAL_H
#define SDFLOW_DENSITY_INTERNAL_H

#include "model_internal.h"

typedef struct sdflow__density_kind_ops sdflow__density_kind_ops;

struct sdflow_density {
    sdflow_ctx *ctx;
    sdflow_density_kind kind;
    const sdflow__density_kind_ops *ops; /* the kind's descriptor (density_kinds.def) */
    const sdflow_process *proc;
    sdflow_model *model;
    sdflow_model *base; /* interpolant base rho_0 (NULL: N(0, I)) */
    /* the options every kind shares (density_options.def): bits per
     * dimension (density.c) and the random streams of every estimator */
    long dequantize;
    double data_scale;
    uint64_t first_index, stream;
    /* the kind's own options: ops->priv_size bytes with the fields of
     * ops->opts (owned; NULL for a kind without them), read by the kind's
     * file through a typed accessor */
    void *priv;
};

/* The PF-ODE family's own options: the block (e->priv) of both PF-ODE
 * kinds, one type for the two (pf_ode_density.c's slot table gives the
 * Hutchinson kind the probe options, the exact kind not). Read by
 * pf_ode_density.c and by the PF-ODE code in interp_density.c and
 * augmented.c through sdflow__pf_ode_opts_of. */
typedef struct sdflow__pf_ode_opts {
    long solver, steps, max_steps, divergence;
    double rtol, atol, h_init;
    double t_min;       /* NaN: max(1e-5, process t_eps); interpolants: 0 */
    double interp_time; /* interpolant: t of rho_t (default 1) */
    long probes, probe_kind; /* pf_ode_hutchinson only */
} sdflow__pf_ode_opts;
/* The block of e, which must be of a PF-ODE kind (the only kinds that
 * reach the code calling it). */
static inline const sdflow__pf_ode_opts *sdflow__pf_ode_opts_of(const sdflow_density *e) { return e->priv; }

/* What the dispatcher (density.c) resolved for one call; the algorithms
 * take it from here and never call back into it. */
typedef struct sdflow__density_plan {
    int interp; /* the bound process is an interpolant */
} sdflow__density_plan;

/* A kind's descriptor: what the dispatcher (density.c) asks of a kind, so
 * that it never tests the kind itself. pf_ode_density.c and liyan.c define
 * them; density_kinds.def lists them. */
struct sdflow__density_kind_ops {
    sdflow_density_kind kind;
    const char *name;
    int hutchinson; /* the augmented state carries SDFLOW_OPT_PROBES probe accumulators */
    /* NULL or the kind's checks of its options for the call (after the
     * shared binding checks; plan resolved) */
    sdflow_status (*check)(const sdflow_density *e, const sdflow__density_plan *plan);
    /* The estimators (logpdf on a diffusion process, interp_logpdf on an
     * interpolant). Arguments are validated by density.c: bound process
     * and model, n >= 1, x finite (n x d, d = model dimension), logp
     * non-NULL. se may be NULL. Row i of the results depends only on x[i],
     * the options and (seed, stream, first_index + i). */
    sdflow_status (*logpdf)(sdflow_density *e, const sdflow__density_plan *plan, size_t n, const double *x,
                            double *logp, double *se);
    /* NULL: no interpolants, no_interp is the message refusing them */
    sdflow_status (*interp_logpdf)(sdflow_density *e, size_t n, const double *x, double *logp, double *se);
    const char *no_interp;
    /* NULL or the kind's own options: slots with offsets into e->priv (a
     * zeroed block of priv_size bytes), searched after the shared ones */
    const sdflow__opt_store *opts;
    size_t priv_size;
};

#define SDFLOW__DENSITY_KIND(name) extern const sdflow__density_kind_ops name;
#include "density_kinds.def"
#undef SDFLOW__DENSITY_KIND

/* Interpolant processes (interp_density.c), the PF-ODE kinds' interp_logpdf:
 * the velocity ODE from interp_time down to t = 0 and the base
 * log-density there. */
sdflow_status sdflow__interp_logpdf(sdflow_density *e, size_t n, const double *x, double *logp, double *se);

/* The augmented state (x, l) of the ODE likelihoods (augmented.c): n rows
 * of d positions and L accumulators (L = probes for Hutchinson, else 1). */
typedef struct sdflow__aug {
    sdflow_density *e;
    size_t d, L, dim;  /* dim = d + L */
    double *y;         /* n x dim state: x, then l (starts at 0) */
    double *end_lp;    /* n log-densities at the far end (the caller fills them) */
    double *x_end;     /* n x d positions at the far end (sdflow__aug_ends) */
    double *xs;        /* n x d positions of the rows of one RHS call */
    double *field;     /* n x d model output of one call (velocity or score), zeroed */
    double *acc;       /* n x L divergences or probe quadratic forms of one call, zeroed */
    double *probes;    /* Hutchinson: n x L x d probes by original row, else NULL */
    double *pv;        /* Hutchinson: the probes gathered for the rows of one call */
} sdflow__aug;
/* Allocates, draws the probes, sets y = (x, 0). On failure the caller
 * still calls sdflow__aug_close. */
sdflow_status sdflow__aug_open(sdflow__aug *a, sdflow_density *e, size_t n, const double *x);
/* xs (and pv) for the n rows `rows` of one RHS call with state y. */
void sdflow__aug_gather(sdflow__aug *a, size_t n, const size_t *rows, const double *y);
/* x_end = the position part of the integrated state. */
void sdflow__aug_ends(sdflow__aug *a, size_t n);
/* logp = end_lp + mean of the accumulators, se their standard error (may be
 * NULL); SDFLOW_E_NUMERIC naming the first non-finite row. */
sdflow_status sdflow__aug_finish(sdflow__aug *a, size_t n, double *logp, double *se);
void sdflow__aug_close(sdflow__aug *a);

#endif
