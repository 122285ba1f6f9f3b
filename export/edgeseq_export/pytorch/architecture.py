"""What an exportable network is made of, as plain data: no torch needed to read it.

An ``Architecture`` is [embedding | convolutional front end] -> recurrent modules -> head. It is
stored in edgeseq checkpoints and in the exported model's metadata, and names the step graph's
inputs and outputs: ``x``, the state ``h0, c0, h1, ...`` -> ``y``, ``h0_next, c0_next, h1_next,
...``; a front end adds ``conv0, conv1, ...`` (each time convolution's cache of input frames) and,
when it delays the stream, ``warmup`` (the steps seen, up to the delay), each with its ``_next``.
``network.RecurrentNetwork`` builds the PyTorch module.

The front end (``Conv``, ``BatchNorm``, ``Activation`` items) runs over (batch, channels, time);
its ``Conv`` items are ``nn.Conv1d`` of stride 1 over time. A conv that pads by ``p`` frames
before the sequence and reaches ``r = (kernel - 1) * dilation`` frames back emits the output of
full-sequence position ``j`` once input ``j + r - p`` has arrived: a stream of it lags the
full-sequence forward by ``r - p`` steps (``Conv.delay``), and a chain of convs by the sum
(``Architecture.delay``). No padding (``p = 0``) is a causal conv that drops its first ``r``
outputs; padding ``r`` frames before only (``nn.ZeroPad1d((r, 0))`` ahead of the conv) is a
causal conv that keeps them, streamed without delay; symmetric padding is a non-causal conv,
streamed ``r - p`` steps late.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

CELLS = ("lstm", "gru", "rnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
# A front end's activations, each with the settings of its PyTorch module that change its values.
FRONT_ACTIVATIONS = {"relu": (), "relu6": (), "tanh": (), "sigmoid": (), "silu": (), "mish": (), "selu": (),
                     "hardsigmoid": (), "hardswish": (), "gelu": ("approximate",),
                     "leaky_relu": ("negative_slope",), "elu": ("alpha",), "hardtanh": ("min_val", "max_val")}
NONLINEARITIES = ("tanh", "relu")
INPUT_NAME, OUTPUT_NAME = "x", "y"
WARMUP = "warmup"
# What one conv's cache may hold per stream: 2^22 floats (16 MiB), e.g. 256 channels x 16,384
# frames. A device streams far less; a file that claims more (a dilation of 10^9 costs the file
# nothing) is refused before a cache is made.
MAX_CACHE_FLOATS = 1 << 22


@dataclass(frozen=True)
class Recurrent:
    """One unidirectional ``torch.nn.LSTM`` / ``GRU`` / ``RNN``, possibly of stacked layers."""

    cell: str                   # "lstm", "gru" or "rnn"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    proj_size: int = 0          # LSTM only: h is projected down to this size
    nonlinearity: str = "tanh"  # RNN only
    dropout: float = 0.0        # between stacked layers, while training

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r}: expected one of {', '.join(CELLS)}")
        if min(self.input_size, self.hidden_size, self.num_layers) < 1:
            raise ValueError(f"{self.cell}: sizes and num_layers must be positive; got {self}")
        if self.proj_size and (self.cell != "lstm" or not 0 < self.proj_size < self.hidden_size):
            raise ValueError(f"proj_size {self.proj_size}: only an LSTM has one, below its hidden_size")
        if self.nonlinearity not in NONLINEARITIES or (self.cell != "rnn" and self.nonlinearity != "tanh"):
            raise ValueError(f"nonlinearity {self.nonlinearity!r}: an RNN takes 'tanh' or 'relu', "
                             f"other cells have none")

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Per-layer sizes of h (and c for an LSTM): each state is (num_layers, batch, size)."""
        return (self.output_size, self.hidden_size) if self.cell == "lstm" else (self.hidden_size,)


@dataclass(frozen=True)
class Conv:
    """One ``nn.Conv1d`` over time, stride 1, zero padding: ``padding`` frames on both sides,
    ``"same"`` (PyTorch's: the odd frame, if any, after the sequence), or (before, after) frames
    (an ``nn.ZeroPad1d`` / ``nn.ConstantPad1d`` of zeros before the conv: ``(reach, 0)`` is the
    usual causal conv, whose stream has no delay)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    padding: int | str | tuple[int, int] = 0

    def __post_init__(self):
        if isinstance(self.padding, list):  # from JSON
            object.__setattr__(self, "padding", tuple(self.padding))
        if min(self.in_channels, self.out_channels, self.kernel_size, self.dilation, self.groups) < 1:
            raise ValueError(f"conv: sizes, dilation and groups must be positive; got {self}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"conv: groups={self.groups} does not divide {self.in_channels} input and "
                             f"{self.out_channels} output channels")
        if self.in_channels * self.reach > MAX_CACHE_FLOATS:
            raise ValueError(f"conv: a cache of {self.in_channels} channels x {self.reach} frames is more than the "
                             f"{MAX_CACHE_FLOATS:,} floats a streamed conv may keep")
        sides = self.padding if isinstance(self.padding, tuple) else (self.padding, self.padding)
        if self.padding != "same" and not (len(sides) == 2 and all(isinstance(p, int) and 0 <= p <= self.reach
                                                                   for p in sides)):
            raise ValueError(f"conv: padding {self.padding!r}: a streamed conv pads 0 to (kernel - 1) * "
                             f"dilation = {self.reach} frames on each side, or 'same'")

    @property
    def reach(self) -> int:
        """How many frames before the newest one each output reads: what the stream caches."""
        return (self.kernel_size - 1) * self.dilation

    @property
    def pad_before(self) -> int:
        if isinstance(self.padding, tuple):
            return self.padding[0]
        return self.reach // 2 if self.padding == "same" else self.padding

    @property
    def pad_after(self) -> int:
        if isinstance(self.padding, tuple):
            return self.padding[1]
        return self.reach - self.pad_before if self.padding == "same" else self.padding

    @property
    def delay(self) -> int:
        """Steps by which the stream's outputs lag the full-sequence forward's positions."""
        return self.reach - self.pad_before


@dataclass(frozen=True)
class BatchNorm:
    """``nn.BatchNorm1d`` in eval mode: a per-channel scale and shift (folded into the conv before)."""

    num_features: int
    eps: float = 1e-5
    affine: bool = True


@dataclass(frozen=True)
class Activation:
    """An activation module of the front end: a ``FRONT_ACTIVATIONS`` kind, with its settings
    (PyTorch's names, e.g. ``(("negative_slope", 0.2),)``); unset ones take PyTorch's defaults."""

    kind: str
    settings: tuple[tuple[str, float | str], ...] = ()

    def __post_init__(self):
        if self.kind not in FRONT_ACTIVATIONS:
            raise ValueError(f"activation {self.kind!r}: expected one of {', '.join(FRONT_ACTIVATIONS)}")
        unknown = {name for name, _ in self.settings} - set(FRONT_ACTIVATIONS[self.kind])
        if unknown:
            raise ValueError(f"activation {self.kind}: no setting {', '.join(sorted(unknown))}")
        for name, value in self.settings:  # PyTorch checks some only when the module runs
            if name == "approximate" and value not in ("none", "tanh"):
                raise ValueError(f"activation gelu: approximate {value!r}; expected 'none' or 'tanh'")
            if name != "approximate" and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"activation {self.kind}: {name} {value!r} is not a finite number")
        bounds = dict(self.settings)
        if self.kind == "hardtanh" and not bounds.get("min_val", -1.0) < bounds.get("max_val", 1.0):
            raise ValueError(f"activation hardtanh: min_val must be below max_val; got {bounds}")


FrontLayer = Conv | BatchNorm | Activation


@dataclass(frozen=True)
class Seasonal:
    """A forecaster's seasonal ends (``forecasting.seasonal``): a delay line of the target's last
    ``seasons`` seasons kept as state, the network's inputs relative to their mean, and its
    outputs taken as residuals over that seasonal mean forecast."""

    season: int
    inputs: int = 1     # values per step: the target, then the covariates
    horizon: int = 1    # forecasts per step: of the target 1..horizon steps ahead
    level: bool = True  # the target's standardised level is one of the network's inputs
    seasons: int = 1    # seasons averaged by the baseline (1: seasonal naive)

    def __post_init__(self):
        if min(self.season, self.inputs, self.horizon, self.seasons) < 1:
            raise ValueError(f"seasonal: season, inputs, horizon and seasons must be positive; got {self}")

    @property
    def features(self) -> int:
        """What the recurrent network takes: the seasonal change, [the level], the covariates."""
        return self.inputs + int(self.level)


@dataclass(frozen=True)
class Linear:
    in_features: int
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class State:
    """One state tensor: a graph input and its next value, of shape ``dims`` ("batch" marks the
    batch axis): (layers, batch, size) for a recurrent state, (batch, channels, frames) for a
    conv's cache, (1, batch, 1) for the warm-up count."""

    name: str       # the graph input, e.g. "h0" (h of recurrent module 0)
    next_name: str  # the graph output that carries its value after the step, e.g. "h0_next"
    dims: tuple[int | str, ...]

    def shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == "batch" else d for d in self.dims)


@dataclass(frozen=True)
class Architecture:
    """What a ``RecurrentNetwork`` is made of; plain data, stored in checkpoints and metadata."""

    recurrent: tuple[Recurrent, ...]
    head: tuple[Linear | str, ...] = ()  # Linear layers and activation names, in order
    vocab_size: int = 0                  # > 0: token ids in, through nn.Embedding(vocab_size, ...)
    batch_first: bool = False            # x is (batch, time, ...) rather than (time, batch, ...)
    dropout: float = 0.0                 # before the head, while training
    input_normalisation: bool = False    # x -> (x - input_mean) / input_std first
    output_normalisation: bool = False   # y -> y * output_std + output_mean last
    front: tuple[FrontLayer, ...] = ()   # over (batch, channels, time), before the recurrent modules
    seasonal: Seasonal | None = None     # a forecaster's seasonal ends around the whole network

    def __post_init__(self):
        if not self.recurrent:
            raise ValueError("an architecture needs at least one recurrent module")
        size = self._check_front()
        if size != self.recurrent[0].input_size:
            raise ValueError(f"recurrent module 0 takes {self.recurrent[0].input_size} features, but the "
                             f"front end gives {size}")
        for index, layer in enumerate(self.recurrent):
            if layer.input_size != size:
                raise ValueError(f"recurrent module {index} takes {layer.input_size} features, "
                                 f"but receives {size}")
            size = layer.output_size
        for layer in self.head:
            if isinstance(layer, Linear):
                if layer.in_features != size:
                    raise ValueError(f"a Linear layer takes {layer.in_features} features, but "
                                     f"receives {size}")
                size = layer.out_features
            elif layer not in ACTIVATIONS:
                raise ValueError(f"activation {layer!r}: expected one of {', '.join(ACTIVATIONS)}")
        if self.vocab_size and self.input_normalisation:
            raise ValueError("a token model's input (ids) cannot be normalised")
        if self.seasonal and (self.vocab_size or self.front or self.input_normalisation or self.output_normalisation
                              or not self.batch_first
                              or (self.recurrent[0].input_size, size) != (self.seasonal.features, self.seasonal.horizon)):
            raise ValueError(f"seasonal ends take {self.seasonal.features} features to the recurrent module "
                             f"and {self.seasonal.horizon} outputs from the head, batch first, with no "
                             f"embedding, front end or normalisation of their own")

    def _check_front(self) -> int:
        """The channels the front end gives (the recurrent input size when it has none)."""
        if not self.front:
            return self.recurrent[0].input_size
        if self.vocab_size:
            raise ValueError("a token model has no convolutional front end")
        size = self._front_input_size()
        for layer in self.front:
            takes = layer.in_channels if isinstance(layer, Conv) else getattr(layer, "num_features", size)
            if takes != size:
                raise ValueError(f"front-end layer {layer} takes {takes} channels, but receives {size}")
            size = layer.out_channels if isinstance(layer, Conv) else size
        return size

    @property
    def input_size(self) -> int:
        """Values per step and stream: features, or 1 (the token id) for token models."""
        if self.vocab_size:
            return 1
        if self.seasonal:
            return self.seasonal.inputs
        return self._front_input_size()

    def _front_input_size(self) -> int:
        """The channels the front end's first layer with a channel count takes (the recurrent
        input size without a front end)."""
        for layer in self.front:
            if isinstance(layer, (Conv, BatchNorm)):
                return layer.in_channels if isinstance(layer, Conv) else layer.num_features
        return self.recurrent[0].input_size

    @property
    def convs(self) -> list[Conv]:
        return [layer for layer in self.front if isinstance(layer, Conv)]

    @property
    def delay(self) -> int:
        """Steps by which the stream lags the full-sequence forward: its output at step t is the
        forward's output t - delay, and its first ``delay`` steps only fill the convs' caches."""
        return sum(conv.delay for conv in self.convs)

    @property
    def output_size(self) -> int:
        linears = [layer for layer in self.head if isinstance(layer, Linear)]
        return linears[-1].out_features if linears else self.recurrent[-1].output_size

    @property
    def recurrent_states(self) -> list[State]:
        """The recurrent state, in the order ``RecurrentNetwork.forward`` takes and returns it."""
        states = []
        for index, layer in enumerate(self.recurrent):
            for letter, size in zip("hc", layer.state_sizes):
                states.append(State(f"{letter}{index}", f"{letter}{index}_next", (layer.num_layers, "batch", size)))
        return states

    @property
    def front_states(self) -> list[State]:
        """What the step graph keeps of the front end: each conv's last ``reach`` input frames
        (convs that read one frame keep none), then the warm-up count when there is a delay."""
        states = [State(f"conv{index}", f"conv{index}_next", ("batch", conv.in_channels, conv.reach))
                  for index, conv in enumerate(self.convs) if conv.reach]
        if self.delay:
            states.append(State(WARMUP, f"{WARMUP}_next", (1, "batch", 1)))
        return states

    @property
    def states(self) -> list[State]:
        """Every state input of the step graph, in its order: recurrent first, then the front end's,
        then a forecaster's delay line ``lags`` (1, batch, seasons * season)."""
        lags = ([State("lags", "lags_next", (1, "batch", self.seasonal.seasons * self.seasonal.season))]
                if self.seasonal else [])
        return self.recurrent_states + self.front_states + lags

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        """The inverse of ``to_dict``; ValueError or TypeError on anything else."""
        data = dict(data)
        data["recurrent"] = tuple(Recurrent(**layer) for layer in data["recurrent"])
        data["head"] = tuple(layer if isinstance(layer, str) else Linear(**layer)
                             for layer in data.get("head", ()))
        data["front"] = tuple(front_layer_from_dict(layer) for layer in data.get("front", ()))
        data["seasonal"] = Seasonal(**data["seasonal"]) if data.get("seasonal") else None
        return cls(**data)


def front_layer_from_dict(data: dict) -> FrontLayer:
    """A front-end item from its ``to_dict`` form, told apart by its fields."""
    if "kernel_size" in data:
        return Conv(**data)
    if "num_features" in data:
        return BatchNorm(**data)
    return Activation(data["kind"], tuple(tuple(pair) for pair in data.get("settings", ())))
