# SPDX-License-Identifier: MIT
"""ctypes binding of libsdflow (numpy arrays in and out).

The shared library is found through the environment variable SDFLOW_LIBRARY
(a path) or else ``ctypes.util.find_library("sdflow")``. Every failing call
raises :class:`SdflowError` carrying the status and the context's message
(``sdflow_ctx_last_error``).

Arrays are converted to C-contiguous float64; results are new numpy arrays.
Objects keep a reference to the objects they use (a Process to its Ctx, a
Sampler to its models), so the C objects are freed in a valid order.

Options are set by name, the names of ``sdflow_option_name`` ("seed",
"threads", "steps", "solver", "rtol", ...), e.g. ``sampler.set("steps", 100)``.
"""

import ctypes
import ctypes.util
import os

import numpy as np

__all__ = ["SdflowError", "Ctx", "Process", "Model", "Sampler", "Density", "version", "load_library"]

VERSION_NUMBER = 100  # SDFLOW_VERSION_NUMBER this binding was written for (0.1.0)

_c = ctypes
_dp = _c.POINTER(_c.c_double)
_size = _c.c_size_t
_u64 = _c.c_uint64
_void = _c.c_void_p
_status = _c.c_int

PROCESS_KINDS = {"vp": 1, "vp_cosine": 2, "subvp": 3, "ve": 4, "interp_linear": 5, "interp_trig": 6}
OUTPUTS = {"score": 0, "eps": 1, "x0": 2, "velocity": 3, "v": 4}
SAMPLER_KINDS = {"reverse_sde": 1, "pc": 2, "pf_ode": 3, "sdflow": 4, "ddim": 5, "dpmpp_2m": 6, "dpmpp_3m": 7,
                 "dpmpp_2m_sde": 8, "dpmpp_3m_sde": 9, "edm_heun": 10, "dsb": 11, "interpolant": 12}
ROLES = {"score": 0, "target": 1, "source": 2, "start": 3, "forward": 4, "backward": 5, "data": 6, "prior": 7,
         "velocity": 8, "denoiser": 9, "base": 10}
DENSITY_KINDS = {"pf_ode_exact": 1, "pf_ode_hutchinson": 2, "liyan": 3}
STATS = {"nfe": 0, "steps_accepted": 1, "steps_rejected": 2, "memorization_ratio": 3, "sigma_min": 4, "sigma_max": 5,
         "h_nn": 6, "fresh_nn": 7, "levels": 8, "sigma_ratio": 9, "half_bridges": 10, "fit_mse": 11,
         "kinetic_energy": 12}
_TYPE_INT, _TYPE_DOUBLE, _TYPE_U64 = 1, 2, 3


class SdflowError(RuntimeError):
    """A libsdflow call failed: ``status`` (int), ``status_name`` and ``message``."""

    def __init__(self, status, status_name, message):
        super().__init__("%s: %s" % (status_name, message))
        self.status = status
        self.status_name = status_name
        self.message = message


def _sig(lib, name, res, *args):
    try:
        f = getattr(lib, name)
    except AttributeError:  # a newer binding on an older library: the wrapper raises when used
        return
    f.restype = res
    f.argtypes = list(args)


def load_library(path=None):
    """Loads libsdflow and declares the prototypes used here."""
    path = path or os.environ.get("SDFLOW_LIBRARY") or ctypes.util.find_library("sdflow")
    if not path:
        raise OSError("libsdflow not found: set SDFLOW_LIBRARY to the path of libsdflow.so")
    lib = _c.CDLL(path)
    P = _c.POINTER
    _sig(lib, "sdflow_version", _c.c_uint)
    _sig(lib, "sdflow_version_string", _c.c_char_p)
    _sig(lib, "sdflow_strerror", _c.c_char_p, _status)
    _sig(lib, "sdflow_ctx_create", _status, P(_void), _void)
    _sig(lib, "sdflow_ctx_free", None, _void)
    _sig(lib, "sdflow_ctx_last_error", _c.c_char_p, _void)
    _sig(lib, "sdflow_option_from_name", _status, _c.c_char_p, P(_c.c_int))
    _sig(lib, "sdflow_option_get_type", _c.c_int, _c.c_int)
    _sig(lib, "sdflow_rng_normal", _status, _void, _u64, _u64, _size, _size, _dp)
    _sig(lib, "sdflow_rng_uniform", _status, _void, _u64, _u64, _size, _size, _dp)
    for obj in ("ctx", "process", "model", "sampler", "density"):
        _sig(lib, "sdflow_%s_set_int" % obj, _status, _void, _c.c_int, _c.c_long)
        _sig(lib, "sdflow_%s_set_double" % obj, _status, _void, _c.c_int, _c.c_double)
        _sig(lib, "sdflow_%s_get_int" % obj, _status, _void, _c.c_int, P(_c.c_long))
        _sig(lib, "sdflow_%s_get_double" % obj, _status, _void, _c.c_int, P(_c.c_double))
    for obj in ("ctx", "model", "sampler", "density"):
        _sig(lib, "sdflow_%s_set_u64" % obj, _status, _void, _c.c_int, _u64)
        _sig(lib, "sdflow_%s_get_u64" % obj, _status, _void, _c.c_int, P(_u64))
    _sig(lib, "sdflow_process_create", _status, _void, _c.c_int, P(_void))
    _sig(lib, "sdflow_process_free", None, _void)
    _sig(lib, "sdflow_process_time_range", _status, _void, _dp, _dp)
    _sig(lib, "sdflow_process_coefficients", _status, _void, _size, _dp, _dp, _dp, _dp, _dp)
    _sig(lib, "sdflow_process_prior_sample", _status, _void, _u64, _u64, _size, _size, _dp)
    _sig(lib, "sdflow_process_prior_logpdf", _status, _void, _size, _size, _dp, _dp)
    _sig(lib, "sdflow_process_perturb", _status, _void, _u64, _u64, _size, _size, _dp, _dp, _dp, _dp)
    _sig(lib, "sdflow_process_convert", _status, _void, _size, _size, _dp, _dp, _c.c_int, _dp, _c.c_int, _dp)
    _sig(lib, "sdflow_model_create_gaussian", _status, _void, _size, _dp, _dp, P(_void))
    _sig(lib, "sdflow_model_create_gmm", _status, _void, _size, _size, _dp, _dp, _dp, P(_void))
    _sig(lib, "sdflow_model_create_kernel", _status, _void, _size, _size, _dp, P(_void))
    _sig(lib, "sdflow_model_free", None, _void)
    _sig(lib, "sdflow_model_dim", _size, _void)
    _sig(lib, "sdflow_model_eval", _status, _void, _void, _size, _dp, _dp, _c.c_int, _dp)
    _sig(lib, "sdflow_model_logpdf", _status, _void, _void, _size, _dp, _dp, _dp)
    _sig(lib, "sdflow_model_sample", _status, _void, _u64, _u64, _size, _dp)
    _sig(lib, "sdflow_model_create_mlp", _status, _void, _size, P(_void))
    _sig(lib, "sdflow_model_param_tensors", _status, _void, P(_size))
    _sig(lib, "sdflow_model_param_info", _status, _void, _size, P(_c.c_char_p), P(_size), P(_size))
    _sig(lib, "sdflow_model_get_param", _status, _void, _c.c_char_p, _size, _dp)
    _sig(lib, "sdflow_model_set_param", _status, _void, _c.c_char_p, _size, _dp)
    _sig(lib, "sdflow_model_save", _status, _void, _void, _c.c_char_p)
    _sig(lib, "sdflow_model_save_buffer", _status, _void, _void, _void, _size, P(_size))
    _sig(lib, "sdflow_model_load", _status, _void, _c.c_char_p, P(_void), P(_void))
    _sig(lib, "sdflow_model_load_buffer", _status, _void, _c.c_char_p, _size, P(_void), P(_void))
    _sig(lib, "sdflow_metric_energy", _status, _void, _size, _size, _size, _dp, _dp, _dp, _dp)
    _sig(lib, "sdflow_metric_mmd2", _status, _void, _size, _size, _size, _dp, _dp, _c.c_double, _dp, _dp)
    _sig(lib, "sdflow_metric_sliced_wasserstein", _status, _void, _size, _size, _size, _dp, _dp, _c.c_double,
         _c.c_long, _u64, _dp, _dp)
    _sig(lib, "sdflow_sampler_create", _status, _void, _c.c_int, P(_void))
    _sig(lib, "sdflow_sampler_free", None, _void)
    _sig(lib, "sdflow_sampler_set_process", _status, _void, _void)
    _sig(lib, "sdflow_sampler_set_model", _status, _void, _c.c_int, _void)
    _sig(lib, "sdflow_sampler_run", _status, _void, _size, _dp, _dp)
    _sig(lib, "sdflow_sampler_transport", _status, _void, _size, _c.c_double, _c.c_double, _dp, _dp)
    _sig(lib, "sdflow_sampler_get_stat", _status, _void, _c.c_int, _dp)
    _sig(lib, "sdflow_sampler_fit", _status, _void, _c.c_long)
    _sig(lib, "sdflow_density_create", _status, _void, _c.c_int, P(_void))
    _sig(lib, "sdflow_density_free", None, _void)
    _sig(lib, "sdflow_density_set_process", _status, _void, _void)
    _sig(lib, "sdflow_density_set_model", _status, _void, _void)
    _sig(lib, "sdflow_density_logpdf", _status, _void, _size, _dp, _dp, _dp)
    _sig(lib, "sdflow_density_bits_per_dim", _status, _void, _size, _dp, _dp, _dp)
    if lib.sdflow_version() != VERSION_NUMBER:
        raise OSError("%s is libsdflow %d, this binding expects %d" % (path, lib.sdflow_version(), VERSION_NUMBER))
    return lib


_lib = None


def _L():
    global _lib
    if _lib is None:
        _lib = load_library()
    return _lib


def version():
    """(number, string) of the loaded library, e.g. (100, "0.1.0")."""
    return _L().sdflow_version(), _L().sdflow_version_string().decode()


def _ptr(a):
    return a.ctypes.data_as(_dp) if a is not None else None


def _arr(a, name, ndim=None, shape=None):
    a = np.ascontiguousarray(a, dtype=np.float64)
    if ndim is not None and a.ndim != ndim:
        raise ValueError("%s must have %d dimensions, has %d" % (name, ndim, a.ndim))
    if shape is not None and a.shape != shape:
        raise ValueError("%s must have shape %s, has %s" % (name, shape, a.shape))
    return a


def _check_cols(x, model, name):
    # The library reads n x d doubles: a wrong column count would make it read
    # reinterpreted rows or past the end of the buffer.
    if model is not None and x.shape[1] != model.dim:
        raise ValueError("%s must have %d columns (the model dimension), has %d" % (name, model.dim, x.shape[1]))


def _option_key(name):
    key = _c.c_int()
    if _L().sdflow_option_from_name(name.encode(), _c.byref(key)) != 0:
        raise KeyError("unknown option %r" % name)
    return key.value


class Ctx:
    """Context: seed, threads, last error. ``Ctx(seed=0, threads=1)``."""

    def __init__(self, seed=0, threads=1):
        lib = _L()
        h = _void()
        st = lib.sdflow_ctx_create(_c.byref(h), None)
        if st:
            raise SdflowError(st, lib.sdflow_strerror(st).decode(), "sdflow_ctx_create failed")
        self._h, self._free = h, lib.sdflow_ctx_free  # bound now: module globals may be gone at exit
        self.set("seed", seed)
        self.set("threads", threads)

    def check(self, st):
        """Raises SdflowError for a nonzero status, with this ctx's message."""
        if st:
            lib = _L()
            raise SdflowError(st, lib.sdflow_strerror(st).decode(), lib.sdflow_ctx_last_error(self._h).decode())

    def set(self, name, value):
        _set_option(self, "ctx", self._h, name, value)

    def get(self, name):
        return _get_option(self, "ctx", self._h, name)

    def rng_normal(self, n, d, stream=0, first_index=0):
        """n x d standard normal draws; row i depends only on (seed, stream, first_index + i)."""
        out = np.empty((n, d))
        self.check(_L().sdflow_rng_normal(self._h, stream, first_index, n, d, _ptr(out)))
        return out

    def rng_uniform(self, n, d, stream=0, first_index=0):
        out = np.empty((n, d))
        self.check(_L().sdflow_rng_uniform(self._h, stream, first_index, n, d, _ptr(out)))
        return out

    # ---- two-sample metrics: each returns (value, std) ----
    def _xy(self, x, y):
        x, y = _arr(x, "x", 2), _arr(y, "y", 2)
        if x.shape[1] != y.shape[1]:
            raise ValueError("x and y must have the same number of columns")
        return x, y

    def energy_distance(self, x, y):
        x, y = self._xy(x, y)
        v, s = _c.c_double(), _c.c_double()
        self.check(_L().sdflow_metric_energy(self._h, x.shape[0], y.shape[0], x.shape[1], _ptr(x), _ptr(y),
                                             _c.byref(v), _c.byref(s)))
        return v.value, s.value

    def mmd2(self, x, y, bandwidth=0.0):
        x, y = self._xy(x, y)
        v, s = _c.c_double(), _c.c_double()
        self.check(_L().sdflow_metric_mmd2(self._h, x.shape[0], y.shape[0], x.shape[1], _ptr(x), _ptr(y),
                                           bandwidth, _c.byref(v), _c.byref(s)))
        return v.value, s.value

    def sliced_wasserstein(self, x, y, p=2.0, directions=128, stream=0):
        x, y = self._xy(x, y)
        v, s = _c.c_double(), _c.c_double()
        self.check(_L().sdflow_metric_sliced_wasserstein(self._h, x.shape[0], y.shape[0], x.shape[1], _ptr(x),
                                                         _ptr(y), p, directions, stream, _c.byref(v),
                                                         _c.byref(s) if directions >= 2 else None))
        return v.value, (s.value if directions >= 2 else float("nan"))

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None


def _set_option(ctx, obj, h, name, value):
    lib = _L()
    key = _option_key(name)
    kind = lib.sdflow_option_get_type(key)
    if kind == _TYPE_INT:
        st = getattr(lib, "sdflow_%s_set_int" % obj)(h, key, int(value))
    elif kind == _TYPE_DOUBLE:
        st = getattr(lib, "sdflow_%s_set_double" % obj)(h, key, float(value))
    else:
        st = getattr(lib, "sdflow_%s_set_u64" % obj)(h, key, int(value))
    ctx.check(st)


def _get_option(ctx, obj, h, name):
    lib = _L()
    key = _option_key(name)
    kind = lib.sdflow_option_get_type(key)
    if kind == _TYPE_INT:
        v, f = _c.c_long(), "int"
    elif kind == _TYPE_DOUBLE:
        v, f = _c.c_double(), "double"
    else:
        v, f = _u64(), "u64"
    ctx.check(getattr(lib, "sdflow_%s_get_%s" % (obj, f))(h, key, _c.byref(v)))
    return v.value


class Process:
    """Forward noising process or interpolant schedule: ``Process(ctx, "vp" | "vp_cosine" | "subvp" | "ve" |
    "interp_linear" | "interp_trig")`` (interpolants: t = 0 base, t = 1 data)."""

    def __init__(self, ctx, kind="vp", _handle=None):
        h = _void()
        if _handle is not None:
            h = _handle
        else:
            ctx.check(_L().sdflow_process_create(ctx._h, PROCESS_KINDS[kind], _c.byref(h)))
        self.ctx, self._h, self._free = ctx, h, _L().sdflow_process_free

    def set(self, name, value):
        _set_option(self.ctx, "process", self._h, name, value)

    def get(self, name):
        return _get_option(self.ctx, "process", self._h, name)

    def time_range(self):
        a, b = _c.c_double(), _c.c_double()
        self.ctx.check(_L().sdflow_process_time_range(self._h, _c.byref(a), _c.byref(b)))
        return a.value, b.value

    def coefficients(self, t):
        """(alpha, sigma, f, g) at the times t (1-D array)."""
        t = _arr(np.atleast_1d(t), "t", 1)
        out = [np.empty(t.shape[0]) for _ in range(4)]
        self.ctx.check(_L().sdflow_process_coefficients(self._h, t.shape[0], _ptr(t), *[_ptr(o) for o in out]))
        return tuple(out)

    def prior_sample(self, n, d, stream=0, first_index=0):
        out = np.empty((n, d))
        self.ctx.check(_L().sdflow_process_prior_sample(self._h, stream, first_index, n, d, _ptr(out)))
        return out

    def prior_logpdf(self, x):
        x = _arr(x, "x", 2)
        out = np.empty(x.shape[0])
        self.ctx.check(_L().sdflow_process_prior_logpdf(self._h, x.shape[0], x.shape[1], _ptr(x), _ptr(out)))
        return out

    def perturb(self, x0, t, stream=0, first_index=0):
        """(x_t, eps) with x_t = alpha(t) x0 + sigma(t) eps."""
        x0 = _arr(x0, "x0", 2)
        t = _arr(np.broadcast_to(t, (x0.shape[0],)), "t", 1)
        xt, eps = np.empty_like(x0), np.empty_like(x0)
        self.ctx.check(_L().sdflow_process_perturb(self._h, stream, first_index, x0.shape[0], x0.shape[1], _ptr(x0),
                                                   _ptr(t), _ptr(xt), _ptr(eps)))
        return xt, eps

    def convert(self, x, t, values, frm, to):
        """Converts a parameterization ("score", "eps", "x0", "velocity", "v") into another."""
        x = _arr(x, "x", 2)
        t = _arr(np.broadcast_to(t, (x.shape[0],)), "t", 1)
        values = _arr(values, "values", 2, x.shape)
        out = np.empty_like(x)
        self.ctx.check(_L().sdflow_process_convert(self._h, x.shape[0], x.shape[1], _ptr(x), _ptr(t), OUTPUTS[frm],
                                                   _ptr(values), OUTPUTS[to], _ptr(out)))
        return out

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None


class Model:
    """Score model. Build with Model.gaussian, Model.gmm or Model.kernel."""

    def __init__(self, ctx, handle):
        self.ctx, self._h, self._free = ctx, handle, _L().sdflow_model_free
        self.dim = _L().sdflow_model_dim(handle)

    @classmethod
    def gaussian(cls, ctx, mean, cov):
        mean = _arr(mean, "mean", 1)
        d = mean.shape[0]
        cov = _arr(cov, "cov", 2, (d, d))
        h = _void()
        ctx.check(_L().sdflow_model_create_gaussian(ctx._h, d, _ptr(mean), _ptr(cov), _c.byref(h)))
        return cls(ctx, h)

    @classmethod
    def gmm(cls, ctx, weights, means, covs):
        weights = _arr(weights, "weights", 1)
        k = weights.shape[0]
        means = _arr(means, "means", 2)
        if means.shape[0] != k:
            raise ValueError("means must have one row per weight")
        d = means.shape[1]
        covs = _arr(covs, "covs", 3, (k, d, d))
        h = _void()
        ctx.check(_L().sdflow_model_create_gmm(ctx._h, k, d, _ptr(weights), _ptr(means), _ptr(covs), _c.byref(h)))
        return cls(ctx, h)

    @classmethod
    def mlp(cls, ctx, d, **options):
        """MLP score model (docs/mlp.md); options by name without the ``mlp_``
        prefix: depth, width, activation, freqs, residual, output, time_input."""
        h = _void()
        ctx.check(_L().sdflow_model_create_mlp(ctx._h, d, _c.byref(h)))
        m = cls(ctx, h)
        for k, v in options.items():
            _set_option(ctx, "model", h, "mlp_" + k, v)
        return m

    def param_names(self):
        """Names and shapes of the MLP's tensors (PyTorch state_dict order)."""
        n = _size()
        self.ctx.check(_L().sdflow_model_param_tensors(self._h, _c.byref(n)))
        out = []
        for i in range(n.value):
            name, r, c = _c.c_char_p(), _size(), _size()
            self.ctx.check(_L().sdflow_model_param_info(self._h, i, _c.byref(name), _c.byref(r), _c.byref(c)))
            out.append((name.value.decode(), (r.value, c.value) if c.value else (r.value,)))
        return out

    def get_param(self, name):
        shape = dict(self.param_names())[name]
        out = np.empty(shape)
        self.ctx.check(_L().sdflow_model_get_param(self._h, name.encode(), out.size, _ptr(out)))
        return out

    def set_param(self, name, values):
        values = np.ascontiguousarray(values, dtype=np.float64)
        self.ctx.check(_L().sdflow_model_set_param(self._h, name.encode(), values.size, _ptr(values)))

    def save(self, path, process=None):
        """Writes a model file (docs/model-files.md); the ctx option
        "file_dtype" (0: F64, 1: F32) picks the element type."""
        self.ctx.check(_L().sdflow_model_save(self._h, process._h if process else None, os.fsencode(path)))

    def to_bytes(self, process=None):
        n = _size()
        ph = process._h if process else None
        self.ctx.check(_L().sdflow_model_save_buffer(self._h, ph, None, 0, _c.byref(n)))
        buf = _c.create_string_buffer(n.value)
        self.ctx.check(_L().sdflow_model_save_buffer(self._h, ph, buf, n.value, _c.byref(n)))
        return buf.raw[:n.value]

    @classmethod
    def load(cls, ctx, path_or_bytes):
        """Loads a model file (a path or its bytes): (Model, Process or None)."""
        m, p = _void(), _void()
        if isinstance(path_or_bytes, (bytes, bytearray)):
            data = bytes(path_or_bytes)
            ctx.check(_L().sdflow_model_load_buffer(ctx._h, data, len(data), _c.byref(m), _c.byref(p)))
        else:
            ctx.check(_L().sdflow_model_load(ctx._h, os.fsencode(path_or_bytes), _c.byref(m), _c.byref(p)))
        return cls(ctx, m), (Process(ctx, _handle=p) if p.value else None)

    @classmethod
    def kernel(cls, ctx, data):
        data = _arr(data, "data", 2)
        h = _void()
        ctx.check(_L().sdflow_model_create_kernel(ctx._h, data.shape[0], data.shape[1], _ptr(data), _c.byref(h)))
        return cls(ctx, h)

    def _xt(self, x, t):
        x = _arr(x, "x", 2)
        if x.shape[1] != self.dim:
            raise ValueError("x must have %d columns" % self.dim)
        return x, _arr(np.broadcast_to(t, (x.shape[0],)), "t", 1)

    def eval(self, process, x, t, output="score"):
        x, t = self._xt(x, t)
        out = np.empty_like(x)
        self.ctx.check(_L().sdflow_model_eval(self._h, process._h if process else None, x.shape[0], _ptr(x), _ptr(t),
                                              OUTPUTS[output],
                                              _ptr(out)))
        return out

    def score(self, process, x, t):
        """Score of the noised distribution p_t at the rows of x (t: scalar or one per row)."""
        return self.eval(process, x, t, "score")

    def logpdf(self, process, x, t):
        x, t = self._xt(x, t)
        out = np.empty(x.shape[0])
        self.ctx.check(_L().sdflow_model_logpdf(self._h, process._h if process else None, x.shape[0], _ptr(x), _ptr(t),
                                                _ptr(out)))
        return out

    def sample(self, n, stream=0, first_index=0):
        out = np.empty((n, self.dim))
        self.ctx.check(_L().sdflow_model_sample(self._h, stream, first_index, n, _ptr(out)))
        return out

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None


class Sampler:
    """Transport algorithm: ``Sampler(ctx, "reverse_sde" | "pc" | "pf_ode" | "sdflow" | "ddim" | "dpmpp_2m" | ...)``."""

    def __init__(self, ctx, kind):
        h = _void()
        ctx.check(_L().sdflow_sampler_create(ctx._h, SAMPLER_KINDS[kind], _c.byref(h)))
        self.ctx, self._h, self._keep, self._free = ctx, h, {}, _L().sdflow_sampler_free

    def set(self, name, value):
        _set_option(self.ctx, "sampler", self._h, name, value)
        return self

    def get(self, name):
        return _get_option(self.ctx, "sampler", self._h, name)

    def set_process(self, process):
        self.ctx.check(_L().sdflow_sampler_set_process(self._h, process._h))
        self._keep["process"] = process
        return self

    def set_model(self, model, role="score"):
        self.ctx.check(_L().sdflow_sampler_set_model(self._h, ROLES[role], model._h if model else None))
        self._keep[role] = model
        return self

    def run(self, x_init):
        """Runs the sampler from x_init (n x d); returns the new samples."""
        x = _arr(x_init, "x_init", 2)
        _check_cols(x, self._model(), "x_init")
        out = np.empty_like(x)
        self.ctx.check(_L().sdflow_sampler_run(self._h, x.shape[0], _ptr(x), _ptr(out)))
        return out

    def transport(self, x, t_from, t_to):
        x = _arr(x, "x", 2)
        _check_cols(x, self._model(), "x")
        out = np.empty_like(x)
        self.ctx.check(_L().sdflow_sampler_transport(self._h, x.shape[0], t_from, t_to, _ptr(x), _ptr(out)))
        return out

    def fit(self, iterations=1):
        """DSB: runs more IPF iterations (exact affine means; docs/dsb.md)."""
        self.ctx.check(_L().sdflow_sampler_fit(self._h, int(iterations)))
        return self

    def _model(self):
        k = self._keep
        return (k.get("target") or k.get("score") or k.get("data") or k.get("prior") or k.get("backward")
                or k.get("velocity"))

    def stat(self, name):
        v = _c.c_double()
        self.ctx.check(_L().sdflow_sampler_get_stat(self._h, STATS[name], _c.byref(v)))
        return v.value

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None


class Density:
    """Log-density estimator: ``Density(ctx, "pf_ode_exact" | "pf_ode_hutchinson" | "liyan")``."""

    def __init__(self, ctx, kind):
        h = _void()
        ctx.check(_L().sdflow_density_create(ctx._h, DENSITY_KINDS[kind], _c.byref(h)))
        self.ctx, self._h, self._keep, self._free = ctx, h, {}, _L().sdflow_density_free

    def set(self, name, value):
        _set_option(self.ctx, "density", self._h, name, value)
        return self

    def get(self, name):
        return _get_option(self.ctx, "density", self._h, name)

    def set_process(self, process):
        self.ctx.check(_L().sdflow_density_set_process(self._h, process._h))
        self._keep["process"] = process
        return self

    def set_model(self, model):
        self.ctx.check(_L().sdflow_density_set_model(self._h, model._h))
        self._keep["model"] = model
        return self

    def logpdf(self, x):
        """(log p, standard error) per row of x (the error is 0 for exact estimators)."""
        x = _arr(x, "x", 2)
        _check_cols(x, self._keep.get("model"), "x")
        lp, se = np.empty(x.shape[0]), np.empty(x.shape[0])
        self.ctx.check(_L().sdflow_density_logpdf(self._h, x.shape[0], _ptr(x), _ptr(lp), _ptr(se)))
        return lp, se

    def bits_per_dim(self, x):
        x = _arr(x, "x", 2)
        _check_cols(x, self._keep.get("model"), "x")
        b, se = np.empty(x.shape[0]), np.empty(x.shape[0])
        self.ctx.check(_L().sdflow_density_bits_per_dim(self._h, x.shape[0], _ptr(x), _ptr(b), _ptr(se)))
        return b, se

    def __del__(self):
        if getattr(self, "_h", None):
            self._free(self._h)
            self._h = None
