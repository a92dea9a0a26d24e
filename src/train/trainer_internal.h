/* SPDX-License-Identifier: MIT */
/* Internal: the trainer handle, the loss table, the model view losses use
 * and the optimizer (adam.c). Never installed.
 *
 * How a loss kind is added (the interpolant velocity loss and DSB mean
 * matching come this way):
 *   1. a value in sdflow_loss_kind (include/sdflow/trainer.h) and its name
 *      in kind_names[] of trainer.c;
 *   2. one file src/train/loss_<name>.c defining
 *      `const sdflow__loss_ops sdflow__loss_<name>` (below);
 *   3. one row in loss_table[] of trainer.c: { SDFLOW_LOSS_<NAME>, &sdflow__loss_<name> }.
 * Options the loss needs are new SDFLOW_TRAIN_* keys in the loss's own range
 * with a field in struct sdflow_trainer and a row in slots[] of trainer.c
 * (the kinds mask says which losses accept the key). A loss sees the model
 * only through the sdflow__tm_* operations below (native output, parameter
 * gradients of weighted outputs and of bilinear Jacobian forms, JVP, VJP),
 * never the network, so it works for every MLP output kind, energy included.
 * The trainer does the rest: batch rows (array or callback, rank slices),
 * allreduce, NaN checks, clipping, Adam, schedule, EMA, statistics. */
#ifndef SDFLOW_TRAINER_INTERNAL_H
#define SDFLOW_TRAINER_INTERNAL_H

#include "mlp_internal.h"

/* Loss accumulators, summed over the rows of a batch divided by the global
 * batch size and allreduced with the gradient. */
enum { SDFLOW__ACC_LOSS = 0, SDFLOW__ACC_MAIN = 1, SDFLOW__ACC_PENALTY = 2, SDFLOW__NACC = 4 };

/* The part of a batch one call computes: rows [first, first + rows) of a
 * batch of B rows. Every random draw of global row r is keyed by
 * (ctx seed, stream, r) with stream derived from b->stream and a purpose
 * tag (sdflow__stream), so results do not depend on how rows are split
 * between calls, ranks or threads. */
typedef struct sdflow__batch {
    long step;         /* 0-based step index (-1 for validation) */
    size_t B;          /* rows of the whole (global) batch */
    size_t first;      /* global index of x0's first row */
    size_t rows;       /* rows in x0 */
    const double *x0;  /* rows x d data (NULL: the bound array's rows of step, for a lazy_rows loss) */
    uint64_t stream;   /* the draws of this batch */
} sdflow__batch;

/* Row r (global index) of the batch of step k from the bound data array (batch.c). */
void sdflow__batch_data_row(const sdflow_trainer *t, long k, size_t r, double *row);

typedef struct sdflow__loss_ops {
    const char *name;
    /* Checks what the loss needs of the bound model, process and options
     * before any step (message + status). NULL: nothing beyond the trainer's checks. */
    sdflow_status (*check)(sdflow_trainer *t);
    /* Adds to acc[] the batch rows' loss terms (each row's value / B) and,
     * when grad is not NULL, to grad (nparam) the gradient of acc[LOSS].
     * Must not change the model. */
    sdflow_status (*batch)(sdflow_trainer *t, const sdflow__batch *b, double *grad, double *acc);
    /* Columns of a data row for a model of dimension d (NULL: d). A loss
     * whose rows carry more than the model's input (DSB mean matching:
     * time label, state, target) says so here; the trainer checks data,
     * callback and validation widths against it. */
    size_t (*data_cols)(size_t d);
    /* 1: the loss uses no process (sdflow_trainer_set_process is optional). */
    int no_process;
    /* 1: batch() accepts x0 NULL for the bound array's rows and draws row i
     * itself with sdflow__batch_data_row(t, b->step, b->first + i, ...). */
    int lazy_rows;
} sdflow__loss_ops;

extern const sdflow__loss_ops sdflow__loss_dsm;
extern const sdflow__loss_ops sdflow__loss_interpolant;
extern const sdflow__loss_ops sdflow__loss_dsb_mean;

/* ---- optimizer (adam.c) ---------------------------------------------- */
typedef struct sdflow__adam {
    size_t n;
    double *m, *v; /* first and second moments */
    double *ema;   /* EMA of the weights */
    long t;        /* updates done */
    int threads;   /* for the elementwise update loops (set by sdflow__adam_init from the ctx) */
    /* ema_pending: the last EMA update, ema = dk ema + (1 - dk) theta with
     * ema_dk and the theta that update left, is not applied yet (the next
     * update's loop or sdflow__ema_current applies it) */
    int ema_pending;
    double ema_dk;
} sdflow__adam;

typedef struct sdflow__adam_cfg {
    double beta1, beta2, eps, weight_decay;
    int decoupled; /* AdamW */
} sdflow__adam_cfg;

/* Zero moments, EMA = theta. NOMEM leaves a zeroed struct. */
sdflow_status sdflow__adam_init(sdflow_ctx *ctx, sdflow__adam *a, size_t n, const double *theta);
void sdflow__adam_free(sdflow_ctx *ctx, sdflow__adam *a);
/* One Adam/AdamW update of theta with gradient g at learning rate lr
 * (PyTorch's formulas and order of operations); increments a->t. Returns 1 when
 * every new theta_i is finite. */
int sdflow__adam_update(sdflow__adam *a, const sdflow__adam_cfg *cfg, double lr, double *theta, const double *g);
/* EMA update after update number a->t: ema = d ema + (1 - d) theta with
 * d = decay, or min(decay, (1 + t)/(10 + t)) with warmup (score_sde's
 * schedule), theta as that update left it. Deferred: the next
 * sdflow__adam_update applies it in its loop, before theta moves. */
void sdflow__ema_update(sdflow__adam *a, double decay, int warmup);
/* The EMA with any deferred update applied (theta: as the last update left
 * it, unchanged since; call before anything writes theta but that update). */
const double *sdflow__ema_current(sdflow__adam *a, const double *theta);
/* Learning rate of step k (0-based) for schedule kind sched. */
double sdflow__lr_at(int sched, double lr, double lr_min, long warmup, long total, long k);
/* Global 2-norm of g (n); with max_norm > 0 and norm > max_norm scales g by
 * max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the
 * norm before clipping, or NaN (g untouched) when some g_i is NaN or Inf. */
double sdflow__clip_grad(double *g, size_t n, double max_norm);

/* ---- the model as losses see it (train_model.c) -----------------------
 * All act on the bound MLP at the rows (x, t) (n x d, n); outputs are the
 * model's native output (sdflow__tm_native), so an energy MLP is seen as its
 * score -grad_x E. grad arguments are accumulated into (+=). */
/* The kind of the native output (SDFLOW_OUT_*). */
sdflow_output sdflow__tm_native(const sdflow_trainer *t);
int sdflow__tm_is_energy(const sdflow_trainer *t);
sdflow_status sdflow__tm_eval(sdflow_trainer *t, size_t n, const double *x, const double *tt, double *out);
/* grad += d/dtheta sum_i w_i . f(x_i, t_i) */
sdflow_status sdflow__tm_grad(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *w,
                              double *grad);
/* out = f(x_i, t_i) and grad += d/dtheta of a loss whose gradient with
 * respect to the native output is w_i = s_i f_i + r_i (s: n, r: n x d):
 * one fused forward-backward pass for vector outputs, one fused forward,
 * reverse and reverse-over-forward pass for an energy MLP. */
sdflow_status sdflow__tm_eval_grad_affine(sdflow_trainer *t, size_t n, const double *x, const double *tt,
                                          const double *s, const double *r, double *out, double *grad);
/* The rows of sdflow__tm_eval_grad_rows, made by the loss from the pass's
 * threads, once per block of rows i0..i0+nb-1 (any order, any thread: each
 * writes only its own rows' data): fill writes rows i0.. of the x and t
 * arrays the call was given (NULL: they are ready); adjoint gets the rows'
 * native outputs y (nb x d) and writes the loss's gradient in them, ybar. */
typedef struct sdflow__tm_rows {
    void (*fill)(void *user, size_t i0, size_t nb);
    void (*adjoint)(void *user, size_t i0, size_t nb, const double *y, double *ybar);
    void *user;
} sdflow__tm_rows;
/* out = f(x_i, t_i) (NULL: not kept) and grad += d/dtheta of the loss whose
 * gradient in the native output of row i is the hook's ybar_i, on one fused
 * pass as sdflow__tm_eval_grad_affine (whose adjoint is s_i f_i + r_i);
 * the rows' making, the inputs' embedding and the loss's per-row terms run
 * on the pass's threads. */
sdflow_status sdflow__tm_eval_grad_rows(sdflow_trainer *t, size_t n, const double *x, const double *tt,
                                        const sdflow__tm_rows *h, double *out, double *grad);
/* grad += d/dtheta sum_i a_i^T J(x_i, t_i) b_i (J: Jacobian of the native output) */
sdflow_status sdflow__tm_grad_jac(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *a,
                                  const double *b, double *grad);
/* The same for two pairs per row (a1, b1) and (a2, b2), on one forward pass per row block. */
sdflow_status sdflow__tm_grad_jac2(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *a1,
                                   const double *b1, const double *a2, const double *b2, double *grad);
/* jv = J v, vj = J^T v (either may be NULL), one direction per row */
sdflow_status sdflow__tm_jvp_vjp(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *v,
                                 double *jv, double *vj);

/* ---- the handle ------------------------------------------------------- */
struct sdflow_trainer {
    sdflow_ctx *ctx;
    sdflow_loss_kind kind;
    const sdflow__loss_ops *loss;
    sdflow_model *model;
    const sdflow_process *proc;
    size_t d;                 /* columns of a data row (0: no data); the model's d except for DSB_MEAN */
    double *data;             /* n x d, owned */
    size_t n;
    sdflow_batch_fn batch_fn;
    void *batch_user;
    double *val;              /* n_val x d, owned */
    size_t n_val, d_val;
    /* options */
    long batch, weighting, t_sampling, stratified, reduce_mean, optimizer, schedule, warmup, total_steps;
    long ema_warmup, qcsgm_probes, rank, world_size, val_every;
    double t_eps, lr, beta1, beta2, adam_eps, weight_decay, lr_min, clip_norm, ema_decay, qcsgm_weight;
    long coupling;            /* interpolant: sdflow_coupling of (x0, x1) */
    double coupling_eps;      /* interpolant: Sinkhorn eps x mean cost */
    sdflow_model *base;       /* interpolant: the t = 0 end drawn by sdflow_model_sample (NULL: N(0, I)) */
    double *base_data;        /* interpolant: or rows of a second data array (n_base x model d, owned) */
    size_t n_base, d_base;
    long dsb_mean_match;      /* DSB_MEAN: the network outputs the mean (1) or the residual mean - x (0) */
    uint64_t stream;
    /* state */
    size_t nparam;            /* 0 until the first step */
    sdflow__adam opt;
    double *theta, *grad;     /* nparam, and nparam + SDFLOW__NACC */
    const sdflow__mlp *theta_net;  /* theta equals this net's parameters of version theta_version */
    unsigned long theta_version;   /* (NULL: unknown; a step then copies them from the model) */
    long step;                /* completed steps */
    long fit_end;             /* cosine horizon of the running fit (TOTAL_STEPS = 0) */
    double last_loss, dsm_loss, penalty, running, grad_norm, cur_lr, val_loss;
    int have_val;
};

/* ---- state accessors (trainer.c; used by checkpoint.c) ----------------- */
/* Parameters, gradient buffer and optimizer state as at the first step
 * (a no-op once they exist): nparam from the bound model. */
sdflow_status sdflow__trainer_ensure_state(sdflow_trainer *t);
/* The option keys of t's loss kind (slots[] of trainer.c, in table order)
 * into keys[0..cap); returns how many there are. */
size_t sdflow__trainer_option_keys(const sdflow_trainer *t, sdflow_option *keys, size_t cap);

/* Resolved smallest training time: SDFLOW_TRAIN_T_EPS or the process's t_eps
 * (inline: losses must not call back into trainer.c). */
static inline double sdflow__train_t_eps(const sdflow_trainer *t)
{
    return t->t_eps > 0 ? t->t_eps : t->proc->t_eps;
}

#endif
