#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PyTorch float64 reference for bench/bench_density.c: log-density of 1000
points of the same 4-component Gaussian mixture under the VP process, at
d = 2 and d = 16.

- d_loglik_exact: PF-ODE with the exact divergence by d backward passes per
  right-hand-side evaluation, fixed-step RK4 x 100 from t_min = 1e-5 to 1.
- d_loglik_hutch: the same with one Rademacher probe (one backward pass).
- d_loglik_liyan: Li-Yan, 256 stratified log-SNR points, one antithetic pair.

The score is the closed-form mixture score written in torch ops, so both
sides run the same model and solver. Prints JSON lines like bench_util.h
(impl "torch"). Run as:
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_likelihood.py
"""
import json
import math
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(2)
N, KMIX, STEPS, T_MIN = 1000, 4, 100, 1e-5
BMIN, BMAX = 0.1, 20.0


def mixture(d):
    """Same parameters as mixture() in bench/bench_density.c."""
    mu = torch.tensor([[2.0 * math.cos(k + 0.7 * a) for a in range(d)] for k in range(KMIX)])
    covs = []
    for k in range(KMIX):
        B = torch.tensor([[math.sin(1.3 * (a * d + c) + k) for c in range(d)] for a in range(d)])
        covs.append(B @ B.T / d + 0.3 * torch.eye(d))
    S = torch.stack(covs)
    lam, U = torch.linalg.eigh(S)
    return torch.full((KMIX,), math.log(1.0 / KMIX)), mu, lam, U, S


def coef(t):
    B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    beta = BMIN + (BMAX - BMIN) * t
    alpha = torch.exp(-0.5 * B) if torch.is_tensor(t) else math.exp(-0.5 * B)
    s2 = -torch.expm1(-B) if torch.is_tensor(t) else -math.expm1(-B)
    return alpha, s2, -0.5 * beta, beta


def score(g, x, alpha, s2):
    """Exact score of the noised mixture; alpha, s2 scalars or (n, 1) columns."""
    logw, mu, lam, U, _ = g
    d = x.shape[1]
    logits, es = [], []
    for k in range(KMIX):
        u = (x - alpha * mu[k]) @ U[k]
        c = alpha * alpha * lam[k] + s2
        logits.append(logw[k] - 0.5 * (d * math.log(2 * math.pi) + torch.log(c).sum(-1) + (u * u / c).sum(-1)))
        es.append((u / c) @ U[k].T)
    r = torch.softmax(torch.stack(logits, -1), -1)
    return -(r.unsqueeze(-1) * torch.stack(es, 1)).sum(1)


def pf_ode_logp(g, x0, probe=None):
    d = x0.shape[1]

    def rhs(t, x):
        alpha, s2, f, g2 = coef(t)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = f * x - 0.5 * g2 * score(g, x, alpha, s2)
            if probe is None:  # d backward passes
                div = torch.zeros(x.shape[0])
                for i in range(d):
                    div += torch.autograd.grad(v[:, i].sum(), x, retain_graph=i < d - 1)[0][:, i]
            else:
                div = (torch.autograd.grad((v * probe).sum(), x)[0] * probe).sum(-1)
        return v.detach(), div.detach()

    x, l = x0.clone(), torch.zeros(x0.shape[0])
    h = (1.0 - T_MIN) / STEPS
    for s in range(STEPS):
        t = T_MIN + s * h
        k1 = rhs(t, x)
        k2 = rhs(t + h / 2, x + h / 2 * k1[0])
        k3 = rhs(t + h / 2, x + h / 2 * k2[0])
        k4 = rhs(t + h, x + h * k3[0])
        x = x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        l = l + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return -0.5 * d * math.log(2 * math.pi) - 0.5 * (x * x).sum(-1) + l


def liyan_logp(g, x, K=256, lmin=None, lmax=None):
    n, d = x.shape
    lo = 2 * (math.log(coef(1.0)[0]) - 0.5 * math.log(coef(1.0)[1])) if lmin is None else lmin
    hi = 2 * (math.log(coef(1e-5)[0]) - 0.5 * math.log(coef(1e-5)[1])) if lmax is None else lmax
    acc = torch.zeros(n)
    for k in range(K):
        lam = lo + (k + 1 - torch.rand(n, 1)) / K * (hi - lo)
        Bt = torch.nn.functional.softplus(-lam)  # VP: e^-B = sigmoid(lambda)
        t = 2 * Bt / (BMIN + torch.sqrt(BMIN * BMIN + 2 * (BMAX - BMIN) * Bt))
        alpha, s2, _, _ = coef(t)
        sig = torch.sqrt(s2)
        eps = torch.randn(n, d)
        F = 0
        for e in (eps, -eps):
            eh = -sig * score(g, alpha * x + sig * e, alpha, s2)
            F = F + ((eh - e) ** 2 - alpha * alpha * e * e).sum(-1)
        acc += F / 2
    return -0.5 * d * (math.log(2 * math.pi) + 1) - 0.5 * (hi - lo) * acc / K


def logpdf(g, x, t):
    logw, mu, _, _, S = g
    alpha, s2, _, _ = coef(t)
    comps = [torch.distributions.MultivariateNormal(alpha * mu[k], alpha * alpha * S[k] + s2 * torch.eye(x.shape[1]))
             .log_prob(x) + logw[k] for k in range(KMIX)]
    return torch.logsumexp(torch.stack(comps, -1), -1)


def bench(workload, size, fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(json.dumps({"impl": "torch", "workload": workload, "size": size, "prec": "f64",
                      "threads": torch.get_num_threads(), "reps": reps, "t_min": ts[0],
                      "t_med": ts[len(ts) // 2], "t_max": ts[-1]}), flush=True)


def main():
    torch.manual_seed(0)
    for d in (2, 16):
        g = mixture(d)
        comp = torch.randint(0, KMIX, (N,))
        L = torch.linalg.cholesky(g[4])
        x = g[1][comp] + (L[comp] @ torch.randn(N, d, 1)).squeeze(-1)
        probe = torch.randint(0, 2, (N, d)).double() * 2 - 1
        with torch.no_grad():
            ref = logpdf(g, x, T_MIN)
        err = (pf_ode_logp(g, x) - ref).abs().max().item()
        print(f"# torch d={d}: exact PF-ODE RK4x{STEPS} max |err| vs closed form {err:.2e}", flush=True)
        reps = 3 if d > 2 else 5
        bench("d_loglik_exact", f"n={N} d={d} gmm{KMIX} rk4x{STEPS}", lambda: pf_ode_logp(g, x), reps)
        bench("d_loglik_hutch", f"n={N} d={d} gmm{KMIX} rk4x{STEPS} K=1", lambda: pf_ode_logp(g, x, probe), reps)
        with torch.no_grad():
            bench("d_loglik_liyan", f"n={N} d={d} gmm{KMIX} K=256 J=1", lambda: liyan_logp(g, x), reps)


if __name__ == "__main__":
    main()
