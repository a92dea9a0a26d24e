# SPDX-License-Identifier: MIT
"""libsdflow from Python: score-based generative modelling on numpy arrays.

Quick start::

    import numpy as np, sdflow
    with sdflow.Ctx(seed=1) as ctx:
        vp = sdflow.Process(ctx, "vp")
        gmm = sdflow.Model.gmm(ctx, [0.5, 0.5], [[-2, 0], [2, 0]], [np.eye(2) * 0.1] * 2)
        s = sdflow.Sampler(ctx, "pf_ode", process=vp, score=gmm, solver="dopri5")
        x = s.run(n=1000)
        logp, se = sdflow.Density(ctx, "pf_ode_exact", process=vp, model=gmm).logpdf(x[:10])

The shared library is found through $SDFLOW_LIBRARY (a path) or the usual
loader path (``ctypes.util.find_library("sdflow")``, then
``libsdflow.so.MAJOR``), when first needed. Every ctypes prototype is built
from the API description generated from the C headers (sdflow_api.json).

Arrays in are converted explicitly to C-contiguous float64 (only real
numeric input; never reinterpreted) and their shapes are checked -- columns
against the model dimension -- before any call; arrays out are new numpy
arrays. Enum values are passed by name (``solver="dopri5"``); unknown names
raise :class:`UnknownNameError` listing the valid ones. Failures raise a
subclass of :class:`SdflowError` per status with the library's message.
See docs/python.md.
"""

from ._ffi import (API, API_VERSION, CallbackError, CancelledError, FileError, FormatError,
                   InvalidArgumentError, NumericError, OutOfMemoryError, SdflowError, StateError, UnknownNameError,
                   UnsupportedError, load_library)
from ._core import (COUPLINGS, DENSITY_KINDS, LOSS_KINDS, MODEL_KINDS, OUTPUTS, PROCESS_KINDS, ROLES, SAMPLER_KINDS,
                    STATS, TRAIN_STATS, Ctx, Density, Model, Process, Sampler, Trainer, kernel_exp, kind_names,
                    kind_value, option_info, option_names, philox4x32, strerror)
from . import _ffi

#: Version of this binding: the version of the headers it was generated from.
__version__ = API_VERSION
#: SDFLOW_VERSION_NUMBER of those headers (MAJOR*10000 + MINOR*100 + PATCH).
VERSION_NUMBER = _ffi.API_VERSION_NUMBER

__all__ = ["Ctx", "Process", "Model", "Sampler", "Density", "Trainer", "SdflowError", "InvalidArgumentError",
           "OutOfMemoryError", "NumericError", "FileError", "FormatError", "UnsupportedError", "CancelledError",
           "StateError", "CallbackError", "UnknownNameError", "version", "library_version", "load_library",
           "library_path", "option_names", "option_info", "philox4x32", "kernel_exp", "strerror", "kind_names",
           "kind_value", "PROCESS_KINDS", "MODEL_KINDS", "OUTPUTS", "SAMPLER_KINDS", "ROLES", "STATS",
           "DENSITY_KINDS", "LOSS_KINDS", "TRAIN_STATS", "COUPLINGS", "API", "__version__"]


def version():
    """(number, string) of the loaded library, e.g. (100, "0.1.0")."""
    lib = _ffi.lib()
    return lib.version_number, lib.version


def library_version() -> str:
    """"MAJOR.MINOR.PATCH" of the loaded library (``sdflow_version_string``)."""
    return _ffi.lib().version


def library_path() -> str:
    """The path (or soname) the library was loaded from."""
    return _ffi.lib().path
