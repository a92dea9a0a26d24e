# SPDX-License-Identifier: MIT
"""PyTorch <-> libsdflow through model files (bindings/python/sdflow/torch_mlp.py):
a torch ScoreMLP exported by plain Python loads in libsdflow and gives the
same native outputs (<= 1e-12 relative for an F64 file, <= 1e-6 for an F32
file against the f64 module), and a libsdflow MLP saved by the library
imports into torch with the same outputs (<= 1e-12). Relative error is
max |diff| / max |ref| over 64 points. Run by `make check`
(io-python-test); skips with a printed reason where torch is missing."""
import os
import sys
import tempfile

import numpy as np

try:
    import torch
except ImportError as e:  # pragma: no cover
    print("io_torch_check: SKIPPED, PyTorch not importable (%s)" % e)
    sys.exit(0)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
import sdflow  # noqa: E402
from sdflow import torch_mlp  # noqa: E402

torch.manual_seed(3)
failures = 0
tmp = tempfile.mkdtemp(prefix="sdflow-io-torch-")


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def check(what, r, tol):
    global failures
    ok = r <= tol
    failures += 0 if ok else 1
    print("  %-58s rel %.2e (tol %.0e) %s" % (what, r, tol, "ok" if ok else "FAIL"))


CONFIGS = [
    dict(d=2, width=16, depth=3, nfreq=4, act="silu", residual=0, output="eps", time_input=0),
    dict(d=3, width=12, depth=3, nfreq=3, act="tanh", residual=1, output="energy", time_input=0),
    dict(d=2, width=8, depth=2, nfreq=2, act="gelu", residual=2, output="v", time_input=1, learn_freqs=True,
         freq_scale=0.7),
    dict(d=2, width=8, depth=1, nfreq=0, act="softplus", residual=0, output="score", time_input=0),
    dict(d=2, width=10, depth=5, nfreq=5, act="silu", residual=1, output="x0", time_input=0, learn_freqs=True),
]
ctx = sdflow.Ctx(seed=1)
for i, cfg in enumerate(CONFIGS):
    print("config %d: %s" % (i, cfg))
    net = torch_mlp.ScoreMLP(**cfg)
    with torch.no_grad():  # larger weights than the default init: outputs far from 0
        for p in net.parameters():
            p.mul_(2.0)
    x = np.random.default_rng(i).standard_normal((64, cfg["d"]))
    t = np.linspace(0.05, 0.95, 64)
    xt = torch.from_numpy(x)
    ref = net.native(xt, net.time_feature(torch.from_numpy(t))).detach().numpy()
    native = "score" if cfg["output"] == "energy" else cfg["output"]
    # torch -> libsdflow, F64 and F32 files written by plain Python
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        path = os.path.join(tmp, "t%d.safetensors" % i)
        torch_mlp.export(net, path, dtype=dtype)
        m, _ = sdflow.Model.load(ctx, path)
        got = m.eval(None, x, t, native)
        check("torch -> libsdflow, %s file" % ("F64" if dtype == torch.float64 else "F32"), rel(got, ref), tol)
    # libsdflow -> torch: a library-made model, saved by the library
    opts = dict(depth=cfg["depth"], width=cfg["width"], freqs=cfg["nfreq"],
                activation=torch_mlp.ACTIVATIONS.index(cfg["act"]), residual=int(cfg["residual"]),
                output=torch_mlp.OUTPUTS.index(cfg["output"]), time_input=cfg["time_input"],
                learn_freqs=int(cfg.get("learn_freqs", False)))
    if "freq_scale" in cfg:
        opts["freq_scale"] = cfg["freq_scale"]
    m = sdflow.Model.mlp(ctx, cfg["d"], **opts)
    path = os.path.join(tmp, "c%d.safetensors" % i)
    m.save(path)
    net2 = torch_mlp.import_(path)
    got = net2.native(xt, net2.time_feature(torch.from_numpy(t))).detach().numpy()
    check("libsdflow -> torch", rel(got, m.eval(None, x, t, native)), 1e-12)
    # and the torch module round-trips its own file exactly
    torch_mlp.export(net2, path)
    m3, _ = sdflow.Model.load(ctx, path)
    check("libsdflow -> torch -> libsdflow (bit-exact)", rel(m3.eval(None, x, t, native),
                                                         m.eval(None, x, t, native)), 0.0)
for f in os.listdir(tmp):
    os.remove(os.path.join(tmp, f))
os.rmdir(tmp)
if failures:
    print("io_torch_check: %d FAILED" % failures)
    sys.exit(1)
print("io_torch_check: all checks passed")
