/* SPDX-License-Identifier: MIT */
/**
 * @file status.h
 * @brief Status codes returned by every fallible libsdflow function.
 *
 * Values are stable and never reused; new codes are appended. Treat an
 * unknown nonzero code as a generic failure.
 */
#ifndef SDFLOW_STATUS_H
#define SDFLOW_STATUS_H

#include "export.h"

SDFLOW_BEGIN_DECLS

typedef enum sdflow_status {
    SDFLOW_OK = 0,            /**< success */
    SDFLOW_E_INVALID = 1,     /**< invalid argument (NULL, size, range, NaN/Inf input) */
    SDFLOW_E_NOMEM = 2,       /**< allocation failed; no state was changed */
    SDFLOW_E_NUMERIC = 3,     /**< a NaN or Inf appeared during computation */
    SDFLOW_E_IO = 4,          /**< file could not be read or written */
    SDFLOW_E_FORMAT = 5,      /**< malformed model file */
    SDFLOW_E_UNSUPPORTED = 6, /**< unknown option key, or operation not supported by this object kind */
    SDFLOW_E_CANCELLED = 7,   /**< the progress callback asked to stop */
    SDFLOW_E_STATE = 8,       /**< object is not in a state that allows this call */
    SDFLOW_E_CALLBACK = 9     /**< a user model callback returned nonzero */
} sdflow_status;

/** @return a short static description of @p st ("invalid argument", ...);
 *  never NULL, also for unknown codes. Thread safety: safe. */
SDFLOW_API const char *sdflow_strerror(sdflow_status st);

SDFLOW_END_DECLS
#endif
