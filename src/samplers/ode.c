/* PLACEHOLDER: replaced by the real algorithm. */
#include "sampler_internal.h"

sdflow_status sdflow__ode_run(sdflow_sampler *s, size_t n, double t_from, double t_to, double *x)
{
    (void)n; (void)x; (void)t_from; (void)t_to;
    return sdflow__fail(s->ctx, SDFLOW_E_UNSUPPORTED, "not implemented");
}
