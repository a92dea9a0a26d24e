/* SPDX-License-Identifier: MIT */
/**
 * @file io.h
 * @brief Model files: save and load models (and their process) as safetensors.
 *
 * A model file is a safetensors file (docs/model-files.md): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian tensor bytes. The
 * header's `__metadata__` map records the model kind, its architecture
 * options, its output kind, optionally the process it was trained with,
 * the library version and the format version, so a file rebuilds the model
 * and the process without other information. numpy alone reads it; PyTorch
 * models convert both ways (bindings/python).
 *
 * Every model kind with state saves: gaussian, gmm, kernel, mlp (callback
 * models have none). Saved as F64 (the default, SDFLOW_CTX_FILE_DTYPE) a
 * loaded model evaluates bit-identically to the saved one; saved as F32 the
 * values are rounded to float.
 *
 * Loading treats the input as hostile: every length, offset, shape product,
 * dtype, string and nesting depth is checked before use; the input may be
 * at most SDFLOW_CTX_FILE_MAX_BYTES bytes. Any defect gives SDFLOW_E_FORMAT
 * with the byte offset and the reason in sdflow_ctx_last_error(); a failed
 * load allocates nothing that outlives it and returns no model.
 *
 * Thread safety: saving reads the model (an MLP is materialized first, as
 * by any parameter access); loads on distinct contexts may run in parallel.
 */
#ifndef SDFLOW_IO_H
#define SDFLOW_IO_H

#include "model.h"

SDFLOW_BEGIN_DECLS

/** Tensor element types of model files (SDFLOW_CTX_FILE_DTYPE). Loaders
 *  read both; F32 values are widened to double exactly. */
typedef enum sdflow_dtype {
    SDFLOW_DTYPE_F64 = 0, /**< IEEE binary64, little endian ("F64") */
    SDFLOW_DTYPE_F32 = 1  /**< IEEE binary32, little endian ("F32"), rounded to nearest on save */
} sdflow_dtype;

/** The file format version this library writes, and the newest it reads
 *  (every older version is read too). */
#define SDFLOW_FILE_FORMAT_VERSION 1

/** Saves model @p m, and process @p p unless NULL, to the file at @p path
 *  in the element type SDFLOW_CTX_FILE_DTYPE of the model's ctx. The bytes
 *  go to "<path>.tmp", which is then renamed to @p path (an existing file is
 *  replaced only by a complete one; the temporary is removed on failure).
 *  @return SDFLOW_E_IO when the file cannot be written, SDFLOW_E_UNSUPPORTED
 *  for a callback model, SDFLOW_E_INVALID for NULL arguments, a process of
 *  another ctx, or (F32) a value beyond float range. */
SDFLOW_API sdflow_status sdflow_model_save(sdflow_model *m, const sdflow_process *p, const char *path);
/** Saves into the caller's buffer: *@p size always receives the file's
 *  size; with @p buf NULL nothing else happens (a size query, SDFLOW_OK);
 *  with @p cap < *size it fails with SDFLOW_E_INVALID and writes nothing. */
SDFLOW_API sdflow_status sdflow_model_save_buffer(sdflow_model *m, const sdflow_process *p, void *buf, size_t cap,
                                                  size_t *size);
/** Loads a model file: *@p model receives a new model of ctx; if @p process
 *  is non-NULL it receives the file's process (NULL when the file has none).
 *  On failure both outputs are NULL. The file's process is checked also when
 *  @p process is NULL. */
SDFLOW_API sdflow_status sdflow_model_load(sdflow_ctx *ctx, const char *path, sdflow_model **model,
                                           sdflow_process **process);
/** Loads from @p size bytes at @p buf (not kept), as sdflow_model_load(). */
SDFLOW_API sdflow_status sdflow_model_load_buffer(sdflow_ctx *ctx, const void *buf, size_t size,
                                                  sdflow_model **model, sdflow_process **process);

SDFLOW_END_DECLS
#endif
