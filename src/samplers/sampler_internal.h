/* SPDX-License-Identifier: MIT */
/* Internal: the sampler handle shared by the generic layer (sampler.c) and
 * the algorithm files (sde.c, pf_ode.c, sdflow.c). */
#ifndef SDFLOW_SAMPLER_INTERNAL_H
#define SDFLOW_SAMPLER_INTERNAL_H

#include "model_internal.h"

#define SDFLOW__NSTATS 13
#define SDFLOW__NROLES 11

typedef struct sdflow__sampler_kind_ops sdflow__sampler_kind_ops;

struct sdflow_sampler {
    sdflow_ctx *ctx;
    sdflow_sampler_kind kind;
    const sdflow__sampler_kind_ops *ops; /* the kind's descriptor (sampler_kinds.def) */
    const sdflow_process *proc;
    sdflow_model *model[SDFLOW__NROLES]; /* indexed by sdflow_role */
    /* the options several kinds share (sampler_options.def; NaN / 0 where
     * the default depends on the process or data) */
    long steps;
    double t_min, t_start;          /* NaN: process default */
    long time_grid, denoise, solver;
    long max_steps;
    double h_init, rtol, atol;
    uint64_t first_index, stream;
    double rho;                     /* Karras grid */
    double *custom;                 /* SDFLOW_GRID_CUSTOM times, decreasing (owned) */
    size_t ncustom;
    /* the kind's own options and state: ops->priv_size bytes with the
     * fields of ops->opts (owned; NULL for a kind without them). Its type
     * is private to the kind's file(s), which read it through a typed
     * accessor. */
    void *priv;
    /* statistics of the last run */
    double stats[SDFLOW__NSTATS];
};

/* What the dispatcher (sampler.c) resolved for one run or transport: the
 * algorithms take everything from here and never call back into it. */
typedef struct sdflow__sampler_plan {
    const char *what;     /* names the kind in progress reports and messages */
    double t_from, t_to;  /* run: t_start -> t_min; transport: the caller's ends */
    const double *grid;   /* steps + 1 times t_from..t_to (SDFLOW_OPT_TIME_GRID) or NULL (DOPRI5, sdflow) */
    int draw_start;       /* SDFLOW__SK_OWN_START kinds: x_init was NULL, the run draws its start */
} sdflow__sampler_plan;

/* A kind's descriptor: what the dispatcher (sampler.c) asks of a kind, so
 * that it never tests the kind itself. Each algorithm file defines its
 * descriptors; sampler_kinds.def lists them. */
#define SDFLOW__ROLE_BIT(r) (1u << (r))
#define SDFLOW__ROLE_RANGE(a, b) ((SDFLOW__ROLE_BIT((b) + 1) - 1u) & ~(SDFLOW__ROLE_BIT(a) - 1u))
enum { SDFLOW__SK_PROC_NONE, SDFLOW__SK_PROC_DIFFUSION, SDFLOW__SK_PROC_INTERP }; /* ops->process */
enum {
    SDFLOW__SK_STEPPED = 1u,   /* steps on a time grid (make_plan builds it) unless ops->uses_grid says no */
    SDFLOW__SK_OWN_START = 2u, /* draws its own start when x_init is NULL (plan->draw_start); no denoise step */
    SDFLOW__SK_WHOLE_RUN = 4u  /* ops->whole_run does the whole run, argument checks included */
};
/* phases of ops->check: the bindings, the input, the kind's options (after
 * the shared checks, before the stats are reset), the start of a run */
enum { SDFLOW__SK_CHECK_BIND, SDFLOW__SK_CHECK_INPUT, SDFLOW__SK_CHECK_OPTIONS, SDFLOW__SK_CHECK_START };
struct sdflow__sampler_kind_ops {
    sdflow_sampler_kind kind;
    const char *name;
    unsigned roles;          /* SDFLOW__ROLE_BIT mask of the roles set_model accepts */
    const char *roles_hint;  /* the message's hint for any other role */
    sdflow_role primary;     /* the role whose model must be bound and gives d */
    const char *primary_name;
    int process;             /* SDFLOW__SK_PROC_*: the process the kind needs */
    unsigned flags;          /* SDFLOW__SK_* */
    sdflow_role start_role;  /* a bound model of this role draws the start (its SDFLOW_ROLE_SCORE = 0: none) */
    int transport;           /* sdflow_sampler_transport supported */
    /* NULL or: whether this run steps on a grid (STEPPED kinds whose ODE solver may be adaptive) */
    int (*uses_grid)(const sdflow_sampler *s);
    /* NULL or the kind's own checks of check_run at phase SDFLOW__SK_CHECK_* (m: the primary model) */
    sdflow_status (*check)(sdflow_sampler *s, const sdflow_model *m, const double *x_in, int run, int phase);
    /* NULL or the run's times (default: t_start -> t_min of the process) */
    void (*run_times)(const sdflow_sampler *s, double *t_from, double *t_to);
    sdflow_status (*run)(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);
    sdflow_status (*whole_run)(sdflow_sampler *s, size_t n, const double *x_init, double *x_out);
    /* NULL or the kind's own options: slots with offsets into s->priv (a
     * zeroed block of priv_size bytes, allocated by sdflow_sampler_create),
     * searched after the shared ones of sampler_options.def */
    const sdflow__opt_store *opts;
    size_t priv_size;
    /* NULL or the release of what s->priv owns (not the block itself) */
    void (*free_priv)(sdflow_sampler *s);
    /* NULL or constant parameters of the kind, for an algorithm that serves
     * several kinds (e.g. dpmpp.c's order): the algorithm never tests the kind */
    const void *param;
};

/* The initializer of a diffusion kind that steps a score model on the
 * process's time grid with no hooks (reverse_sde, pc, ddim, dpmpp_*,
 * edm_heun): only its enum value, name, algorithm and (the _OPTS form) its
 * own options, their block's size and its constant parameters differ. */
#define SDFLOW__SCORE_GRID_KIND_OPTS(kind_, name_, run_, opts_, priv_size_, param_)                                  \
    {                                                                                                              \
        .kind = kind_, .name = name_, .roles = SDFLOW__ROLE_BIT(SDFLOW_ROLE_SCORE),                                  \
        .roles_hint = "use SDFLOW_ROLE_SCORE", .primary = SDFLOW_ROLE_SCORE, .primary_name = "score",                \
        .process = SDFLOW__SK_PROC_DIFFUSION, .flags = SDFLOW__SK_STEPPED, .run = run_, .opts = opts_,               \
        .priv_size = priv_size_, .param = param_                                                                   \
    }
#define SDFLOW__SCORE_GRID_KIND(kind_, name_, run_) SDFLOW__SCORE_GRID_KIND_OPTS(kind_, name_, run_, NULL, 0, NULL)

#define SDFLOW__SAMPLER_KIND(name) extern const sdflow__sampler_kind_ops name;
#include "sampler_kinds.def"
#undef SDFLOW__SAMPLER_KIND

/* Algorithm entry points; arguments are validated by sampler.c, x_out holds
 * a copy of the start state (or NULL start was replaced by prior draws),
 * and the stats are zeroed. */
sdflow_status sdflow__sde_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x); /* REVERSE_SDE, PC */
sdflow_status sdflow__ode_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x); /* PF_ODE */
/* SDFLOW; draw_start: x_init was NULL and the start is drawn here (SDFLOW_OPT_START) */
sdflow_status sdflow__sdflow_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, int draw_start,
                                 double *x);
sdflow_status sdflow__ddim_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);   /* DDIM */
sdflow_status sdflow__dpmpp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);  /* DPMPP_* */
sdflow_status sdflow__edm_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);    /* EDM_HEUN */
/* INTERPOLANT: ODE (or SDE with interp_diffusion > 0) from plan->t_from to plan->t_to (interpolant.c) */
sdflow_status sdflow__interp_run(sdflow_sampler *s, const sdflow__sampler_plan *plan, size_t n, double *x);

/* DSB: the whole run (validates its own arguments: the ends and the
 * means it needs differ from the diffusion samplers'). */
sdflow_status sdflow__dsb_run(sdflow_sampler *s, size_t n, const double *x_init, double *x_out);

#endif
