/* SPDX-License-Identifier: MIT */
/**
 * @file version.h
 * @brief Compile-time and run-time version of libsdflow.
 *
 * This file is the single source of the version number; the Makefile reads it.
 */
#ifndef SDFLOW_VERSION_H
#define SDFLOW_VERSION_H

#include "export.h"

#define SDFLOW_VERSION_MAJOR 0
#define SDFLOW_VERSION_MINOR 1
#define SDFLOW_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH. */
#define SDFLOW_VERSION_NUMBER \
    (SDFLOW_VERSION_MAJOR * 10000 + SDFLOW_VERSION_MINOR * 100 + SDFLOW_VERSION_PATCH)

SDFLOW_BEGIN_DECLS

/** @return SDFLOW_VERSION_NUMBER of the linked library (compare with the macro
 *  to detect a header/library mismatch). Thread safety: safe. */
SDFLOW_API unsigned sdflow_version(void);
/** @return "MAJOR.MINOR.PATCH" of the linked library; static storage. Thread safety: safe. */
SDFLOW_API const char *sdflow_version_string(void);

SDFLOW_END_DECLS
#endif
