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
    def __init__(self, nfreq):
        super().__init__()
        self.register_buffer("freqs", 0.5 * torch.arange(1, nfreq + 1, dtype=torch.float64))

    def forward(self, s):
        w = 2 * math.pi * s[:, None] * self.freqs
        return torch.cat([torch.sin(w), torch.cos(w)], dim=1)


class ScoreMLP(nn.Module):
    """z0 = [x, sin(2 pi f s), cos(2 pi f s)]; depth hidden layers
    (residual: z + act(W z + b) from the second on); linear output of d
    values (eps, score, ...) or 1 (energy). s = t (time input 0)."""

    def __init__(self, d, width=128, depth=3, nfreq=32, act="silu", residual=False, energy=False):
        super().__init__()
        self.residual, self.act = residual, ACT[act]
        self.time_embed = TimeEmbed(nfreq)
        dims = [d + 2 * nfreq] + [width] * depth
        self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1]) for i in range(depth)] +
                                    [nn.Linear(width, 1 if energy else d)])

    def forward(self, x, s):
        z = torch.cat([x, self.time_embed(s)], dim=1)
        for i, lin in enumerate(self.layers[:-1]):
            h = self.act(lin(z))
            z = z + h if self.residual and i >= 1 else h
        return self.layers[-1](z)
