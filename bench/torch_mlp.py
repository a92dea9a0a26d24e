#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/bench_mlp.c: the same MLP (bench/mlp_twin.py, the
documented twin: 3 x 128 SiLU, 32 Fourier frequencies, epsilon output, VP),
written as a PyTorch user would: whole-batch forward under no_grad, RK4 and
Euler-Maruyama loops over tensors, the exact divergence from functorch's
vmap(jacrev(.)) (torch.func in PyTorch >= 2), Hutchinson with one autograd
VJP. float64 and float32, 2 threads, OMP_WAIT_POLICY=PASSIVE.
SDFLOW_BENCH_MLP_SCALE divides the long workloads' sizes as in bench_mlp.c."""
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import torch  # noqa: E402

try:
    from torch.func import jacrev, vmap  # noqa: E402
except ImportError:
    from functorch import jacrev, vmap  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bound import machine_rate, timed  # noqa: E402
from mlp_twin import ScoreMLP  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)
BMIN, BMAX, T_MIN = 0.1, 20.0, 1e-3
SCALE = max(1, int(os.environ.get("SDFLOW_BENCH_MLP_SCALE", "1") or 1))


def eval_flops(d):
    return 2.0 * ((d + 64) * 128 + 2 * 128.0 * 128 + 128 * d)


def report(workload, size, prec, times, flops, exps):
    times = sorted(times)
    g = machine_rate("dgemm_2048", "gflops", THREADS)
    e = machine_rate("exp_", "gexps", THREADS)
    bound = flops / (g * 1e9) + exps / (e * 1e9) if g > 0 and e > 0 else None
    med = times[len(times) // 2]
    print(json.dumps({"impl": "torch", "workload": workload, "size": size, "prec": prec, "threads": THREADS,
                      "reps": len(times), "t_min": times[0], "t_med": med, "t_max": times[-1], "flops": flops,
                      "exps": exps, "bound": bound, "ratio": med / bound if bound else None}), flush=True)


def coef(t):
    B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    beta = BMIN + (BMAX - BMIN) * t
    return math.exp(-0.5 * B), math.sqrt(-math.expm1(-B)), -0.5 * beta, beta


def once(fn):
    t0 = time.perf_counter()
    fn()
    return [time.perf_counter() - t0]


def main():
    torch.manual_seed(0)
    for dtype, prec in ((torch.float64, "f64"), (torch.float32, "f32")):
        for d in (2, 64):
            net = ScoreMLP(d).to(dtype)
            x, t = torch.randn(512, d, dtype=dtype), torch.full((512,), 0.5, dtype=dtype)
            with torch.no_grad():
                ts = timed(lambda: net(x, t), 21)
            report("b_mlp_forward", f"B=512 d={d} mlp3x128 silu", prec, ts, 512 * eval_flops(d), 512 * 384.0)
        net = ScoreMLP(2).to(dtype)
        n = 10000 // SCALE

        def velocity(x, s):
            a, sig, f, g2 = coef(s)
            eps = net(x, torch.full((x.shape[0],), s, dtype=dtype))
            return f * x + 0.5 * g2 * eps / sig  # f x - g^2/2 score, score = -eps / sigma

        def pf_ode():
            x, h = torch.randn(n, 2, dtype=dtype), (1.0 - T_MIN) / 100
            for k in range(100):
                s = 1.0 - k * h
                k1 = velocity(x, s)
                k2 = velocity(x - h / 2 * k1, s - h / 2)
                k3 = velocity(x - h / 2 * k2, s - h / 2)
                k4 = velocity(x - h * k3, s - h)
                x = x - h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return x

        def sde():
            x, h = torch.randn(n, 2, dtype=dtype), (1.0 - T_MIN) / 1000
            for k in range(1000):
                s = 1.0 - k * h
                a, sig, f, g2 = coef(s)
                eps = net(x, torch.full((n,), s, dtype=dtype))
                x = x - h * (f * x + g2 * eps / sig) + math.sqrt(g2 * h) * torch.randn_like(x)
            return x

        def dpmpp_2m(steps=20):
            # DPM-Solver++(2M) on the data prediction x0 = (x - sigma eps) / alpha, uniform t grid
            ts = [1.0 - k * (1.0 - T_MIN) / steps for k in range(steps + 1)]
            x, d_prev, h_prev = torch.randn(n, 2, dtype=dtype), None, None
            for k in range(steps):
                a0, s0, _, _ = coef(ts[k])
                a1, s1, _, _ = coef(ts[k + 1])
                eps = net(x, torch.full((n,), ts[k], dtype=dtype))
                d0 = (x - s0 * eps) / a0
                h = math.log(a1 / s1) - math.log(a0 / s0)
                dd = d0 if d_prev is None else (1 + h / (2 * h_prev)) * d0 - h / (2 * h_prev) * d_prev
                x = s1 / s0 * x - a1 * math.expm1(-h) * dd
                d_prev, h_prev = d0, h
            return x

        with torch.no_grad():
            report("c_dpmpp_2m", f"n={n} d=2 mlp3x128 dpmpp2mx20", prec, once(dpmpp_2m), 20.0 * n * eval_flops(2),
                   20.0 * n * 384)
            report("c_pf_ode_rk4", f"n={n} d=2 mlp3x128 rk4x100", prec, once(pf_ode), 400.0 * n * eval_flops(2),
                   400.0 * n * 384)
            report("c_sde_em", f"n={n} d=2 mlp3x128 emx1000", prec, once(sde), 1000.0 * n * eval_flops(2),
                   1000.0 * n * 384)
        net = ScoreMLP(64).to(dtype)
        npts = 1000 // SCALE
        x0 = torch.randn(npts, 64, dtype=dtype)
        probe = torch.randint(0, 2, (npts, 64)).to(dtype) * 2 - 1

        def rhs(x, s, exact):
            a, sig, f, g2 = coef(s)
            tt = torch.full((x.shape[0],), s, dtype=dtype)

            def v(xr, tr):
                return f * xr + 0.5 * g2 * net(xr, tr) / sig

            if exact:
                def v1(xr, tr):
                    out = v(xr[None], tr[None])[0]
                    return out, out
                jac, vx = vmap(jacrev(v1, has_aux=True))(x, tt)
                return vx, jac.diagonal(dim1=-2, dim2=-1).sum(-1)
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                vx = v(xg, tt)
                div = (torch.autograd.grad(vx, xg, probe)[0] * probe).sum(-1)
            return vx.detach(), div.detach()

        def loglik(exact):
            x, l, h = x0.clone(), torch.zeros(npts, dtype=dtype), (1.0 - T_MIN) / 100
            for k in range(100):
                s = T_MIN + k * h
                k1 = rhs(x, s, exact)
                k2 = rhs(x + h / 2 * k1[0], s + h / 2, exact)
                k3 = rhs(x + h / 2 * k2[0], s + h / 2, exact)
                k4 = rhs(x + h * k3[0], s + h, exact)
                x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
                l = l + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            return l

        with torch.no_grad():
            report("d_loglik_exact", f"n={npts} d=64 mlp3x128 rk4x100", prec, once(lambda: loglik(True)),
                   400.0 * npts * 65 * eval_flops(64), 400.0 * npts * 384)
        report("d_loglik_hutch", f"n={npts} d=64 mlp3x128 rk4x100 K=1", prec, once(lambda: loglik(False)),
               400.0 * npts * 2 * eval_flops(64), 400.0 * npts * 384)


if __name__ == "__main__":
    main()
