# SPDX-License-Identifier: MIT
"""The object layer: Ctx, Process, Model, Sampler, Density, Trainer and the
free functions, on top of the raw layer of _ffi.py."""

from __future__ import annotations

import ctypes as C
import json
import logging
import os
import struct
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _ffi
from ._ffi import (ERRORS, CallbackError, SdflowError, StateError, UnknownNameError, enum_names, enum_values,
                   lookup)

_dp = C.POINTER(C.c_double)
_log = logging.getLogger("sdflow")
_TRACE = 5  # logging level of SDFLOW_LOG_TRACE (below DEBUG)
logging.addLevelName(_TRACE, "TRACE")

PROCESS_KINDS = enum_values("sdflow_process_kind")
MODEL_KINDS = enum_values("sdflow_model_kind")
OUTPUTS = enum_values("sdflow_output")
SAMPLER_KINDS = enum_values("sdflow_sampler_kind")
ROLES = enum_values("sdflow_role")
STATS = enum_values("sdflow_stat")
DENSITY_KINDS = enum_values("sdflow_density_kind")
LOSS_KINDS = enum_values("sdflow_loss_kind")
TRAIN_STATS = enum_values("sdflow_train_stat")
COUPLINGS = enum_values("sdflow_coupling")
_LOG_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG, 4: _TRACE}
_OPT_TYPES = enum_names("sdflow_option_type")

Array = np.ndarray
Progress = Union[None, bool, Callable[[int, int], Any]]


def _L() -> _ffi.Library:
    return _ffi.lib()


# ---- arrays: shapes and dtypes are checked before any call ----------------

def _as_f64(a: ArrayLike, name: str) -> Array:
    """A C-contiguous float64 copy or view of @p a, made explicitly: only
    real numeric input is converted (never a reinterpretation of its bytes)."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError("%s must be an array of real numbers, has dtype %s" % (name, arr.dtype))
    return np.asarray(arr, dtype=np.float64, order="C")  # (ascontiguousarray would make a 0-d array 1-d)


def _mat(a: ArrayLike, name: str, cols: Optional[int] = None, rows: Optional[int] = None) -> Array:
    """An n x d matrix; @p cols (the model dimension) and @p rows are enforced."""
    arr = _as_f64(a, name)
    if arr.ndim != 2:
        raise ValueError("%s must be a 2-D array (n x d), has shape %s" % (name, arr.shape))
    if cols is not None and arr.shape[1] != cols:
        raise ValueError("%s must have %d columns (the model dimension d), has shape %s" % (name, cols, arr.shape))
    if rows is not None and arr.shape[0] != rows:
        raise ValueError("%s must have %d rows, has shape %s" % (name, rows, arr.shape))
    return arr


def _vec(a: ArrayLike, name: str, n: Optional[int] = None) -> Array:
    """A 1-D array of n entries; a scalar is broadcast to n."""
    arr = _as_f64(a, name)
    if arr.ndim == 0 and n is not None:
        return np.full(n, float(arr))
    if arr.ndim != 1:
        raise ValueError("%s must be a scalar or a 1-D array, has shape %s" % (name, arr.shape))
    if n is not None and arr.shape[0] != n:
        raise ValueError("%s must have %d entries (one per row), has %d" % (name, n, arr.shape[0]))
    return np.ascontiguousarray(arr)


def _null(callback: str) -> Any:
    """A NULL function pointer of a callback type (ctypes refuses None there)."""
    return _ffi.callback_type(callback)()


def _p(a: Optional[Array]) -> Any:
    return a.ctypes.data_as(_dp) if a is not None else None


def _count(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError("%s must be an integer, is %r" % (name, v))
    if v < 0:
        raise ValueError("%s must be >= 0, is %d" % (name, v))
    return int(v)


# ---- status handling ------------------------------------------------------

def _raise(ctx: Optional["Ctx"], st: int, fn: str) -> None:
    lib = _L()
    msg = lib.sdflow_ctx_last_error(ctx._h).decode("utf-8", "replace") if ctx is not None and ctx._h else ""
    err = ERRORS.get(st, SdflowError)(st, lib.strerror(st), msg, fn)
    pending = ctx._take_pending() if ctx is not None else None
    if pending is not None:  # a Python callback raised: that is the error the user should see
        raise pending from err
    raise err


def _call(ctx: Optional["Ctx"], fn: str, *args: Any) -> None:
    st = getattr(_L(), fn)(*args)
    if st:
        _raise(ctx, st, fn)
    elif ctx is not None:
        pending = ctx._take_pending()  # a callback failed but the library did not need its value
        if pending is not None:
            raise pending


# ---- options --------------------------------------------------------------

_opt_cache: Dict[str, Tuple[int, int, Optional[str]]] = {}
_opt_by_value = {c["value"]: c for c in _ffi.ENUMS["sdflow_option"]["constants"]}


def option_names() -> List[str]:
    """Names of every option key the loaded library knows ("steps", "seed", ...)."""
    lib = _L()
    out = []
    for v in _opt_by_value:
        s = lib.sdflow_option_name(v)
        if s:
            out.append(s.decode())
    return out


def _option(name: str) -> Tuple[int, int, Optional[str]]:
    """(key, value type, value enum or None) of an option name."""
    if name not in _opt_cache:
        lib = _L()
        key = C.c_int()
        if not isinstance(name, str) or lib.sdflow_option_from_name(name.encode(), C.byref(key)):
            raise UnknownNameError("option", name, option_names())
        c = _opt_by_value.get(key.value, {})
        _opt_cache[name] = (key.value, lib.sdflow_option_get_type(key.value), c.get("value_enum"))
    return _opt_cache[name]


def _option_values(name: str) -> Optional[Dict[str, int]]:
    """{value name: int} of an enum-valued option, None for numeric ones."""
    key, _, ve = _option(name)
    if ve is None:
        return None
    vals = dict(enum_values(ve))
    for m in _opt_by_value[key].get("value_constants", []):
        vals[m.rsplit("_", 1)[1].lower()] = _ffi.CONSTANTS[m]  # SDFLOW_MLP_ENERGY -> "energy"
    return vals


def option_info(name: str) -> Dict[str, Any]:
    """Type, bounds and (enum-valued options) the value names of option @p name."""
    key, ty, _ = _option(name)
    lo, hi = C.c_double(), C.c_double()
    _call(None, "sdflow_option_bounds", key, C.byref(lo), C.byref(hi))
    info = {"name": name, "key": key, "type": _OPT_TYPES.get(ty, "?"), "min": lo.value, "max": hi.value}
    vals = _option_values(name)
    if vals is not None:
        info["values"] = list(vals)
    return info


def _encode_value(name: str, value: Any) -> Any:
    vals = _option_values(name)
    if vals is not None:
        return lookup(name, vals, value)
    if isinstance(value, str):
        raise TypeError("option %r takes a number, not %r" % (name, value))
    return value


def _resolve(obj: "_Object", name: str) -> str:
    """The library's option name for @p name on this object: the name itself,
    or with the object's prefix ("lr" -> "train_lr" on a trainer)."""
    for pre in obj._prefixes:
        if pre and not name.startswith(pre):
            try:
                _option(pre + name)
                return pre + name
            except UnknownNameError:
                pass
    _option(name)
    return name


class _Object:
    """Common machinery of the handle classes: handle ownership, close,
    context manager, typed options by name."""

    _c_name = ""            # "ctx", "process", ...: the C function prefix
    _prefixes: Tuple[str, ...] = ("",)
    _h: Any = None

    def _own(self, ctx: "Ctx", handle: Any) -> None:
        self.ctx, self._h = ctx, handle
        self._free = getattr(_L(), "sdflow_%s_free" % self._c_name)  # bound now: module globals may be gone at exit
        ctx._children.add(self)

    @property
    def closed(self) -> bool:
        return not self._h

    def _handle(self) -> Any:
        if not self._h:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._h

    def close(self) -> None:
        """Frees the C object now (also done when the object is garbage
        collected or its ``with`` block ends). Idempotent."""
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def set(self, name: str, value: Any) -> "_Object":
        """Sets option @p name (see :func:`option_names`); enum-valued options
        take their value names (``solver="dopri5"``) or the integer. Returns self."""
        name = _resolve(self, name)
        key, ty, _ = _option(name)
        value = _encode_value(name, value)
        h = self._handle()
        ctx = self.ctx
        if ty == 1:
            if isinstance(value, float) and not value.is_integer():
                raise TypeError("option %r is an integer, not %r" % (name, value))
            _call(ctx, "sdflow_%s_set_int" % self._c_name, h, key, int(value))
        elif ty == 2:
            _call(ctx, "sdflow_%s_set_double" % self._c_name, h, key, float(value))
        else:
            _call(ctx, "sdflow_%s_set_u64" % self._c_name, h, key, int(value))
        return self

    def get(self, name: str, raw: bool = False) -> Any:
        """The value of option @p name; an enum-valued option gives its value
        name ("dopri5") unless @p raw."""
        name = _resolve(self, name)
        key, ty, _ = _option(name)
        h = self._handle()
        ctx = self.ctx
        if ty == 1:
            v: Any = C.c_long()
            f = "int"
        elif ty == 2:
            v, f = C.c_double(), "double"
        else:
            v, f = C.c_uint64(), "u64"
        _call(ctx, "sdflow_%s_get_%s" % (self._c_name, f), h, key, C.byref(v))
        vals = _option_values(name)
        if vals is not None and not raw:
            names = {b: a for a, b in vals.items()}
            return names.get(v.value, v.value)
        return v.value

    def configure(self, **options: Any) -> "_Object":
        """Sets several options: ``sampler.configure(steps=200, solver="heun")``."""
        for k, v in options.items():
            self.set(k, v)
        return self


# ---- context --------------------------------------------------------------

class _TqdmProgress:
    """Drives a tqdm bar from (done, total) calls."""

    def __init__(self, tqdm: Any):
        self.tqdm, self.bar, self.last = tqdm, None, 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = self.tqdm(total=total, unit="step", leave=False)
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.last)
        self.last = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_handler(progress: Progress) -> Optional[Callable[[int, int], Any]]:
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm  # type: ignore
        except ImportError:
            try:
                from tqdm import tqdm  # type: ignore
            except ImportError:
                return None  # no tqdm: progress=True is a quiet no-op
        return _TqdmProgress(tqdm)
    if not callable(progress):
        raise TypeError("progress must be None, a bool or a callable(done, total), not %r" % (progress,))
    return progress


class Ctx(_Object):
    """A libsdflow context: seed, threads, error messages, callbacks.

    ``Ctx(seed=1, threads=2, log_level="debug", progress=True)``; other
    keyword arguments are ctx options (``file_dtype="f32"``). Every object
    is made from a context and must not outlive it: :meth:`close` (or the end
    of a ``with`` block) first closes the objects still open.

    Library log messages go to the ``logging`` logger "sdflow" (levels
    ERROR, WARNING, INFO, DEBUG and TRACE = 5) unless ``log=False`` or a
    callable ``log(level_name, message)`` is given.
    """

    _c_name = "ctx"

    def __init__(self, seed: int = 0, threads: int = 1, *, log: Union[bool, Callable[[str, str], Any]] = True,
                 log_level: Optional[Union[str, int]] = None, progress: Progress = None, **options: Any):
        lib = _L()
        h = C.c_void_p()
        st = lib.sdflow_ctx_create(C.byref(h), None)
        if st:
            raise ERRORS.get(st, SdflowError)(st, lib.strerror(st), "sdflow_ctx_create failed", "sdflow_ctx_create")
        self._h, self._free, self.ctx = h, lib.sdflow_ctx_free, self
        self._children: "weakref.WeakSet[_Object]" = weakref.WeakSet()
        self._pending: Optional[BaseException] = None
        self._progress: Optional[Callable[[int, int], Any]] = None
        self._c_progress = _ffi.callback_type("sdflow_progress_fn")(self._on_progress)
        self._c_log = None
        self._c_allreduce = None
        self.set("seed", seed)
        self.set("threads", threads)
        if log_level is not None:
            self.set("log_level", log_level)
        self.set_log(log)
        self.progress = progress
        self.configure(**options)

    # --- pending exceptions of Python callbacks ---
    def _store(self, exc: BaseException) -> None:
        if self._pending is None:  # the first failure is the cause of the others
            self._pending = exc

    def _take_pending(self) -> Optional[BaseException]:
        exc, self._pending = self._pending, None
        return exc

    def check(self, st: int, function: Optional[str] = None) -> None:
        """Raises the SdflowError subclass of status @p st with this context's message (no-op for 0)."""
        if st:
            _raise(self, st, function or "libsdflow")

    @property
    def last_error(self) -> str:
        """The message of the last failure reported into this context ("" if none)."""
        return _L().sdflow_ctx_last_error(self._handle()).decode("utf-8", "replace")

    def close(self) -> None:
        """Closes every object still open on this context (dependents first), then the context."""
        if getattr(self, "_h", None):
            order = (Trainer, Sampler, Density, Model, Process)
            kids = list(self._children)
            for cls in order:
                for o in kids:
                    if isinstance(o, cls):
                        o.close()
            super().close()

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Ctx closed>"
        return "<sdflow.Ctx seed=%d threads=%d>" % (self.get("seed"), self.get("threads"))

    # --- log, progress, allreduce ---
    def set_log(self, log: Union[bool, Callable[[str, str], Any], None]) -> None:
        """Routes library log messages: True -> logging "sdflow"; a callable
        f(level_name, message); False/None -> dropped."""
        if log is True:
            def fwd(level: int, msg: bytes, _u: Any) -> None:
                _log.log(_LOG_LEVELS.get(level, logging.INFO), "%s", msg.decode("utf-8", "replace"))
        elif callable(log):
            names = enum_names("sdflow_log_level")

            def fwd(level: int, msg: bytes, _u: Any) -> None:
                try:
                    log(names.get(level, str(level)), msg.decode("utf-8", "replace"))
                except BaseException as e:  # noqa: B902 -- a log callback cannot fail the call; keep it
                    self._store(e)
        else:
            fwd = None
        self._c_log = _ffi.callback_type("sdflow_log_fn")(fwd) if fwd else None
        _call(self, "sdflow_ctx_set_log", self._handle(), self._c_log or _null("sdflow_log_fn"), None)

    @property
    def progress(self) -> Optional[Callable[[int, int], Any]]:
        """Default progress handler of long operations (samplers, density
        estimators, trainers, DSB fits): None, True (a tqdm bar if tqdm is
        installed) or f(done, total); f returning True cancels (the call then
        raises CancelledError). Each long call also takes ``progress=``."""
        return self._progress

    @progress.setter
    def progress(self, progress: Progress) -> None:
        self._progress = _progress_handler(progress)
        self._install_progress(self._progress)

    def _install_progress(self, handler: Optional[Callable[[int, int], Any]]) -> None:
        # The C callback is installed only while a handler exists: no Python call per step otherwise.
        _call(self, "sdflow_ctx_set_progress", self._handle(), self._c_progress if handler else _null("sdflow_progress_fn"), None)

    def _on_progress(self, _user: Any, done: int, total: int) -> int:
        h = self._active_progress
        try:
            return 1 if (h is not None and h(done, total) is True) else 0
        except BaseException as e:  # KeyboardInterrupt too: cancel the run and re-raise after it
            self._store(e)
            return 1

    _active_progress: Optional[Callable[[int, int], Any]] = None

    @contextmanager
    def _progress_scope(self, progress: Progress) -> Iterator[None]:
        handler = self._progress if progress is None else _progress_handler(progress)
        prev = self._active_progress
        self._active_progress = handler
        if handler is not self._progress:
            self._install_progress(handler)
        try:
            yield
        finally:
            self._active_progress = prev
            if handler is not self._progress:
                self._install_progress(self._progress)
            if isinstance(handler, _TqdmProgress):
                handler.close()

    def set_allreduce(self, fn: Optional[Callable[[Array], Any]]) -> None:
        """Data-parallel hook: fn(buf) must replace the float64 array @p buf
        in place by its elementwise sum over all processes, e.g.
        ``comm.Allreduce(MPI.IN_PLACE, buf)`` with mpi4py. None removes it."""
        if fn is None:
            self._c_allreduce = None
        else:
            def tramp(buf: Any, n: int, _u: Any) -> int:
                try:
                    fn(np.ctypeslib.as_array(buf, shape=(n,)))
                    return 0
                except BaseException as e:
                    self._store(e)
                    return 1
            self._c_allreduce = _ffi.callback_type("sdflow_allreduce_fn")(tramp)
        _call(self, "sdflow_ctx_set_allreduce", self._handle(), self._c_allreduce or _null("sdflow_allreduce_fn"), None)

    # --- random numbers ---
    def rng_normal(self, n: int, d: int, stream: int = 0, first_index: int = 0) -> Array:
        """n x d standard normal draws; row i depends only on (seed, stream, first_index + i)."""
        out = np.empty((_count(n, "n"), _count(d, "d")))
        _call(self, "sdflow_rng_normal", self._handle(), stream, first_index, n, d, _p(out))
        return out

    def rng_uniform(self, n: int, d: int, stream: int = 0, first_index: int = 0) -> Array:
        """n x d uniform draws on [0, 1), keyed as :meth:`rng_normal`."""
        out = np.empty((_count(n, "n"), _count(d, "d")))
        _call(self, "sdflow_rng_uniform", self._handle(), stream, first_index, n, d, _p(out))
        return out

    # --- two-sample metrics: each returns (value, std) ---
    def _xy(self, x: ArrayLike, y: ArrayLike) -> Tuple[Array, Array]:
        x = _mat(x, "x")
        return x, _mat(y, "y", cols=x.shape[1])

    def energy_distance(self, x: ArrayLike, y: ArrayLike) -> Tuple[float, float]:
        """Unbiased energy distance between the rows of x and y, and its std."""
        x, y = self._xy(x, y)
        v, s = C.c_double(), C.c_double()
        _call(self, "sdflow_metric_energy", self._handle(), x.shape[0], y.shape[0], x.shape[1], _p(x), _p(y),
              C.byref(v), C.byref(s))
        return v.value, s.value

    def mmd2(self, x: ArrayLike, y: ArrayLike, bandwidth: float = 0.0) -> Tuple[float, float]:
        """Unbiased squared MMD (Gaussian kernel; bandwidth 0: median heuristic) and its std."""
        x, y = self._xy(x, y)
        v, s = C.c_double(), C.c_double()
        _call(self, "sdflow_metric_mmd2", self._handle(), x.shape[0], y.shape[0], x.shape[1], _p(x), _p(y),
              float(bandwidth), C.byref(v), C.byref(s))
        return v.value, s.value

    def sliced_wasserstein(self, x: ArrayLike, y: ArrayLike, p: float = 2.0, directions: int = 128,
                           stream: int = 0) -> Tuple[float, float]:
        """Sliced Wasserstein-p over @p directions random directions, and the
        Monte Carlo std of the direction average (nan for one direction)."""
        x, y = self._xy(x, y)
        v, s = C.c_double(), C.c_double()
        want = directions >= 2
        _call(self, "sdflow_metric_sliced_wasserstein", self._handle(), x.shape[0], y.shape[0], x.shape[1], _p(x),
              _p(y), float(p), int(directions), stream, C.byref(v), C.byref(s) if want else None)
        return v.value, (s.value if want else float("nan"))

    # --- couplings ---
    def assignment(self, cost: ArrayLike) -> Tuple[Array, float]:
        """Exact linear assignment of a finite n x n cost matrix: (perm, total)."""
        cost = _mat(cost, "cost")
        n = cost.shape[0]
        if cost.shape[1] != n:
            raise ValueError("cost must be square (n x n), has shape %s" % (cost.shape,))
        perm = np.empty(n, dtype=np.uintp)
        tot = C.c_double()
        _call(self, "sdflow_assignment", self._handle(), n, _p(cost), perm.ctypes.data_as(C.POINTER(C.c_size_t)),
              C.byref(tot))
        return perm.astype(np.int64), tot.value

    def sinkhorn(self, cost: ArrayLike, eps: float, max_iter: int = 1000, tol: float = 1e-9) -> Tuple[Array, float]:
        """Entropic OT plan (n x m, sum 1) of a cost matrix between uniform
        weights, and its row-marginal L1 error. Not converging in max_iter
        raises NumericError."""
        cost = _mat(cost, "cost")
        plan = np.empty_like(cost)
        err = C.c_double()
        _call(self, "sdflow_sinkhorn", self._handle(), cost.shape[0], cost.shape[1], _p(cost), float(eps),
              int(max_iter), float(tol), _p(plan), C.byref(err))
        return plan, err.value

    def coupling_pair(self, x0: ArrayLike, x1: ArrayLike, kind: str = "ot_exact", eps: float = 0.05, stream: int = 0,
                      first_index: int = 0) -> Tuple[Array, float]:
        """Pairs rows of x0 with rows of x1 (both n x d): (pair, mean paired
        squared cost); x0 row i goes with x1 row pair[i]. kind: independent,
        ot_exact, ot_sinkhorn."""
        x0 = _mat(x0, "x0")
        x1 = _mat(x1, "x1", cols=x0.shape[1], rows=x0.shape[0])
        pair = np.empty(x0.shape[0], dtype=np.uintp)
        cost = C.c_double()
        _call(self, "sdflow_coupling_pair", self._handle(), lookup("coupling", COUPLINGS, kind), x0.shape[0],
              x0.shape[1], _p(x0), _p(x1), float(eps), stream, first_index,
              pair.ctypes.data_as(C.POINTER(C.c_size_t)), C.byref(cost))
        return pair.astype(np.int64), cost.value

    # --- kernel shards ---
    def kernel_merge(self, a: Tuple[ArrayLike, ArrayLike, ArrayLike],
                     b: Tuple[ArrayLike, ArrayLike, ArrayLike]) -> Tuple[Array, Array, Array]:
        """Exact merge of two partial triples (mx, s, v) of
        :meth:`Model.kernel_partial`; returns the merged triple (new arrays)."""
        v = _mat(a[2], "v").copy()
        n, d = v.shape
        mx, s = _vec(a[0], "mx", n).copy(), _vec(a[1], "s", n).copy()
        mxb, sb, vb = _vec(b[0], "mx_b", n), _vec(b[1], "s_b", n), _mat(b[2], "v_b", cols=d, rows=n)
        _call(self, "sdflow_kernel_merge", self._handle(), n, d, _p(mx), _p(s), _p(v), _p(mxb), _p(sb), _p(vb))
        return mx, s, v

    def kernel_finalize(self, process: Optional["Process"], m_total: int, x: ArrayLike, t: ArrayLike,
                        partial: Tuple[ArrayLike, ArrayLike, ArrayLike]) -> Tuple[Array, Array, Array]:
        """(score, posterior mean, log-density) at the queries x, times t from
        merged triples of a set of @p m_total samples."""
        x = _mat(x, "x")
        n, d = x.shape
        t = _vec(t, "t", n)
        mx, s, v = _vec(partial[0], "mx", n), _vec(partial[1], "s", n), _mat(partial[2], "v", cols=d, rows=n)
        score, mean, logp = np.empty_like(x), np.empty_like(x), np.empty(n)
        _call(self, "sdflow_kernel_finalize", self._handle(), _ph(process), n, d, _count(m_total, "m_total"), _p(x),
              _p(t), _p(mx), _p(s), _p(v), _p(score), _p(mean), _p(logp))
        return score, mean, logp


def _ph(o: Optional[_Object]) -> Any:
    return o._handle() if o is not None else None


def _same_ctx(ctx: Ctx, o: Optional[_Object], what: str) -> None:
    if o is not None and o.ctx is not ctx:
        raise ValueError("%s belongs to another Ctx" % what)


# ---- process --------------------------------------------------------------

class Process(_Object):
    """Forward noising process or interpolant schedule.

    ``Process(ctx, "vp", beta_max=12.5)``; kinds: vp, vp_cosine, subvp, ve,
    interp_linear, interp_trig (interpolants: t = 0 base, t = 1 data).
    Options may drop their ``proc_`` prefix (``sigma_min`` = ``proc_sigma_min``)."""

    _c_name = "process"
    _prefixes = ("proc_", "")

    def __init__(self, ctx: Ctx, kind: str = "vp", _handle: Any = None, **options: Any):
        if _handle is None:
            h = C.c_void_p()
            _call(ctx, "sdflow_process_create", ctx._handle(), lookup("process kind", PROCESS_KINDS, kind),
                  C.byref(h))
        else:
            h = _handle
        self._own(ctx, h)
        self.configure(**options)

    @property
    def kind(self) -> str:
        return enum_names("sdflow_process_kind")[_L().sdflow_process_get_kind(self._handle())]

    @property
    def is_interpolant(self) -> bool:
        return bool(_L().sdflow_process_is_interpolant(self._handle()))

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Process closed>"
        a, b = self.time_range()
        return "<sdflow.Process %s t=[%g, %g]>" % (self.kind, a, b)

    def time_range(self) -> Tuple[float, float]:
        """The valid time range (t_eps, T)."""
        a, b = C.c_double(), C.c_double()
        _call(self.ctx, "sdflow_process_time_range", self._handle(), C.byref(a), C.byref(b))
        return a.value, b.value

    def coefficients(self, t: ArrayLike) -> Tuple[Array, Array, Array, Array]:
        """(alpha, sigma, f, g) at the times t."""
        t = _vec(np.atleast_1d(np.asarray(t, dtype=np.float64)), "t")
        out = [np.empty(t.shape[0]) for _ in range(4)]
        _call(self.ctx, "sdflow_process_coefficients", self._handle(), t.shape[0], _p(t), *[_p(o) for o in out])
        return tuple(out)  # type: ignore[return-value]

    def interpolant(self, t: ArrayLike) -> Tuple[Array, Array, Array, Array, Array, Array]:
        """(a, b, da, db, gamma, dgamma) of an interpolant kind at times t in [0, 1]."""
        t = _vec(np.atleast_1d(np.asarray(t, dtype=np.float64)), "t")
        out = [np.empty(t.shape[0]) for _ in range(6)]
        _call(self.ctx, "sdflow_process_interpolant", self._handle(), t.shape[0], _p(t), *[_p(o) for o in out])
        return tuple(out)  # type: ignore[return-value]

    def prior_sample(self, n: int, d: int, stream: int = 0, first_index: int = 0) -> Array:
        """n x d draws from the prior at time T (interpolants: the base at t = 0)."""
        out = np.empty((_count(n, "n"), _count(d, "d")))
        _call(self.ctx, "sdflow_process_prior_sample", self._handle(), stream, first_index, n, d, _p(out))
        return out

    def prior_logpdf(self, x: ArrayLike) -> Array:
        """Log-density of the prior at the rows of x."""
        x = _mat(x, "x")
        out = np.empty(x.shape[0])
        _call(self.ctx, "sdflow_process_prior_logpdf", self._handle(), x.shape[0], x.shape[1], _p(x), _p(out))
        return out

    def perturb(self, x0: ArrayLike, t: ArrayLike, stream: int = 0, first_index: int = 0) -> Tuple[Array, Array]:
        """(x_t, eps) with x_t = alpha(t) x0 + sigma(t) eps, eps keyed by (seed, stream, first_index + i)."""
        x0 = _mat(x0, "x0")
        t = _vec(t, "t", x0.shape[0])
        xt, eps = np.empty_like(x0), np.empty_like(x0)
        _call(self.ctx, "sdflow_process_perturb", self._handle(), stream, first_index, x0.shape[0], x0.shape[1],
              _p(x0), _p(t), _p(xt), _p(eps))
        return xt, eps

    def simulate(self, x: ArrayLike, t0: float, t1: float, steps: int, stream: int = 0,
                 first_index: int = 0) -> Array:
        """Euler-Maruyama simulation of the forward SDE from t0 to t1 (t0 < t1) in @p steps steps."""
        x = _mat(x, "x")
        out = np.empty_like(x)
        _call(self.ctx, "sdflow_process_simulate", self._handle(), stream, first_index, x.shape[0], x.shape[1], _p(x),
              float(t0), float(t1), int(steps), _p(out))
        return out

    def convert(self, x: ArrayLike, t: ArrayLike, values: ArrayLike, frm: str, to: str) -> Array:
        """Converts model outputs of kind @p frm ("score", "eps", "x0", "velocity", "v") into kind @p to."""
        x = _mat(x, "x")
        t = _vec(t, "t", x.shape[0])
        values = _mat(values, "values", cols=x.shape[1], rows=x.shape[0])
        out = np.empty_like(x)
        _call(self.ctx, "sdflow_process_convert", self._handle(), x.shape[0], x.shape[1], _p(x), _p(t),
              lookup("output", OUTPUTS, frm), _p(values), lookup("output", OUTPUTS, to), _p(out))
        return out


# ---- models ---------------------------------------------------------------

def _result(value: Any, shape: Tuple[int, ...], what: str) -> Array:
    """A callable's result as float64 of exactly @p shape (torch tensors accepted)."""
    r = _as_f64(value, what)
    if r.shape != shape:
        raise ValueError("%s returned shape %s, expected %s" % (what, r.shape, shape))
    return r


class Model(_Object):
    """A score-like model on R^d. Build with :meth:`gaussian`, :meth:`gmm`,
    :meth:`kernel`, :meth:`mlp`, :meth:`from_callable` or :meth:`load`.

    Evaluation takes a process (``None``: smoothing by Gaussian noise of
    std t); x is n x d (checked against :attr:`dim`), t a scalar or one time
    per row."""

    _c_name = "model"
    _prefixes = ("mlp_", "")

    def __init__(self, ctx: Ctx, handle: Any, _keep: Any = None):
        self._own(ctx, handle)
        self._keep = _keep  # ctypes callbacks of a callback model
        self._dim: int = _L().sdflow_model_dim(handle)

    @property
    def dim(self) -> int:
        """The dimension d of the model's space (arrays passed in have d columns)."""
        return self._dim

    @property
    def kind(self) -> str:
        return enum_names("sdflow_model_kind")[_L().sdflow_model_get_kind(self._handle())]

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Model closed>"
        extra = ""
        if self.kind == "mlp":
            extra = " depth=%d width=%d output=%s" % (self.get("mlp_depth"), self.get("mlp_width"),
                                                      self.get("mlp_output"))
        return "<sdflow.Model %s d=%d%s>" % (self.kind, self.dim, extra)

    @classmethod
    def gaussian(cls, ctx: Ctx, mean: ArrayLike, cov: ArrayLike) -> "Model":
        """Gaussian data N(mean, cov), cov d x d symmetric positive definite."""
        mean = _vec(mean, "mean")
        d = mean.shape[0]
        cov = _mat(cov, "cov", cols=d, rows=d)
        h = C.c_void_p()
        _call(ctx, "sdflow_model_create_gaussian", ctx._handle(), d, _p(mean), _p(cov), C.byref(h))
        return cls(ctx, h)

    @classmethod
    def gmm(cls, ctx: Ctx, weights: ArrayLike, means: ArrayLike, covs: ArrayLike) -> "Model":
        """Gaussian mixture: weights (k, sum 1), means (k x d), covs (k x d x d, each SPD)."""
        weights = _vec(weights, "weights")
        k = weights.shape[0]
        means = _mat(means, "means", rows=k)
        d = means.shape[1]
        covs = _as_f64(covs, "covs")
        if covs.shape != (k, d, d):
            raise ValueError("covs must have shape %s, has %s" % ((k, d, d), covs.shape))
        h = C.c_void_p()
        _call(ctx, "sdflow_model_create_gmm", ctx._handle(), k, d, _p(weights), _p(means), _p(covs), C.byref(h))
        return cls(ctx, h)

    @classmethod
    def kernel(cls, ctx: Ctx, data: ArrayLike, **options: Any) -> "Model":
        """Kernel (empirical) model of the m x d samples @p data (copied); options block_q, block_y."""
        data = _mat(data, "data")
        h = C.c_void_p()
        _call(ctx, "sdflow_model_create_kernel", ctx._handle(), data.shape[0], data.shape[1], _p(data), C.byref(h))
        return cls(ctx, h).configure(**options)

    @classmethod
    def mlp(cls, ctx: Ctx, d: int, **options: Any) -> "Model":
        """MLP score model on R^d (docs/mlp.md). Architecture options, with or
        without the ``mlp_`` prefix: depth, width, activation ("silu", "tanh",
        "softplus", "gelu", "relu"), freqs, residual, output ("eps", "score",
        "x0", "velocity", "v", "energy"), time_input, learn_freqs, freq_scale."""
        h = C.c_void_p()
        _call(ctx, "sdflow_model_create_mlp", ctx._handle(), _count(d, "d"), C.byref(h))
        return cls(ctx, h).configure(**options)

    @classmethod
    def from_callable(cls, ctx: Ctx, d: int, fn: Callable[[Array, Array], ArrayLike], output: str = "score",
                      jvp: Optional[Callable[[Array, Array, Array], ArrayLike]] = None) -> "Model":
        """A model computed by Python: ``fn(x, t)`` gets x (n x d) and t (n,)
        as float64 arrays (copies) and returns the n x d outputs of kind
        @p output ("score", "eps", "x0", "velocity", "v") -- a numpy array or
        a torch tensor, so a PyTorch or JAX network can drive the samplers
        and likelihoods. ``jvp(x, t, v)`` (optional) returns the Jacobian-vector
        products J(x_i, t_i) v_i and enables exact divergences. An exception
        raised by fn or jvp stops the library call and is re-raised from it."""
        d = _count(d, "d")
        kind = lookup("output", OUTPUTS, output)

        def tramp(n: int, dd: int, x: Any, t: Any, out: Any, _u: Any) -> int:
            try:
                xa = np.ctypeslib.as_array(x, shape=(n, dd)).copy()
                ta = np.ctypeslib.as_array(t, shape=(n,)).copy()
                np.ctypeslib.as_array(out, shape=(n, dd))[...] = _result(fn(xa, ta), (n, dd), "model callable")
                return 0
            except BaseException as e:
                ctx._store(e)
                return 1

        keep = [_ffi.callback_type("sdflow_model_fn")(tramp)]
        h = C.c_void_p()
        _call(ctx, "sdflow_model_create_callback", ctx._handle(), d, kind, keep[0], None, C.byref(h))
        m = cls(ctx, h, keep)
        if jvp is not None:
            def jtramp(n: int, dd: int, x: Any, t: Any, v: Any, jv: Any, _u: Any) -> int:
                try:
                    xa = np.ctypeslib.as_array(x, shape=(n, dd)).copy()
                    ta = np.ctypeslib.as_array(t, shape=(n,)).copy()
                    va = np.ctypeslib.as_array(v, shape=(n, dd)).copy()
                    np.ctypeslib.as_array(jv, shape=(n, dd))[...] = _result(jvp(xa, ta, va), (n, dd), "jvp callable")
                    return 0
                except BaseException as e:
                    ctx._store(e)
                    return 1
            keep.append(_ffi.callback_type("sdflow_model_jvp_fn")(jtramp))
            _call(ctx, "sdflow_model_set_callback_jvp", h, keep[1], None)
        return m

    # --- evaluation ---
    def _xt(self, x: ArrayLike, t: ArrayLike) -> Tuple[Array, Array]:
        x = _mat(x, "x", cols=self.dim)
        return x, _vec(t, "t", x.shape[0])

    def eval(self, process: Optional[Process], x: ArrayLike, t: ArrayLike, output: str = "score") -> Array:
        """Model output of kind @p output at the rows of x, times t."""
        x, t = self._xt(x, t)
        _same_ctx(self.ctx, process, "process")
        out = np.empty_like(x)
        _call(self.ctx, "sdflow_model_eval", self._handle(), _ph(process), x.shape[0], _p(x), _p(t),
              lookup("output", OUTPUTS, output), _p(out))
        return out

    def score(self, process: Optional[Process], x: ArrayLike, t: ArrayLike) -> Array:
        """Score of the noised distribution p_t at the rows of x."""
        x, t = self._xt(x, t)
        out = np.empty_like(x)
        _call(self.ctx, "sdflow_model_score", self._handle(), _ph(process), x.shape[0], _p(x), _p(t), _p(out))
        return out

    def logpdf(self, process: Optional[Process], x: ArrayLike, t: ArrayLike) -> Array:
        """Exact log-density of p_t (gaussian, gmm, kernel)."""
        x, t = self._xt(x, t)
        out = np.empty(x.shape[0])
        _call(self.ctx, "sdflow_model_logpdf", self._handle(), _ph(process), x.shape[0], _p(x), _p(t), _p(out))
        return out

    def jacobian(self, process: Optional[Process], x: ArrayLike, t: ArrayLike) -> Array:
        """Jacobian of the score, n x d x d (J[i, a, b] = d score_a / d x_b at row i)."""
        x, t = self._xt(x, t)
        n, d = x.shape
        out = np.empty((n, d, d))
        _call(self.ctx, "sdflow_model_jacobian", self._handle(), _ph(process), n, _p(x), _p(t), _p(out))
        return out

    def divergence(self, process: Optional[Process], x: ArrayLike, t: ArrayLike) -> Array:
        """Divergence (trace of the Jacobian) of the score at the rows of x."""
        x, t = self._xt(x, t)
        out = np.empty(x.shape[0])
        _call(self.ctx, "sdflow_model_divergence", self._handle(), _ph(process), x.shape[0], _p(x), _p(t), _p(out))
        return out

    def asymmetry(self, process: Optional[Process], x: ArrayLike, t: ArrayLike, probes: int = 0,
                  stream: int = 0) -> Dict[str, float]:
        """QCSGM diagnostic: {"asymmetry", "asymmetry_se", "normalized", "normalized_se"}
        (probes 0: exact; K >= 2: Hutchinson with K probes per row)."""
        x, t = self._xt(x, t)
        out = np.empty(4)
        _call(self.ctx, "sdflow_model_asymmetry", self._handle(), _ph(process), x.shape[0], _p(x), _p(t),
              _count(probes, "probes"), stream, _p(out))
        return {"asymmetry": out[0], "asymmetry_se": out[1], "normalized": out[2], "normalized_se": out[3]}

    def sample(self, n: int, stream: int = 0, first_index: int = 0) -> Array:
        """n exact samples of the data distribution (gaussian, gmm)."""
        out = np.empty((_count(n, "n"), self.dim))
        _call(self.ctx, "sdflow_model_sample", self._handle(), stream, first_index, n, _p(out))
        return out

    def kernel_partial(self, process: Optional[Process], x: ArrayLike, t: ArrayLike) -> Tuple[Array, Array, Array]:
        """Kernel shard partial sums (mx, s, v) at the queries (see :meth:`Ctx.kernel_merge`)."""
        x, t = self._xt(x, t)
        n = x.shape[0]
        mx, s, v = np.empty(n), np.empty(n), np.empty_like(x)
        _call(self.ctx, "sdflow_model_kernel_partial", self._handle(), _ph(process), n, _p(x), _p(t), _p(mx), _p(s),
              _p(v))
        return mx, s, v

    # --- parameters (MLP) ---
    @property
    def param_count(self) -> int:
        """Number of trainable parameters (MLP)."""
        n = C.c_size_t()
        _call(self.ctx, "sdflow_model_param_count", self._handle(), C.byref(n))
        return n.value

    def param_names(self) -> List[Tuple[str, Tuple[int, ...]]]:
        """(name, shape) of every tensor, in PyTorch state_dict order."""
        n = C.c_size_t()
        _call(self.ctx, "sdflow_model_param_tensors", self._handle(), C.byref(n))
        out = []
        for i in range(n.value):
            name, r, c = C.c_char_p(), C.c_size_t(), C.c_size_t()
            _call(self.ctx, "sdflow_model_param_info", self._handle(), i, C.byref(name), C.byref(r), C.byref(c))
            out.append((name.value.decode(), (r.value, c.value) if c.value else (r.value,)))
        return out

    def get_param(self, name: str) -> Array:
        """A copy of tensor @p name."""
        shapes = dict(self.param_names())
        if name not in shapes:
            raise UnknownNameError("tensor", name, list(shapes))
        out = np.empty(shapes[name])
        _call(self.ctx, "sdflow_model_get_param", self._handle(), name.encode(), out.size, _p(out))
        return out

    def set_param(self, name: str, values: ArrayLike) -> None:
        """Sets tensor @p name (its exact shape, finite values)."""
        shapes = dict(self.param_names())
        if name not in shapes:
            raise UnknownNameError("tensor", name, list(shapes))
        v = _as_f64(values, name)
        if v.shape != shapes[name]:
            raise ValueError("tensor %s has shape %s, values have %s" % (name, shapes[name], v.shape))
        _call(self.ctx, "sdflow_model_set_param", self._handle(), name.encode(), v.size, _p(v))

    def get_params(self) -> Array:
        """All trainable parameters as one flat vector."""
        out = np.empty(self.param_count)
        _call(self.ctx, "sdflow_model_get_params", self._handle(), out.size, _p(out))
        return out

    def set_params(self, theta: ArrayLike) -> None:
        """Sets all trainable parameters from a flat vector of :attr:`param_count` values."""
        theta = _vec(theta, "theta", self.param_count)
        _call(self.ctx, "sdflow_model_set_params", self._handle(), theta.size, _p(theta))

    def param_grad(self, process: Optional[Process], x: ArrayLike, t: ArrayLike,
                   w: ArrayLike) -> Tuple[Array, Array]:
        """(d/dtheta, d/dx) of sum_i w_i . f(x_i, t_i), f the native output."""
        x, t = self._xt(x, t)
        w = _mat(w, "w", cols=self.dim, rows=x.shape[0])
        g, gx = np.empty(self.param_count), np.empty_like(x)
        _call(self.ctx, "sdflow_model_param_grad", self._handle(), _ph(process), x.shape[0], _p(x), _p(t), _p(w),
              _p(g), _p(gx))
        return g, gx

    def param_grad_jac(self, process: Optional[Process], x: ArrayLike, t: ArrayLike, a: ArrayLike,
                       b: ArrayLike) -> Array:
        """d/dtheta of sum_i a_i^T J(x_i, t_i) b_i (J the native output's Jacobian)."""
        x, t = self._xt(x, t)
        a = _mat(a, "a", cols=self.dim, rows=x.shape[0])
        b = _mat(b, "b", cols=self.dim, rows=x.shape[0])
        g = np.empty(self.param_count)
        _call(self.ctx, "sdflow_model_param_grad_jac", self._handle(), _ph(process), x.shape[0], _p(x), _p(t), _p(a),
              _p(b), _p(g))
        return g

    # --- model files ---
    def save(self, path: Union[str, os.PathLike], process: Optional[Process] = None) -> None:
        """Writes a model file (docs/model-files.md), with @p process if given;
        the ctx option file_dtype ("f64", "f32") picks the element type."""
        _call(self.ctx, "sdflow_model_save", self._handle(), _ph(process), os.fsencode(path))

    def to_bytes(self, process: Optional[Process] = None) -> bytes:
        """The model file as bytes."""
        n = C.c_size_t()
        ph = _ph(process)
        _call(self.ctx, "sdflow_model_save_buffer", self._handle(), ph, None, 0, C.byref(n))
        buf = C.create_string_buffer(n.value)
        _call(self.ctx, "sdflow_model_save_buffer", self._handle(), ph, buf, n.value, C.byref(n))
        return buf.raw[:n.value]

    @classmethod
    def load(cls, ctx: Ctx, path_or_bytes: Union[str, os.PathLike, bytes, bytearray]) -> Tuple["Model",
                                                                                            Optional[Process]]:
        """Loads a model file (a path, or its bytes): (Model, Process or None)."""
        m, p = C.c_void_p(), C.c_void_p()
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            _call(ctx, "sdflow_model_load_buffer", ctx._handle(), data, len(data), C.byref(m), C.byref(p))
        else:
            _call(ctx, "sdflow_model_load", ctx._handle(), os.fsencode(path_or_bytes), C.byref(m), C.byref(p))
        model = cls(ctx, m)
        return model, (Process(ctx, _handle=p) if p.value else None)


# ---- sampler --------------------------------------------------------------

def _bind_kwargs(obj: Any, kw: Dict[str, Any], roles: Optional[Dict[str, int]]) -> None:
    """Constructor keywords: process=, models by role (a Model value), options."""
    for k, v in kw.items():
        if k == "process":
            obj.set_process(v)
        elif roles is not None and k in roles and (isinstance(v, Model) or v is None):
            obj.set_model(v, k)
        else:
            obj.set(k, v)


class Sampler(_Object):
    """A transport algorithm, bound to a process and models by role.

    ``Sampler(ctx, "pf_ode", process=vp, score=model, solver="dopri5", rtol=1e-6)``:
    keywords naming a role (score, target, source, start, forward, backward,
    data, prior, velocity, denoiser, base) with a Model value bind it;
    ``process=`` binds the process; the others are options.

    Kinds: reverse_sde, pc, pf_ode, sdflow, ddim, dpmpp_2m, dpmpp_3m,
    dpmpp_2m_sde, dpmpp_3m_sde, edm_heun, dsb, interpolant."""

    _c_name = "sampler"

    def __init__(self, ctx: Ctx, kind: str, **kwargs: Any):
        h = C.c_void_p()
        k = lookup("sampler kind", SAMPLER_KINDS, kind)
        _call(ctx, "sdflow_sampler_create", ctx._handle(), k, C.byref(h))
        self._own(ctx, h)
        self.kind: str = enum_names("sdflow_sampler_kind")[k]
        self._keep: Dict[str, Any] = {}
        _bind_kwargs(self, kwargs, ROLES)

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Sampler closed>"
        bound = ", ".join("%s=%s" % (r, m.kind) for r, m in self._keep.items() if isinstance(m, Model))
        proc = self._keep.get("process")
        return "<sdflow.Sampler %s%s%s>" % (self.kind, " process=%s" % proc.kind if proc else "",
                                            " " + bound if bound else "")

    def set_process(self, process: Optional[Process]) -> "Sampler":
        """Binds the noising process (kept alive by the sampler)."""
        _same_ctx(self.ctx, process, "process")
        _call(self.ctx, "sdflow_sampler_set_process", self._handle(), _ph(process))
        self._keep["process"] = process
        return self

    def set_model(self, model: Optional[Model], role: str = "score") -> "Sampler":
        """Binds @p model to @p role (None unbinds)."""
        r = lookup("role", ROLES, role)
        _same_ctx(self.ctx, model, "model")
        _call(self.ctx, "sdflow_sampler_set_model", self._handle(), r, _ph(model))
        self._keep[enum_names("sdflow_role")[r]] = model
        return self

    def dim(self) -> Optional[int]:
        """The dimension d the C sampler will use (None while no model that fixes it is bound)."""
        k = self._keep
        if self.kind == "sdflow":
            roles: Sequence[str] = ("target",)
        elif self.kind == "interpolant":
            roles = ("velocity",)
        elif self.kind == "dsb":
            roles = ("data", "prior", "backward", "forward")
        else:
            roles = ("score",)
        for r in roles:
            if k.get(r) is not None:
                return k[r].dim
        return None

    def _need_dim(self) -> int:
        d = self.dim()
        if d is None:
            raise StateError(8, _L().strerror(8), "no model bound that fixes the dimension of a %s sampler "
                             "(set_model)" % self.kind, "Sampler")
        return d

    def run(self, x_init: Optional[ArrayLike] = None, n: Optional[int] = None, progress: Progress = None) -> Array:
        """Transports n samples and returns them (n x d).

        Give either @p x_init (n x d, the starting points) or @p n (the start
        is drawn by the sampler: the prior, the SD-flow start, the interpolant
        base). @p progress: see :attr:`Ctx.progress`."""
        d = self._need_dim()
        if x_init is None:
            if n is None:
                raise TypeError("run() needs x_init or n")
            x = None
            n = _count(n, "n")
        else:
            x = _mat(x_init, "x_init", cols=d, rows=n)
            n = x.shape[0]
        out = np.empty((n, d))
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_sampler_run", self._handle(), n, _p(x), _p(out))
        return out

    def transport(self, x: ArrayLike, t_from: float, t_to: float, progress: Progress = None) -> Array:
        """PF-ODE and interpolant: transports the rows of x from t_from to t_to (either direction)."""
        x = _mat(x, "x", cols=self._need_dim())
        out = np.empty_like(x)
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_sampler_transport", self._handle(), x.shape[0], float(t_from), float(t_to), _p(x),
                  _p(out))
        return out

    def set_time_grid(self, times: ArrayLike) -> "Sampler":
        """A custom time grid (>= 2 strictly monotone times); sets steps = len - 1."""
        times = _vec(times, "times")
        _call(self.ctx, "sdflow_sampler_set_time_grid", self._handle(), times.shape[0], _p(times))
        return self

    def fit(self, iterations: int = 1, progress: Progress = None) -> "Sampler":
        """DSB: runs @p iterations more IPF iterations (docs/dsb.md)."""
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_sampler_fit", self._handle(), int(iterations))
        return self

    def stat(self, name: str) -> float:
        """A statistic of the last run ("nfe", "steps_accepted", ...; see :data:`STATS`)."""
        v = C.c_double()
        _call(self.ctx, "sdflow_sampler_get_stat", self._handle(), lookup("statistic", STATS, name), C.byref(v))
        return v.value

    def stats(self) -> Dict[str, float]:
        """Every statistic of the last run."""
        return {k: self.stat(k) for k in STATS}


# ---- density --------------------------------------------------------------

class Density(_Object):
    """Log-density estimator: ``Density(ctx, "pf_ode_exact", process=vp, model=m)``.

    Kinds: pf_ode_exact, pf_ode_hutchinson, liyan. Keywords process=, model=,
    base= bind; the others are options (probes, rtol, ...)."""

    _c_name = "density"

    def __init__(self, ctx: Ctx, kind: str, **kwargs: Any):
        h = C.c_void_p()
        k = lookup("density kind", DENSITY_KINDS, kind)
        _call(ctx, "sdflow_density_create", ctx._handle(), k, C.byref(h))
        self._own(ctx, h)
        self.kind: str = enum_names("sdflow_density_kind")[k]
        self._keep: Dict[str, Any] = {}
        for key in ("model", "base"):
            if key in kwargs:
                getattr(self, "set_" + key)(kwargs.pop(key))
        _bind_kwargs(self, kwargs, None)

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Density closed>"
        m = self._keep.get("model")
        return "<sdflow.Density %s%s>" % (self.kind, " model=%s d=%d" % (m.kind, m.dim) if m else "")

    def set_process(self, process: Optional[Process]) -> "Density":
        _same_ctx(self.ctx, process, "process")
        _call(self.ctx, "sdflow_density_set_process", self._handle(), _ph(process))
        self._keep["process"] = process
        return self

    def set_model(self, model: Optional[Model]) -> "Density":
        _same_ctx(self.ctx, model, "model")
        _call(self.ctx, "sdflow_density_set_model", self._handle(), _ph(model))
        self._keep["model"] = model
        return self

    def set_base(self, base: Optional[Model]) -> "Density":
        """Interpolant likelihood: the base at t = 0 (gaussian or gmm; None: N(0, I))."""
        _same_ctx(self.ctx, base, "base")
        _call(self.ctx, "sdflow_density_set_base", self._handle(), _ph(base))
        self._keep["base"] = base
        return self

    def _x(self, x: ArrayLike) -> Array:
        m = self._keep.get("model")
        if m is None:
            raise StateError(8, _L().strerror(8), "no model bound (set_model)", "Density")
        return _mat(x, "x", cols=m.dim)

    def logpdf(self, x: ArrayLike, progress: Progress = None) -> Tuple[Array, Array]:
        """(log p in nats, standard error) per row of x (the error is 0 for exact estimators)."""
        x = self._x(x)
        lp, se = np.empty(x.shape[0]), np.empty(x.shape[0])
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_density_logpdf", self._handle(), x.shape[0], _p(x), _p(lp), _p(se))
        return lp, se

    def bits_per_dim(self, x: ArrayLike, progress: Progress = None) -> Tuple[Array, Array]:
        """(bits per dimension, standard error) of 0..255 data levels per row of x."""
        x = self._x(x)
        b, se = np.empty(x.shape[0]), np.empty(x.shape[0])
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_density_bits_per_dim", self._handle(), x.shape[0], _p(x), _p(b), _p(se))
        return b, se


# ---- trainer --------------------------------------------------------------

class Trainer(_Object):
    """Fits an MLP model (docs/training.md).

    ``Trainer(ctx, "dsm", model=mlp, process=vp, data=x, batch=256, lr=2e-3)``;
    kinds dsm, interpolant, dsb_mean. Keywords model=, process=, data=,
    validation=, base_model=, base_data= (interpolant), batch_fn= bind; the
    others are options, with or without the ``train_``
    prefix (``lr`` = ``train_lr``; ``optimizer="adamw"``, ``schedule="cosine"``)."""

    _c_name = "trainer"
    _prefixes = ("train_", "")

    def __init__(self, ctx: Ctx, kind: str = "dsm", **kwargs: Any):
        h = C.c_void_p()
        k = lookup("trainer kind", LOSS_KINDS, kind)
        _call(ctx, "sdflow_trainer_create", ctx._handle(), k, C.byref(h))
        self._own(ctx, h)
        self.kind: str = enum_names("sdflow_loss_kind")[k]
        self._keep: Dict[str, Any] = {}
        for key in ("model", "process", "data", "validation", "base_model", "base_data"):
            if key in kwargs:
                getattr(self, "set_" + key)(kwargs.pop(key))
        if "batch_fn" in kwargs:
            self.set_batch_fn(kwargs.pop("batch_fn"), kwargs.pop("d", None))
        self.configure(**kwargs)

    def __repr__(self) -> str:
        if self.closed:
            return "<sdflow.Trainer closed>"
        m = self._keep.get("model")
        return "<sdflow.Trainer %s step=%d%s>" % (self.kind, int(self.stat("step")),
                                                  " model=mlp d=%d" % m.dim if m else "")

    def set_model(self, model: Model) -> "Trainer":
        """Binds the MLP to train (weights updated in place; resets optimizer, EMA, step count)."""
        _same_ctx(self.ctx, model, "model")
        _call(self.ctx, "sdflow_trainer_set_model", self._handle(), _ph(model))
        self._keep["model"] = model
        return self

    def set_process(self, process: Process) -> "Trainer":
        _same_ctx(self.ctx, process, "process")
        _call(self.ctx, "sdflow_trainer_set_process", self._handle(), _ph(process))
        self._keep["process"] = process
        return self

    def _dim(self) -> Optional[int]:
        m = self._keep.get("model")
        return m.dim if m is not None else None

    def set_base_model(self, model: Optional[Model]) -> "Trainer":
        """Interpolant loss only: the base distribution at t = 0 is @p model
        (gaussian or gmm, drawn with Model.sample; kept alive by the trainer
        because the C trainer does not copy it). None restores N(0, I).
        Replaces base data."""
        if model is not None:
            if not isinstance(model, Model):
                raise TypeError("base model must be a sdflow.Model or None, is %r" % (model,))
            _same_ctx(self.ctx, model, "base model")
            d = self._dim()
            if d is not None and model.dim != d:
                raise ValueError("base model has dimension %d, the trainer's model %d" % (model.dim, d))
        _call(self.ctx, "sdflow_trainer_set_base_model", self._handle(), _ph(model))
        if model is None:
            self._keep.pop("base_model", None)
        else:
            self._keep["base_model"] = model
        return self

    def set_base_data(self, x: Optional[ArrayLike]) -> "Trainer":
        """Interpolant loss only: the base at t = 0 is a second data array
        (n x d, copied, finite; d the model's dimension). None restores
        N(0, I). Replaces a base model."""
        if x is None:
            _call(self.ctx, "sdflow_trainer_set_base_data", self._handle(), 0, self._dim() or 1, None)
        else:
            x = _mat(x, "base data", cols=self._dim())
            _call(self.ctx, "sdflow_trainer_set_base_data", self._handle(), x.shape[0], x.shape[1], _p(x))
        # Either form replaces a base model in C, so it no longer needs keeping alive.
        self._keep.pop("base_model", None)
        return self

    def set_data(self, x: ArrayLike) -> "Trainer":
        """Training data, n x d (copied); d must equal the model's dimension."""
        x = _mat(x, "data", cols=self._dim())
        _call(self.ctx, "sdflow_trainer_set_data", self._handle(), x.shape[0], x.shape[1], _p(x))
        self._keep.pop("batch_fn", None)
        return self

    def set_validation(self, x: Optional[ArrayLike]) -> "Trainer":
        """Held-out data (n x d, copied) for :meth:`validate`; None removes it."""
        if x is None:
            _call(self.ctx, "sdflow_trainer_set_validation", self._handle(), 0, self._dim() or 1, None)
            return self
        x = _mat(x, "validation", cols=self._dim())
        _call(self.ctx, "sdflow_trainer_set_validation", self._handle(), x.shape[0], x.shape[1], _p(x))
        return self

    def set_batch_fn(self, fn: Optional[Callable[[int, int, int, int], ArrayLike]],
                     d: Optional[int] = None) -> "Trainer":
        """Data from a callable instead of an array: ``fn(step, first_row, rows, d)``
        returns the rows x d data rows [first_row, first_row + rows) of the
        batch of @p step (deterministic training: rows depending only on
        (step, row index)). @p d defaults to the model's dimension. None unbinds."""
        if fn is None:
            _call(self.ctx, "sdflow_trainer_set_batch_fn", self._handle(), d or self._dim() or 1,
                  _null("sdflow_batch_fn"), None)
            self._keep.pop("batch_fn", None)
            return self
        d = d if d is not None else self._dim()
        if d is None:
            raise TypeError("set_batch_fn needs d (or a bound model)")
        ctx = self.ctx

        def tramp(step: int, first_row: int, rows: int, dd: int, x0: Any, _u: Any) -> int:
            try:
                np.ctypeslib.as_array(x0, shape=(rows, dd))[...] = _result(fn(step, first_row, rows, dd), (rows, dd),
                                                                          "batch_fn")
                return 0
            except BaseException as e:
                ctx._store(e)
                return 1

        cb = _ffi.callback_type("sdflow_batch_fn")(tramp)
        _call(self.ctx, "sdflow_trainer_set_batch_fn", self._handle(), _count(d, "d"), cb, None)
        self._keep["batch_fn"] = cb
        return self

    def step(self) -> float:
        """One optimization step; returns its loss."""
        _call(self.ctx, "sdflow_trainer_step", self._handle())
        return self.stat("loss")

    def fit(self, steps: int, progress: Progress = None) -> float:
        """@p steps steps (progress after each); returns the running loss."""
        with self.ctx._progress_scope(progress):
            _call(self.ctx, "sdflow_trainer_fit", self._handle(), int(steps))
        return self.stat("running_loss")

    def eval_batch(self, step: int, grad: bool = False) -> Union[float, Tuple[float, Array]]:
        """Loss of the batch of @p step at the current weights (and its gradient if @p grad)."""
        loss = C.c_double()
        g = np.empty(self._keep["model"].param_count) if grad else None
        _call(self.ctx, "sdflow_trainer_eval_batch", self._handle(), int(step), C.byref(loss), _p(g))
        return (loss.value, g) if grad else loss.value  # type: ignore[return-value]

    def validate(self) -> float:
        """Loss of the current weights on the validation set."""
        v = C.c_double()
        _call(self.ctx, "sdflow_trainer_validate", self._handle(), C.byref(v))
        return v.value

    def stat(self, name: str) -> float:
        """A statistic: step, loss, running_loss, grad_norm, lr, val_loss, dsm_loss, penalty."""
        v = C.c_double()
        _call(self.ctx, "sdflow_trainer_get_stat", self._handle(), lookup("statistic", TRAIN_STATS, name), C.byref(v))
        return v.value

    def stats(self) -> Dict[str, float]:
        """Every statistic that exists now (val_loss only after a validation)."""
        out = {}
        for k in TRAIN_STATS:
            try:
                out[k] = self.stat(k)
            except StateError:
                pass
        return out

    def copy_ema(self, model: Model) -> Model:
        """Copies the EMA weights into @p model (an MLP of the same architecture); returns it."""
        _same_ctx(self.ctx, model, "model")
        _call(self.ctx, "sdflow_trainer_copy_ema", self._handle(), _ph(model))
        return model

    # --- checkpoints (docs/model-files.md, "Trainer checkpoints") ---
    def save_checkpoint(self, path: Optional[Union[str, os.PathLike]] = None) -> Optional[bytes]:
        """Saves the resumable state (weights, Adam moments, EMA, counts,
        statistics, options, seed, data fingerprint). With @p path writes the
        file (atomically, via "<path>.tmp") and returns None; without, returns
        the checkpoint as bytes."""
        if path is not None:
            _call(self.ctx, "sdflow_trainer_checkpoint_save", self._handle(), os.fsencode(path))
            return None
        n = C.c_size_t()
        _call(self.ctx, "sdflow_trainer_checkpoint_save_buffer", self._handle(), None, 0, C.byref(n))
        buf = C.create_string_buffer(n.value)
        _call(self.ctx, "sdflow_trainer_checkpoint_save_buffer", self._handle(), buf, n.value, C.byref(n))
        return buf.raw[:n.value]

    def restore_checkpoint(self, path_or_bytes: Union[str, os.PathLike, bytes, bytearray, memoryview]) -> "Trainer":
        """Restores a checkpoint (a path, or its bytes) into this trainer,
        configured like the saver (same kind, options, seed, MLP
        architecture, process, data). The bound model's weights are
        replaced. A mismatch raises InvalidArgumentError naming the first
        difference, a malformed file FormatError; on failure nothing changes."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            _call(self.ctx, "sdflow_trainer_checkpoint_restore_buffer", self._handle(), data, len(data))
        else:
            _call(self.ctx, "sdflow_trainer_checkpoint_restore", self._handle(), os.fsencode(path_or_bytes))
        return self

    @classmethod
    def load_checkpoint(cls, ctx: Ctx, path_or_bytes: Union[str, os.PathLike, bytes, bytearray, memoryview]
                        ) -> Tuple["Trainer", Model, Optional[Process]]:
        """Rebuilds (trainer, model, process or None) from a checkpoint alone.
        Each is an owned object like the constructors' (the trainer keeps the
        model and process alive); bind the data (set_data or set_batch_fn)
        before stepping. The ctx seed must equal the saved one."""
        h, m, p = C.c_void_p(), C.c_void_p(), C.c_void_p()
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
            _call(ctx, "sdflow_trainer_checkpoint_load_buffer", ctx._handle(), data, len(data), C.byref(h),
                  C.byref(m), C.byref(p))
            header = data
        else:
            _call(ctx, "sdflow_trainer_checkpoint_load", ctx._handle(), os.fsencode(path_or_bytes), C.byref(h),
                  C.byref(m), C.byref(p))
            header = None
        # Own the model and process first: they must outlive the trainer (it points at them).
        model = Model(ctx, m)
        process = Process(ctx, _handle=p) if p.value else None
        t = cls.__new__(cls)
        t._own(ctx, h)
        t._keep = {"model": model}
        if process is not None:
            t._keep["process"] = process
        t.kind = _checkpoint_kind(header if header is not None else path_or_bytes)
        return t, model, process


def _checkpoint_kind(src: Any) -> str:
    """The loss kind of a checkpoint the C loader accepted, from its
    "sdflow.train.loss" metadata (the C API has no trainer kind getter).
    Only the safetensors header is read."""
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            raw = bytes(src[:8])
            (n,) = struct.unpack("<Q", raw)
            head = bytes(src[8:8 + n])
        else:
            with open(os.fsencode(src), "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                head = f.read(n)
        kind = json.loads(head.decode("utf-8"))["__metadata__"]["sdflow.train.loss"]
        return str(kind)
    except Exception:  # the file was valid for the C loader; a re-read race is not worth failing for
        return "unknown"


# ---- free functions -------------------------------------------------------

def philox4x32(counter: Sequence[int], key: Sequence[int]) -> Tuple[int, int, int, int]:
    """The raw Philox4x32-10 block: 4 uint32 outputs of a 4-word counter and a 2-word key."""
    if len(counter) != 4 or len(key) != 2:
        raise ValueError("philox4x32 needs a 4-word counter and a 2-word key")
    for w in list(counter) + list(key):
        if not 0 <= int(w) < 2 ** 32:
            raise ValueError("philox4x32 words must be in [0, 2^32), got %r" % (w,))
    ctr = (C.c_uint32 * 4)(*counter)
    k = (C.c_uint32 * 2)(*key)
    out = (C.c_uint32 * 4)()
    _L().sdflow_rng_philox4x32(ctr, k, out)
    return tuple(out)  # type: ignore[return-value]


def kernel_exp(x: ArrayLike) -> Array:
    """The exponential the kernel sums use (within 2 ulp of exp on [-708, 709])."""
    a = _as_f64(x, "x")
    flat = a.reshape(-1)
    out = np.empty_like(flat)
    _call(None, "sdflow_kernel_exp", flat.size, _p(flat), _p(out))
    return out.reshape(a.shape)


def strerror(status: int) -> str:
    """The library's short description of a status code."""
    return _L().strerror(int(status))


def kind_names(what: str) -> List[str]:
    """The library's names of the kinds of "process", "model", "sampler", "density" or "trainer"."""
    tables = {"process": PROCESS_KINDS, "model": MODEL_KINDS, "sampler": SAMPLER_KINDS, "density": DENSITY_KINDS,
              "trainer": LOSS_KINDS}
    if what not in tables:
        raise UnknownNameError("object", what, list(tables))
    fn = getattr(_L(), "sdflow_%s_kind_name" % what)
    return [fn(v).decode() for v in tables[what].values() if fn(v)]


def kind_value(what: str, name: str) -> int:
    """The library's value of kind @p name ("pf_ode" -> 3) via sdflow_*_kind_from_name."""
    out = C.c_int()
    fn = getattr(_L(), "sdflow_%s_kind_from_name" % what)
    if fn(name.encode(), C.byref(out)):
        raise UnknownNameError("%s kind" % what, name, kind_names(what))
    return out.value
