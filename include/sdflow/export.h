/* SPDX-License-Identifier: MIT */
/**
 * @file export.h
 * @brief Symbol visibility and deprecation macros.
 */
#ifndef SDFLOW_EXPORT_H
#define SDFLOW_EXPORT_H

#if defined(__GNUC__) && __GNUC__ >= 4
#  define SDFLOW_API __attribute__((visibility("default")))
#  define SDFLOW_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#  define SDFLOW_API
#  define SDFLOW_DEPRECATED(msg)
#endif

#ifdef __cplusplus
#  define SDFLOW_BEGIN_DECLS extern "C" {
#  define SDFLOW_END_DECLS }
#else
#  define SDFLOW_BEGIN_DECLS
#  define SDFLOW_END_DECLS
#endif

#endif
