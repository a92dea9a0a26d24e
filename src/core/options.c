/* SPDX-License-Identifier: MIT */
/* The option table: names, types and bounds of every key, and the checks
 * every object's setters share. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ctx_internal.h"

typedef struct option_row {
    sdflow_option key;
    const char *name;
    sdflow_option_type type;
    double lo, hi;
} option_row;

#define U64MAX 18446744073709551615.0
#define BIG 1e300

static const option_row table[] = {
    { SDFLOW_CTX_SEED, "seed", SDFLOW_TYPE_U64, 0, U64MAX },
    { SDFLOW_CTX_THREADS, "threads", SDFLOW_TYPE_INT, 1, 256 },
    { SDFLOW_CTX_LOG_LEVEL, "log_level", SDFLOW_TYPE_INT, 0, 4 },
    { SDFLOW_CTX_BLAS_POOL, "blas_pool", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_PROC_BETA_MIN, "beta_min", SDFLOW_TYPE_DOUBLE, 0, 1e4 },
    { SDFLOW_PROC_BETA_MAX, "beta_max", SDFLOW_TYPE_DOUBLE, 1e-6, 1e4 },
    { SDFLOW_PROC_SIGMA_MIN, "proc_sigma_min", SDFLOW_TYPE_DOUBLE, 1e-12, 1e12 },
    { SDFLOW_PROC_SIGMA_MAX, "proc_sigma_max", SDFLOW_TYPE_DOUBLE, 1e-12, 1e12 },
    { SDFLOW_PROC_COSINE_S, "cosine_s", SDFLOW_TYPE_DOUBLE, 0, 1 },
    { SDFLOW_PROC_T_MAX, "t_max", SDFLOW_TYPE_DOUBLE, 1e-6, 1e6 },
    /* 0 is valid for interpolants (closed [0, 1]); diffusions refuse it by consistency (sigma(0) = 0) */
    { SDFLOW_PROC_T_EPS, "t_eps", SDFLOW_TYPE_DOUBLE, 0, 1 },
    { SDFLOW_PROC_VE_EXACT_STD, "ve_exact_std", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_PROC_INTERP_EPS, "interp_eps", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_STEPS, "steps", SDFLOW_TYPE_INT, 1, 1e9 },
    { SDFLOW_OPT_SIGMA_MAX, "sigma_max", SDFLOW_TYPE_DOUBLE, 0, BIG },
    { SDFLOW_OPT_FIRST_INDEX, "first_index", SDFLOW_TYPE_U64, 0, U64MAX },
    { SDFLOW_OPT_SIGMA_MIN, "sigma_min", SDFLOW_TYPE_DOUBLE, 0, BIG },
    { SDFLOW_OPT_T_MIN, "t_min", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_TIME_GRID, "time_grid", SDFLOW_TYPE_INT, 0, 4 },
    { SDFLOW_OPT_DENOISE, "denoise", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_SOLVER, "solver", SDFLOW_TYPE_INT, 0, 3 },
    { SDFLOW_OPT_SNR, "snr", SDFLOW_TYPE_DOUBLE, 0, 1e3 },
    { SDFLOW_OPT_CORRECTOR_STEPS, "corrector_steps", SDFLOW_TYPE_INT, 0, 1000 },
    { SDFLOW_OPT_MAX_STEPS, "max_steps", SDFLOW_TYPE_INT, 1, 1e9 },
    { SDFLOW_OPT_H_INIT, "h_init", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_STEP_FRAC, "step_frac", SDFLOW_TYPE_DOUBLE, 1e-9, 2 },
    { SDFLOW_OPT_INNER_STEPS, "inner_steps", SDFLOW_TYPE_INT, 1, 1e9 },
    { SDFLOW_OPT_NOISE, "noise", SDFLOW_TYPE_DOUBLE, 0, 1e3 },
    { SDFLOW_OPT_SELF_EXCLUDE, "self_exclude", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_EVAL_NOISY, "eval_noisy", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_T_START, "t_start", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_STREAM, "stream", SDFLOW_TYPE_U64, 0, U64MAX },
    { SDFLOW_OPT_BLOCK_Q, "block_q", SDFLOW_TYPE_INT, 1, 1 << 20 },
    { SDFLOW_OPT_BLOCK_Y, "block_y", SDFLOW_TYPE_INT, 1, 1 << 24 },
    { SDFLOW_OPT_ETA, "eta", SDFLOW_TYPE_DOUBLE, 0, 100 },
    { SDFLOW_OPT_S_CHURN, "s_churn", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_S_TMIN, "s_tmin", SDFLOW_TYPE_DOUBLE, 0, BIG },
    { SDFLOW_OPT_S_TMAX, "s_tmax", SDFLOW_TYPE_DOUBLE, 0, INFINITY },
    { SDFLOW_OPT_S_NOISE, "s_noise", SDFLOW_TYPE_DOUBLE, 0, 100 },
    { SDFLOW_OPT_RHO, "rho", SDFLOW_TYPE_DOUBLE, 1e-3, 1e3 },
    { SDFLOW_OPT_SIGMA_MIN_NN, "sigma_min_nn", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_START, "start", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_OPT_DSB_SCHEDULE, "dsb_schedule", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_OPT_DSB_GAMMA_MIN, "dsb_gamma_min", SDFLOW_TYPE_DOUBLE, 1e-12, 1e6 },
    { SDFLOW_OPT_DSB_GAMMA_MAX, "dsb_gamma_max", SDFLOW_TYPE_DOUBLE, 1e-12, 1e6 },
    { SDFLOW_OPT_DSB_REFERENCE, "dsb_reference", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_DSB_PRIOR_MEAN, "dsb_prior_mean", SDFLOW_TYPE_DOUBLE, -1e150, 1e150 },
    { SDFLOW_OPT_DSB_PRIOR_VAR, "dsb_prior_var", SDFLOW_TYPE_DOUBLE, 1e-150, 1e150 },
    { SDFLOW_OPT_DSB_MEAN_MATCH, "dsb_mean_match", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_DSB_TIME_INPUT, "dsb_time_input", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_DSB_DIRECTION, "dsb_direction", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_DSB_NPAR, "dsb_npar", SDFLOW_TYPE_INT, 1, 1e9 },
    { SDFLOW_OPT_DSB_BATCH, "dsb_batch", SDFLOW_TYPE_INT, 1, 1e7 },
    { SDFLOW_OPT_DSB_TRAIN_STEPS, "dsb_train_steps", SDFLOW_TYPE_INT, 1, 1e9 },
    { SDFLOW_OPT_DSB_CACHE_REFRESH, "dsb_cache_refresh", SDFLOW_TYPE_INT, 0, 1e9 },
    { SDFLOW_OPT_DSB_LR, "dsb_lr", SDFLOW_TYPE_DOUBLE, 1e-12, 1e3 },
    { SDFLOW_OPT_DSB_LR_COSINE, "dsb_lr_cosine", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_RTOL, "rtol", SDFLOW_TYPE_DOUBLE, 1e-14, 1 },
    { SDFLOW_OPT_ATOL, "atol", SDFLOW_TYPE_DOUBLE, 1e-14, 1 },
    { SDFLOW_OPT_PROBES, "probes", SDFLOW_TYPE_INT, 1, 1e6 },
    { SDFLOW_OPT_PROBE_KIND, "probe_kind", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_LIYAN_TIMES, "liyan_times", SDFLOW_TYPE_INT, 1, 1e7 },
    { SDFLOW_OPT_LIYAN_DRAWS, "liyan_draws", SDFLOW_TYPE_INT, 1, 1e6 },
    { SDFLOW_OPT_LAMBDA_MIN, "lambda_min", SDFLOW_TYPE_DOUBLE, -100, 100 },
    { SDFLOW_OPT_LAMBDA_MAX, "lambda_max", SDFLOW_TYPE_DOUBLE, -100, 100 },
    { SDFLOW_OPT_DATA_SCALE, "data_scale", SDFLOW_TYPE_DOUBLE, 1e-12, 1e12 },
    { SDFLOW_OPT_DEQUANTIZE, "dequantize", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_DIVERGENCE, "divergence", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_OPT_INTERP_T0, "interp_t0", SDFLOW_TYPE_DOUBLE, 0, 1 },
    { SDFLOW_OPT_INTERP_T1, "interp_t1", SDFLOW_TYPE_DOUBLE, 0, 1 },
    { SDFLOW_OPT_INTERP_DIFFUSION, "interp_diffusion", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_OPT_INTERP_KINETIC, "interp_kinetic", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_INTERP_TIME, "interp_time", SDFLOW_TYPE_DOUBLE, 1e-12, 1 },
    { SDFLOW_OPT_COUPLING, "coupling", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_OPT_COUPLING_EPS, "coupling_eps", SDFLOW_TYPE_DOUBLE, 1e-6, 1e6 },
    { SDFLOW_OPT_MLP_DEPTH, "mlp_depth", SDFLOW_TYPE_INT, 1, 64 },
    { SDFLOW_OPT_MLP_WIDTH, "mlp_width", SDFLOW_TYPE_INT, 1, 65536 },
    { SDFLOW_OPT_MLP_ACTIVATION, "mlp_activation", SDFLOW_TYPE_INT, 0, 4 },
    { SDFLOW_OPT_MLP_FREQS, "mlp_freqs", SDFLOW_TYPE_INT, 0, 4096 },
    { SDFLOW_OPT_MLP_RESIDUAL, "mlp_residual", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_OPT_MLP_OUTPUT, "mlp_output", SDFLOW_TYPE_INT, 0, 5 },
    { SDFLOW_OPT_MLP_TIME_INPUT, "mlp_time_input", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_MLP_LEARN_FREQS, "mlp_learn_freqs", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_OPT_MLP_FREQ_SCALE, "mlp_freq_scale", SDFLOW_TYPE_DOUBLE, 1e-12, 1e6 },
    { SDFLOW_TRAIN_BATCH, "train_batch", SDFLOW_TYPE_INT, 1, 1 << 24 },
    { SDFLOW_TRAIN_WEIGHTING, "train_weighting", SDFLOW_TYPE_INT, 0, 2 },
    { SDFLOW_TRAIN_T_SAMPLING, "train_t_sampling", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_STRATIFIED, "train_stratified", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_T_EPS, "train_t_eps", SDFLOW_TYPE_DOUBLE, 0, 1e6 },
    { SDFLOW_TRAIN_REDUCE_MEAN, "train_reduce_mean", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_LR, "train_lr", SDFLOW_TYPE_DOUBLE, 0, 1e3 },
    { SDFLOW_TRAIN_BETA1, "train_beta1", SDFLOW_TYPE_DOUBLE, 0, 0.999999999 },
    { SDFLOW_TRAIN_BETA2, "train_beta2", SDFLOW_TYPE_DOUBLE, 0, 0.999999999 },
    { SDFLOW_TRAIN_ADAM_EPS, "train_adam_eps", SDFLOW_TYPE_DOUBLE, 1e-300, 1 },
    { SDFLOW_TRAIN_WEIGHT_DECAY, "train_weight_decay", SDFLOW_TYPE_DOUBLE, 0, 1e3 },
    { SDFLOW_TRAIN_OPTIMIZER, "train_optimizer", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_SCHEDULE, "train_schedule", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_WARMUP, "train_warmup", SDFLOW_TYPE_INT, 0, 1e9 },
    { SDFLOW_TRAIN_TOTAL_STEPS, "train_total_steps", SDFLOW_TYPE_INT, 0, 1e9 },
    { SDFLOW_TRAIN_LR_MIN, "train_lr_min", SDFLOW_TYPE_DOUBLE, 0, 1e3 },
    { SDFLOW_TRAIN_CLIP_NORM, "train_clip_norm", SDFLOW_TYPE_DOUBLE, 0, BIG },
    { SDFLOW_TRAIN_EMA_DECAY, "train_ema_decay", SDFLOW_TYPE_DOUBLE, 0, 0.999999999 },
    { SDFLOW_TRAIN_EMA_WARMUP, "train_ema_warmup", SDFLOW_TYPE_INT, 0, 1 },
    { SDFLOW_TRAIN_QCSGM_WEIGHT, "train_qcsgm_weight", SDFLOW_TYPE_DOUBLE, 0, 1e12 },
    { SDFLOW_TRAIN_QCSGM_PROBES, "train_qcsgm_probes", SDFLOW_TYPE_INT, 1, 1024 },
    { SDFLOW_TRAIN_RANK, "train_rank", SDFLOW_TYPE_INT, 0, 1 << 24 },
    { SDFLOW_TRAIN_WORLD_SIZE, "train_world_size", SDFLOW_TYPE_INT, 1, 1 << 24 },
    { SDFLOW_TRAIN_VAL_EVERY, "train_val_every", SDFLOW_TYPE_INT, 0, 1e9 },
    { SDFLOW_CTX_FILE_MAX_BYTES, "file_max_bytes", SDFLOW_TYPE_U64, 16, U64MAX },
    { SDFLOW_CTX_FILE_DTYPE, "file_dtype", SDFLOW_TYPE_INT, 0, 1 },
};

static const option_row *find(sdflow_option key)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].key == key)
            return &table[i];
    return NULL;
}

sdflow_option_type sdflow__option_info(sdflow_option key, double *lo, double *hi)
{
    const option_row *r = find(key);
    if (!r)
        return SDFLOW_TYPE_NONE;
    if (lo)
        *lo = r->lo;
    if (hi)
        *hi = r->hi;
    return r->type;
}

sdflow_option_type sdflow_option_get_type(sdflow_option key)
{
    return sdflow__option_info(key, NULL, NULL);
}

sdflow_status sdflow_option_bounds(sdflow_option key, double *lo, double *hi)
{
    if (!lo || !hi)
        return SDFLOW_E_INVALID;
    return sdflow__option_info(key, lo, hi) == SDFLOW_TYPE_NONE ? SDFLOW_E_UNSUPPORTED : SDFLOW_OK;
}

const char *sdflow_option_name(sdflow_option key)
{
    const option_row *r = find(key);
    return r ? r->name : NULL;
}

sdflow_status sdflow_option_from_name(const char *name, sdflow_option *out)
{
    if (!name || !out)
        return SDFLOW_E_INVALID;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) {
            *out = table[i].key;
            return SDFLOW_OK;
        }
    return SDFLOW_E_UNSUPPORTED;
}

static const char *type_name(sdflow_option_type t)
{
    return t == SDFLOW_TYPE_INT ? "int" : t == SDFLOW_TYPE_DOUBLE ? "double" : "u64";
}

sdflow_status sdflow__check_option_value(sdflow_ctx *ctx, sdflow_option key, sdflow_option_type type,
                                         double value)
{
    const option_row *r = find(key);
    if (!r)
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "unknown option key %d", (int)key);
    if (r->type != type)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "option %s is of type %s, not %s", r->name,
                            type_name(r->type), type_name(type));
    if (isnan(value) || value < r->lo || value > r->hi)
        return sdflow__fail(ctx, SDFLOW_E_INVALID, "option %s = %g is outside [%g, %g]", r->name, value, r->lo,
                            r->hi);
    return SDFLOW_OK;
}

sdflow_status sdflow__option_accept(sdflow_ctx *ctx, const char *object, const sdflow_option *keys, size_t nkeys,
                                    sdflow_option key, sdflow_option_type type, const double *value)
{
    int known = 0;
    for (size_t i = 0; i < nkeys; i++)
        known |= keys[i] == key;
    if (!known) {
        const char *name = sdflow_option_name(key);
        if (ctx)
            return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "option %d (%s) does not apply to %s", (int)key,
                                name ? name : "unknown key", object);
        return SDFLOW_E_UNSUPPORTED;
    }
    if (value)
        return sdflow__check_option_value(ctx, key, type, *value);
    if (sdflow_option_get_type(key) != type)
        return ctx ? sdflow__fail(ctx, SDFLOW_E_INVALID, "option %s is of type %s, not %s", sdflow_option_name(key),
                                  type_name(sdflow_option_get_type(key)), type_name(type))
                   : SDFLOW_E_INVALID;
    return SDFLOW_OK;
}

static const sdflow__opt_slot *find_slot(const sdflow__opt_slot *slots, size_t nslots, unsigned kind_bit,
                                         sdflow_option key)
{
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].key == key && (slots[i].kinds & kind_bit))
            return &slots[i];
    return NULL;
}

static size_t type_size(sdflow_option_type type)
{
    return type == SDFLOW_TYPE_INT ? sizeof(long) : type == SDFLOW_TYPE_DOUBLE ? sizeof(double) : sizeof(uint64_t);
}

sdflow_status sdflow__slot_set(sdflow_ctx *ctx, const sdflow__opt_slot *slots, size_t nslots, unsigned kind_bit,
                               const char *kind_name, const char *noun, void *obj, sdflow_option key,
                               sdflow_option_type type, const void *value)
{
    const sdflow__opt_slot *slot = find_slot(slots, nslots, kind_bit, key);
    if (!slot) {
        const char *name = sdflow_option_name(key);
        return sdflow__fail(ctx, SDFLOW_E_UNSUPPORTED, "option %d (%s) does not apply to a %s %s", (int)key,
                            name ? name : "unknown key", kind_name, noun);
    }
    double v = type == SDFLOW_TYPE_INT      ? (double)*(const long *)value
               : type == SDFLOW_TYPE_DOUBLE ? *(const double *)value
                                            : (double)*(const uint64_t *)value;
    sdflow_status st = sdflow__check_option_value(ctx, key, type, v);
    if (!st)
        memcpy((char *)obj + slot->offset, value, type_size(type));
    return st;
}

sdflow_status sdflow__slot_get(const sdflow__opt_slot *slots, size_t nslots, unsigned kind_bit, const void *obj,
                               sdflow_option key, sdflow_option_type type, void *value)
{
    const sdflow__opt_slot *slot = find_slot(slots, nslots, kind_bit, key);
    if (!slot)
        return SDFLOW_E_UNSUPPORTED;
    if (sdflow_option_get_type(key) != type)
        return SDFLOW_E_INVALID;
    memcpy(value, (const char *)obj + slot->offset, type_size(type));
    return SDFLOW_OK;
}
