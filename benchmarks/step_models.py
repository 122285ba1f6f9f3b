"""The models the benchmarks time, made the way a user makes them with edgeseq.

A model is a plain ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (time-first, PyTorch's default
initialisation under a fixed seed) with a ``torch.nn.Linear`` head, or without one when the
hidden state itself is the output. ``export`` writes it with ``edgeseq_export.api.export``,
what ``edgeseq export`` runs: the step graph is checked against PyTorch and ONNX Runtime
before it is written. ``quantized`` writes its int8 copy with
``edgeseq_export.backends.quantize.quantize``, what ``edgeseq quantize`` runs. So a benchmark
times the graphs the product writes (one LSTM / GRU / RNN node per layer, then the head), not
graphs made for the tests.

The benchmarks import this file as a sibling module: ``python benchmarks/NAME.py`` puts
``benchmarks/`` first on the import path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from edgeseq_export.api import export as export_checked
from edgeseq_export.backends.quantize import quantize
from torch import nn

CELLS = ("LSTM", "GRU", "RNN")
QUANTIZATION_STEPS = 20  # random steps over which quantize measures the int8 model's error


@dataclass(frozen=True)
class StepShape:
    """A recurrent layer (or stack) and its head: what a benchmark row measures."""

    cell: str  # "LSTM", "GRU" or "RNN"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    output_size: int | None = 1  # the Linear head's outputs; None: no head, y is the hidden state

    @property
    def name(self) -> str:
        """A file stem such as ``lstm_16_64_1``."""
        return f"{self.cell.lower()}_{self.input_size}_{self.hidden_size}_{self.num_layers}"


class RecurrentWithHead(nn.Module):
    """``torch.nn.LSTM`` / ``GRU`` / ``RNN`` then ``torch.nn.Linear``, as a user writes it:
    ``forward(x, state=None) -> (y, state)`` with ``x`` (time, batch, input) and ``state`` as
    the recurrent layer takes and returns it."""

    def __init__(self, shape: StepShape):
        super().__init__()
        self.rnn = getattr(nn, shape.cell)(shape.input_size, shape.hidden_size, num_layers=shape.num_layers)
        self.head = nn.Linear(shape.hidden_size, shape.output_size) if shape.output_size else nn.Identity()

    def forward(self, x, state=None):
        y, state = self.rnn(x, state)
        return self.head(y), state


def build(shape: StepShape, seed: int = 0) -> RecurrentWithHead:
    """The model of ``shape`` in eval mode, its weights drawn under ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RecurrentWithHead(shape).eval()


def export(model: nn.Module, path: str | Path, exporter: str = "torchscript") -> Path:
    """``model`` written to ``path`` by edgeseq's exporter, checked before it is written."""
    export_checked(model, path, exporter=exporter)
    return Path(path)


def quantized(fp32: Path, path: str | Path) -> Path:
    """The int8 copy of the exported ``fp32`` written to ``path`` by edgeseq's quantizer."""
    quantize(fp32, path, "int8", steps=QUANTIZATION_STEPS)
    return Path(path)


def torch_stepper(model: RecurrentWithHead, batch: int):
    """One step of ``model`` in PyTorch eager, its state fed back: how a PyTorch user streams it.
    The step takes ``x`` as numpy, (input,) or (batch, input), or as a tensor already laid out
    (1, batch, input), which saves the conversion's microsecond when every call takes the same
    input; call it under ``torch.inference_mode()`` on one thread."""
    state = None

    def step(x: np.ndarray | torch.Tensor):
        nonlocal state
        tensor = x if isinstance(x, torch.Tensor) else torch.from_numpy(x).reshape(1, batch, -1)
        y, state = model(tensor, state)
        return y

    return step
