#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/bench_interpolant.c, written as a torchcfm user would:

- i_interp_rk4: N(0, I) -> the 4-component GMM of bench_samplers.c along the
  trig interpolant x_t = cos(pi t/2) x0 + sin(pi t/2) x1 (t = 0 base, t = 1
  data); the exact velocity v = (b'/b) x + a (a b'/b - a') s from the
  mixture's closed-form score (torch.distributions-free batched einsum), RK4 x
  100 steps from t = 1e-6 to 1, 10^4 samples, float64 and float32;
- i_ot_exact: torchcfm's OTPlanSampler.sample_plan does
  pi = ot.emd(a, b, torch.cdist(x0, x1) ** 2) and then draws index pairs from
  pi; the exact plan of uniform batches is a permutation, so we time the
  assignment a user without POT writes (scipy.optimize.linear_sum_assignment
  on the squared cdist), batch 512. Skipped with a message when scipy is
  missing;
- i_interp_train_step: one training step of the interpolant velocity loss as
  torchcfm's ConditionalFlowMatcher users write it, on the trig interpolant:
  x1 = rows of the GMM data (4096, drawn with replacement), x0 = randn,
  t = rand, x_t = cos(pi t/2) x0 + sin(pi t/2) x1, target dI, loss
  mean_b |v(x_t, t) - dI|^2 (sum over dimensions), backward, Adam (lr 1e-3),
  with the documented MLP twin (bench/mlp_twin.py: 3 x 128 SiLU, 32 Fourier
  frequencies), B = 512, float64 and float32. Work counted as
  bench_interpolant.c (forward + backward = 3 x the forward's GEMM flops,
  384 exps per row).

Prints JSON lines like bench_util.h (impl "torch"). Run: make bench-torch, or
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_interpolant.py
"""
import json
import math
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bound import machine_rate, report, timed  # noqa: E402
from mlp_twin import ScoreMLP  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)
N, B, STEPS, T0 = 10000, 512, 100, 1e-6
W = [0.1, 0.2, 0.3, 0.4]
MU = [[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]]
COV = [[[0.3, 0.0], [0.0, 0.3]], [[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 0.2]], [[0.4, -0.1], [-0.1, 0.2]]]


def mixture(dtype):
    S = torch.tensor(COV, dtype=torch.float64)
    lam, U = torch.linalg.eigh(S)
    return tuple(v.to(dtype) for v in (torch.tensor(W, dtype=torch.float64).log(),
                                       torch.tensor(MU, dtype=torch.float64), lam, U))


def score(g, x, alpha, s2):
    logw, mu, lam, U = g
    d = x.shape[-1]
    u = torch.einsum("nkd,kde->nke", x.unsqueeze(1) - alpha * mu, U)
    c = alpha * alpha * lam + s2
    logits = logw - 0.5 * (d * math.log(2 * math.pi) + torch.log(c).sum(-1) + (u * u / c).sum(-1))
    e = torch.einsum("nke,kde->nkd", u / c, U)
    return -(torch.softmax(logits, -1).unsqueeze(-1) * e).sum(1)


def velocity(g, t, x):
    a, b = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
    da, db = -math.pi / 2 * b, math.pi / 2 * a
    s = score(g, x, b, a * a)  # x_t = b x1 + a x0 in law: alpha = b, sigma = a
    return (db / b) * x + a * (a * db / b - da) * s


def sample(g, x0):
    x, h = x0.clone(), (1.0 - T0) / STEPS
    for k in range(STEPS):
        t = T0 + k * h
        k1 = velocity(g, t, x)
        k2 = velocity(g, t + h / 2, x + h / 2 * k1)
        k3 = velocity(g, t + h / 2, x + h / 2 * k2)
        k4 = velocity(g, t + h, x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def bench(workload, size, prec, fn, reps, n):
    report(workload, size, prec, THREADS, timed(fn, reps), n, 2)


def train_step(net, opt, data, dtype):
    x1 = data[torch.randint(0, data.shape[0], (B,))]
    x0 = torch.randn_like(x1)
    t = torch.rand(B, dtype=dtype)
    a, b = torch.cos(math.pi * t / 2)[:, None], torch.sin(math.pi * t / 2)[:, None]
    xt, dI = a * x0 + b * x1, (math.pi / 2) * (a * x1 - b * x0)
    loss = ((net(xt, t) - dI) ** 2).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def report_step(size, prec, times):
    times = sorted(times)
    flops, exps = B * 3.0 * 2.0 * ((2 + 64) * 128 + 2 * 128.0 * 128 + 128 * 2), B * 384.0
    g = machine_rate("dgemm_2048", "gflops", THREADS)
    e = machine_rate("exp_", "gexps", THREADS)
    bound = flops / (g * 1e9) + exps / (e * 1e9) if g > 0 and e > 0 else None
    med = times[len(times) // 2]
    print(json.dumps({"impl": "torch", "workload": "i_interp_train_step", "size": size, "prec": prec,
                      "threads": THREADS, "reps": len(times), "t_min": times[0], "t_med": med, "t_max": times[-1],
                      "flops": flops, "exps": exps, "bound": bound, "ratio": med / bound if bound else None},
                     separators=(",", ":")), flush=True)


def main():
    torch.manual_seed(0)
    for dtype, prec in ((torch.float64, "f64"), (torch.float32, "f32")):
        g = mixture(dtype)
        x0 = torch.randn(N, 2, dtype=dtype)
        with torch.no_grad():
            bench("i_interp_rk4", "n=10000 d=2 gmm k=4 interp_trig rk4 steps=100 torch_threads=2", prec,
                  lambda: sample(g, x0), 7, N)
    for dtype, prec in ((torch.float64, "f64"), (torch.float32, "f32")):
        comp = torch.multinomial(torch.tensor(W, dtype=torch.float64), 4096, replacement=True)
        L = torch.linalg.cholesky(torch.tensor(COV, dtype=torch.float64))
        data = (torch.tensor(MU, dtype=torch.float64)[comp] +
                torch.einsum("nde,ne->nd", L[comp], torch.randn(4096, 2, dtype=torch.float64))).to(dtype)
        net = ScoreMLP(2).to(dtype)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        times = timed(lambda: train_step(net, opt, data, dtype), 15)
        report_step("B=512 d=2 mlp3x128 silu interp_trig adam torch_threads=2", prec, times)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        print("torch_interpolant: i_ot_exact skipped (no scipy; torchcfm would call POT's ot.emd)", file=sys.stderr)
        return
    x0, x1 = torch.randn(B, 2, dtype=torch.float64), 2 * torch.randn(B, 2, dtype=torch.float64)
    bench("i_ot_exact", "b=512 d=2 exact assignment scipy", "f64",
          lambda: linear_sum_assignment((torch.cdist(x0, x1) ** 2).numpy()), 7, B)


if __name__ == "__main__":
    main()
