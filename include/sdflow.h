/* SPDX-License-Identifier: MIT */
/**
 * @file sdflow.h
 * @brief libsdflow: score-based generative modeling in C11.
 *
 * The one header to include. All objects are opaque handles created from a
 * ::sdflow_ctx and freed in pairs; every fallible function returns a
 * ::sdflow_status, with a precise message in sdflow_ctx_last_error().
 * Arrays are caller-owned, row-major, contiguous doubles.
 */
#ifndef SDFLOW_H
#define SDFLOW_H

#include "sdflow/export.h"
#include "sdflow/version.h"
#include "sdflow/status.h"
#include "sdflow/options.h"
#include "sdflow/ctx.h"
#include "sdflow/process.h"
#include "sdflow/model.h"
#include "sdflow/metrics.h"
#include "sdflow/sampler.h"
#include "sdflow/density.h"
#include "sdflow/trainer.h"
#include "sdflow/io.h"
#include "sdflow/coupling.h"

#endif
