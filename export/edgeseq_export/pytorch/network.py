"""The one PyTorch network edgeseq exports: [embedding] -> recurrent modules -> head.

Every form of MODEL.pt (an edgeseq checkpoint, a plain state_dict, a TorchScript archive, a
pickled module) is read into an ``Architecture`` plus weights and rebuilt as a
``RecurrentNetwork``, so that export and verification deal with one known module whatever the
user's class looked like. edgeseq's own model family (``edgeseq_export.pytorch.models``) is one too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..forecasting.seasonal import SeasonalEnds
from .architecture import Activation, Architecture, BatchNorm, Conv, FrontLayer, Linear, Recurrent

TORCH_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
TORCH_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
FRONT_ACTIVATION_MODULES = {**TORCH_ACTIVATIONS, "relu6": nn.ReLU6, "silu": nn.SiLU, "mish": nn.Mish,
                            "selu": nn.SELU, "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish,
                            "gelu": nn.GELU, "elu": nn.ELU, "hardtanh": nn.Hardtanh}


def build_recurrent(spec: Recurrent, batch_first: bool) -> nn.Module:
    """The ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` that ``spec`` describes."""
    kwargs = dict(num_layers=spec.num_layers, bias=spec.bias, batch_first=batch_first,
                  dropout=spec.dropout)
    if spec.cell == "lstm":
        kwargs["proj_size"] = spec.proj_size
    if spec.cell == "rnn":
        kwargs["nonlinearity"] = spec.nonlinearity
    return TORCH_CELLS[spec.cell](spec.input_size, spec.hidden_size, **kwargs)


def build_front_layer(spec: FrontLayer) -> nn.Module:
    """The ``nn.Conv1d``, ``nn.BatchNorm1d`` or activation module that ``spec`` describes."""
    if isinstance(spec, Conv):
        conv = PaddedConv1d if isinstance(spec.padding, tuple) else nn.Conv1d
        return conv(spec.in_channels, spec.out_channels, spec.kernel_size, dilation=spec.dilation,
                    groups=spec.groups, bias=spec.bias, padding=spec.padding)
    if isinstance(spec, BatchNorm):
        return nn.BatchNorm1d(spec.num_features, eps=spec.eps, affine=spec.affine)
    assert isinstance(spec, Activation)
    return FRONT_ACTIVATION_MODULES[spec.kind](**dict(spec.settings))


class PaddedConv1d(nn.Conv1d):
    """An ``nn.Conv1d`` padded by (before, after) zero frames, as a user's ``nn.ZeroPad1d`` and
    ``nn.Conv1d`` compute it (``nn.Conv1d`` pads both sides alike); its weights keep their names."""

    def __init__(self, *args, padding: tuple[int, int], **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.sides = padding

    def forward(self, x):
        return super().forward(F.pad(x, self.sides))


class RecurrentNetwork(nn.Module):
    """[``nn.Embedding`` | front end] -> ``nn.LSTM`` / ``GRU`` / ``RNN`` modules -> ``nn.Linear`` head.

    The front end (``nn.Conv1d``, ``nn.BatchNorm1d``, activations) runs over (batch, channels,
    time), between transposes from and back to the recurrent modules' layout.

    Input and output normalisation, when the architecture has them, are buffers (so they travel
    in the state_dict) applied inside ``forward``: callers, the exported ONNX graph and the
    runtime all take and give values in the data's own units.
    """

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = architecture
        first = architecture.recurrent[0]
        self.embedding = (nn.Embedding(architecture.vocab_size, first.input_size)
                          if architecture.vocab_size else None)
        self.front = nn.Sequential(*map(build_front_layer, architecture.front))
        self.seasonal = SeasonalEnds(architecture.seasonal) if architecture.seasonal else None
        self.recurrent = nn.ModuleList(build_recurrent(layer, architecture.batch_first)
                                       for layer in architecture.recurrent)
        self.dropout = nn.Dropout(architecture.dropout)
        self.head = nn.Sequential(*(nn.Linear(layer.in_features, layer.out_features, layer.bias)
                                    if isinstance(layer, Linear) else TORCH_ACTIVATIONS[layer]()
                                    for layer in architecture.head))
        if architecture.input_normalisation:
            self.register_buffer("input_mean", torch.zeros(architecture.input_size))
            self.register_buffer("input_std", torch.ones(architecture.input_size))
        if architecture.output_normalisation:
            self.register_buffer("output_mean", torch.zeros(architecture.output_size))
            self.register_buffer("output_std", torch.ones(architecture.output_size))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None):
        """Run a whole sequence; returns ``(y, next_state)``.

        ``x`` is (batch, time, features) when batch-first, else (time, batch, features); token
        models take int64 ids without the features axis. ``state`` holds one (layers, batch,
        size) tensor per entry of ``architecture.recurrent_states`` (None: zeros). ``y`` is laid out
        like ``x``, with ``architecture.output_size`` features.
        """
        return self.forward_with(self.recurrent, x, state)

    def forward_with(self, recurrent, x, state=None, front=None):
        """``forward`` with other modules in place of the recurrent ones (same call convention
        as ``nn.LSTM`` / ``GRU`` / ``RNN``) and, given, another ``front`` (x -> x, in the
        recurrent modules' layout) in place of ``front_end``: the ONNX step graph swaps in
        written-out cells and cached convs."""
        if self.embedding is not None:
            x = self.embedding(x)
        if self.architecture.input_normalisation:
            x = (x - self.input_mean) / self.input_std
        x = (front or self.front_end)(x)
        if self.seasonal is not None:  # a forecaster's delay line: the last state
            lags = state[-1] if state is not None else self.seasonal.empty_lags(x)
            state = state[:-1] if state is not None else None
            x, baselines, next_lags = self.seasonal.features(x, lags)
        given = iter(state) if state is not None else None
        next_state = []
        for spec, module in zip(self.architecture.recurrent, recurrent):
            if given is None:
                x, final = module(x)
            elif spec.cell == "lstm":
                x, final = module(x, (next(given), next(given)))
            else:
                x, final = module(x, next(given))
            next_state.extend(final if spec.cell == "lstm" else (final,))
        y = self.head(self.dropout(x))
        if self.architecture.output_normalisation:
            y = y * self.output_std + self.output_mean
        if self.seasonal is not None:
            return self.seasonal.forecast(y, baselines), (*next_state, next_lags)
        return y, tuple(next_state)

    def front_end(self, x: torch.Tensor) -> torch.Tensor:
        """The front end over a whole sequence laid out as the recurrent modules take it."""
        if not self.architecture.front:
            return x
        return from_channels(self.front(to_channels(x, self.architecture.batch_first)), self.architecture.batch_first)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Zeros for every state tensor of the step graph: what a stream starts from."""
        return tuple(torch.zeros(s.shape(batch)) for s in self.architecture.states)

    def set_normalisation(self, input_mean=None, input_std=None, output_mean=None, output_std=None):
        """Store the data's mean and standard deviation (per feature) for ``forward`` to apply."""
        given = dict(input_mean=input_mean, input_std=input_std, output_mean=output_mean,
                     output_std=output_std)
        for name, value in given.items():
            if value is None:
                continue
            if not hasattr(self, name):
                raise ValueError(f"{name}: this architecture has no {name.split('_')[0]} normalisation")
            value = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            buffer = getattr(self, name)
            if value.shape != buffer.shape or not torch.isfinite(value).all():
                raise ValueError(f"{name} must be {buffer.numel()} finite values; got {value.tolist()}")
            if name.endswith("_std") and (value <= 0).any():
                raise ValueError(f"{name} must be positive; got {value.tolist()}")
            buffer.copy_(value)

    def normalisation(self) -> dict[str, list[float]]:
        """The stored means and standard deviations, as lists (empty without normalisation)."""
        if self.seasonal is not None:
            return self.seasonal.normalisation()
        names = ("input_mean", "input_std", "output_mean", "output_std")
        return {name: getattr(self, name).tolist() for name in names if hasattr(self, name)}


def to_channels(x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """(batch, time, features) or (time, batch, features) -> (batch, channels, time)."""
    return x.transpose(1, 2) if batch_first else x.permute(1, 2, 0)


def from_channels(x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """The inverse of ``to_channels``."""
    return x.transpose(1, 2) if batch_first else x.permute(2, 0, 1)
