/* SPDX-License-Identifier: MIT */
/* libFuzzer harness of the buffer loaders: sdflow_model_load_buffer (any
 * input must either load into a model that evaluates and saves again, or
 * fail with SDFLOW_E_FORMAT and return no model) and the trainer
 * checkpoint loader sdflow_trainer_checkpoint_load_buffer (a loaded
 * trainer saves again and restores its own checkpoint; a refusal is
 * SDFLOW_E_FORMAT, or SDFLOW_E_INVALID for another seed, with no outputs).
 * A checkpoint carries a checksum, which random mutations almost never
 * keep: each input is also tried re-signed (its checksum recomputed, as a
 * forger would), so the checks behind the checksum are fuzzed too.
 * AddressSanitizer and UBSan (make fuzz) catch out-of-bounds reads,
 * overflows and leaks. Built with clang -fsanitize=fuzzer from the
 * library's sources. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a 64 of the input with the 16 digits after "sdflow.train.checksum"
 * read as zeros, written there (docs/model-files.md); 0 without the key. */
static int resign(unsigned char *b, size_t size)
{
    static const char key[] = "\"sdflow.train.checksum\"";
    size_t k = sizeof key - 1, i = 0;
    while (i + k < size && memcmp(b + i, key, k))
        i++;
    if (i + k >= size)
        return 0;
    for (i += k; i < size && b[i] != '"'; i++)
        ;
    if (i + 18 > size)
        return 0;
    memset(b + i + 1, '0', 16);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t j = 0; j < size; j++) {
        h ^= b[j];
        h *= 0x100000001b3ull;
    }
    for (int j = 0; j < 16; j++)
        b[i + 1 + j] = "0123456789abcdef"[(h >> (60 - 4 * j)) & 15];
    return 1;
}

static void checkpoint_one(sdflow_ctx *ctx, const uint8_t *data, size_t size)
{
    sdflow_trainer *t = (sdflow_trainer *)&ctx;
    sdflow_model *m = (sdflow_model *)&ctx;
    sdflow_process *p = (sdflow_process *)&ctx;
    sdflow_status st = sdflow_trainer_checkpoint_load_buffer(ctx, data, size, &t, &m, &p);
    if (st != SDFLOW_OK) {
        if ((st != SDFLOW_E_FORMAT && st != SDFLOW_E_INVALID) || t || m || p ||
            (st == SDFLOW_E_FORMAT && !strstr(sdflow_ctx_last_error(ctx), "byte ")))
            abort();
        return;
    }
    size_t n;
    if (sdflow_trainer_checkpoint_save_buffer(t, NULL, 0, &n) != SDFLOW_OK)
        abort();
    unsigned char *buf = malloc(n);
    if (!buf || sdflow_trainer_checkpoint_save_buffer(t, buf, n, &n) != SDFLOW_OK ||
        sdflow_trainer_checkpoint_restore_buffer(t, buf, n) != SDFLOW_OK)
        abort();
    free(buf);
    sdflow_trainer_free(t);
    sdflow_model_free(m);
    sdflow_process_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sdflow_ctx *ctx;
    if (!ctx && sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        abort();
    sdflow_model *m = (sdflow_model *)&ctx;
    sdflow_process *p = (sdflow_process *)&ctx;
    checkpoint_one(ctx, data, size);
    unsigned char *signed_copy = size ? malloc(size) : NULL;
    if (signed_copy) {
        memcpy(signed_copy, data, size);
        if (resign(signed_copy, size))
            checkpoint_one(ctx, signed_copy, size);
        free(signed_copy);
    }
    sdflow_status st = sdflow_model_load_buffer(ctx, data, size, &m, &p);
    if (st != SDFLOW_OK) {
        if (st != SDFLOW_E_FORMAT || m || p || !strstr(sdflow_ctx_last_error(ctx), "byte "))
            abort();
        return 0;
    }
    /* a loaded model is a valid one: it evaluates (finite or a reported
     * numeric failure) and saves again to a file that loads */
    size_t d = sdflow_model_dim(m);
    if (d <= 64) {
        double x[4 * 64] = { 0 }, t[4], out[4 * 64], lo = 0.1, hi = 1.0;
        if (p)
            sdflow_process_time_range(p, &lo, &hi);
        for (int i = 0; i < 4; i++)
            t[i] = lo + (hi - lo) * (i + 1) / 5.0;
        st = sdflow_model_score(m, p, 4, x, t, out);
        if (st != SDFLOW_OK && st != SDFLOW_E_NUMERIC)
            abort();
    }
    size_t n;
    if (sdflow_model_save_buffer(m, p, NULL, 0, &n) != SDFLOW_OK)
        abort();
    unsigned char *buf = malloc(n);
    sdflow_model *m2 = NULL;
    if (!buf || sdflow_model_save_buffer(m, p, buf, n, &n) != SDFLOW_OK ||
        sdflow_model_load_buffer(ctx, buf, n, &m2, NULL) != SDFLOW_OK)
        abort();
    free(buf);
    sdflow_model_free(m2);
    sdflow_model_free(m);
    sdflow_process_free(p);
    return 0;
}
