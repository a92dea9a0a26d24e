/* SPDX-License-Identifier: MIT */
/* Status names, version, and the enum-name tables helper. */
#include <string.h>
#include "ctx_internal.h"

#define SDFLOW__STR2(x) #x
#define SDFLOW__STR(x) SDFLOW__STR2(x)

const char *sdflow_strerror(sdflow_status st)
{
    switch (st) {
    case SDFLOW_OK: return "success";
    case SDFLOW_E_INVALID: return "invalid argument";
    case SDFLOW_E_NOMEM: return "out of memory";
    case SDFLOW_E_NUMERIC: return "NaN or Inf met during computation";
    case SDFLOW_E_IO: return "input/output error";
    case SDFLOW_E_FORMAT: return "malformed model file";
    case SDFLOW_E_UNSUPPORTED: return "unsupported option or operation";
    case SDFLOW_E_CANCELLED: return "cancelled by the progress callback";
    case SDFLOW_E_STATE: return "object not in a state that allows this call";
    case SDFLOW_E_CALLBACK: return "a user callback returned nonzero";
    }
    return "unknown status code";
}

unsigned sdflow_version(void)
{
    return SDFLOW_VERSION_NUMBER;
}

const char *sdflow_version_string(void)
{
    return SDFLOW__STR(SDFLOW_VERSION_MAJOR) "." SDFLOW__STR(SDFLOW_VERSION_MINOR) "." SDFLOW__STR(
        SDFLOW_VERSION_PATCH);
}

const char *sdflow__name_of(const sdflow__name *table, int value)
{
    for (; table->name; table++)
        if (table->value == value)
            return table->name;
    return NULL;
}

int sdflow__value_of(const sdflow__name *table, const char *name, int *out)
{
    if (!name)
        return 0;
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0) {
            *out = table->value;
            return 1;
        }
    return 0;
}
