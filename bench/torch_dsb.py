#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench_dsb.c: one IPF iteration of the diffusion
Schrodinger bridge with exact affine means (workload dsb_ipf_iteration).

npar = 10^4 chains x N = 20 steps in d = 64, Gaussian data
N(0.5, 0.5 I + 0.1 11^T / d) <-> N(0, I) with the OU reference (gamma = 0.01),
written as a PyTorch user would: the chains of a half-bridge simulated as one
batch, the per-step regression targets of mean matching (algorithms.md §9),
and one torch.linalg.lstsq of the target on [x, 1] per step. The first call
fits the backward half-bridge on the reference; every timed call is a full
iteration (backward and forward half-bridges) with affine means on both
sides. float64, 2 threads; one JSON line in bench_util.h's format (impl
"torch") with the bound from the last `make bench` calibration.

Run: make bench-torch, or
OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_dsb.py
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

from bench_bound import report, timed  # noqa: E402

THREADS = 2
NPAR, N, D, GAMMA = 10000, 20, 64, 0.01


class Bridge:
    def __init__(self, g):
        self.g = g
        cov = 0.5 * torch.eye(D, dtype=torch.float64) + 0.1 / D
        self.chol = torch.linalg.cholesky(cov)
        self.fwd = None  # per step (A, b): mean = x @ A + b; None: the reference
        self.bwd = None

    def data(self):
        return 0.5 + torch.randn(NPAR, D, generator=self.g, dtype=torch.float64) @ self.chol.T

    def fmean(self, k, x):
        if self.fwd is None:
            return x - GAMMA * x  # x + gamma f(x), f(x) = -x (prior N(0, I))
        a, b = self.fwd[k]
        return x @ a + b

    def bmean(self, k, x):
        a, b = self.bwd[k]
        return x @ a + b

    def half(self, backward):
        x = self.data() if backward else torch.randn(NPAR, D, generator=self.g, dtype=torch.float64)
        maps = [None] * N
        mean = self.fmean if backward else self.bmean
        ones = torch.ones(NPAR, 1, dtype=torch.float64)
        for j in range(N):
            k = j if backward else N - 1 - j
            m0 = mean(k, x)
            x1 = m0 + (2 * GAMMA) ** 0.5 * torch.randn(NPAR, D, generator=self.g, dtype=torch.float64)
            y = x1 + m0 - mean(k, x1)
            theta = torch.linalg.lstsq(torch.cat([x1, ones], 1), y).solution
            maps[k] = (theta[:D], theta[D])
            x = x1
        if backward:
            self.bwd = maps
        else:
            self.fwd = maps

    def iteration(self):
        self.half(True)
        self.half(False)


def main():
    torch.set_num_threads(THREADS)
    b = Bridge(torch.Generator().manual_seed(0))
    times = timed(b.iteration, 3)  # the warm-up call fits on the reference
    report("dsb_ipf_iteration", f"npar={NPAR} N={N} d={D} affine, 2 half-bridges", "f64", THREADS, times, NPAR, D)


if __name__ == "__main__":
    main()
