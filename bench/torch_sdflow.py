#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench_sdflow.c: one SD-flow step (workload a_sdf_step).

N particles, M targets, the particles themselves as source (K = N), fixed
sigma, Jacobi update x_new = x + m_Y(x) - m_X(x), written as a PyTorch user
would: the whole batch at once, logits from the ||x||^2 + ||y||^2 - 2 x.y
expansion (the ||x||^2 term cancels in the softmax), torch.softmax, one
matrix product for the weighted mean. Rows are blocked only where the N x M
logit matrix would pass MEM_BUDGET bytes (16384 x 16384 f64), and then in the
largest blocks that fit. float64 and float32, 2 threads. Prints one JSON line
per size and precision in bench_util.h's format (impl "torch") with the bound
from the last `make bench` calibration (bench_bound.py).

Run: make bench-torch, or
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_sdflow.py
(without PASSIVE, torch's OpenMP and OpenBLAS threads fight over 2 cores).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

from bench_bound import report, timed  # noqa: E402

THREADS = 2
MEM_BUDGET = 1 << 30  # bytes of one logit block (the softmax makes a second one)


def kernel_mean(x, y, beta):
    """Posterior mean sum_j softmax_j(-beta |x - y_j|^2 / 2) y_j."""
    hy = 0.5 * beta * (y * y).sum(1)
    rows = max(1, MEM_BUDGET // (y.shape[0] * x.element_size()))
    out = []
    for xb in x.split(rows):
        logits = torch.addmm(-hy, xb, y.T, alpha=beta)  # beta (x.y - |y|^2 / 2)
        out.append(torch.softmax(logits, 1) @ y)
    return torch.cat(out) if len(out) > 1 else out[0]


def sdf_step(x, y, sigma):
    beta = 1.0 / (sigma * sigma)
    return x + (kernel_mean(x, y, beta) - kernel_mean(x, x, beta))


def bench(n, d, dtype, reps):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    x = (2.0 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0).to(dtype)
    times = timed(lambda: sdf_step(x, y, 1.0), reps)
    report("a_sdf_step", f"N=M=K={n} d={d}", "f64" if dtype == torch.float64 else "f32", THREADS, times, n, d)


def main():
    torch.set_num_threads(THREADS)
    with torch.no_grad():
        for n, d, reps in ((4096, 2, 7), (4096, 64, 5), (16384, 2, 5)):
            for dtype in (torch.float64, torch.float32):
                bench(n, d, dtype, reps)


if __name__ == "__main__":
    main()
