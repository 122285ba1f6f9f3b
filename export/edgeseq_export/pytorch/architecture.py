"""What an exportable network is made of, as plain data: no torch needed to read it.

An ``Architecture`` is [embedding] -> recurrent modules -> head. It is stored in edgeseq
checkpoints and in the exported model's metadata, and names the step graph's inputs and
outputs: ``x``, the state ``h0, c0, h1, ...`` -> ``y``, ``h0_next, c0_next, h1_next, ...``.
``network.RecurrentNetwork`` builds the PyTorch module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

CELLS = ("lstm", "gru", "rnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
NONLINEARITIES = ("tanh", "relu")
INPUT_NAME, OUTPUT_NAME = "x", "y"


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
class Linear:
    in_features: int
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class State:
    """One recurrent state tensor, (layers, batch, size): a graph input and its next value."""

    name: str       # the graph input, e.g. "h0" (h of recurrent module 0)
    next_name: str  # the graph output that carries its value after the step, e.g. "h0_next"
    layers: int
    size: int


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

    def __post_init__(self):
        if not self.recurrent:
            raise ValueError("an architecture needs at least one recurrent module")
        size = self.recurrent[0].input_size
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

    @property
    def input_size(self) -> int:
        """Values per step and stream: features, or 1 (the token id) for token models."""
        return 1 if self.vocab_size else self.recurrent[0].input_size

    @property
    def output_size(self) -> int:
        linears = [layer for layer in self.head if isinstance(layer, Linear)]
        return linears[-1].out_features if linears else self.recurrent[-1].output_size

    @property
    def states(self) -> list[State]:
        """The recurrent state, in the order ``RecurrentNetwork.forward`` takes and returns it."""
        states = []
        for index, layer in enumerate(self.recurrent):
            for letter, size in zip("hc", layer.state_sizes):
                states.append(State(f"{letter}{index}", f"{letter}{index}_next", layer.num_layers, size))
        return states

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        """The inverse of ``to_dict``; ValueError or TypeError on anything else."""
        data = dict(data)
        data["recurrent"] = tuple(Recurrent(**layer) for layer in data["recurrent"])
        data["head"] = tuple(layer if isinstance(layer, str) else Linear(**layer)
                             for layer in data.get("head", ()))
        return cls(**data)
