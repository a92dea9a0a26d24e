/* SPDX-License-Identifier: MIT */
/* The trainer handle: options, bindings, checks before any step, the step
 * itself (batch rows of this rank, loss table call, allreduce, NaN guard,
 * clipping, schedule, Adam, EMA), fit with progress, validation and
 * statistics. The losses live in loss_<name>.c (trainer_internal.h says how
 * to add one). */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "trainer_internal.h"

static const sdflow__name kind_names[] = { { SDFLOW_LOSS_DSM, "dsm" }, { SDFLOW_LOSS_INTERPOLANT, "interpolant" },
                                           { SDFLOW_LOSS_DSB_MEAN, "dsb_mean" }, { 0, NULL } };

/* sdflow_trainer_kind_name() and sdflow_trainer_kind_from_name() */
SDFLOW__DEFINE_KIND_NAMES(sdflow_trainer, sdflow_loss_kind, kind_names)

/* The loss table: one row per loss kind. */
static const struct {
    sdflow_loss_kind kind;
    const sdflow__loss_ops *ops;
} loss_table[] = {
    { SDFLOW_LOSS_DSM, &sdflow__loss_dsm },
    { SDFLOW_LOSS_INTERPOLANT, &sdflow__loss_interpolant },
    { SDFLOW_LOSS_DSB_MEAN, &sdflow__loss_dsb_mean },
};

#define K_DSM (1u << SDFLOW_LOSS_DSM)
#define K_ITP (1u << SDFLOW_LOSS_INTERPOLANT)
#define K_DSB (1u << SDFLOW_LOSS_DSB_MEAN)
#define K_ALL (K_DSM | K_ITP | K_DSB)

static sdflow_status check_option(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed);
/* The resolved default: t_eps of the bound process. */
static void resolve_option(const void *owner, sdflow_option key, void *value)
{
    const sdflow_trainer *t = owner;
    if (key == SDFLOW_TRAIN_T_EPS && t->proc)
        *(double *)value = sdflow__train_t_eps(t);
}

/* The options: key, losses that accept it, field, default. The stream
 * defaults to "train" + kind. */
#define SLOT(key, kinds, field, ...) { key, kinds, offsetof(struct sdflow_trainer, field), __VA_ARGS__ }
static const sdflow__opt_slot slots[] = {
#include "trainer_options.def"
};
static const sdflow__opt_store store = { "trainer", slots, sizeof slots / sizeof slots[0], check_option,
                                         resolve_option };

#define TAG_STEP 0x737465702dull /* "step-" */
#define TAG_VAL 0x76616c2dull    /* "val-" */
#define RUNNING 0.99             /* running-loss average factor */

sdflow_status sdflow_trainer_create(sdflow_ctx *ctx, sdflow_loss_kind kind, sdflow_trainer **out)
{
    if (out)
        *out = NULL;
    sdflow_status st;
    sdflow_trainer *t = sdflow__new_handle(ctx, out != NULL, sdflow_trainer_kind_name(kind), "trainer", (int)kind,
                                           sizeof *t, &st);
    if (!t)
        return st;
    t->ctx = ctx;
    t->kind = kind;
    for (size_t i = 0; i < sizeof loss_table / sizeof loss_table[0]; i++)
        if (loss_table[i].kind == kind)
            t->loss = loss_table[i].ops;
    sdflow__opt_defaults(&store, 1u << kind, t);
    t->stream = 0x747261696eull /* "train" */ + (uint64_t)kind;
    *out = t;
    return SDFLOW_OK;
}

static void reset_state(sdflow_trainer *t)
{
    sdflow__adam_free(t->ctx, &t->opt);
    sdflow__free(t->ctx, t->theta);
    sdflow__free(t->ctx, t->grad);
    t->theta = t->grad = NULL;
    t->theta_net = NULL;
    t->nparam = 0;
    t->step = 0;
    t->last_loss = t->dsm_loss = t->penalty = t->running = t->grad_norm = t->cur_lr = 0;
    t->have_val = 0;
}

void sdflow_trainer_free(sdflow_trainer *t)
{
    if (!t)
        return;
    reset_state(t);
    sdflow__free(t->ctx, t->data);
    sdflow__free(t->ctx, t->val);
    sdflow__free(t->ctx, t->base_data);
    sdflow__free(t->ctx, t);
}

/* Columns of a data row for the bound loss and a model of dimension d. */
static size_t data_cols(const sdflow_trainer *t, size_t d)
{
    return t->loss->data_cols ? t->loss->data_cols(d) : d;
}

/* ---- options ------------------------------------------------------------ */

/* The store's check: the data split is fixed once training has started. */
static sdflow_status check_option(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed)
{
    (void)owner;
    (void)changed;
    const sdflow_trainer *t = obj;
    if ((key == SDFLOW_TRAIN_RANK || key == SDFLOW_TRAIN_WORLD_SIZE) && t->step > 0)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "option %s cannot change after the first step",
                            sdflow_option_name(key));
    return SDFLOW_OK;
}

static sdflow__opt_bind bind(const sdflow_trainer *h) { return SDFLOW__KIND_BIND(sdflow_trainer, h, store); }

SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_trainer, sdflow_trainer, bind, int, SDFLOW_TYPE_INT, long)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_trainer, sdflow_trainer, bind, double, SDFLOW_TYPE_DOUBLE, double)
SDFLOW__DEFINE_OPTION_ACCESSORS(sdflow_trainer, sdflow_trainer, bind, u64, SDFLOW_TYPE_U64, uint64_t)

/* ---- bindings ----------------------------------------------------------- */

sdflow_status sdflow_trainer_set_model(sdflow_trainer *t, sdflow_model *m)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(t->ctx, m ? m->ctx : NULL, "model");
    if (st)
        return st;
    if (m && m->kind != SDFLOW_MODEL_MLP)
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED, "a trainer fits an MLP model, not a %s model",
                            sdflow_model_kind_name(m->kind));
    reset_state(t);
    t->model = m;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_process(sdflow_trainer *t, const sdflow_process *p)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_same_ctx(t->ctx, p ? p->ctx : NULL, "process");
    if (!st)
        t->proc = p;
    return st;
}

/* A copied n x d array (n = 0 with x = NULL: none). */
static sdflow_status copy_array(sdflow_trainer *t, size_t n, size_t d, const double *x, const char *what,
                                double **dst)
{
    sdflow_status st = sdflow__check_dims(t->ctx, n, d);
    if (st || (st = sdflow__check_ptr(t->ctx, x, what)) || (st = sdflow__check_finite(t->ctx, x, n, d, what)))
        return st;
    if (t->model && d != data_cols(t, t->model->d))
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "%s has d=%zu columns but the model (d=%zu) needs %zu", what,
                            d, t->model->d, data_cols(t, t->model->d));
    double *c = sdflow__alloc_array(t->ctx, n, d * sizeof(double), what);
    if (!c)
        return SDFLOW_E_NOMEM;
    memcpy(c, x, n * d * sizeof(double));
    *dst = c;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_data(sdflow_trainer *t, size_t n, size_t d, const double *x)
{
    if (!t)
        return SDFLOW_E_INVALID;
    double *c;
    sdflow_status st = copy_array(t, n, d, x, "data", &c);
    if (st)
        return st;
    sdflow__free(t->ctx, t->data);
    t->data = c;
    t->n = n;
    t->d = d;
    t->batch_fn = NULL;
    t->batch_user = NULL;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_batch_fn(sdflow_trainer *t, size_t d, sdflow_batch_fn fn, void *user_data)
{
    if (!t)
        return SDFLOW_E_INVALID;
    if (fn) {
        sdflow_status st = sdflow__check_dims(t->ctx, 1, d);
        if (st)
            return st;
        if (t->model && d != data_cols(t, t->model->d))
            return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "batch callback d=%zu but the model (d=%zu) needs %zu", d,
                                t->model->d, data_cols(t, t->model->d));
    }
    sdflow__free(t->ctx, t->data);
    t->data = NULL;
    t->n = 0;
    t->d = fn ? d : 0;
    t->batch_fn = fn;
    t->batch_user = user_data;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_validation(sdflow_trainer *t, size_t n, size_t d, const double *x)
{
    if (!t)
        return SDFLOW_E_INVALID;
    double *c = NULL;
    if (n != 0 || x != NULL) {
        sdflow_status st = copy_array(t, n, d, x, "validation data", &c);
        if (st)
            return st;
    }
    sdflow__free(t->ctx, t->val);
    t->val = c;
    t->n_val = c ? n : 0;
    t->d_val = c ? d : 0;
    t->have_val = 0;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_base_model(sdflow_trainer *t, sdflow_model *base)
{
    if (!t)
        return SDFLOW_E_INVALID;
    if (t->kind != SDFLOW_LOSS_INTERPOLANT)
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED, "a base distribution belongs to the interpolant loss, not %s",
                            sdflow_trainer_kind_name(t->kind));
    sdflow_status st = sdflow__check_same_ctx(t->ctx, base ? base->ctx : NULL, "base model");
    if (st)
        return st;
    if (base && !base->ops->sample)
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED,
                            "the %s base model cannot be sampled (use gaussian or gmm, or a data array with "
                            "sdflow_trainer_set_base_data)",
                            sdflow_model_kind_name(base->kind));
    if (base && t->model && base->d != t->model->d)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "base model has d=%zu but the model has d=%zu", base->d,
                            t->model->d);
    sdflow__free(t->ctx, t->base_data);
    t->base_data = NULL;
    t->n_base = t->d_base = 0;
    t->base = base;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_set_base_data(sdflow_trainer *t, size_t n, size_t d, const double *x)
{
    if (!t)
        return SDFLOW_E_INVALID;
    if (t->kind != SDFLOW_LOSS_INTERPOLANT)
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED, "a base distribution belongs to the interpolant loss, not %s",
                            sdflow_trainer_kind_name(t->kind));
    double *c = NULL;
    if (n != 0 || x != NULL) {
        sdflow_status st = copy_array(t, n, d, x, "base data", &c);
        if (st)
            return st;
    }
    sdflow__free(t->ctx, t->base_data);
    t->base_data = c;
    t->n_base = c ? n : 0;
    t->d_base = c ? d : 0;
    t->base = NULL;
    return SDFLOW_OK;
}

/* ---- checks before any step -------------------------------------------- */

static sdflow_status check_ready(sdflow_trainer *t, int training)
{
    sdflow_ctx *ctx = t->ctx;
    if (!t->model)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no model bound (sdflow_trainer_set_model)");
    if (!t->proc && !t->loss->no_process)
        return sdflow__fail(ctx, SDFLOW_E_STATE, "no process bound (sdflow_trainer_set_process)");
    if (training) {
        if (!t->data && !t->batch_fn)
            return sdflow__fail(ctx, SDFLOW_E_STATE, "no data bound (sdflow_trainer_set_data or _set_batch_fn)");
        if (t->data && t->n < (size_t)t->batch)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "n=%zu data rows is less than the batch size %ld", t->n,
                                t->batch);
        if (t->rank >= t->world_size)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "rank %ld must be < world size %ld", t->rank, t->world_size);
        if (t->world_size > t->batch)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "world size %ld exceeds the batch size %ld", t->world_size,
                                t->batch);
        if (t->schedule == SDFLOW_LR_COSINE && t->total_steps == 0 && t->fit_end == 0)
            return sdflow__fail(ctx, SDFLOW_E_STATE,
                                "the cosine schedule needs SDFLOW_TRAIN_TOTAL_STEPS outside sdflow_trainer_fit");
        if (t->lr_min > t->lr)
            return sdflow__fail(ctx, SDFLOW_E_INVALID, "lr_min=%g exceeds lr=%g", t->lr_min, t->lr);
    }
    size_t dd = t->d ? t->d : data_cols(t, t->model->d);
    if (t->d && t->d != data_cols(t, t->model->d))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "data has d=%zu columns but the model (d=%zu) needs %zu", t->d,
                            t->model->d, data_cols(t, t->model->d));
    t->d = dd;
    return t->loss->check ? t->loss->check(t) : SDFLOW_OK;
}

/* Parameters, gradient buffer and optimizer at the first step. */
static sdflow_status ensure_state(sdflow_trainer *t)
{
    if (t->nparam)
        return SDFLOW_OK;
    size_t np;
    sdflow_status st = sdflow_model_param_count(t->model, &np);
    if (st)
        return st;
    double *theta = sdflow__alloc_array(t->ctx, np, sizeof(double), "trainer parameters");
    double *grad = theta ? sdflow__alloc_array(t->ctx, np + SDFLOW__NACC, sizeof(double), "trainer gradient") : NULL;
    if (!grad || (st = sdflow_model_get_params(t->model, np, theta)) ||
        (st = sdflow__adam_init(t->ctx, &t->opt, np, theta))) {
        sdflow__free(t->ctx, theta);
        sdflow__free(t->ctx, grad);
        return grad ? st : SDFLOW_E_NOMEM;
    }
    t->theta = theta;
    t->grad = grad;
    t->nparam = np;
    return SDFLOW_OK;
}

sdflow_status sdflow__trainer_ensure_state(sdflow_trainer *t)
{
    return ensure_state(t);
}

size_t sdflow__trainer_option_keys(const sdflow_trainer *t, sdflow_option *keys, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if (slots[i].kinds & (1u << t->kind)) {
            if (n < cap)
                keys[n] = slots[i].key;
            n++;
        }
    return n;
}

/* Data rows [lo, hi) of the global batch of step k into x0. */
static sdflow_status gather(sdflow_trainer *t, long k, size_t lo, size_t rows, double *x0)
{
    size_t d = t->d;
    if (t->batch_fn) {
        int rc = t->batch_fn(k, lo, rows, d, x0, t->batch_user);
        if (rc)
            return sdflow__fail(t->ctx, SDFLOW_E_CALLBACK, "step %ld: the batch callback returned %d", k + 1, rc);
        return sdflow__check_finite(t->ctx, x0, rows, d, "batch from the callback");
    }
    /* rows are independent draws (keyed by global row): threads do not change a bit; the copies
     * are cache misses into the data array (at d = 64 the serial loop was ~2 % of a step) */
    int nt = sdflow__threads_for_light(t->ctx, rows, rows * d);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < rows; i++)
        sdflow__batch_data_row(t, k, lo + i, x0 + i * d);
    return SDFLOW_OK;
}

/* A non-finite loss, or (with_grad) gradient entry, fails step k. norm:
 * sdflow__clip_grad's value (NaN iff some entry is not finite), or NaN to
 * scan anyway. */
static sdflow_status check_finite_result(sdflow_trainer *t, long k, const double *g, size_t np, int with_grad,
                                         double norm)
{
    const double *acc = g + np;
    if (!isfinite(acc[SDFLOW__ACC_LOSS]))
        return sdflow__fail(t->ctx, SDFLOW_E_NUMERIC,
                            "step %ld: the loss is %g; weights and optimizer state are those of step %ld", k + 1,
                            acc[SDFLOW__ACC_LOSS], k);
    size_t j = with_grad && isnan(norm) ? sdflow__find_nonfinite(g, np) : np;
    if (j < np)
        return sdflow__fail(t->ctx, SDFLOW_E_NUMERIC,
                            "step %ld: gradient[%zu] is %g; weights and optimizer state are those of step %ld", k + 1,
                            j, g[j], k);
    return SDFLOW_OK;
}

static sdflow_status do_step(sdflow_trainer *t)
{
    sdflow_ctx *ctx = t->ctx;
    sdflow_status st = check_ready(t, 1);
    if (st || (st = ensure_state(t)))
        return st;
    size_t np = t->nparam, d = t->d, B = (size_t)t->batch, R = (size_t)t->world_size, r = (size_t)t->rank;
    long k = t->step;
    size_t lo = B * r / R, hi = B * (r + 1) / R, rows = hi - lo;
    /* a lazy loss draws the array's rows itself, on the network pass's threads */
    int lazy = t->loss->lazy_rows && !t->batch_fn;
    double *x0 = lazy ? NULL : sdflow__alloc_array(ctx, rows ? rows : 1, d * sizeof(double), "batch rows");
    if (!lazy && !x0)
        return SDFLOW_E_NOMEM;
    memset(t->grad, 0, (np + SDFLOW__NACC) * sizeof(double));
    /* theta is the model's parameters unless something wrote them since the last step (set_params,
     * a parameter by name, a loaded file: each bumps the net's version); the copy was ~1.4 % of a step */
    sdflow__mlp *net = NULL;
    int fresh = t->theta_net && sdflow__mlp_model_net(t->model, &net) == SDFLOW_OK && net == t->theta_net &&
                net->version == t->theta_version;
    if (!fresh) {
        sdflow__ema_current(&t->opt, t->theta); /* the deferred EMA update needs the theta it was for */
        if ((st = sdflow_model_get_params(t->model, np, t->theta)))
            goto done;
    }
    if (rows) {
        if (!lazy && (st = gather(t, k, lo, rows, x0)))
            goto done;
        sdflow__batch b = { .step = k, .B = B, .first = lo, .rows = rows, .x0 = x0,
                            .stream = sdflow__stream(t->stream, TAG_STEP, (uint64_t)k) };
        if ((st = t->loss->batch(t, &b, t->grad, t->grad + np)))
            goto done;
    }
    if ((st = sdflow__allreduce(ctx, t->grad, np + SDFLOW__NACC, "training step")))
        goto done;
    /* the norm first: it is NaN, and clips nothing, when an entry is not finite */
    double norm = sdflow__clip_grad(t->grad, np, t->clip_norm);
    if ((st = check_finite_result(t, k, t->grad, np, 1, norm)))
        goto done;
    long total = t->total_steps ? t->total_steps : t->fit_end;
    double lr = sdflow__lr_at((int)t->schedule, t->lr, t->lr_min, t->warmup, total, k);
    sdflow__adam_cfg cfg = { t->beta1, t->beta2, t->adam_eps, t->weight_decay,
                             t->optimizer == SDFLOW_OPTIM_ADAMW };
    t->theta_net = NULL; /* theta moves ahead of the model until the model has it */
    if (!sdflow__adam_update(&t->opt, &cfg, lr, t->theta, t->grad)) {
        /* a weight overflowed after a finite gradient (a learning rate near the double range): the model
         * and the EMA keep step k's values, the count is undone; the moments have taken this gradient */
        t->opt.t--;
        st = sdflow__fail(ctx, SDFLOW_E_NUMERIC,
                          "step %ld: the update overflowed a weight (learning rate %g); weights are those of step %ld",
                          k + 1, lr, k);
        goto done;
    }
    /* finite by the update's own check: the model's copy without set_params's scan (~0.8 % of a step) */
    if ((st = sdflow__mlp_model_net(t->model, &net)))
        goto done;
    memcpy(net->theta, t->theta, np * sizeof(double));
    sdflow__mlp_params_changed(net);
    t->theta_net = net;
    t->theta_version = net->version;
    sdflow__ema_update(&t->opt, t->ema_decay, (int)t->ema_warmup);
    const double *acc = t->grad + np;
    t->last_loss = acc[SDFLOW__ACC_LOSS];
    t->dsm_loss = acc[SDFLOW__ACC_MAIN];
    t->penalty = acc[SDFLOW__ACC_PENALTY];
    t->running = RUNNING * t->running + (1.0 - RUNNING) * t->last_loss;
    t->grad_norm = norm;
    t->cur_lr = lr;
    t->step++;
done:
    sdflow__free(ctx, x0);
    return st;
}

sdflow_status sdflow_trainer_step(sdflow_trainer *t)
{
    if (!t)
        return SDFLOW_E_INVALID;
    return do_step(t);
}

sdflow_status sdflow_trainer_eval_batch(sdflow_trainer *t, long step, double *loss, double *grad)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_ptr(t->ctx, loss, "loss");
    if (st || (st = check_ready(t, 1)) || (st = ensure_state(t)))
        return st;
    if (step < 0)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "step=%ld must be >= 0", step);
    size_t B = (size_t)t->batch, np = t->nparam;
    double *x0 = sdflow__alloc_array(t->ctx, B, t->d * sizeof(double), "batch rows");
    double *g = x0 ? sdflow__calloc_array(t->ctx, np + SDFLOW__NACC, sizeof(double), "batch gradient") : NULL;
    if (!g) {
        sdflow__free(t->ctx, x0);
        return SDFLOW_E_NOMEM;
    }
    if (!(st = gather(t, step, 0, B, x0))) {
        sdflow__batch b = { .step = step, .B = B, .first = 0, .rows = B, .x0 = x0,
                            .stream = sdflow__stream(t->stream, TAG_STEP, (uint64_t)step) };
        st = t->loss->batch(t, &b, grad ? g : NULL, g + np);
    }
    if (!st)
        st = check_finite_result(t, step, g, np, grad != NULL, NAN);
    if (!st) {
        *loss = g[np + SDFLOW__ACC_LOSS];
        if (grad)
            memcpy(grad, g, np * sizeof(double));
    }
    sdflow__free(t->ctx, g);
    sdflow__free(t->ctx, x0);
    return st;
}

sdflow_status sdflow_trainer_validate(sdflow_trainer *t, double *loss)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_ptr(t->ctx, loss, "loss");
    if (st || (st = check_ready(t, 0)))
        return st;
    if (!t->val)
        return sdflow__fail(t->ctx, SDFLOW_E_STATE, "no validation data (sdflow_trainer_set_validation)");
    if (t->d_val != data_cols(t, t->model->d))
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID,
                            "validation data has d=%zu columns but the model (d=%zu) needs %zu", t->d_val,
                            t->model->d, data_cols(t, t->model->d));
    double acc[SDFLOW__NACC] = { 0 };
    size_t chunk = 4096;
    for (size_t i0 = 0; i0 < t->n_val && !st; i0 += chunk) {
        size_t rows = t->n_val - i0 < chunk ? t->n_val - i0 : chunk;
        sdflow__batch b = { .step = -1, .B = t->n_val, .first = i0, .rows = rows, .x0 = t->val + i0 * t->d,
                            .stream = sdflow__stream(t->stream, TAG_VAL, 0) };
        st = t->loss->batch(t, &b, NULL, acc);
    }
    if (st)
        return st;
    if (!isfinite(acc[SDFLOW__ACC_LOSS]))
        return sdflow__fail(t->ctx, SDFLOW_E_NUMERIC, "validation loss is %g", acc[SDFLOW__ACC_LOSS]);
    t->val_loss = *loss = acc[SDFLOW__ACC_LOSS];
    t->have_val = 1;
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_fit(sdflow_trainer *t, long steps)
{
    if (!t)
        return SDFLOW_E_INVALID;
    if (steps < 1)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "steps=%ld must be >= 1", steps);
    t->fit_end = t->step + steps;
    sdflow_status st = SDFLOW_OK;
    double v;
    for (long done = 1; done <= steps && !st; done++) {
        st = do_step(t);
        if (!st && t->val && t->val_every > 0 && done % t->val_every == 0 && done < steps)
            st = sdflow_trainer_validate(t, &v);
        if (!st)
            st = sdflow__progress(t->ctx, done, steps, "training");
    }
    if (!st && t->val)
        st = sdflow_trainer_validate(t, &v);
    t->fit_end = 0;
    return st;
}

sdflow_status sdflow_trainer_get_stat(const sdflow_trainer *t, sdflow_train_stat stat, double *value)
{
    if (!t || !value)
        return SDFLOW_E_INVALID;
    if (stat == SDFLOW_TRAIN_STAT_STEP) {
        *value = (double)t->step;
        return SDFLOW_OK;
    }
    if ((int)stat < 0 || stat > SDFLOW_TRAIN_STAT_PENALTY)
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED, "unknown trainer statistic %d", (int)stat);
    if (stat == SDFLOW_TRAIN_STAT_VAL_LOSS) {
        if (!t->have_val)
            return sdflow__fail(t->ctx, SDFLOW_E_STATE, "no validation loss computed yet");
        *value = t->val_loss;
        return SDFLOW_OK;
    }
    if (t->step == 0)
        return sdflow__fail(t->ctx, SDFLOW_E_STATE, "no step completed yet");
    switch (stat) {
    case SDFLOW_TRAIN_STAT_LOSS: *value = t->last_loss; break;
    case SDFLOW_TRAIN_STAT_RUNNING_LOSS: *value = t->running / (1.0 - pow(RUNNING, (double)t->step)); break;
    case SDFLOW_TRAIN_STAT_GRAD_NORM: *value = t->grad_norm; break;
    case SDFLOW_TRAIN_STAT_LR: *value = t->cur_lr; break;
    case SDFLOW_TRAIN_STAT_DSM_LOSS: *value = t->dsm_loss; break;
    default: *value = t->penalty; break;
    }
    return SDFLOW_OK;
}

sdflow_status sdflow_trainer_copy_ema(sdflow_trainer *t, sdflow_model *m)
{
    if (!t)
        return SDFLOW_E_INVALID;
    sdflow_status st = sdflow__check_ptr(t->ctx, m, "model");
    if (st || (st = sdflow__check_same_ctx(t->ctx, m->ctx, "model")))
        return st;
    if (!t->model)
        return sdflow__fail(t->ctx, SDFLOW_E_STATE, "no model bound (sdflow_trainer_set_model)");
    if (!t->nparam && (st = ensure_state(t)))
        return st;
    size_t np;
    if ((st = sdflow_model_param_count(m, &np)))
        return st;
    if (np != t->nparam)
        return sdflow__fail(t->ctx, SDFLOW_E_INVALID, "model has %zu parameters, the trained one %zu", np,
                            t->nparam);
    return sdflow_model_set_params(m, np, sdflow__ema_current(&t->opt, t->theta));
}
