/* SPDX-License-Identifier: MIT */
/* Internal: the model-file writer and reader with extra entries, for
 * containers that hold a model plus more (trainer checkpoints,
 * src/train/checkpoint.c; io sits below train, mk/layers.sh). The extra
 * tensors and metadata pass through the same hostile reader as a model
 * file's: the model and process are rebuilt and checked exactly as by
 * sdflow_model_load_buffer(), then the hooks take their own entries, and
 * any tensor or sdflow.* key nobody took is refused. Also the number
 * formats of metadata values and whole-file read / atomic write. */
#ifndef SDFLOW_MODEL_FILE_H
#define SDFLOW_MODEL_FILE_H

#include "safetensors.h"

typedef struct sdflow__file_extra {
    /* save: tensors written after the model's, metadata pairs kv[2 i], kv[2 i + 1] */
    const sdflow__st_out *t;
    size_t nt;
    const char *const *kv;
    size_t nkv;
    int force_f64;     /* save: F64 whatever SDFLOW_CTX_FILE_DTYPE says */
    /* load: called right after the container was parsed (NULL: none) */
    sdflow_status (*check)(void *user, sdflow__st_file *f);
    /* load: called once model and process were rebuilt; takes its entries
     * with sdflow__st_take / sdflow__st_meta_take (NULL: none) */
    sdflow_status (*take)(void *user, sdflow__st_file *f, sdflow_model *m, const sdflow_process *p);
    void *user;
} sdflow__file_extra;

sdflow_status sdflow__model_save_ex(sdflow_model *m, const sdflow_process *p, const sdflow__file_extra *x,
                                    void *buf, size_t cap, size_t *size);
/* On failure *model and *process are NULL. */
sdflow_status sdflow__model_load_ex(sdflow_ctx *ctx, const void *buf, size_t size, const sdflow__file_extra *x,
                                    sdflow_model **model, sdflow_process **process);

/* The whole file at path into a new block (*buf, freed with sdflow__free;
 * size 0 gives a 1-byte block); SDFLOW_CTX_FILE_MAX_BYTES is checked
 * before the allocation. */
sdflow_status sdflow__file_read(sdflow_ctx *ctx, const char *path, unsigned char **buf, size_t *size);
/* buf to "<path>.tmp", renamed to path (removed on failure). */
sdflow_status sdflow__file_write(sdflow_ctx *ctx, const char *path, const void *buf, size_t size);

/* Metadata numbers: doubles with 17 significant digits in the C locale
 * (they read back exactly); strict decimal parsers (no sign for u64, no
 * '+', spaces or leading zeros; doubles JSON-style, finite). 1 on success. */
void sdflow__fmt_double(char *buf, size_t n, double v);
int sdflow__parse_double(const char *s, double *out);
int sdflow__parse_long(const char *s, long lo, long hi, long *out);
int sdflow__parse_u64(const char *s, uint64_t *out);

/* The architecture options a model kind's file keeps, and the process
 * options (in file order). */
const sdflow_option *sdflow__file_model_keys(sdflow_model_kind kind, size_t *n);
const sdflow_option *sdflow__file_process_keys(size_t *n);

#endif
