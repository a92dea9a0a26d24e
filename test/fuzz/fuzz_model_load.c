/* SPDX-License-Identifier: MIT */
/* libFuzzer harness of the buffer loader (sdflow_model_load_buffer): any
 * input must either load into a model that evaluates and saves again, or
 * fail with SDFLOW_E_FORMAT and return no model. AddressSanitizer and
 * UBSan (make fuzz) catch out-of-bounds reads, overflows and leaks.
 * Built with clang -fsanitize=fuzzer from the library's sources. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sdflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sdflow_ctx *ctx;
    if (!ctx && sdflow_ctx_create(&ctx, NULL) != SDFLOW_OK)
        abort();
    sdflow_model *m = (sdflow_model *)&ctx;
    sdflow_process *p = (sdflow_process *)&ctx;
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
