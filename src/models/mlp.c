/* SPDX-License-Identifier: MIT */
/* The MLP score model: architecture options, deterministic nn.Linear-style
 * initialization, named parameters, and the model operations on top of the
 * passes of src/nn/mlp_net.c. An energy MLP outputs E(x, t) and its native
 * output is the score -grad_x E, so its Jacobian is -Hess E (symmetric). */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "mlp_internal.h"

#define MLP_ENERGY 5
#define NAME_LEN 48 /* "blocks.<size_t>.lin1.weight" fits in 40 bytes */

typedef struct mlp_model {
    sdflow__mlp net;
    long depth, width, act, nfreq, residual, output, time_input, learn_freqs;
    double freq_scale;       /* f_k = freq_scale (k + 1) */
    int ready;               /* parameters exist: architecture frozen */
    pthread_mutex_t lock;    /* first use from several threads */
    char (*names)[NAME_LEN]; /* 2 (depth + 1) + 1 tensor names */
} mlp_model;

/* ReLU has sigma'' = 0 almost everywhere and a Dirac mass at 0: the energy
 * form's Jacobian (-Hess E) and second-order losses would be silently wrong. */
/* Also: residual blocks (an input layer, then pairs of linears) need an odd depth. */
static sdflow_status check_combo(sdflow_ctx *ctx, long act, long output, long residual, long depth)
{
    if (act == SDFLOW_ACT_RELU && output == MLP_ENERGY)
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "ReLU cannot be used with the energy output: the score Jacobian needs the activation's "
                            "second derivative (use SiLU, tanh, softplus or GELU)");
    if (residual == SDFLOW__MLP_RES_BLOCKS && depth % 2 == 0)
        return sdflow__fail(ctx, SDFLOW_E_INVALID,
                            "residual blocks need an odd MLP depth 1 + 2B (an input layer and B blocks of two "
                            "linear layers), not %ld",
                            depth);
    return SDFLOW_OK;
}

/* The store's check (the new value is in mm, owner is the model): setting
 * the value a key already has is always fine; otherwise the architecture
 * must not be frozen yet and the combination must be valid. The output
 * option also sets the model's native parameterization. */
static sdflow_status mlp_check(sdflow_ctx *ctx, void *owner, void *obj, sdflow_option key, int changed)
{
    sdflow_model *m = owner;
    mlp_model *mm = obj;
    if (!changed)
        return SDFLOW_OK;
    if (mm->ready)
        return sdflow__fail(ctx, SDFLOW_E_STATE,
                            "MLP option %s cannot change once the parameters exist (first evaluation or "
                            "parameter access); create a new model",
                            sdflow_option_name(key));
    if (key == SDFLOW_OPT_MLP_FREQ_SCALE)
        return SDFLOW_OK;
    sdflow_status st = check_combo(ctx, mm->act, mm->output, mm->residual, mm->depth);
    if (!st && key == SDFLOW_OPT_MLP_OUTPUT)
        m->native = mm->output == MLP_ENERGY ? SDFLOW_OUT_SCORE : (sdflow_output)mm->output;
    return st;
}

/* Architecture options: every key is an int except the frequency scale. */
#define SLOT(key, field, def) { key, SDFLOW__ALL_KINDS, offsetof(mlp_model, field), def }
static const sdflow__opt_slot mlp_slots[] = {
    SLOT(SDFLOW_OPT_MLP_DEPTH, depth, 3),
    SLOT(SDFLOW_OPT_MLP_WIDTH, width, 128),
    SLOT(SDFLOW_OPT_MLP_ACTIVATION, act, SDFLOW_ACT_SILU),
    SLOT(SDFLOW_OPT_MLP_FREQS, nfreq, 32),
    SLOT(SDFLOW_OPT_MLP_RESIDUAL, residual, 0),
    SLOT(SDFLOW_OPT_MLP_OUTPUT, output, SDFLOW_OUT_EPS),
    SLOT(SDFLOW_OPT_MLP_TIME_INPUT, time_input, 0),
    SLOT(SDFLOW_OPT_MLP_LEARN_FREQS, learn_freqs, 0),
    SLOT(SDFLOW_OPT_MLP_FREQ_SCALE, freq_scale, 0.5),
};
static const sdflow__opt_store mlp_options = { "model", mlp_slots, sizeof mlp_slots / sizeof mlp_slots[0],
                                               mlp_check, NULL };

/* Tensor names of layer l (PyTorch state_dict keys of bench/mlp_twin.py):
 * layers.l.* for plain and SIMPLE residual nets; input.*, blocks.b.lin1.*,
 * blocks.b.lin2.* and output.* for residual blocks. */
static void layer_names(const sdflow__mlp *net, size_t l, char *w, char *b)
{
    char base[NAME_LEN];
    if (net->residual != SDFLOW__MLP_RES_BLOCKS)
        snprintf(base, sizeof base, "layers.%zu", l);
    else if (l == 0)
        snprintf(base, sizeof base, "input");
    else if (l == net->depth)
        snprintf(base, sizeof base, "output");
    else
        snprintf(base, sizeof base, "blocks.%zu.lin%d", (l - 1) / 2, l % 2 ? 1 : 2);
    snprintf(w, NAME_LEN, "%.30s.weight", base);
    snprintf(b, NAME_LEN, "%.30s.bias", base);
}

/* nn.Linear's default init: W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming
 * uniform with a = sqrt 5), drawn from Philox keyed by (ctx seed, "mlp",
 * tensor index). Frequencies f_k = scale (k + 1), default scale 1/2; learned
 * ones are the last nfreq values of theta. */
static sdflow_status materialize(sdflow_model *m)
{
    mlp_model *mm = m->impl;
    sdflow__mlp *net = &mm->net;
    net->d = m->d;
    net->depth = (size_t)mm->depth;
    net->width = (size_t)mm->width;
    net->nfreq = (size_t)mm->nfreq;
    net->act = (int)mm->act;
    net->residual = (int)mm->residual;
    net->learn_freqs = mm->learn_freqs && mm->nfreq > 0;
    net->energy = mm->output == MLP_ENERGY;
    net->d_out = net->energy ? 1 : m->d;
    if (!sdflow__size_ok(net->width, net->width) || !sdflow__size_ok(net->d + 2 * net->nfreq, net->width))
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "MLP width %zu too large", net->width);
    sdflow__mlp_layout(net);
    net->theta = sdflow__alloc_array(m->ctx, net->nparam, sizeof(double), "MLP parameters");
    if (net->learn_freqs)
        net->freqs = net->theta ? net->theta + net->foff : NULL;
    else
        net->freqs = net->theta ? sdflow__calloc_array(m->ctx, net->nfreq + 1, sizeof(double), "MLP frequencies")
                                : NULL;
    mm->names = net->freqs ? sdflow__calloc_array(m->ctx, 2 * net->nlayers + 1, NAME_LEN, "MLP names") : NULL;
    if (!mm->names) {
        if (!net->learn_freqs)
            sdflow__free(m->ctx, net->freqs);
        sdflow__free(m->ctx, net->theta);
        net->theta = net->freqs = NULL;
        return SDFLOW_E_NOMEM;
    }
    uint64_t stream = sdflow__stream(0x6d6c70ull /* "mlp" */, 0x696e6974ull /* "init" */, 0);
    for (size_t l = 0; l < net->nlayers; l++) {
        double bound = 1.0 / sqrt((double)net->in[l]);
        double *w = net->theta + net->woff[l];
        size_t nw = net->in[l] * net->out[l];
        sdflow__rng_uniform_row(m->ctx->seed, stream, 2 * l, 0, nw, w);
        sdflow__rng_uniform_row(m->ctx->seed, stream, 2 * l + 1, 0, net->out[l], w + nw);
        for (size_t j = 0; j < nw + net->out[l]; j++)
            w[j] = (2.0 * w[j] - 1.0) * bound;
        layer_names(net, l, mm->names[2 * l], mm->names[2 * l + 1]);
    }
    snprintf(mm->names[2 * net->nlayers], NAME_LEN, "time_embed.freqs");
    for (size_t k = 0; k < net->nfreq; k++)
        net->freqs[k] = mm->freq_scale * (double)(k + 1);
    sdflow__mlp_params_changed(net);
    mm->ready = 1;
    return SDFLOW_OK;
}

static sdflow_status ensure(sdflow_model *m)
{
    mlp_model *mm = m->impl;
    pthread_mutex_lock(&mm->lock);
    sdflow_status st = mm->ready ? SDFLOW_OK : materialize(m);
    pthread_mutex_unlock(&mm->lock);
    return st;
}

sdflow_status sdflow__mlp_model_net(sdflow_model *m, sdflow__mlp **net)
{
    if (!m || m->kind != SDFLOW_MODEL_MLP)
        return SDFLOW_E_INVALID;
    sdflow_status st = ensure(m);
    if (!st)
        *net = &((mlp_model *)m->impl)->net;
    return st;
}

void sdflow__mlp_model_input(const sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                             const double *t, double *z0)
{
    const mlp_model *mm = m->impl;
    /* s is the time input of the Fourier features: t, or log sigma(t) / 4 (EDM's c_noise) */
    enum { CHUNK = 256 };
    double s[CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += CHUNK) {
        size_t nb = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (size_t i = 0; i < nb; i++) {
            if (mm->time_input) {
                sdflow__coef c;
                sdflow__process_coef(p, t[i0 + i], &c);
                s[i] = 0.25 * log(c.sigma);
            } else {
                s[i] = t[i0 + i];
            }
        }
        sdflow__mlp_embed(&mm->net, nb, x + i0 * m->d, s, z0 + i0 * mm->net.d_in);
    }
}

/* Prepares a call: parameters, then the network inputs (from the net's input
 * scratch when free; give them back with release). */
static sdflow_status inputs(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                            double **z0, int *held)
{
    sdflow_status st = ensure(m);
    if (st)
        return st;
    const mlp_model *mm = m->impl;
    if (!sdflow__size_ok(n, mm->net.d_in))
        return sdflow__fail(m->ctx, SDFLOW_E_NOMEM, "MLP inputs too large");
    *z0 = sdflow__mlp_scratch_get(m->ctx, &mm->net, SDFLOW__MLP_SCRATCH_INPUT, n * mm->net.d_in, held);
    if (!*z0)
        return SDFLOW_E_NOMEM;
    sdflow__mlp_model_input(m, p, n, x, t, *z0);
    return SDFLOW_OK;
}

static void release(sdflow_model *m, double *z0, int held)
{
    sdflow__mlp_scratch_put(m->ctx, &((mlp_model *)m->impl)->net, SDFLOW__MLP_SCRATCH_INPUT, z0, held);
}

/* Not d_out == 1: a d = 1 vector net has one output too. */
static int is_energy(const sdflow_model *m) { return ((const mlp_model *)m->impl)->net.energy; }

static void negate(size_t n, double *a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = -a[i];
}

static sdflow_status mlp_eval(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                              double *out)
{
    double *z0;
    int zh;
    sdflow_status st = inputs(m, p, n, x, t, &z0, &zh);
    if (st)
        return st;
    const sdflow__mlp *net = &((mlp_model *)m->impl)->net;
    if (is_energy(m)) {
        st = sdflow__mlp_grad_x(m->ctx, net, n, z0, NULL, out);
        negate(n * m->d, out);
    } else {
        st = sdflow__mlp_forward(m->ctx, net, n, z0, out);
    }
    release(m, z0, zh);
    return st;
}

/* What a tangent call produces per row: the primal (optional) and either the
 * full Jacobian, its trace, J v (K = 1) or v^T J v for K probes. */
typedef enum tmode { T_JAC, T_DIV, T_JVP, T_QUAD } tmode;

static sdflow_status tangent_call(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, tmode mode, size_t K, const double *v, double *out, double *res)
{
    double *z0;
    int zh;
    sdflow_status st = inputs(m, p, n, x, t, &z0, &zh);
    if (st)
        return st;
    const sdflow__mlp *net = &((mlp_model *)m->impl)->net;
    size_t d = m->d;
    if (mode == T_JAC || mode == T_DIV)
        K = d;
    /* rows in chunks (a multiple of the pass's row block) so the n x K x d tangents stay within ~8 MB */
    size_t chunk = ((1u << 20) / (K * d) / SDFLOW__MLP_ROWS + 1) * SDFLOW__MLP_ROWS;
    if (chunk > n)
        chunk = n;
    double *jv = sdflow__alloc_array(m->ctx, chunk, K * d * sizeof(double), "MLP tangents");
    if (!jv) {
        release(m, z0, zh);
        return SDFLOW_E_NOMEM;
    }
    double sign = is_energy(m) ? -1.0 : 1.0; /* score = -grad E, J = -Hess E */
    for (size_t i0 = 0; i0 < n && !st; i0 += chunk) {
        size_t nb = n - i0 < chunk ? n - i0 : chunk;
        const double *vb = mode == T_JVP || mode == T_QUAD ? v + i0 * K * d : NULL;
        double *ob = out ? out + i0 * d : NULL;
        if ((st = sdflow__mlp_tangent(m->ctx, net, nb, z0 + i0 * net->d_in, K, vb, ob, jv)))
            break;
        if (ob && sign < 0)
            negate(nb * d, ob);
        for (size_t i = 0; i < nb; i++) {
            const double *J = jv + i * K * d; /* J[k d + a]: component a of direction k */
            size_t r = i0 + i;
            if (mode == T_JAC)
                for (size_t a = 0; a < d; a++)
                    for (size_t k = 0; k < d; k++)
                        res[r * d * d + a * d + k] = sign * J[k * d + a];
            else if (mode == T_DIV) {
                double tr = 0;
                for (size_t k = 0; k < d; k++)
                    tr += J[k * d + k];
                res[r] = sign * tr;
            } else if (mode == T_JVP)
                for (size_t a = 0; a < d; a++)
                    res[r * d + a] = sign * J[a];
            else
                for (size_t k = 0; k < K; k++) {
                    double q = 0;
                    for (size_t a = 0; a < d; a++)
                        q += vb[(i * K + k) * d + a] * J[k * d + a];
                    res[r * K + k] = sign * q;
                }
        }
    }
    sdflow__free(m->ctx, jv);
    release(m, z0, zh);
    return st;
}

static sdflow_status mlp_jacobian(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *jac)
{
    return tangent_call(m, p, n, x, t, T_JAC, 0, NULL, NULL, jac);
}

static sdflow_status mlp_divergence(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                    const double *t, double *div)
{
    return tangent_call(m, p, n, x, t, T_DIV, 0, NULL, NULL, div);
}

static sdflow_status mlp_jvp(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                             const double *v, double *jv)
{
    return tangent_call(m, p, n, x, t, T_JVP, 1, v, NULL, jv);
}

static sdflow_status mlp_eval_div(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                  const double *t, double *out, double *div)
{
    return tangent_call(m, p, n, x, t, T_DIV, 0, NULL, out, div);
}

static sdflow_status mlp_eval_quadform(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                       const double *t, size_t K, const double *v, double *out, double *q)
{
    return tangent_call(m, p, n, x, t, T_QUAD, K, v, out, q);
}

static void mlp_destroy(sdflow_model *m)
{
    mlp_model *mm = m->impl;
    if (!mm)
        return;
    pthread_mutex_destroy(&mm->lock);
    sdflow__mlp_scratch_free(&mm->net);
    if (!mm->net.learn_freqs)
        sdflow__free(m->ctx, mm->net.freqs);
    sdflow__free(m->ctx, mm->net.theta);
    sdflow__free(m->ctx, mm->names);
    sdflow__free(m->ctx, mm);
}

static const sdflow__model_ops mlp_ops = {
    .eval = mlp_eval,
    .jacobian = mlp_jacobian,
    .divergence = mlp_divergence,
    .options = &mlp_options,
    .destroy = mlp_destroy,
    .jvp = mlp_jvp,
    .eval_div = mlp_eval_div,
    .eval_quadform = mlp_eval_quadform,
};

sdflow_status sdflow_model_create_mlp(sdflow_ctx *ctx, size_t d, sdflow_model **out)
{
    if (!ctx)
        return SDFLOW_E_INVALID;
    sdflow_status st;
    if ((st = sdflow__check_ptr(ctx, out, "out")))
        return st;
    *out = NULL;
    if ((st = sdflow__check_size(ctx, d, "d")))
        return st;
    if (d > (1u << 20))
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "MLP input dimension d=%zu too large (at most 2^20)", d);
    mlp_model *mm = sdflow__calloc_array(ctx, 1, sizeof *mm, "MLP model");
    if (!mm)
        return SDFLOW_E_NOMEM;
    sdflow__opt_defaults(&mlp_options, 1, mm);
    pthread_mutex_init(&mm->lock, NULL);
    sdflow__mlp_scratch_init(&mm->net, ctx);
    return sdflow__model_new(ctx, SDFLOW_MODEL_MLP, d, SDFLOW_OUT_EPS, &mlp_ops, mm, out);
}

/* ---- parameters ------------------------------------------------------- */

static sdflow_status mlp_of(sdflow_model *m, mlp_model **mm)
{
    if (!m)
        return SDFLOW_E_INVALID;
    if (m->kind != SDFLOW_MODEL_MLP)
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED, "a %s model has no parameters",
                            sdflow_model_kind_name(m->kind));
    sdflow_status st = ensure(m);
    if (!st)
        *mm = m->impl;
    return st;
}

/* Tensor i: pointer, rows and columns (biases and the frequencies are 1-D: cols = 0). */
static double *tensor(mlp_model *mm, size_t i, size_t *rows, size_t *cols)
{
    sdflow__mlp *net = &mm->net;
    if (i == 2 * net->nlayers) {
        *rows = net->nfreq, *cols = 0;
        return net->freqs;
    }
    size_t l = i / 2;
    if (i % 2 == 0) {
        *rows = net->out[l], *cols = net->in[l];
        return net->theta + net->woff[l];
    }
    *rows = net->out[l], *cols = 0;
    return net->theta + net->boff[l];
}

static size_t ntensors(const mlp_model *mm) { return 2 * mm->net.nlayers + (mm->net.nfreq ? 1 : 0); }

/* The two counts: trainable values (tensors = 0) or named tensors (1). */
static sdflow_status count_of(sdflow_model *m, size_t *count, int tensors)
{
    mlp_model *mm;
    sdflow_status st = mlp_of(m, &mm);
    if (st || (st = sdflow__check_ptr(m->ctx, count, "count")))
        return st;
    *count = tensors ? ntensors(mm) : mm->net.nparam;
    return SDFLOW_OK;
}

sdflow_status sdflow_model_param_count(sdflow_model *m, size_t *count) { return count_of(m, count, 0); }
sdflow_status sdflow_model_param_tensors(sdflow_model *m, size_t *count) { return count_of(m, count, 1); }

sdflow_status sdflow_model_param_info(sdflow_model *m, size_t index, const char **name, size_t *rows, size_t *cols)
{
    mlp_model *mm;
    sdflow_status st = mlp_of(m, &mm);
    if (st)
        return st;
    if (index >= ntensors(mm))
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "parameter tensor %zu out of range (%zu tensors)", index,
                            ntensors(mm));
    size_t r, c;
    tensor(mm, index, &r, &c);
    if (name)
        *name = mm->names[index];
    if (rows)
        *rows = r;
    if (cols)
        *cols = c;
    return SDFLOW_OK;
}

static sdflow_status find(sdflow_model *m, mlp_model *mm, const char *name, size_t count, double **p)
{
    sdflow_status st = sdflow__check_ptr(m->ctx, name, "name");
    if (st)
        return st;
    for (size_t i = 0; i < ntensors(mm); i++)
        if (!strcmp(name, mm->names[i])) {
            size_t r, c;
            *p = tensor(mm, i, &r, &c);
            size_t len = c ? r * c : r;
            if (count != len)
                return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "parameter %s has %zu values, not %zu", name, len,
                                    count);
            return SDFLOW_OK;
        }
    return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "the MLP has no parameter named \"%s\"", name);
}

sdflow_status sdflow_model_get_param(sdflow_model *m, const char *name, size_t count, double *values)
{
    mlp_model *mm;
    double *src;
    sdflow_status st = mlp_of(m, &mm);
    if (st || (st = find(m, mm, name, count, &src)) || (st = sdflow__check_ptr(m->ctx, values, "values")))
        return st;
    memcpy(values, src, count * sizeof *values);
    return SDFLOW_OK;
}

sdflow_status sdflow_model_set_param(sdflow_model *m, const char *name, size_t count, const double *values)
{
    mlp_model *mm;
    double *dst;
    sdflow_status st = mlp_of(m, &mm);
    if (st || (st = find(m, mm, name, count, &dst)) || (st = sdflow__check_ptr(m->ctx, values, "values")) ||
        (st = sdflow__check_finite(m->ctx, values, 1, count, name)))
        return st;
    memcpy(dst, values, count * sizeof *values);
    sdflow__mlp_params_changed(&mm->net);
    return SDFLOW_OK;
}

static sdflow_status check_flat(sdflow_model *m, mlp_model *mm, size_t count, const void *theta)
{
    if (count != mm->net.nparam)
        return sdflow__fail(m->ctx, SDFLOW_E_INVALID, "the MLP has %zu parameters, not %zu", mm->net.nparam, count);
    return sdflow__check_ptr(m->ctx, theta, "theta");
}

sdflow_status sdflow_model_get_params(sdflow_model *m, size_t count, double *theta)
{
    mlp_model *mm;
    sdflow_status st = mlp_of(m, &mm);
    if (st || (st = check_flat(m, mm, count, theta)))
        return st;
    memcpy(theta, mm->net.theta, count * sizeof *theta);
    return SDFLOW_OK;
}

sdflow_status sdflow_model_set_params(sdflow_model *m, size_t count, const double *theta)
{
    mlp_model *mm;
    sdflow_status st = mlp_of(m, &mm);
    if (st || (st = check_flat(m, mm, count, theta)) || (st = sdflow__check_finite(m->ctx, theta, 1, count, "theta")))
        return st;
    memcpy(mm->net.theta, theta, count * sizeof *theta);
    sdflow__mlp_params_changed(&mm->net);
    return SDFLOW_OK;
}

/* ---- parameter gradients ---------------------------------------------- */

static sdflow_status grad_args(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                               const double *w, const char *wname, double *grad, mlp_model **mm)
{
    sdflow_status st = sdflow__model_check_eval_args(m, p, n, x, t, grad, "grad");
    if (st || (st = mlp_of(m, mm)) || (st = sdflow__check_ptr(m->ctx, w, wname)))
        return st;
    return sdflow__check_finite(m->ctx, w, n, m->d, wname);
}

sdflow_status sdflow_model_param_grad(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                      const double *t, const double *w, double *grad, double *grad_x)
{
    mlp_model *mm;
    double *z0;
    int zh;
    sdflow_status st = grad_args(m, p, n, x, t, w, "w", grad, &mm);
    if (st || (st = inputs(m, p, n, x, t, &z0, &zh)))
        return st;
    const sdflow__mlp *net = &mm->net;
    memset(grad, 0, net->nparam * sizeof *grad);
    if (!is_energy(m)) {
        st = sdflow__mlp_backward(m->ctx, net, n, z0, w, grad, grad_x);
    } else {
        /* w . (-grad_x E) = -(D E) w: a forward tangent of E along w, then reverse to theta */
        double *ones = sdflow__alloc_array(m->ctx, n, sizeof(double), "MLP ones");
        if (!ones)
            st = SDFLOW_E_NOMEM;
        for (size_t i = 0; i < n && !st; i++)
            ones[i] = 1.0;
        if (!st)
            st = sdflow__mlp_bilinear_grad(m->ctx, net, n, z0, ones, w, grad);
        negate(net->nparam, grad);
        if (!st && grad_x) /* d/dx w . score = J_score^T w = -H w (H symmetric) */
            st = sdflow__mlp_tangent(m->ctx, net, n, z0, 1, w, NULL, grad_x);
        if (!st && grad_x)
            negate(n * m->d, grad_x);
        sdflow__free(m->ctx, ones);
    }
    release(m, z0, zh);
    if (!st)
        st = sdflow__check_result(m->ctx, grad, 1, net->nparam, "parameter gradient");
    return st;
}

sdflow_status sdflow_model_param_grad_jac(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                          const double *t, const double *a, const double *b, double *grad)
{
    mlp_model *mm;
    double *z0;
    int zh;
    sdflow_status st = grad_args(m, p, n, x, t, a, "a", grad, &mm);
    if (st || (st = sdflow__check_ptr(m->ctx, b, "b")) || (st = sdflow__check_finite(m->ctx, b, n, m->d, "b")))
        return st;
    if (is_energy(m))
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED,
                            "parameter gradient of a^T J b for an energy MLP needs third derivatives "
                            "(not implemented)");
    if (mm->act == SDFLOW_ACT_RELU)
        return sdflow__fail(m->ctx, SDFLOW_E_UNSUPPORTED,
                            "ReLU has no second derivative: the parameter gradient of a^T J b needs one");
    if ((st = inputs(m, p, n, x, t, &z0, &zh)))
        return st;
    memset(grad, 0, mm->net.nparam * sizeof *grad);
    st = sdflow__mlp_bilinear_grad(m->ctx, &mm->net, n, z0, a, b, grad);
    release(m, z0, zh);
    if (!st)
        st = sdflow__check_result(m->ctx, grad, 1, mm->net.nparam, "parameter gradient");
    return st;
}
