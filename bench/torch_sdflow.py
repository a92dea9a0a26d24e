#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Peer benchmark of bench_sdflow.c: one SD-flow step in PyTorch.

Same workload (workload a_sdf_step): N particles, M targets, the particles
themselves as source (K = N), fixed sigma, Jacobi update
x_new = x + m_Y(x) - m_X(x), computed with the same blocking as libsdflow
(query blocks of 256, reference blocks of 4096, GEMM cross terms on centred
data, online log-sum-exp) in float64 and float32, 2 threads. Prints one JSON
line per size and precision, in bench_util.h's format.

Run: OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_sdflow.py
(without PASSIVE, torch's OpenMP and OpenBLAS threads fight over 2 cores).
"""
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

BQ, BY, THREADS = 256, 4096, 2


def kernel_mean(x, y, beta):
    """Posterior mean sum_j softmax_j(-beta |x - y_j|^2 / 2) y_j, blocked."""
    c = y.mean(0)
    q, yc = x - c, y - c
    hy = 0.5 * (yc * yc).sum(1)
    out = torch.empty_like(x)
    for i0 in range(0, q.shape[0], BQ):
        qb = q[i0:i0 + BQ]
        hq = 0.5 * (qb * qb).sum(1, keepdim=True)
        mx = torch.full((qb.shape[0],), -float("inf"), dtype=x.dtype)
        s = torch.zeros(qb.shape[0], dtype=x.dtype)
        v = torch.zeros_like(qb)
        for j0 in range(0, yc.shape[0], BY):
            yb = yc[j0:j0 + BY]
            logit = (beta * (qb @ yb.T - hy[j0:j0 + BY] - hq)).clamp_(max=0.0)
            mn = torch.maximum(mx, logit.max(1).values)
            scale = torch.exp(mx - mn)
            p = torch.exp(logit - mn[:, None])
            s = scale * s + p.sum(1)
            v = scale[:, None] * v + p @ yb
            mx = mn
        out[i0:i0 + BQ] = v / s[:, None] + c
    return out


def sdf_step(x, y, sigma):
    beta = 1.0 / (sigma * sigma)
    return x + (kernel_mean(x, y, beta) - kernel_mean(x, x, beta))


def bench(n, d, dtype, reps):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    x = (2.0 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0).to(dtype)
    sdf_step(x, y, 1.0)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sdf_step(x, y, 1.0)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"impl": "torch", "workload": "a_sdf_step", "size": f"N=M=K={n} d={d}",
                      "prec": "f64" if dtype == torch.float64 else "f32", "threads": THREADS, "reps": reps,
                      "t_min": times[0], "t_med": times[reps // 2], "t_max": times[-1]},
                     separators=(",", ":")), flush=True)


def main():
    torch.set_num_threads(THREADS)
    with torch.no_grad():
        for n, d, reps in ((4096, 2, 7), (4096, 64, 5), (16384, 2, 5)):
            for dtype in (torch.float64, torch.float32):
                bench(n, d, dtype, reps)


if __name__ == "__main__":
    main()
