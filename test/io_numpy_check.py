# SPDX-License-Identifier: MIT
"""Model files read with numpy alone (json + np.frombuffer, no binding code
for the reading): files written by libsdflow hold exactly the tensors the
models were made from, with the documented metadata; and files written back
by plain Python (sdflow.safetensors_io) load in libsdflow with bit-identical
outputs. Run by `make check` (io-python-test)."""
import json
import os
import struct
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import sdflow  # noqa: E402
from sdflow import safetensors_io  # noqa: E402


def numpy_read(path):
    """The reader of docs/model-files.md, verbatim."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    dt = {"F64": "<f8", "F32": "<f4"}
    t = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dt[v["dtype"]]).reshape(v["shape"])
         for k, v in header.items()}
    return t, meta


failures = 0


def check(what, cond):
    global failures
    print("  %-60s %s" % (what, "ok" if cond else "FAIL"))
    failures += 0 if cond else 1


ctx = sdflow.Ctx(seed=11)
rng = np.random.default_rng(5)
tmp = tempfile.mkdtemp(prefix="sdflow-io-numpy-")
vp = sdflow.Process(ctx, "vp")
vp.set("beta_max", 12.5)

w = np.array([0.2, 0.3, 0.5])
mu = rng.standard_normal((3, 2))
A = rng.standard_normal((3, 2, 2))
covs = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(2)
y = 3 + rng.standard_normal((40, 3))
models = {
    "gaussian": sdflow.Model.gaussian(ctx, mu[0], covs[0]),
    "gmm": sdflow.Model.gmm(ctx, w, mu, covs),
    "kernel": sdflow.Model.kernel(ctx, y),
    "mlp": sdflow.Model.mlp(ctx, 2, depth=2, width=8, freqs=3, output=5, activation=1),
}
for kind, m in models.items():
    path = os.path.join(tmp, kind + ".safetensors")
    m.save(path, vp)
    t, meta = numpy_read(path)
    print("%s: %s" % (kind, sorted(t)))
    check("metadata names the kind, dimension, format, process",
          meta["sdflow.model"] == kind and int(meta["sdflow.dim"]) == m.dim and meta["sdflow.format_version"] == "1"
          and meta["sdflow.process"] == "vp" and float(meta["sdflow.process.beta_max"]) == 12.5)
    if kind == "gaussian":
        check("mean and cov are the inputs, bit for bit", np.array_equal(t["mean"], mu[0]) and
              np.array_equal(t["cov"], covs[0]))
    elif kind == "gmm":
        check("weights, means, covs are the inputs, bit for bit",
              np.array_equal(t["weights"], w) and np.array_equal(t["means"], mu) and np.array_equal(t["covs"], covs))
    elif kind == "kernel":
        back = t["samples_centred"] + t["centre"]
        check("centre + samples_centred = the samples (1e-15 relative)",
              np.abs(back - y).max() <= 1e-15 * np.abs(y).max() and
              np.abs(t["centre"] - y.mean(axis=0)).max() <= 1e-15 * np.abs(y).max())
    else:
        check("every MLP tensor equals get_param, bit for bit",
              all(np.array_equal(t[name], m.get_param(name)) for name, _ in m.param_names()))
        check("energy output recorded", meta["sdflow.output"] == "energy")
    # written back by plain Python: libsdflow loads it with identical outputs
    t2, meta2 = safetensors_io.read(path)
    m2, p2 = sdflow.Model.load(ctx, safetensors_io.dumps(t2, meta2))
    x = rng.standard_normal((6, m.dim))
    check("the Python-written file loads; scores identical",
          np.array_equal(m.score(vp, x, 0.4), m2.score(p2, x, 0.4)) and p2 is not None)
    # F32 tensors (as from PyTorch) are widened exactly
    t32 = {k: v.astype(np.float32) for k, v in t2.items()}
    m3, _ = sdflow.Model.load(ctx, safetensors_io.dumps(t32, meta2))
    s64, s32 = m.score(vp, x, 0.4), m3.score(vp, x, 0.4)
    check("an F32 file loads; scores within 1e-5 relative (float rounding)",
          np.abs(s32 - s64).max() <= 1e-5 * np.abs(s64).max())

ctx.set("file_dtype", 1)
m = models["mlp"]
path = os.path.join(tmp, "mlp32.safetensors")
m.save(path)
t, meta = numpy_read(path)
check("file_dtype = 1 writes F32 tensors",
      all(v.dtype == np.dtype("<f4") for v in t.values()) and
      all(np.array_equal(t[name], m.get_param(name).astype(np.float32)) for name, _ in m.param_names()))
for f in os.listdir(tmp):
    os.remove(os.path.join(tmp, f))
os.rmdir(tmp)
if failures:
    print("io_numpy_check: %d FAILED" % failures)
    sys.exit(1)
print("io_numpy_check: all checks passed")
