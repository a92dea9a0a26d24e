/* SPDX-License-Identifier: MIT */
/* Internal: the safetensors container (docs/model-files.md): an 8-byte
 * little-endian header length N, N bytes of JSON header, then the tensor
 * bytes. The reader checks everything before use (header length against
 * the buffer and SDFLOW__ST_MAX_HEADER, JSON subset with depth 3, dtypes
 * F64/F32, shapes of at most SDFLOW__ST_MAX_DIM dimensions whose products
 * and byte sizes cannot overflow, data_offsets in range, aligned to the
 * element size, non-overlapping and covering the data section exactly,
 * unique names, string-only metadata) and fails with SDFLOW_E_FORMAT
 * naming the byte offset. The writer lays tensors out in the given order
 * and pads the header with spaces so the data starts 8-byte aligned. */
#ifndef SDFLOW_SAFETENSORS_H
#define SDFLOW_SAFETENSORS_H

#include "ctx_internal.h"

#define SDFLOW__ST_MAX_HEADER ((size_t)16 << 20) /* header bytes */
#define SDFLOW__ST_MAX_TENSORS 4096
#define SDFLOW__ST_MAX_META 256
#define SDFLOW__ST_MAX_NAME 255                   /* bytes of a tensor name or metadata key */
#define SDFLOW__ST_MAX_VALUE 4096                 /* bytes of a metadata value */
#define SDFLOW__ST_MAX_DIM 8

enum { SDFLOW__ST_F64 = 0, SDFLOW__ST_F32 = 1 };

typedef struct sdflow__st_tensor {
    char *name;
    int dtype;
    size_t ndim, shape[SDFLOW__ST_MAX_DIM];
    size_t count;      /* product of the shape (1 for a scalar) */
    size_t begin, end; /* byte range in the data section */
    size_t at;         /* file offset of its header entry (messages) */
    int used;          /* set by the consumer: tensors nobody took are refused */
} sdflow__st_tensor;

typedef struct sdflow__st_meta {
    char *key, *value;
    size_t at;
    int used;
} sdflow__st_meta;

typedef struct sdflow__st_file {
    const unsigned char *data; /* data section */
    size_t data_size, data_at; /* its size and file offset (8 + N) */
    sdflow__st_tensor *t;
    size_t nt;
    sdflow__st_meta *meta;
    size_t nmeta;
} sdflow__st_file;

/* Parses buf[0..size); on failure f is empty (nothing to free). f points
 * into buf, which must outlive it. */
sdflow_status sdflow__st_parse(sdflow_ctx *ctx, const void *buf, size_t size, sdflow__st_file *f);
void sdflow__st_free(sdflow_ctx *ctx, sdflow__st_file *f);
/* The tensor or metadata value of that name, NULL when absent; marks it used. */
sdflow__st_tensor *sdflow__st_take(sdflow__st_file *f, const char *name);
const char *sdflow__st_meta_take(sdflow__st_file *f, const char *key, size_t *at);
/* Copies tensor t (count values) as doubles (F32 widened exactly). */
void sdflow__st_read(const sdflow__st_file *f, const sdflow__st_tensor *t, double *out);

/* Writer input: a tensor of doubles, stored as dtype. */
typedef struct sdflow__st_out {
    const char *name;
    size_t ndim, shape[SDFLOW__ST_MAX_DIM];
    const double *data;
} sdflow__st_out;

/* Writes the file into buf (cap bytes) when buf is non-NULL and it fits;
 * *size always gets the file size. Metadata keys and values are C strings
 * (pairs kv[2 i], kv[2 i + 1]). Values that do not fit F32 fail with
 * SDFLOW_E_INVALID. A too small buffer fails with SDFLOW_E_INVALID. */
sdflow_status sdflow__st_write(sdflow_ctx *ctx, const sdflow__st_out *t, size_t nt, const char *const *kv,
                               size_t nkv, int dtype, unsigned char *buf, size_t cap, size_t *size);

#endif
