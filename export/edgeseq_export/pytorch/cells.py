"""Modules written out as one time step of ordinary ops, for the step graph.

An LSTM with a projection (``proj_size``), and a convolutional front end (``FrontEndStep``).

ONNX's LSTM operator has no projection (PyTorch's ``h = W_hr (o * tanh(c))``), and neither
exporter handles one: the TorchScript exporter refuses it, and the dynamo exporter (torch 2.13)
writes a native LSTM whose weight shapes ONNX Runtime rejects. So such an LSTM is exported as
one step of MatMul/Add/Sigmoid/Tanh/Mul, whose state is a graph input paired with a graph
output that the caller feeds back each step; edgeseq's runtime does that by itself.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import BatchNorm, Conv
from .network import from_channels, to_channels


class ProjectedLSTMStep(nn.Module):
    """One time step of ``lstm`` (an ``nn.LSTM`` with ``proj_size``), called like it.

    Shares ``lstm``'s parameters; takes exactly one time step, so the graph it exports is a cell.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x, state):
        h0, c0 = state
        time_axis = 1 if self.lstm.batch_first else 0
        inputs = x.squeeze(time_axis)
        hs, cs = [], []
        for layer in range(self.lstm.num_layers):
            w = self._weights(layer)
            gates = (F.linear(inputs, w["weight_ih"], w["bias_ih"])
                     + F.linear(h0[layer], w["weight_hh"], w["bias_hh"]))
            i, f, g, o = gates.split(self.lstm.hidden_size, dim=-1)  # PyTorch's order: i, f, g, o
            c = torch.sigmoid(f) * c0[layer] + torch.sigmoid(i) * torch.tanh(g)
            h = F.linear(torch.sigmoid(o) * torch.tanh(c), w["weight_hr"])
            hs.append(h)
            cs.append(c)
            inputs = h
        return inputs.unsqueeze(time_axis), (torch.stack(hs), torch.stack(cs))

    def _weights(self, layer: int) -> dict:
        """Layer ``layer``'s weights by name; the biases are None when the LSTM has none."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return {name: getattr(self.lstm, f"{name}_l{layer}", None) for name in names}


class FrontEndStep(nn.Module):
    """One time step of a network's front end: one frame in, one frame out, the past as state.

    As tract's "pulse" streams a causal network, each time convolution becomes a cached one: it
    keeps the last ``reach = (kernel - 1) * dilation`` frames of its input as state, and a step
    convolves the cache and the new frame (no padding: the zero initial cache is the left
    padding). An ``nn.BatchNorm1d`` right after a conv is folded into its weights; elsewhere it
    is a per-channel scale and shift. A padded conv is the same computation ``delay`` steps late
    (``architecture.Conv.delay``): while the stream is younger than the delays of the convs
    before one, that conv reads zeros (a ``_Gate``), as the full-sequence forward reads its
    padding there; the ``warmup`` state counts the steps up to the whole delay, and ``reached``
    tells the caller when the recurrent layers may start.
    """

    def __init__(self, network):
        super().__init__()
        self.batch_first = network.architecture.batch_first
        self.delay = network.architecture.delay
        self.layers = nn.ModuleList()
        delayed = 0
        modules = list(zip(network.architecture.front, network.front))
        for position, (spec, module) in enumerate(modules):
            if isinstance(spec, Conv):
                if delayed:
                    self.layers.append(_Gate(delayed))
                following = modules[position + 1][1] if position + 1 < len(modules) else None
                self.layers.append(_CachedConv(module, spec.reach, following if isinstance(following, nn.BatchNorm1d)
                                               else None))
                delayed += spec.delay
            elif isinstance(spec, BatchNorm):
                if position == 0 or not isinstance(modules[position - 1][0], Conv):
                    self.layers.append(_Scale(module))
            else:
                self.layers.append(_step_activation(spec, module))

    def forward(self, x, state):
        """``x``: one frame in the network's layout; ``state``: the caches of the convs that have
        one, then the warm-up count when there is a delay. Returns (frame, next state)."""
        frames = to_channels(x, self.batch_first)  # (batch, channels, 1)
        caches = iter(state)
        count = state[-1] if self.delay else None
        next_state = []
        for layer in self.layers:
            if isinstance(layer, _CachedConv):
                frames, cache = layer(frames, next(caches) if layer.reach else None)
                next_state += [cache] if layer.reach else []
            elif isinstance(layer, _Gate):
                frames = frames * self.reached(count, layer.steps).transpose(0, 1)
            else:
                frames = layer(frames)
        if self.delay:
            next_state.append(torch.clamp(count + 1, max=float(self.delay)))
        return from_channels(frames, self.batch_first), next_state

    @staticmethod
    def reached(count, steps: int):
        """1 where the stream has seen at least ``steps`` steps before this one, else 0 (``count``
        holds whole numbers up to the delay, so the clamp is exact)."""
        return torch.clamp(count - (steps - 1), 0.0, 1.0)


class _Gate(nn.Module):
    """Zeros in place of the frames until the stream has seen ``steps`` steps (``FrontEndStep``
    multiplies by ``reached``: it needs the warm-up count)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps


class _CachedConv(nn.Module):
    """A ``nn.Conv1d`` over its cache of ``reach`` frames and the new one, with the
    ``nn.BatchNorm1d`` after it (if any) folded in: weight * s, (bias - mean) * s + beta,
    s = gamma / sqrt(var + eps), computed in float64."""

    def __init__(self, conv: nn.Conv1d, reach: int, norm: nn.BatchNorm1d | None):
        super().__init__()
        self.reach, self.dilation, self.groups = reach, conv.dilation[0], conv.groups
        weight = conv.weight.detach().double()
        bias = (conv.bias.detach().double() if conv.bias is not None
                else torch.zeros(weight.shape[0], dtype=torch.float64))
        if norm is not None:
            scale, shift = batch_norm_affine(norm)
            weight, bias = weight * scale[:, None, None], bias * scale + shift
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())

    def forward(self, frames, cache):
        """(output frame, next cache): the cache is the window but its oldest frame."""
        window = torch.cat([cache, frames], dim=2) if self.reach else frames
        out = F.conv1d(window, self.weight, self.bias, dilation=self.dilation, groups=self.groups)
        return out, window[:, :, 1:] if self.reach else None


class _Scale(nn.Module):
    """A batch norm that follows no conv: y = x * scale + shift, per channel."""

    def __init__(self, norm: nn.BatchNorm1d):
        super().__init__()
        scale, shift = batch_norm_affine(norm)
        self.register_buffer("scale", scale.float()[:, None])
        self.register_buffer("shift", shift.float()[:, None])

    def forward(self, frames):
        return frames * self.scale + self.shift


def batch_norm_affine(norm: nn.BatchNorm1d):
    """(scale, shift) of an eval-mode batch norm, in float64: y = x * scale + shift, per channel."""
    mean, var = norm.running_mean.detach().double(), norm.running_var.detach().double()
    gamma = norm.weight.detach().double() if norm.weight is not None else torch.ones_like(mean)
    beta = norm.bias.detach().double() if norm.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + norm.eps)
    return scale, beta - mean * scale


class _GeluErf(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


class _GeluTanh(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class _Hardswish(nn.Module):
    def forward(self, x):
        return x * F.hardsigmoid(x)


def _step_activation(spec, module: nn.Module) -> nn.Module:
    """The activation as the step graph computes it: the module itself where ONNX has its op and
    edgeseq's runtime runs it, else its formula in ops it does (GELU through Erf or Tanh,
    Hardswish through HardSigmoid; opset 20's Gelu and HardSwish ops are not among them)."""
    if spec.kind == "gelu":
        return _GeluTanh() if module.approximate == "tanh" else _GeluErf()
    if spec.kind == "hardswish":
        return _Hardswish()
    return module
