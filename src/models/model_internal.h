/* Internal: the model handle and the operations each model kind provides.
 * Every kind implements eval in its own parameterization ("native"); the
 * generic layer in model.c validates inputs, converts outputs through the
 * process and checks results, so kinds never repeat that work. */
#ifndef SDFLOW_MODEL_INTERNAL_H
#define SDFLOW_MODEL_INTERNAL_H

#include "process_internal.h"

typedef struct sdflow__model_ops {
    /* n x d native outputs at validated inputs. Required. */
    sdflow_status (*eval)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                          double *out);
    /* log p_t at n points; NULL: unsupported. */
    sdflow_status (*logpdf)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x, const double *t,
                            double *logp);
    /* n x d x d Jacobian of the native output; NULL: unsupported. */
    sdflow_status (*jacobian)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                              const double *t, double *jac);
    /* Trace of the native Jacobian; NULL: derived from jacobian. */
    sdflow_status (*divergence)(sdflow_model *m, const sdflow_process *p, size_t n, const double *x,
                                const double *t, double *div);
    /* Exact data samples; NULL: unsupported. */
    sdflow_status (*sample)(sdflow_model *m, uint64_t stream, uint64_t first_index, size_t n, double *out);
    /* Options; NULL: the kind has none. */
    sdflow_status (*set_int)(sdflow_model *m, sdflow_option key, long value);
    sdflow_status (*get_int)(const sdflow_model *m, sdflow_option key, long *value);
    /* Frees impl. */
    void (*destroy)(sdflow_model *m);
} sdflow__model_ops;

struct sdflow_model {
    sdflow_ctx *ctx;
    sdflow_model_kind kind;
    size_t d;
    sdflow_output native; /* parameterization eval produces */
    const sdflow__model_ops *ops;
    void *impl;
};

/* Allocates the handle; impl is owned by the handle from then on (ops->destroy). */
sdflow_status sdflow__model_new(sdflow_ctx *ctx, sdflow_model_kind kind, size_t d, sdflow_output native,
                                const sdflow__model_ops *ops, void *impl, sdflow_model **out);

/* Symmetric eigendecomposition by cyclic Jacobi: a (d x d, destroyed) ->
 * eigenvalues w, eigenvectors as columns of v (row-major d x d). */
void sdflow__sym_eigen(size_t d, double *a, double *w, double *v);
/* Cholesky a = L L^T in place (lower triangle); returns the failing pivot
 * index + 1, or 0 on success. */
size_t sdflow__cholesky(size_t d, double *a);

#endif
