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
weights with decay min(decay, (1 + k) / (10 + k)) after update k (k = 1, 2,
...), and the EMA weights evaluated. --library-draws takes each step's batch
rows, times and noise from libsdflow's generator, keyed as the library
trainer keys them, so both sides train on identical draws. Likelihood: log p_{t_min}(x) = log N(x(T); 0, I) +
int_{t_min}^{T} div v dt along the probability-flow ODE
v = f x - g^2/2 score, exact divergence (torch.func.jacrev under vmap),
Dormand-Prince 5(4) with one step-size controller for the whole held-out
batch (rtol = atol = 1e-5, the library's defaults), t_min = 1e-5.
Prints one JSON line: data, d, rows, steps, batch, lr, seed, final
training loss (running average, bias-corrected like the library's
SDFLOW_TRAIN_STAT_RUNNING_LOSS), held-out NLL (nats/dim) with its SE over
rows, NFE, train and eval wall time, and with --compare the largest weight
difference to another network. Float64 by default (--f32 for float32
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


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _stream(base, tag, step):
    """sdflow__stream (src/core/rng.c): the key of a derived random stream."""
    return _splitmix64((_splitmix64(base ^ _splitmix64(tag)) + step) & M64)


M64 = (1 << 64) - 1
# The DSM trainer's stream derivation (src/train/trainer.c: the "train" + kind
# base stream, TAG_IDX, TAG_STEP; src/train/loss_dsm.c: TAG_T, TAG_Z).
TRAIN_DSM, TAG_IDX, TAG_STEP, TAG_T, TAG_Z = 0x747261696E, 0x6964782D, 0x737465702D, 0x745F64736D, 0x7A5F64736D


class LibraryDraws:
    """The random draws of the library trainer's step k (batch rows, times,
    noise), from libsdflow's public generator (sdflow_rng_uniform /
    sdflow_rng_normal) keyed like the trainer does (single rank, uniform t,
    not stratified). With them the twin sees exactly the library's batches, so
    what is left between the two runs is floating-point rounding: a check that
    both sides train the same recipe (--library-draws)."""

    def __init__(self, libpath, seed, n, d, batch):
        import ctypes as C
        self.C, self.n, self.d, self.B = C, n, d, batch
        self.lib = C.CDLL(libpath)
        P = C.c_void_p
        self.lib.sdflow_ctx_create.argtypes = [C.POINTER(P), P]
        self.lib.sdflow_ctx_set_u64.argtypes = [P, C.c_int, C.c_uint64]
        for f in (self.lib.sdflow_rng_uniform, self.lib.sdflow_rng_normal):
            f.argtypes = [P, C.c_uint64, C.c_uint64, C.c_size_t, C.c_size_t, C.POINTER(C.c_double)]
        self.ctx = P()
        if self.lib.sdflow_ctx_create(C.byref(self.ctx), None) or self.lib.sdflow_ctx_set_u64(self.ctx, 100, seed):
            raise RuntimeError("libsdflow: cannot create the context")  # 100: SDFLOW_CTX_SEED

    def _rng(self, f, stream, rows, cols):
        out = np.empty((rows, cols))
        if f(self.ctx, stream, 0, rows, cols, out.ctypes.data_as(self.C.POINTER(self.C.c_double))):
            raise RuntimeError("libsdflow: rng failed")
        return torch.from_numpy(out)

    def __call__(self, k, dtype):
        u = self._rng(self.lib.sdflow_rng_uniform, _stream(TRAIN_DSM, TAG_IDX, k), self.B, 1)[:, 0]
        idx = torch.clamp((u * self.n).long(), max=self.n - 1)
        step = _stream(TRAIN_DSM, TAG_STEP, k)
        t = T_EPS + (T_MAX - T_EPS) * self._rng(self.lib.sdflow_rng_uniform, _stream(step, TAG_T, 0), self.B, 1)[:, 0]
        z = self._rng(self.lib.sdflow_rng_normal, _stream(step, TAG_Z, 0), self.B, self.d)
        return idx, t.clamp(T_EPS, T_MAX).to(dtype), z.to(dtype)


def train(net, x, args, dtype, draws=None):
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in net.parameters()]
    n, run = x.shape[0], 0.0
    for k in range(args.steps):
        if draws:
            idx, t, z = draws(k, dtype)
            x0 = x[idx]
        else:
            x0 = x[torch.randint(0, n, (args.batch,))]
            t = T_EPS + (T_MAX - T_EPS) * torch.rand(args.batch, dtype=dtype)
            z = torch.randn_like(x0)
        a, s, _ = vp(t)
        loss = ((net(a[:, None] * x0 + s[:, None] * z, t) - z) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # after update number u = k + 1, like the library (SDFLOW_TRAIN_EMA_WARMUP)
        u = k + 1
        dec = min(args.ema, (1.0 + u) / (10.0 + u))
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(dec).add_(p.detach(), alpha=1 - dec)
        run = 0.99 * run + 0.01 * loss.item()
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e)
    # the library's SDFLOW_TRAIN_STAT_RUNNING_LOSS: running average from 0, bias-corrected
    return run / (1.0 - 0.99 ** args.steps)


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
    ap.add_argument("--no-eval", action="store_true", help="skip the likelihood (its fields are null)")
    ap.add_argument("--compare", metavar="MODEL_FILE",
                    help="report the largest |weight difference| of the trained network to this model file's")
    ap.add_argument("--library-draws", metavar="LIBSDFLOW_SO",
                    help="take the batch rows, times and noise of each step from this libsdflow (the library "
                         "trainer's own draws for --seed) instead of torch's generator")
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
        draws = LibraryDraws(args.library_draws, args.seed, ntrain, d, args.batch) if args.library_draws else None
        loss = train(net, tr.to(dtype), args, dtype, draws)
        t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    net = net.double()
    if args.export:
        export_file(net, args.export)
    wdiff = None
    if args.compare:
        ref = load_file(args.compare).state_dict()
        wdiff = max((v - ref[k]).abs().max().item() for k, v in net.state_dict().items())
    t0, c0 = time.perf_counter(), time.process_time()
    m = se = nfe = per = None
    if not args.no_eval:
        m, se, nfe, per = nll(net, te, rtol=args.rtol, atol=args.rtol)
    t_eval, c_eval = time.perf_counter() - t0, time.process_time() - c0
    if args.per_point and per is not None:
        np.savetxt(args.per_point, per.numpy() * d, fmt="%.17g")
    print(json.dumps({"impl": "torch", "workload": "dsm_train_nll", "data": args.data, "d": d,
                      "train_rows": ntrain, "test_rows": te.shape[0], "steps": 0 if args.load else args.steps,
                      "loaded": bool(args.load),
                      "batch": args.batch, "lr": args.lr, "ema": args.ema, "seed": args.seed,
                      "prec": "f32" if args.f32 else "f64", "threads": args.threads, "train_loss": loss,
                      "nll_nats_per_dim": m, "nll_se": se, "nfe": nfe, "t_train": t_train, "cpu_train": c_train, "t_eval": t_eval,
                      "cpu_eval": c_eval, "library_draws": bool(args.library_draws),
                      "weights_max_abs_diff": wdiff}),
          flush=True)


if __name__ == "__main__":
    main()
