/* SPDX-License-Identifier: MIT */
/* Internal: a fixed MLP family with hand-derived passes (llm.c style) over
 * one contiguous parameter vector. Used by the MLP model kind (models/mlp.c)
 * and by the trainer. Layout and math: docs/mlp.md.
 *
 * Network: z0 = [x (d), sin(2 pi f s) (F), cos(2 pi f s) (F)] (and s itself
 * in one more column when the frequencies are learned: d_in is the row
 * length of z0, in[0] = d + 2F the first layer's fan-in);
 * hidden l = 0..depth-1: a_l = z_l W_l^T + b_l,
 * z_{l+1} = phi_l(a_l) + (skip[l] >= 0 ? z_{skip[l]} : 0), phi_l = act or,
 * for the second linear of a residual block (linear[l]), the identity;
 * output y = z_L W_L^T + b_L with d_out = d (vector outputs) or 1 (energy).
 * Parameters, in order: the weight and bias of layers 0..L, then the
 * frequencies when learned (foff). Residual forms (SDFLOW__MLP_RES_*):
 * BLOCKS, z + W2 act(W1 z + b1) + b2 after an input layer (depth odd);
 * SIMPLE, z + act(W z + b) for layers 1.. (the form of the first release).
 *
 * Every pass works on blocks of SDFLOW__MLP_ROWS rows, padded with zero rows,
 * so every GEMM has one fixed shape: results of a row do not depend on the
 * batch it came in (see docs/mlp.md, "Determinism"). Scratch comes from the
 * net's reusable buffers when free (a trylock) and is allocated per call
 * otherwise: passes are reentrant, and a net used by one thread at a time
 * (a sampler, the trainer) does not allocate (nor page-fault) per call. */
#ifndef SDFLOW_NN_MLP_NET_H
#define SDFLOW_NN_MLP_NET_H

#include <pthread.h>
#include <stddef.h>
#include "ctx_internal.h"

#ifndef SDFLOW__MLP_ROWS
#define SDFLOW__MLP_ROWS 16
#endif
#define SDFLOW__MLP_MAXLAYERS 65

typedef enum sdflow__act { SDFLOW__ACT_SILU, SDFLOW__ACT_TANH, SDFLOW__ACT_SOFTPLUS, SDFLOW__ACT_GELU,
                           SDFLOW__ACT_RELU } sdflow__act;

enum { SDFLOW__MLP_RES_NONE = 0, SDFLOW__MLP_RES_BLOCKS = 1, SDFLOW__MLP_RES_SIMPLE = 2 };

/* Scratch slots: the passes' workspace, and the network inputs z0 of a call
 * (held while a pass runs). */
enum { SDFLOW__MLP_SCRATCH_PASS = 0, SDFLOW__MLP_SCRATCH_INPUT = 1, SDFLOW__MLP_NSCRATCH = 2 };
typedef struct sdflow__mlp_scratch {
    pthread_mutex_t lock;
    double *buf;
    size_t cap;          /* doubles */
    unsigned long wt_of; /* PASS: its first 2 foff doubles hold the packed weights of version wt_of (0: none) */
} sdflow__mlp_scratch;

typedef struct sdflow__mlp {
    size_t d, nfreq, width, depth, d_in, d_out;
    int act, residual; /* residual: SDFLOW__MLP_RES_*; set with learn_freqs before sdflow__mlp_layout */
    size_t nlayers;                                 /* depth + 1 */
    size_t in[SDFLOW__MLP_MAXLAYERS], out[SDFLOW__MLP_MAXLAYERS];
    size_t woff[SDFLOW__MLP_MAXLAYERS], boff[SDFLOW__MLP_MAXLAYERS];
    size_t nparam;
    double *theta;  /* nparam */
    double *freqs;  /* nfreq: a buffer, or theta + foff when learned */
    int energy;                               /* scalar energy output (d_out = 1; d = 1 nets too) */
    int learn_freqs;                          /* the frequencies are parameters */
    size_t foff;                              /* their offset in theta (learn_freqs) */
    unsigned char linear[SDFLOW__MLP_MAXLAYERS]; /* hidden layer l has no activation */
    int skip[SDFLOW__MLP_MAXLAYERS];          /* z_{l+1} += z_{skip[l]}; -1: none (never 0) */
    unsigned long version;                    /* of theta: sdflow__mlp_params_changed after every write */
    sdflow_ctx *scratch_ctx;                  /* allocator of the scratch; NULL: no reusable scratch */
    sdflow__mlp_scratch scratch[SDFLOW__MLP_NSCRATCH];
} sdflow__mlp;

/* Reusable scratch: init (mutexes; ctx allocates and frees the buffers),
 * free (the buffers and mutexes; once no pass runs). */
void sdflow__mlp_scratch_init(sdflow__mlp *net, sdflow_ctx *ctx);
void sdflow__mlp_scratch_free(sdflow__mlp *net);

/* n doubles of scratch from slot (SDFLOW__MLP_SCRATCH_*): the slot's buffer
 * when it is free (*held = 1, grown as needed), else a fresh allocation
 * (*held = 0). NULL on allocation failure (error set in ctx). Give it back
 * with sdflow__mlp_scratch_put. */
double *sdflow__mlp_scratch_get(sdflow_ctx *ctx, const sdflow__mlp *net, int slot, size_t n, int *held);
void sdflow__mlp_scratch_put(sdflow_ctx *ctx, const sdflow__mlp *net, int slot, double *p, int held);

/* Every write into theta ends with this: the passes' cached transposed
 * weights (the PASS scratch) are then rebuilt on their next use. */
static inline void sdflow__mlp_params_changed(sdflow__mlp *net) { net->version++; }

/* Fills in the layer shapes, skips and nparam from d, nfreq, width, depth,
 * d_out, residual and learn_freqs (a residual BLOCKS net needs an odd depth). */
void sdflow__mlp_layout(sdflow__mlp *net);

/* Activation value and derivatives 1..3 at a (any of the outputs may be NULL). */
void sdflow__mlp_act(int act, double a, double *s0, double *s1, double *s2, double *s3);

/* Network input z0 rows (d_in each): x and the Fourier features of s (one
 * per row), then s when the frequencies are learned. */
void sdflow__mlp_embed(const sdflow__mlp *net, size_t n, const double *x, const double *s, double *z0);

/* y (n x d_out) = net(z0). */
sdflow_status sdflow__mlp_forward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *y);

/* Input gradient of the scalar output of an energy net: g = dE/dx (n x d), and optionally E (n). */
sdflow_status sdflow__mlp_grad_x(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, double *e,
                                 double *g);

/* Tangents: for K directions per row (v: n x K x d; NULL means the K = d
 * basis directions), jv[(i K + k) d_vec + :] = D f(x_i) v_ik where f is the
 * net output (d_out = d) or, for an energy net, the input gradient dE/dx
 * (so jv = H v). Optionally also the primal (y: n x d_out output, or the
 * input gradient for energy nets). */
sdflow_status sdflow__mlp_tangent(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, size_t K,
                                  const double *v, double *primal, double *jv);

/* Vector-output nets (d_out = d): jv = J v and vj = v^T J (n x d each, v: n
 * x d, J the Jacobian of the output in x) on one forward pass per block; the
 * same values as sdflow__mlp_tangent (K = 1) and sdflow__mlp_backward with
 * ybar = v give. */
sdflow_status sdflow__mlp_jvp_vjp(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0, const double *v,
                                  double *jv, double *vj);

/* Reverse mode: with ybar (n x d_out) the gradient of a scalar loss with
 * respect to the outputs, adds dL/dtheta to gtheta (nparam; NULL: skipped)
 * (the frequencies' too when learned) and writes dL/dx to gx (n x d; NULL:
 * skipped). Rows are summed in a fixed
 * order (blocks in sequence), so gtheta is deterministic. */
sdflow_status sdflow__mlp_backward(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                   const double *ybar, double *gtheta, double *gx);

/* The rows of a training pass as its caller makes them. Called from the
 * pass's threads once per block of rows i0..i0+nb-1 (nb <= SDFLOW__MLP_ROWS;
 * the blocks' order and thread are unspecified, so a hook writes only data
 * of its own rows): input writes the rows' net inputs z0 (nb x d_in), adjoint
 * gets their outputs y (nb x d_out; an energy net's score -grad_x E, nb x d)
 * and writes the loss's adjoint in y, ybar (the same shape). */
typedef struct sdflow__mlp_rows {
    void (*input)(void *user, size_t i0, size_t nb, double *z0);
    void (*adjoint)(void *user, size_t i0, size_t nb, const double *y, double *ybar);
    void *user;
} sdflow__mlp_rows;

/* Forward and reverse in one pass over each block (its activations are
 * used by both): writes y (n x d_out; NULL: not kept) and adds to gtheta
 * the gradient for the hook's ybar, the same values as sdflow__mlp_forward
 * then sdflow__mlp_backward give. */
sdflow_status sdflow__mlp_forward_backward_rows(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n,
                                               const sdflow__mlp_rows *rows, double *y, double *gtheta);

/* Energy nets: the score y = -grad_x E (n x d; NULL: not kept) and, added
 * to gtheta, the parameter gradient for the hook's adjoint in y, in one
 * pass over each block (forward, primal reverse, reverse over forward)
 * instead of sdflow__mlp_grad_x then sdflow__mlp_bilinear_grad. */
sdflow_status sdflow__mlp_energy_rows(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const sdflow__mlp_rows *rows,
                                      double *y, double *gtheta);

/* Second order: adds to gtheta the parameter gradient of
 * L = sum_i a_i^T J_x(x_i) b_i, J the d_out x d Jacobian of the net output
 * (a: n x d_out, b: n x d). For an energy net (d_out = 1) with a = 1 this is
 * the parameter gradient of b^T grad_x E, i.e. minus the VJP of the score. */
sdflow_status sdflow__mlp_bilinear_grad(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                        const double *a, const double *b, double *gtheta);

/* The same for two pairs per row, sum_i a1_i^T J b1_i + a2_i^T J b2_i, on one
 * forward pass and one primal-adjoint chain per block (the QCSGM penalty's
 * two terms). */
sdflow_status sdflow__mlp_bilinear_grad2(sdflow_ctx *ctx, const sdflow__mlp *net, size_t n, const double *z0,
                                         const double *a1, const double *b1, const double *a2, const double *b2,
                                         double *gtheta);

#endif
