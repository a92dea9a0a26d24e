#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch twin of a library training run (issue 12): DSM on a standardized
sklearn table (bench/make_tabular.py writes the split both sides read), then
the held-out NLL in nats per dimension from the exact PF-ODE likelihood.

Same as the library trainer's defaults: the MLP twin (bench/mlp_twin.py:
3 x 128 SiLU, 32 Fourier frequencies, epsilon output, nn.Linear default
init U(-1/sqrt(fan_in), 1/sqrt(fan_in))), the default VP process (beta 0.1 ..
20, t_eps = 1e-5, T = 1), the epsilon loss mean_b |eps_theta(x_t, t) - z|^2
(sum over dimensions), t ~ U[t_eps, T], batch rows drawn uniformly with
replacement, Adam (beta 0.9 / 0.999, eps 1e-8, constant lr), EMA of the
weights with decay min(decay, (1 + k) / (10 + k)) at update k, and the EMA
weights evaluated. Likelihood: log p_{t_min}(x) = log N(x(T); 0, I) +
int_{t_min}^{T} div v dt along the probability-flow ODE
v = f x - g^2/2 score, exact divergence (torch.func.jacrev under vmap),
Dormand-Prince 5(4) with one step-size controller for the whole held-out
batch (rtol = atol = 1e-5, the library's defaults), t_min = 1e-5.
Prints one JSON line: data, d, rows, steps, batch, lr, seed, final
training loss (EMA over steps), held-out NLL (nats/dim) with its SE over
rows, NFE, train and eval wall time. Float64 by default (--f32 for float32
training; the likelihood is always float64)."""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    from torch.func import jacrev, vmap  # noqa: E402
except ImportError:
    from functorch import jacrev, vmap  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp_twin import ScoreMLP  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))


def load_file(path):
    """The network of a libsdflow model file (sdflow.torch_mlp), as this
    script's twin (the same state_dict)."""
    from sdflow import torch_mlp
    src = torch_mlp.import_(path)
    net = ScoreMLP(src.d, width=src.width, depth=src.depth, nfreq=src.nfreq, act=src.act_name,
                   residual=src.residual).double()
    net.load_state_dict(src.state_dict(), strict=True)
    return net


def export_file(net, path):
    """Writes net as a libsdflow model file with the default VP process."""
    from sdflow import torch_mlp
    first = net.layers[0].weight
    out = torch_mlp.ScoreMLP(first.shape[1] - 2 * net.time_embed.freqs.numel(), width=first.shape[0],
                             depth=len(net.layers) - 1, nfreq=net.time_embed.freqs.numel())
    out.load_state_dict(net.state_dict(), strict=True)
    torch_mlp.export(out, path, process={"kind": "vp", "beta_min": BMIN, "beta_max": BMAX, "proc_sigma_min": 0.01,
                                         "proc_sigma_max": 50.0, "cosine_s": 0.008, "t_max": T_MAX, "t_eps": T_EPS,
                                         "ve_exact_std": 0})

BMIN, BMAX, T_EPS, T_MAX = 0.1, 20.0, 1e-5, 1.0


def vp(t):
    Bt = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    return torch.exp(-0.5 * Bt), torch.sqrt(-torch.expm1(-Bt)), BMIN + (BMAX - BMIN) * t


def train(net, x, args, dtype):
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in net.parameters()]
    n, run = x.shape[0], None
    for k in range(args.steps):
        x0 = x[torch.randint(0, n, (args.batch,))]
        t = T_EPS + (T_MAX - T_EPS) * torch.rand(args.batch, dtype=dtype)
        z = torch.randn_like(x0)
        a, s, _ = vp(t)
        loss = ((net(a[:, None] * x0 + s[:, None] * z, t) - z) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dec = min(args.ema, (1.0 + k) / (10.0 + k))
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(dec).add_(p.detach(), alpha=1 - dec)
        run = loss.item() if run is None else 0.99 * run + 0.01 * loss.item()
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e)
    return run


# Dormand-Prince 5(4) tableau
C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]
A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
     [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
     [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
     [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]
B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


def nll(net, x, rtol=1e-5, atol=1e-5, t_min=T_EPS):
    n, d = x.shape
    nfe = [0]

    def vel1(xr, t):
        a, s, beta = vp(t)
        eps = net(xr[None], t[None])[0]
        return -0.5 * beta * xr + 0.5 * beta * eps / s  # f x - g^2/2 score, score = -eps/sigma

    jac = vmap(jacrev(vel1), in_dims=(0, 0))
    vel = vmap(vel1, in_dims=(0, 0))

    def rhs(t, y):
        nfe[0] += 1
        xs = y[:, :d]
        tt = torch.full((n,), t, dtype=x.dtype)
        with torch.no_grad():
            v = vel(xs, tt)
        J = jac(xs, tt).detach()
        div = J.diagonal(dim1=1, dim2=2).sum(1)
        return torch.cat([v, div[:, None]], 1)

    y = torch.cat([x, torch.zeros(n, 1, dtype=x.dtype)], 1)
    t, h = t_min, 1e-3
    k1 = rhs(t, y)
    while t < T_MAX:
        h = min(h, T_MAX - t)
        ks = [k1]
        for i in range(1, 7):
            yi = y + h * sum(A[i][j] * ks[j] for j in range(i))
            ks.append(rhs(t + C[i] * h, yi))
        y5 = y + h * sum(B5[j] * ks[j] for j in range(7) if B5[j])
        err = h * sum((B5[j] - B4[j]) * ks[j] for j in range(7))
        sc = atol + rtol * torch.maximum(y.abs(), y5.abs())
        e = ((err / sc) ** 2).mean(1).sqrt().max().item()
        if e <= 1.0:
            t, y, k1 = t + h, y5, ks[6]  # FSAL
        h *= min(5.0, max(0.2, 0.9 * (e if e > 0 else 1e-10) ** -0.2))
    xT, integral = y[:, :d], y[:, d]
    logp = -0.5 * (xT ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi) + integral
    per = -logp / d
    return per.mean().item(), per.std(unbiased=True).item() / math.sqrt(n), nfe[0], per


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="wine", help="name of build/data/<name>_{train,test}.csv")
    ap.add_argument("--dir", default="build/data")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--f32", action="store_true", help="train in float32")
    ap.add_argument("--train", help="training CSV (default DIR/DATA_train.csv)")
    ap.add_argument("--test", help="held-out CSV (default DIR/DATA_test.csv)")
    ap.add_argument("--init", help="start from the weights of this libsdflow model file (tools/dsm_tabular --save-init)")
    ap.add_argument("--export", help="write the trained EMA network as a libsdflow model file")
    ap.add_argument("--load", help="skip training: evaluate the network of this libsdflow model file")
    ap.add_argument("--per-point", help="write each held-out row's NLL (nats, whole vector), one per line")
    ap.add_argument("--rtol", type=float, default=1e-5, help="rtol = atol of the likelihood ODE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = torch.float32 if args.f32 else torch.float64
    te = torch.tensor(np.loadtxt(args.test or os.path.join(args.dir, f"{args.data}_test.csv"), delimiter=",",
                                 ndmin=2))
    d = te.shape[1]
    loss, t_train, c_train, ntrain = None, 0.0, 0.0, 0
    if args.load:
        net = load_file(args.load)
    else:
        tr = torch.tensor(np.loadtxt(args.train or os.path.join(args.dir, f"{args.data}_train.csv"),
                                     delimiter=",", ndmin=2))
        ntrain = tr.shape[0]
        net = load_file(args.init) if args.init else ScoreMLP(d)
        net = net.to(dtype)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = train(net, tr.to(dtype), args, dtype)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    net = net.double()
    if args.export:
        export_file(net, args.export)
    t0, c0 = time.perf_counter(), time.process_time()
    m, se, nfe, per = nll(net, te, rtol=args.rtol, atol=args.rtol)
    t_eval, c_eval = time.perf_counter() - t0, time.process_time() - c0
    if args.per_point:
        np.savetxt(args.per_point, per.numpy() * d, fmt="%.17g")
    print(json.dumps({"impl": "torch", "workload": "dsm_train_nll", "data": args.data, "d": d,
                      "train_rows": ntrain, "test_rows": te.shape[0], "steps": 0 if args.load else args.steps,
                      "loaded": bool(args.load),
                      "batch": args.batch, "lr": args.lr, "ema": args.ema, "seed": args.seed,
                      "prec": "f32" if args.f32 else "f64", "threads": args.threads, "train_loss": loss,
                      "nll_nats_per_dim": m, "nll_se": se, "nfe": nfe, "t_train": t_train, "cpu_train": c_train, "t_eval": t_eval,
                      "cpu_eval": c_eval}),
          flush=True)


if __name__ == "__main__":
    main()
