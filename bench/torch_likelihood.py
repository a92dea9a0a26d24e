#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/bench_density.c: log-density of 1000 points of the
same 4-component Gaussian mixture under the VP process, at d = 2 and d = 16,
float64 and float32, 2 threads, written as a PyTorch user would:

- the closed-form mixture score on the whole batch and all components at once
  (einsum over the eigenbases, torch.softmax over the components);
- d_loglik_exact: PF-ODE, exact divergence as the trace of the Jacobian from
  functorch's vmap(jacrev(.)) (torch.func in PyTorch >= 2; functorch is its
  1.13 name), fixed-step RK4 x 100 from t_min = 1e-5 to 1;
- d_loglik_hutch: the same with one Rademacher probe (one autograd VJP);
- d_loglik_liyan: Li-Yan, 256 stratified log-SNR points, one antithetic pair.

Prints JSON lines like bench_util.h (impl "torch") with the bound from the
last `make bench` calibration (bench_bound.py). Run: make bench-torch, or
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_likelihood.py
"""
import math
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import torch  # noqa: E402  (after the thread environment is set)

try:
    from torch.func import jacrev, vmap  # noqa: E402  PyTorch >= 2
except ImportError:
    from functorch import jacrev, vmap  # noqa: E402  PyTorch 1.13

from bench_bound import report, timed  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)
N, KMIX, STEPS, T_MIN = 1000, 4, 100, 1e-5
BMIN, BMAX = 0.1, 20.0


def mixture(d, dtype):
    """Same parameters as mixture() in bench/bench_density.c (built in f64)."""
    f64 = torch.float64
    mu = torch.tensor([[2.0 * math.cos(k + 0.7 * a) for a in range(d)] for k in range(KMIX)], dtype=f64)
    covs = []
    for k in range(KMIX):
        B = torch.tensor([[math.sin(1.3 * (a * d + c) + k) for c in range(d)] for a in range(d)], dtype=f64)
        covs.append(B @ B.T / d + 0.3 * torch.eye(d, dtype=f64))
    S = torch.stack(covs)
    lam, U = torch.linalg.eigh(S)
    logw = torch.full((KMIX,), math.log(1.0 / KMIX), dtype=f64)
    return tuple(v.to(dtype) for v in (logw, mu, lam, U, S))


def coef(t):
    B = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    beta = BMIN + (BMAX - BMIN) * t
    alpha = torch.exp(-0.5 * B) if torch.is_tensor(t) else math.exp(-0.5 * B)
    s2 = -torch.expm1(-B) if torch.is_tensor(t) else -math.expm1(-B)
    return alpha, s2, -0.5 * beta, beta


def score(g, x, alpha, s2):
    """Exact score of the noised mixture at x (..., d); alpha, s2 scalars or (n, 1) columns."""
    logw, mu, lam, U, _ = g
    d = x.shape[-1]
    if torch.is_tensor(alpha):
        alpha, s2 = alpha.unsqueeze(-1), s2.unsqueeze(-1)
    u = torch.einsum("...kd,kde->...ke", x.unsqueeze(-2) - alpha * mu, U)  # U_k^T (x - alpha mu_k)
    c = alpha * alpha * lam + s2
    logits = logw - 0.5 * (d * math.log(2 * math.pi) + torch.log(c).sum(-1) + (u * u / c).sum(-1))
    e = torch.einsum("...ke,kde->...kd", u / c, U)  # Sigma_k(t)^-1 (x - alpha mu_k)
    return -(torch.softmax(logits, -1).unsqueeze(-1) * e).sum(-2)


def pf_ode_logp(g, x0, probe=None):
    d = x0.shape[1]

    def rhs(t, x):
        alpha, s2, f, g2 = coef(t)

        def v(x):
            return f * x - 0.5 * g2 * score(g, x, alpha, s2)

        if probe is None:  # exact: trace of the per-row Jacobian
            def v_aux(xr):
                out = v(xr)
                return out, out
            jac, vx = vmap(jacrev(v_aux, has_aux=True))(x)
            return vx, jac.diagonal(dim1=-2, dim2=-1).sum(-1)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            vx = v(x)
            div = (torch.autograd.grad(vx, x, probe)[0] * probe).sum(-1)
        return vx.detach(), div.detach()

    x, l = x0.clone(), torch.zeros(x0.shape[0], dtype=x0.dtype)
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


def liyan_logp(g, x, K=256):
    n, d = x.shape
    lo = 2 * (math.log(coef(1.0)[0]) - 0.5 * math.log(coef(1.0)[1]))
    hi = 2 * (math.log(coef(T_MIN)[0]) - 0.5 * math.log(coef(T_MIN)[1]))
    acc = torch.zeros(n, dtype=x.dtype)
    for k in range(K):
        lam = lo + (k + 1 - torch.rand(n, 1, dtype=x.dtype)) / K * (hi - lo)
        Bt = torch.nn.functional.softplus(-lam)  # VP: e^-B = sigmoid(lambda)
        t = 2 * Bt / (BMIN + torch.sqrt(BMIN * BMIN + 2 * (BMAX - BMIN) * Bt))
        alpha, s2, _, _ = coef(t)
        sig = torch.sqrt(s2)
        eps = torch.randn(n, d, dtype=x.dtype)
        F = 0
        for e in (eps, -eps):
            eh = -sig * score(g, alpha * x + sig * e, alpha, s2)
            F = F + ((eh - e) ** 2 - alpha * alpha * e * e).sum(-1)
        acc += F / 2
    return -0.5 * d * (math.log(2 * math.pi) + 1) - 0.5 * (hi - lo) * acc / K


def logpdf(g, x, t):
    logw, mu, _, _, S = g
    alpha, s2, _, _ = coef(t)
    cov = alpha * alpha * S + s2 * torch.eye(x.shape[1], dtype=x.dtype)
    comps = torch.distributions.MultivariateNormal(alpha * mu, cov).log_prob(x.unsqueeze(-2)) + logw
    return torch.logsumexp(comps, -1)


def bench(workload, size, prec, d, fn, reps):
    report(workload, size, prec, THREADS, timed(fn, reps), N, d)


def main():
    torch.manual_seed(0)
    for d in (2, 16):
        g64 = mixture(d, torch.float64)
        comp = torch.randint(0, KMIX, (N,))
        L = torch.linalg.cholesky(g64[4])
        x64 = g64[1][comp] + (L[comp] @ torch.randn(N, d, 1, dtype=torch.float64)).squeeze(-1)
        probe64 = torch.randint(0, 2, (N, d)).double() * 2 - 1
        for dtype, prec in ((torch.float64, "f64"), (torch.float32, "f32")):
            g, x, probe = mixture(d, dtype), x64.to(dtype), probe64.to(dtype)
            with torch.no_grad():
                ref = logpdf(g64, x64, T_MIN)
                err = (pf_ode_logp(g, x) - ref).abs().max().item()
            print(f"# torch d={d} {prec}: exact PF-ODE RK4x{STEPS} max |err| vs closed form {err:.2e}", flush=True)
            reps = 3 if d > 2 else 5
            with torch.no_grad():
                bench("d_loglik_exact", f"n={N} d={d} gmm{KMIX} rk4x{STEPS}", prec, d, lambda: pf_ode_logp(g, x), reps)
            bench("d_loglik_hutch", f"n={N} d={d} gmm{KMIX} rk4x{STEPS} K=1", prec, d,
                  lambda: pf_ode_logp(g, x, probe), reps)
            with torch.no_grad():
                bench("d_loglik_liyan", f"n={N} d={d} gmm{KMIX} K=256 J=1", prec, d, lambda: liyan_logp(g, x), reps)


if __name__ == "__main__":
    main()
