/* SPDX-License-Identifier: MIT */
/* The fuzz build compiles the library without OpenMP (clang's OpenMP
 * runtime would be one more package, and the loader has no parallel loop):
 * the pragmas are ignored and this stands in for <omp.h>. */
#ifndef SDFLOW_FUZZ_OMP_H
#define SDFLOW_FUZZ_OMP_H
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
