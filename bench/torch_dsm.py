#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of the library's DSM train step (issue 12, b_dsm_train_step):
the step a PyTorch user would write with the documented twin (bench/mlp_twin.py:
3 x 128 SiLU, 32 Fourier frequencies, nn.Linear default init), the default VP
process, the epsilon loss mean_b |eps_theta(x_t, t) - z|^2 (sum over
dimensions), t ~ U[t_eps, 1], Adam (lr 1e-3), B = 512, at d = 2 and d = 64 in
float64 and float32. Also:
  b_qcsgm_train_step: the same plus gamma mean_b |J v - J^T v|^2 (one
    Rademacher probe per row; J^T v by autograd.grad with create_graph, J v by
    the double-vjp trick), so backward is a double backward;
  b_energy_train_step: an energy twin (scalar output), score = -grad_x E by
    autograd.grad(create_graph=True), eps_theta = sigma grad_x E.
One JSON line per workload, as bench/torch_mlp.py. flops count the GEMMs only:
a train step is forward + 2 backward GEMMs per layer (3 x the forward's), the
QCSGM step about 4 passes more (grad, its jvp, and their backward), the
energy step forward + input gradient + their backward (~ 4 x); exps: one
sigmoid per hidden unit and row for the forward.
SDFLOW_BENCH_DSM_REPS sets the repetitions (default 21)."""
import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bound import machine_rate, timed  # noqa: E402
from mlp_twin import ScoreMLP  # noqa: E402

THREADS = 2
torch.set_num_threads(THREADS)
BMIN, BMAX, T_EPS = 0.1, 20.0, 1e-5
B = 512
REPS = max(3, int(os.environ.get("SDFLOW_BENCH_DSM_REPS", "21") or 21))
GAMMA = 1.0


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


def vp(t):
    """alpha(t), sigma(t) of the default VP process (beta 0.1 .. 20)."""
    Bt = BMIN * t + 0.5 * (BMAX - BMIN) * t * t
    return torch.exp(-0.5 * Bt), torch.sqrt(-torch.expm1(-Bt))


def noised(x0):
    t = T_EPS + (1 - T_EPS) * torch.rand(x0.shape[0], dtype=x0.dtype)
    z = torch.randn_like(x0)
    a, s = vp(t)
    return a[:, None] * x0 + s[:, None] * z, t, z, s


def dsm_step(net, opt, x0):
    xt, t, z, _ = noised(x0)
    loss = ((net(xt, t) - z) ** 2).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def qcsgm_step(net, opt, x0):
    xt, t, z, _ = noised(x0)
    xt.requires_grad_(True)
    out = net(xt, t)
    v = torch.randint(0, 2, xt.shape).to(xt.dtype) * 2 - 1
    # J^T v (vjp), then J v = d/du (J^T u . v) by the double-vjp trick
    u = torch.zeros_like(xt, requires_grad=True)
    jtu = torch.autograd.grad(out, xt, u, create_graph=True)[0]
    jv = torch.autograd.grad(jtu, u, v, create_graph=True)[0]
    jtv = torch.autograd.grad(out, xt, v, create_graph=True)[0]
    loss = ((out - z) ** 2).sum(1).mean() + GAMMA * ((jv - jtv) ** 2).sum(1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def energy_step(net, opt, x0):
    xt, t, z, s = noised(x0)
    xt.requires_grad_(True)
    e = net(xt, t).sum()
    grad = torch.autograd.grad(e, xt, create_graph=True)[0]  # -score
    loss = ((s[:, None] * grad - z) ** 2).sum(1).mean()  # eps = -sigma score = sigma grad E
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def main():
    torch.manual_seed(0)
    for dtype, prec in ((torch.float64, "f64"), (torch.float32, "f32")):
        for d in (2, 64):
            x0 = torch.randn(B, d, dtype=dtype)
            size = f"B={B} d={d} mlp3x128 silu adam"
            for name, step, energy, passes in (("b_dsm_train_step", dsm_step, False, 3.0),
                                               ("b_qcsgm_train_step", qcsgm_step, False, 7.0),
                                               ("b_energy_train_step", energy_step, True, 4.0)):
                net = ScoreMLP(d, energy=energy).to(dtype)
                opt = torch.optim.Adam(net.parameters(), lr=1e-3)
                ts = timed(lambda: step(net, opt, x0), REPS)
                report(name, size, prec, ts, passes * B * eval_flops(d), B * 384.0)


if __name__ == "__main__":
    main()
