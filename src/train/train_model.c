/* SPDX-License-Identifier: MIT */
/* The bound MLP as losses see it: native output, parameter gradients of
 * weighted outputs and of bilinear Jacobian forms, JVP and VJP, each on the
 * network passes of src/nn/mlp_net.h (the inputs validated by the trainer).
 * The energy form is handled here once: its native output is the score
 * -grad_x E, whose parameter gradient is the double backward of E. */
#include <string.h>
#include "trainer_internal.h"

sdflow_output sdflow__tm_native(const sdflow_trainer *t) { return t->model->native; }

int sdflow__tm_is_energy(const sdflow_trainer *t)
{
    long out = 0;
    sdflow_model_get_int(t->model, SDFLOW_OPT_MLP_OUTPUT, &out);
    return out == SDFLOW_MLP_ENERGY;
}

/* Network and inputs z0 (n x d_in) of the rows: the net's input scratch
 * when free, else allocated here; give them back with release. */
static sdflow_status prepare(sdflow_trainer *t, size_t n, const double *x, const double *tt, sdflow__mlp **net,
                             double **z0, int *held)
{
    sdflow_status st = sdflow__mlp_model_net(t->model, net);
    if (st)
        return st;
    if (!sdflow__size_ok(n, (*net)->d_in))
        return sdflow__fail(t->ctx, SDFLOW_E_NOMEM, "MLP inputs too large");
    *z0 = sdflow__mlp_scratch_get(t->ctx, *net, SDFLOW__MLP_SCRATCH_INPUT, n * (*net)->d_in, held);
    if (!*z0)
        return SDFLOW_E_NOMEM;
    sdflow__mlp_model_input(t->model, t->proc, n, x, tt, *z0);
    return SDFLOW_OK;
}

static void release(sdflow_trainer *t, const sdflow__mlp *net, double *z0, int held)
{
    sdflow__mlp_scratch_put(t->ctx, net, SDFLOW__MLP_SCRATCH_INPUT, z0, held);
}

static void negate(size_t n, double *a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = -a[i];
}

sdflow_status sdflow__tm_eval(sdflow_trainer *t, size_t n, const double *x, const double *tt, double *out)
{
    sdflow__mlp *net;
    double *z0;
    int zh;
    sdflow_status st = prepare(t, n, x, tt, &net, &z0, &zh);
    if (st)
        return st;
    if (net->energy) {
        st = sdflow__mlp_grad_x(t->ctx, net, n, z0, NULL, out);
        negate(n * net->d, out);
    } else {
        st = sdflow__mlp_forward(t->ctx, net, n, z0, out);
    }
    release(t, net, z0, zh);
    return st;
}

sdflow_status sdflow__tm_grad(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *w,
                              double *grad)
{
    sdflow__mlp *net;
    double *z0, *ones = NULL;
    int zh;
    sdflow_status st = prepare(t, n, x, tt, &net, &z0, &zh);
    if (st)
        return st;
    if (!net->energy) {
        st = sdflow__mlp_backward(t->ctx, net, n, z0, w, grad, NULL);
    } else {
        /* w . score = -w . grad_x E = -(1^T D(E) w): the bilinear form with a = 1, b = w, negated.
         * Accumulate into a scratch copy so the sign applies to this call only. */
        double *g = sdflow__calloc_array(t->ctx, net->nparam, sizeof(double), "energy gradient");
        ones = g ? sdflow__alloc_array(t->ctx, n, sizeof(double), "MLP ones") : NULL;
        if (!ones) {
            sdflow__free(t->ctx, g);
            release(t, net, z0, zh);
            return SDFLOW_E_NOMEM;
        }
        for (size_t i = 0; i < n; i++)
            ones[i] = 1.0;
        st = sdflow__mlp_bilinear_grad(t->ctx, net, n, z0, ones, w, g);
        for (size_t j = 0; j < net->nparam && !st; j++)
            grad[j] -= g[j];
        sdflow__free(t->ctx, g);
    }
    sdflow__free(t->ctx, ones);
    release(t, net, z0, zh);
    return st;
}

/* The hooks of sdflow__tm_eval_grad_rows as the network's pass sees them:
 * the loss fills its rows of x and t, then they are embedded here (the
 * Fourier features on the pass's threads, block by block). */
typedef struct tm_rows {
    const sdflow_trainer *t;
    const sdflow__tm_rows *h;
    const double *x, *tt;
} tm_rows;

static void tm_input(void *user, size_t i0, size_t nb, double *z0)
{
    const tm_rows *g = user;
    if (g->h->fill)
        g->h->fill(g->h->user, i0, nb);
    sdflow__mlp_model_input(g->t->model, g->t->proc, nb, g->x + i0 * g->t->model->d, g->tt + i0, z0);
}

static void tm_adjoint(void *user, size_t i0, size_t nb, const double *y, double *ybar)
{
    const tm_rows *g = user;
    g->h->adjoint(g->h->user, i0, nb, y, ybar);
}

sdflow_status sdflow__tm_eval_grad_rows(sdflow_trainer *t, size_t n, const double *x, const double *tt,
                                        const sdflow__tm_rows *h, double *out, double *grad)
{
    sdflow__mlp *net;
    sdflow_status st = sdflow__mlp_model_net(t->model, &net);
    if (st)
        return st;
    tm_rows g = { t, h, x, tt };
    sdflow__mlp_rows rows = { tm_input, tm_adjoint, &g };
    /* one fused pass per block; energy nets: forward, primal reverse for the score, reverse over forward */
    return net->energy ? sdflow__mlp_energy_rows(t->ctx, net, n, &rows, out, grad)
                       : sdflow__mlp_forward_backward_rows(t->ctx, net, n, &rows, out, grad);
}

/* The adjoint s_i y_i + r_i of sdflow__tm_eval_grad_affine. */
typedef struct affine_rows {
    const double *s, *r;
    size_t d;
} affine_rows;

static void affine_adjoint(void *user, size_t i0, size_t nb, const double *y, double *ybar)
{
    const affine_rows *a = user;
    size_t d = a->d;
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < d; j++)
            ybar[i * d + j] = a->s[i0 + i] * y[i * d + j] + (a->r ? a->r[(i0 + i) * d + j] : 0.0);
}

sdflow_status sdflow__tm_eval_grad_affine(sdflow_trainer *t, size_t n, const double *x, const double *tt,
                                          const double *s, const double *r, double *out, double *grad)
{
    affine_rows a = { s, r, t->model->d };
    sdflow__tm_rows h = { NULL, affine_adjoint, &a };
    return sdflow__tm_eval_grad_rows(t, n, x, tt, &h, out, grad);
}

/* The parameter gradient of one (a2 NULL) or two bilinear forms a^T J b. */
static sdflow_status grad_bilinear(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *a1,
                                   const double *b1, const double *a2, const double *b2, double *grad)
{
    sdflow__mlp *net;
    double *z0;
    int zh;
    if (sdflow__tm_is_energy(t))
        return sdflow__fail(t->ctx, SDFLOW_E_UNSUPPORTED,
                            "parameter gradient of a^T J b for an energy MLP needs third derivatives");
    sdflow_status st = prepare(t, n, x, tt, &net, &z0, &zh);
    if (st)
        return st;
    st = a2 ? sdflow__mlp_bilinear_grad2(t->ctx, net, n, z0, a1, b1, a2, b2, grad)
            : sdflow__mlp_bilinear_grad(t->ctx, net, n, z0, a1, b1, grad);
    release(t, net, z0, zh);
    return st;
}

sdflow_status sdflow__tm_grad_jac(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *a,
                                  const double *b, double *grad)
{
    return grad_bilinear(t, n, x, tt, a, b, NULL, NULL, grad);
}

sdflow_status sdflow__tm_grad_jac2(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *a1,
                                   const double *b1, const double *a2, const double *b2, double *grad)
{
    return grad_bilinear(t, n, x, tt, a1, b1, a2, b2, grad);
}

sdflow_status sdflow__tm_jvp_vjp(sdflow_trainer *t, size_t n, const double *x, const double *tt, const double *v,
                                 double *jv, double *vj)
{
    sdflow__mlp *net;
    double *z0;
    int zh;
    sdflow_status st = prepare(t, n, x, tt, &net, &z0, &zh);
    if (st)
        return st;
    double sign = net->energy ? -1.0 : 1.0; /* energy: J = -Hess E, symmetric */
    if (!net->energy && jv && vj) { /* both on one forward pass per block */
        st = sdflow__mlp_jvp_vjp(t->ctx, net, n, z0, v, jv, vj);
        release(t, net, z0, zh);
        return st;
    }
    if (jv)
        st = sdflow__mlp_tangent(t->ctx, net, n, z0, 1, v, NULL, jv);
    if (!st && vj) {
        if (net->energy)
            st = sdflow__mlp_tangent(t->ctx, net, n, z0, 1, v, NULL, vj);
        else
            st = sdflow__mlp_backward(t->ctx, net, n, z0, v, NULL, vj);
    }
    if (sign < 0) {
        if (jv)
            negate(n * net->d, jv);
        if (vj)
            negate(n * net->d, vj);
    }
    release(t, net, z0, zh);
    return st;
}
