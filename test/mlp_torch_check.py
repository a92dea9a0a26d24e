# SPDX-License-Identifier: MIT
"""Cross-check of the MLP model against a PyTorch f64 twin with the same
weights: forward, JVP (score Jacobian), VJP and parameter gradient, and the
second-order parameter gradients (a^T J b; the energy form's score VJP is a
double backward). Tolerance 1e-12 relative (max |diff| / max |ref|).
Run by `make check` (mlp-torch-test); skips with a reason when torch is missing."""
import ctypes as C
import math
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print("mlp_torch_check: SKIPPED, PyTorch not importable (%s)" % e)
    sys.exit(0)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from mlp_twin import ScoreMLP  # noqa: E402  (the documented twin)

torch.set_default_dtype(torch.float64)
lib = C.CDLL(os.environ.get("SDFLOW_LIBRARY", "lib/libsdflow.so"))
P = C.c_void_p
D = C.POINTER(C.c_double)
lib.sdflow_ctx_create.argtypes = [C.POINTER(P), P]
lib.sdflow_ctx_set_u64.argtypes = [P, C.c_int, C.c_uint64]
lib.sdflow_ctx_last_error.argtypes = [P]
lib.sdflow_ctx_last_error.restype = C.c_char_p
lib.sdflow_model_create_mlp.argtypes = [P, C.c_size_t, C.POINTER(P)]
lib.sdflow_model_set_int.argtypes = [P, C.c_int, C.c_long]
lib.sdflow_model_param_tensors.argtypes = [P, C.POINTER(C.c_size_t)]
lib.sdflow_model_param_info.argtypes = [P, C.c_size_t, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t),
                                        C.POINTER(C.c_size_t)]
lib.sdflow_model_get_param.argtypes = [P, C.c_char_p, C.c_size_t, D]
lib.sdflow_model_param_count.argtypes = [P, C.POINTER(C.c_size_t)]
lib.sdflow_model_eval.argtypes = [P, P, C.c_size_t, D, D, C.c_int, D]
lib.sdflow_model_jacobian.argtypes = [P, P, C.c_size_t, D, D, D]
lib.sdflow_model_param_grad.argtypes = [P, P, C.c_size_t, D, D, D, D, D]
lib.sdflow_model_param_grad_jac.argtypes = [P, P, C.c_size_t, D, D, D, D, D]
lib.sdflow_model_free.argtypes = [P]
lib.sdflow_ctx_free.argtypes = [P]

OPT = dict(depth=600, width=601, act=602, freqs=603, residual=604, output=605, learn_freqs=607)
ACTS = ["silu", "tanh", "softplus", "gelu"]
OUT_EPS, ENERGY = 1, 5
TOL = 1e-12


def ptr(t):
    return t.data_ptr() and C.cast(t.data_ptr(), D)


def ok(st, ctx):
    if st != 0:
        raise RuntimeError("sdflow status %d: %s" % (st, lib.sdflow_ctx_last_error(ctx)))


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


failures = 0


def check(name, got, ref):
    global failures
    r = rel(got, ref)
    flag = "ok" if r <= TOL else "FAIL"
    if r > TOL:
        failures += 1
    print("  %-34s rel %.2e %s" % (name, r, flag))


def run(act, energy, residual, learn=False, d=3, n=7, width=16, nfreq=4):
    depth = 5 if residual == 1 else 3  # two residual blocks
    ctx = P()
    ok(lib.sdflow_ctx_create(C.byref(ctx), None), ctx)
    lib.sdflow_ctx_set_u64(ctx, 100, 7)
    m = P()
    ok(lib.sdflow_model_create_mlp(ctx, d, C.byref(m)), ctx)
    for k, v in dict(depth=depth, width=width, act=ACTS.index(act), freqs=nfreq, residual=residual,
                     output=ENERGY if energy else OUT_EPS, learn_freqs=int(learn)).items():
        ok(lib.sdflow_model_set_int(m, OPT[k], v), ctx)
    net = ScoreMLP(d, width=width, depth=depth, nfreq=nfreq, act=act, residual=residual, energy=energy,
                   learn_freqs=learn)
    sd = net.state_dict()
    nt = C.c_size_t()
    ok(lib.sdflow_model_param_tensors(m, C.byref(nt)), ctx)
    assert nt.value == len(sd), (nt.value, list(sd))
    for i in range(nt.value):  # weights from C into torch: names and shapes must match state_dict
        name, r, c = C.c_char_p(), C.c_size_t(), C.c_size_t()
        ok(lib.sdflow_model_param_info(m, i, C.byref(name), C.byref(r), C.byref(c)), ctx)
        key = name.value.decode()
        shape = (r.value, c.value) if c.value else (r.value,)
        assert tuple(sd[key].shape) == shape, (key, sd[key].shape, shape)
        buf = torch.empty(shape)
        ok(lib.sdflow_model_get_param(m, name.value, buf.numel(), ptr(buf)), ctx)
        sd[key].copy_(buf)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=g)
    t = torch.rand(n, generator=g) * 0.9 + 0.1
    w = torch.randn(n, d, generator=g)
    a = torch.randn(n, d, generator=g)
    b = torch.randn(n, d, generator=g)
    params = dict(net.named_parameters())
    names = list(params)

    def native(xx, tt):  # the C model's native output: eps, or score = -grad E
        if not energy:
            return net(xx, tt)
        xx = xx if xx.requires_grad else xx.requires_grad_(True)
        e = net(xx, tt).sum()
        return -torch.autograd.grad(e, xx, create_graph=True)[0]

    tag = "%s%s%s%s" % (act, " energy" if energy else " eps", ["", " residual blocks", " residual simple"][residual],
                        " learned freqs" if learn else "")
    print(tag)
    # forward (output kind = native: eps, or score for energy)
    out = torch.empty(n, d)
    ok(lib.sdflow_model_eval(m, None, n, ptr(x), ptr(t), 0 if energy else OUT_EPS, ptr(out)), ctx)
    check("forward", out, native(x.clone(), t).detach())
    # score Jacobian (without a process: score = -eps / t)
    jac = torch.empty(n, d, d)
    ok(lib.sdflow_model_jacobian(m, None, n, ptr(x), ptr(t), ptr(jac)), ctx)
    ref = torch.stack([torch.autograd.functional.jacobian(lambda z: native(z[None], t[i:i + 1])[0], x[i])
                       for i in range(n)])
    if not energy:
        ref = -ref / t[:, None, None]
    check("Jacobian (JVP over all directions)", jac, ref)
    if energy:
        check("Jacobian symmetric", jac, jac.transpose(1, 2))
    # VJP and parameter gradient of sum w . native
    npar = C.c_size_t()
    ok(lib.sdflow_model_param_count(m, C.byref(npar)), ctx)
    assert npar.value == sum(p.numel() for p in params.values()), (npar.value, names)
    grad = torch.empty(npar.value)
    gx = torch.empty(n, d)
    ok(lib.sdflow_model_param_grad(m, None, n, ptr(x), ptr(t), ptr(w), ptr(grad), ptr(gx)), ctx)
    xx = x.clone().requires_grad_(True)
    loss = (w * native(xx, t)).sum()
    ps = [params[k] for k in names]
    gs = torch.autograd.grad(loss, [xx] + ps, allow_unused=True)  # energy: the output bias is not in -grad E
    gs = [gs[0]] + [torch.zeros_like(p) if q is None else q for p, q in zip(ps, gs[1:])]
    check("VJP d/dx w.f" + (" (double backward)" if energy else ""), gx, gs[0])
    check("param grad w.f" + (" (double backward)" if energy else ""), grad,
          torch.cat([q.reshape(-1) for q in gs[1:]]))
    if not energy:  # second order: d/dtheta sum a^T J b
        ok(lib.sdflow_model_param_grad_jac(m, None, n, ptr(x), ptr(t), ptr(a), ptr(b), ptr(grad)), ctx)
        xx = x.clone().requires_grad_(True)
        _, jb = torch.autograd.functional.jvp(lambda z: net(z, t), xx, b, create_graph=True)
        ps = [params[k] for k in names]
        gs = torch.autograd.grad((a * jb).sum(), ps, allow_unused=True)  # the output bias is not in J
        gs = [torch.zeros_like(p) if q is None else q for p, q in zip(ps, gs)]
        check("param grad a^T J b (double backward)", grad, torch.cat([q.reshape(-1) for q in gs]))
    lib.sdflow_model_free(m)
    lib.sdflow_ctx_free(ctx)


for act in ACTS:
    for energy in (False, True):
        for residual in (0, 1, 2):
            run(act, energy, residual)
for energy in (False, True):  # learned frequencies: their gradients, first and second order
    for residual in (0, 1):
        run("silu" if residual else "tanh", energy, residual, learn=True)
run("silu", False, 1, d=1)  # one output that is not an energy
if failures:
    print("mlp_torch_check: %d comparisons above %.0e" % (failures, TOL))
    sys.exit(1)
print("mlp_torch_check: all comparisons within %.0e relative" % TOL)
