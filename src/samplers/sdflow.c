/* PLACEHOLDER: replaced by the real algorithm. */
#include "sampler_internal.h"

sdflow_status sdflow__sdflow_run(sdflow_sampler *s, size_t n, double *x)
{
    (void)n; (void)x;
    return sdflow__fail(s->ctx, SDFLOW_E_UNSUPPORTED, "not implemented");
}
