# SPDX-License-Identifier: MIT
"""PyTorch twin of libsdflow's MLP score model and model-file export/import
(docs/mlp.md, docs/model-files.md). Needs torch and numpy only: the
safetensors files are written and read by :mod:`sdflow.safetensors_io`,
not by the safetensors package.

    net = ScoreMLP(d=2, width=64, depth=3, nfreq=16, act="silu", residual=1, output="eps")
    ...train it in PyTorch (any device, any dtype)...
    export(net, "model.safetensors")                     # F64; dtype=torch.float32 for F32
    model, process = sdflow.Model.load(ctx, "model.safetensors")

    net2 = import_("model.safetensors")                  # a file libsdflow saved

The network: z0 = [x, sin(2 pi f s), cos(2 pi f s)], depth hidden layers
act(W z + b) (with residual: z + act(W z + b) from the second on), a linear
output of d values (the output kind: eps, score, x0, velocity, v) or of one
value (energy E, score = -grad_x E). s = t (time_input 0) or
log(sigma(t))/4 (time_input 1; sigma of the process, or sigma = t without).
forward(x, s) takes s; use time_feature(t, sigma) to get it."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import safetensors_io

ACTIVATIONS = ["silu", "tanh", "softplus", "gelu", "relu"]
OUTPUTS = ["score", "eps", "x0", "velocity", "v", "energy"]


def _softplus(a):
    # log(1 + e^a) exactly (nn.Softplus cuts at threshold=20; libsdflow does not)
    return torch.logaddexp(a, torch.zeros_like(a))


_ACT = {
    "silu": F.silu,
    "tanh": torch.tanh,
    "softplus": _softplus,
    "gelu": lambda a: F.gelu(a, approximate="tanh"),
    "relu": F.relu,
}


class TimeEmbed(nn.Module):
    """sin/cos(2 pi f_k s), f_k = scale (k + 1): a buffer, or a parameter when learned."""

    def __init__(self, nfreq, scale=0.5, learn=False, dtype=torch.float64):
        super().__init__()
        f = scale * torch.arange(1, nfreq + 1, dtype=dtype)
        if learn:
            self.freqs = nn.Parameter(f)
        else:
            self.register_buffer("freqs", f)

    def forward(self, s):
        w = 2 * math.pi * s[:, None] * self.freqs
        return torch.cat([torch.sin(w), torch.cos(w)], dim=1)


class Block(nn.Module):
    """The residual block z + lin2(act(lin1(z)))."""

    def __init__(self, width, act, dtype):
        super().__init__()
        self.act = act
        self.lin1 = nn.Linear(width, width, dtype=dtype)
        self.lin2 = nn.Linear(width, width, dtype=dtype)

    def forward(self, z):
        return z + self.lin2(self.act(self.lin1(z)))


class ScoreMLP(nn.Module):
    """The documented MLP (docs/mlp.md); state_dict names and shapes are the
    tensors of a libsdflow mlp model file. residual (SDFLOW_OPT_MLP_RESIDUAL):
      0: depth layers z = act(lin(z))                      (layers.0 .. layers.depth)
      1: z = act(input(z0)), then (depth - 1) / 2 blocks z + lin2(act(lin1(z)))
                                                           (input, blocks.b.lin1/lin2, output)
      2: layers 1.. as z = z + act(lin(z))                 (layers.0 .. layers.depth)
    learn_freqs makes time_embed.freqs a parameter (registered last, as in
    libsdflow's flat vector); freq_scale sets f_k = freq_scale (k + 1)."""

    def __init__(self, d, width=128, depth=3, nfreq=32, act="silu", residual=0, output="eps", time_input=0,
                 learn_freqs=False, freq_scale=0.5, dtype=torch.float64):
        super().__init__()
        if act not in _ACT or output not in OUTPUTS:
            raise ValueError("act must be one of %s, output one of %s" % (ACTIVATIONS, OUTPUTS))
        if act == "relu" and output == "energy":
            raise ValueError("relu cannot be used with the energy output (libsdflow refuses it)")
        residual = int(residual)
        if residual == 1 and depth % 2 != 1:
            raise ValueError("residual blocks need an odd depth 1 + 2B")
        self.d, self.width, self.depth, self.nfreq = d, width, depth, nfreq
        self.act_name, self.residual, self.output, self.time_input = act, residual, output, int(time_input)
        self.learn_freqs, self.freq_scale = bool(learn_freqs), float(freq_scale)
        self.act = _ACT[act]
        dout = 1 if output == "energy" else d
        if residual == 1:
            self.input = nn.Linear(d + 2 * nfreq, width, dtype=dtype)
            self.blocks = nn.ModuleList([Block(width, self.act, dtype) for _ in range((depth - 1) // 2)])
            self.output_layer = nn.Linear(width, dout, dtype=dtype)
        else:
            dims = [d + 2 * nfreq] + [width] * depth
            self.layers = nn.ModuleList([nn.Linear(dims[i], dims[i + 1], dtype=dtype) for i in range(depth)] +
                                        [nn.Linear(width, dout, dtype=dtype)])
        self.time_embed = TimeEmbed(nfreq, freq_scale, self.learn_freqs and nfreq > 0, dtype)

    # the output layer of the residual form is "output.*" in the file
    def state_dict_for_file(self):
        return {("output." + k[len("output_layer."):] if k.startswith("output_layer.") else k): v
                for k, v in self.state_dict().items()}

    def load_file_state(self, state):
        self.load_state_dict({("output_layer." + k[len("output."):] if k.startswith("output.") else k): v
                              for k, v in state.items()}, strict=True)

    def forward(self, x, s):
        """The network output at points x (n x d) and time features s (n)."""
        z = torch.cat([x, self.time_embed(s)], dim=1)
        if self.residual == 1:
            z = self.act(self.input(z))
            for block in self.blocks:
                z = block(z)
            return self.output_layer(z)
        for i, lin in enumerate(self.layers[:-1]):
            h = self.act(lin(z))
            z = z + h if self.residual == 2 and i >= 1 else h
        return self.layers[-1](z)

    def native(self, x, s):
        """What libsdflow's model evaluates natively: the output, or for an
        energy model the score -grad_x E."""
        if self.output != "energy":
            return self(x, s)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self(x, s).sum(), x)
        return -g

    def time_feature(self, t, sigma=None):
        """s for times t: t itself (time_input 0) or log(sigma(t))/4
        (sigma: the process's sigma at t; None means sigma = t)."""
        t = torch.as_tensor(t, dtype=self.time_embed.freqs.dtype)
        if self.time_input == 0:
            return t
        return torch.log(t if sigma is None else torch.as_tensor(sigma, dtype=t.dtype)) / 4


def metadata(net, process=None):
    """The __metadata__ of a libsdflow mlp file for net; process: None or a
    dict with "kind" ("vp", ...) and the eight process options by name
    (beta_min, beta_max, proc_sigma_min, proc_sigma_max, cosine_s, t_max,
    t_eps, ve_exact_std)."""
    meta = {
        "sdflow.format_version": "1",
        "sdflow.library_version": "python-torch-export",
        "sdflow.model": "mlp",
        "sdflow.dim": str(net.d),
        "sdflow.output": net.output,
        "sdflow.model.mlp_depth": str(net.depth),
        "sdflow.model.mlp_width": str(net.width),
        "sdflow.model.mlp_activation": str(ACTIVATIONS.index(net.act_name)),
        "sdflow.model.mlp_freqs": str(net.nfreq),
        "sdflow.model.mlp_residual": str(int(net.residual)),
        "sdflow.model.mlp_output": str(OUTPUTS.index(net.output)),
        "sdflow.model.mlp_time_input": str(net.time_input),
        "sdflow.model.mlp_learn_freqs": str(int(net.learn_freqs)),
        "sdflow.model.mlp_freq_scale": repr(net.freq_scale),
    }
    if process:
        meta["sdflow.process"] = process["kind"]
        for k, v in process.items():
            if k != "kind":
                meta["sdflow.process." + k] = repr(int(v)) if k == "ve_exact_std" else repr(float(v))
    return meta


def export(net, path, dtype=torch.float64, process=None):
    """Writes net as a libsdflow model file (F64, or F32 with dtype=torch.float32)."""
    np_dtype = {torch.float64: "float64", torch.float32: "float32"}[dtype]
    tensors = {k: v.detach().cpu().numpy().astype(np_dtype) for k, v in net.state_dict_for_file().items()}
    if net.nfreq == 0:
        tensors.pop("time_embed.freqs", None)
    safetensors_io.write(path, tensors, metadata(net, process))


def import_(path, dtype=torch.float64):
    """A ScoreMLP with the architecture and weights of an mlp model file
    (written by libsdflow or by export). Returns the module."""
    tensors, meta = safetensors_io.read(path) if not isinstance(path, (bytes, bytearray)) else \
        safetensors_io.loads(path)
    if meta.get("sdflow.model") != "mlp":
        raise ValueError("not an mlp model file (sdflow.model = %r)" % meta.get("sdflow.model"))

    def opt(name):
        return int(meta["sdflow.model.mlp_" + name])

    net = ScoreMLP(int(meta["sdflow.dim"]), width=opt("width"), depth=opt("depth"), nfreq=opt("freqs"),
                   act=ACTIVATIONS[opt("activation")], residual=opt("residual"), output=OUTPUTS[opt("output")],
                   time_input=opt("time_input"), learn_freqs=opt("learn_freqs"),
                   freq_scale=float(meta["sdflow.model.mlp_freq_scale"]), dtype=dtype)
    state = {k: torch.from_numpy(v).to(dtype) for k, v in tensors.items()}
    if net.nfreq == 0:
        state["time_embed.freqs"] = net.time_embed.freqs
    net.load_file_state(state)
    return net
