# SPDX-License-Identifier: MIT
"""The raw layer: the API description, the shared library and its ctypes
prototypes, enum tables and the exception classes.

Every prototype is built from ``sdflow_api.json`` (generated from the C
headers by bindings/api/gen_api.py), never written by hand, so a signature
change in C cannot leave a stale ctypes declaration behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import json
import os
from typing import Any, Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))


def _api_path() -> str:
    # Installed: a copy inside the package (setup.py puts it there).
    # In the source tree: the checked-in description itself.
    for p in (os.path.join(_HERE, "sdflow_api.json"), os.path.join(_HERE, "..", "..", "api", "sdflow_api.json")):
        if os.path.exists(p):
            return os.path.normpath(p)
    raise ImportError("sdflow: sdflow_api.json not found next to %s nor in bindings/api/" % _HERE)


with open(_api_path(), encoding="utf-8") as _fh:
    API: Dict[str, Any] = json.load(_fh)

FUNCTIONS: Dict[str, Dict[str, Any]] = {f["name"]: f for f in API["functions"]}
ENUMS: Dict[str, Dict[str, Any]] = {e["name"]: e for e in API["enums"]}
CALLBACKS: Dict[str, Dict[str, Any]] = {c["name"]: c for c in API["callbacks"]}
CONSTANTS: Dict[str, int] = {c["name"]: c["value"] for c in API["constants"]}
API_VERSION = "%(major)d.%(minor)d.%(patch)d" % API["version"]
API_VERSION_NUMBER = API["version"]["major"] * 10000 + API["version"]["minor"] * 100 + API["version"]["patch"]

_SCALARS = {"char": ctypes.c_char, "int": ctypes.c_int, "unsigned int": ctypes.c_uint, "long": ctypes.c_long,
            "double": ctypes.c_double, "size_t": ctypes.c_size_t, "uint32_t": ctypes.c_uint32,
            "uint64_t": ctypes.c_uint64}


def enum_values(name: str) -> Dict[str, int]:
    """{short name: value} of a C enum, e.g. enum_values("sdflow_solver")["dopri5"] == 3."""
    return {c["short"]: c["value"] for c in ENUMS[name]["constants"]}


def enum_names(name: str) -> Dict[int, str]:
    return {c["value"]: c["short"] for c in ENUMS[name]["constants"]}


# ---- errors ---------------------------------------------------------------

class SdflowError(RuntimeError):
    """A libsdflow call failed.

    Attributes: ``status`` (the sdflow_status value), ``status_name``
    (``sdflow_strerror``), ``message`` (the context's ``sdflow_ctx_last_error``)
    and ``function`` (the C function that failed, when known)."""

    status = -1

    def __init__(self, status: int, status_name: str, message: str, function: Optional[str] = None):
        text = "%s: %s" % (status_name, message) if message else status_name
        if function:
            text = "%s: %s" % (function, text)
        super().__init__(text)
        self.status, self.status_name, self.message, self.function = status, status_name, message, function


class InvalidArgumentError(SdflowError, ValueError):
    """SDFLOW_E_INVALID: invalid argument (NULL, size, range, NaN/Inf input)."""
    status = 1


class OutOfMemoryError(SdflowError, MemoryError):
    """SDFLOW_E_NOMEM: allocation failed; no state was changed."""
    status = 2


class NumericError(SdflowError, ArithmeticError):
    """SDFLOW_E_NUMERIC: a NaN or Inf appeared during computation."""
    status = 3


class FileError(SdflowError, OSError):
    """SDFLOW_E_IO: a file could not be read or written."""
    status = 4


class FormatError(SdflowError):
    """SDFLOW_E_FORMAT: malformed model file."""
    status = 5


class UnsupportedError(SdflowError):
    """SDFLOW_E_UNSUPPORTED: unknown option key, or an operation this object kind does not support."""
    status = 6


class CancelledError(SdflowError):
    """SDFLOW_E_CANCELLED: the progress callback asked to stop."""
    status = 7


class StateError(SdflowError):
    """SDFLOW_E_STATE: the object is not in a state that allows this call (e.g. nothing bound)."""
    status = 8


class CallbackError(SdflowError):
    """SDFLOW_E_CALLBACK: a user callback returned nonzero. When the callback
    was a Python callable that raised, the binding raises that exception
    itself (``raise exc from CallbackError(...)``), so its traceback shows
    where in the callable it failed."""
    status = 9


ERRORS = {c.status: c for c in (InvalidArgumentError, OutOfMemoryError, NumericError, FileError, FormatError,
                                UnsupportedError, CancelledError, StateError, CallbackError)}


class UnknownNameError(ValueError, KeyError):
    """A name (kind, option, enum value, role, statistic) the library does not
    know; the message lists the valid names. A ValueError, and a KeyError for
    code written against the first binding."""

    def __init__(self, what: str, name: Any, valid: List[str]):
        close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        self.text = "unknown %s %r%s; valid: %s" % (what, name, hint, ", ".join(str(v) for v in valid))
        super().__init__(self.text)
        self.what, self.name, self.valid = what, name, list(valid)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.text


def lookup(what: str, table: Dict[str, int], value: Any) -> int:
    """Enum value by short name (or an int that is one of the values)."""
    if isinstance(value, str):
        key = value.lower()
        if key in table:
            return table[key]
        raise UnknownNameError(what, value, list(table))
    if isinstance(value, (int,)) and not isinstance(value, bool) and int(value) in table.values():
        return int(value)
    if hasattr(value, "__index__") and not isinstance(value, bool) and int(value) in table.values():
        return int(value)
    raise UnknownNameError(what, value, list(table))


# ---- ctypes types from the description ------------------------------------

_cb_types: Dict[str, Any] = {}


def ctype(t: Dict[str, Any]) -> Any:
    """The ctypes type of a TYPE node of sdflow_api.json."""
    k = t["kind"]
    if k == "void":
        return None
    if k == "scalar":
        return _SCALARS[t["name"]]
    if k == "enum":
        return ctypes.c_int  # C enums are passed as int on every ABI libsdflow supports
    if k == "callback":
        return callback_type(t["name"])
    if k == "pointer":
        p = t["pointee"]
        if p["kind"] in ("void", "opaque", "struct"):
            return ctypes.c_void_p
        if p["kind"] == "scalar" and p["name"] == "char":
            return ctypes.c_char_p
        if p["kind"] == "pointer":  # T **: out-parameters of handles and strings
            inner = ctype(p)
            return ctypes.POINTER(inner)
        return ctypes.POINTER(ctype(p))
    raise TypeError("sdflow: no ctypes mapping for %r" % (t,))


def callback_type(name: str) -> Any:
    if name not in _cb_types:
        cb = CALLBACKS[name]
        _cb_types[name] = ctypes.CFUNCTYPE(ctype(cb["return"]), *[ctype(p["type"]) for p in cb["params"]])
    return _cb_types[name]


# ---- the library ----------------------------------------------------------

def find_library() -> str:
    """Path of libsdflow: $SDFLOW_LIBRARY, else the loader's search
    (ctypes.util.find_library, then the soname libsdflow.so.MAJOR)."""
    env = os.environ.get("SDFLOW_LIBRARY")
    if env:
        return env
    found = ctypes.util.find_library("sdflow")
    return found or "libsdflow.so.%d" % API["version"]["major"]


class Library:
    """The loaded shared library with every API function declared from
    sdflow_api.json. A function the library lacks (an older library) is
    missing from ``self.missing`` users only: calling it raises."""

    def __init__(self, path: Optional[str] = None):
        self.path = path or find_library()
        try:
            self.dll = ctypes.CDLL(self.path)
        except OSError as e:
            raise OSError("sdflow: cannot load libsdflow (%s); install libsdflow or set SDFLOW_LIBRARY to the "
                          "path of libsdflow.so" % e) from e
        self.missing: List[str] = []
        for name, f in FUNCTIONS.items():
            try:
                fn = getattr(self.dll, name)
            except AttributeError:
                self.missing.append(name)
                continue
            fn.restype = ctype(f["return"])
            fn.argtypes = [ctype(p["type"]) for p in f["params"]]
            setattr(self, name, fn)
        self.version_number = self.dll.sdflow_version()
        self.version = self.sdflow_version_string().decode()
        # Same major version (and for 0.x the same minor): the ABI promise of docs/abi.md.
        mine = (API["version"]["major"], API["version"]["minor"])
        theirs = (self.version_number // 10000, self.version_number // 100 % 100)
        if theirs[0] != mine[0] or (mine[0] == 0 and theirs[1] < mine[1]):
            raise OSError("sdflow: %s is libsdflow %s; this binding needs %d.%d or a compatible later version"
                          % (self.path, self.version, mine[0], mine[1]))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("sdflow_"):
            raise NotImplementedError("sdflow: %s is not in the loaded library %s (version %s)"
                                      % (name, self.path, getattr(self, "version", "?")))
        raise AttributeError(name)

    def strerror(self, st: int) -> str:
        return self.sdflow_strerror(st).decode()


_lib: Optional[Library] = None


def lib() -> Library:
    """The library, loaded on first use."""
    global _lib
    if _lib is None:
        _lib = Library()
    return _lib


def load_library(path: Optional[str] = None) -> Library:
    """Loads libsdflow from @p path (default: $SDFLOW_LIBRARY or the loader
    path) and makes it the one this module uses. Objects made before keep
    the previous library."""
    global _lib
    _lib = Library(path)
    return _lib
