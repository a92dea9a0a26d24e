# SPDX-License-Identifier: MIT
"""The PyTorch twin of libsdflow's MLP score model (docs/mlp.md): same
state_dict names and shapes, so weights move both ways."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def softplus(a):
    # log(1 + e^a) without nn.Softplus's threshold=20 cut (libsdflow is exact there)
    return torch.logaddexp(a, torch.zeros_like(a))


ACT = {
    "silu": F.silu,
    "tanh": torch.tanh,
    "softplus": softplus,
    "gelu": lambda a: F.gelu(a, approximate="tanh"),
    "relu": F.relu,
}


class TimeEmbed(nn.Module):
    """sin/cos(2 pi f_k s), f_k = scale (k + 1): a buffer, or a parameter when learned."""

    def __init__(self, nfreq, scale=0.5, learn=False):
        super().__init__()
        f = scale * torch.arange(1, nfreq + 1, dtype=torch.float64)
        if learn:
            self.freqs = nn.Parameter(f)
        else:
            self.register_buffer("freqs", f)

    def forward(self, s):
        w = 2 * math.pi * s[:, None] * self.freqs
        return torch.cat([torch.sin(w), torch.cos(w)], dim=1)


class Block(nn.Module):
    """The residual block z + lin2(act(lin1(z)))."""

    def __init__(self, width, act):
        super().__init__()
        self.act = act
        self.lin1 = nn.Linear(width, width)
        self.lin2 = nn.Linear(width, width)

    def forward(self, z):
        return z + self.lin2(self.act(self.lin1(z)))


class ScoreMLP(nn.Module):
    """z0 = [x, sin(2 pi f s), cos(2 pi f s)]; a linear output of d values
    (eps, score, ...) or 1 (energy). s = t (time input 0). Hidden part by
    residual (SDFLOW_OPT_MLP_RESIDUAL):
      0: depth layers z = act(lin(z))                    (layers.0 .. layers.depth)
      1: z = act(input(z0)), then (depth - 1) / 2 blocks z + lin2(act(lin1(z)))
                                                         (input, blocks.b.lin1/lin2, output)
      2: layers 1.. as z = z + act(lin(z))               (layers.0 .. layers.depth)
    time_embed is registered last, so parameters() (and parameters_to_vector)
    follow libsdflow's flat vector: layers in order, then learned freqs."""

    def __init__(self, d, width=128, depth=3, nfreq=32, act="silu", residual=0, energy=False, learn_freqs=False,
                 freq_scale=0.5):
        super().__init__()
        self.residual, self.act = int(residual), ACT[act]
        dout = 1 if energy else d
        if self.residual == 1:
            assert depth % 2 == 1, "residual blocks need an odd depth"
            self.input = nn.Linear(d + 2 * nfreq, width)
            self.blocks = nn.ModuleList([Block(width, self.act) for _ in range((depth - 1) // 2)])
            self.output = nn.Linear(width, dout)
        else:
            dims = [d + 2 * nfreq] + [width] * depth
            self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(depth)] +
                                        [nn.Linear(width, dout)])
        self.time_embed = TimeEmbed(nfreq, freq_scale, learn_freqs)

    def forward(self, x, s):
        z = torch.cat([x, self.time_embed(s)], dim=1)
        if self.residual == 1:
            z = self.act(self.input(z))
            for block in self.blocks:
                z = block(z)
            return self.output(z)
        for i, lin in enumerate(self.layers[:-1]):
            h = self.act(lin(z))
            z = z + h if self.residual == 2 and i >= 1 else h
        return self.layers[-1](z)
