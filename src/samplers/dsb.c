/* SPDX-License-Identifier: MIT */
/* Diffusion Schrodinger bridge sampling (De Bortoli et al. 2021): the
 * backward chain from the prior end (generation) or the forward chain from
 * the data end, with the means of dsb_chain.c and keyed noise. */
#include <string.h>
#include "dsb_internal.h"

sdflow_status sdflow__dsb_run(sdflow_sampler *s, size_t n, const double *x_init, double *x_out)
{
    sdflow__dsb_opts *o = sdflow__dsb_of(s);
    sdflow_ctx *ctx = s->ctx;
    sdflow__dsb_work w;
    sdflow_status st = sdflow__dsb_work_init(s, n, &w);
    size_t d = w.d;
    double *mean = NULL;
    if (st)
        goto done;
    if ((st = sdflow__check_dims(ctx, n, d)) || (st = sdflow__check_ptr(ctx, x_out, "x_out")) ||
        (x_init && (st = sdflow__check_finite(ctx, x_init, n, d, "x_init"))))
        goto done;
    int fwd = o->direction == SDFLOW_DSB_DATA_TO_PRIOR;
    /* backward means are needed before anything is drawn */
    if (!fwd && !s->model[SDFLOW_ROLE_BACKWARD] && (!o->fit || o->fit->halves < 1)) {
        st = sdflow__dsb_backward_mean(&w, 0, 0, NULL, NULL);
        goto done;
    }
    memset(s->stats, 0, sizeof s->stats);
    if (!(mean = sdflow__alloc_array(ctx, n, d * sizeof(double), "dsb means"))) {
        st = SDFLOW_E_NOMEM;
        goto done;
    }
    if (x_init) {
        if (x_out != x_init)
            memmove(x_out, x_init, n * d * sizeof *x_out);
    } else if ((st = sdflow__dsb_draw_end(&w, fwd ? SDFLOW_ROLE_DATA : SDFLOW_ROLE_PRIOR, sdflow__stream(s->stream, TAG_INIT, 0),
                              s->first_index, n, x_out))) {
        goto done;
    }
    long N = w.N;
    for (long j = 0; j < N && !st; j++) {
        long k = fwd ? j : N - 1 - j; /* transition k */
        st = fwd ? sdflow__dsb_forward_mean(&w, k, n, x_out, mean) : sdflow__dsb_backward_mean(&w, k, n, x_out, mean);
        if (!st && (st = sdflow__dsb_check_state(&w, mean, n, k, "mean")))
            break;
        if (st)
            break;
        if (!fwd && k == 0 && s->denoise) /* the generator's last step is its mean (reference sample=True) */
            memcpy(x_out, mean, n * d * sizeof *mean);
        else
            sdflow__dsb_add_noise(&w, sdflow__stream(s->stream, fwd ? TAG_FORWARD : TAG_BACKWARD, (uint64_t)j), s->first_index, n,
                      w.gam[k], mean, x_out);
        s->stats[SDFLOW_STAT_NFE] += 1;
        s->stats[SDFLOW_STAT_STEPS_ACCEPTED] += (double)n;
        st = sdflow__progress(ctx, j + 1, N, "dsb");
    }
    if (!st)
        st = sdflow__check_result(ctx, x_out, n, d, "dsb final state");
done:
    if (o->fit) {
        s->stats[SDFLOW_STAT_HALF_BRIDGES] = (double)o->fit->halves;
    }
    sdflow__free(ctx, mean);
    sdflow__dsb_work_free(&w);
    return st;
}

/* The DSB sampler's own option slots (dsb_options.def): key, field of
 * sdflow__dsb_opts, default. */
#define SLOT(key, field, def) SDFLOW__PRIV_SLOT(sdflow__dsb_opts, key, SDFLOW__KIND_BIT(SDFLOW_SAMPLER_DSB), field, def)
static const sdflow__opt_slot dsb_slots[] = {
#include "dsb_options.def"
};
static const sdflow__opt_store dsb_store = { "sampler", dsb_slots, sizeof dsb_slots / sizeof dsb_slots[0], NULL, NULL };

const sdflow__sampler_kind_ops sdflow__dsb_kind = {
    .kind = SDFLOW_SAMPLER_DSB, .name = "dsb", .roles = SDFLOW__ROLE_RANGE(SDFLOW_ROLE_FORWARD, SDFLOW_ROLE_PRIOR),
    .roles_hint = "use SDFLOW_ROLE_FORWARD / SDFLOW_ROLE_BACKWARD / SDFLOW_ROLE_DATA / SDFLOW_ROLE_PRIOR",
    .primary = SDFLOW_ROLE_FORWARD, .primary_name = "forward", .process = SDFLOW__SK_PROC_NONE,
    .flags = SDFLOW__SK_WHOLE_RUN, .whole_run = sdflow__dsb_run, .opts = &dsb_store,
    .priv_size = sizeof(sdflow__dsb_opts), .free_priv = sdflow__dsb_free,
};
