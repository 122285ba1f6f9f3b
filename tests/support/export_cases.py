"""Users' PyTorch models in the forms ``edgeseq export`` reads, and independent references for them.

A ``UserModel`` is what a user writes: ``torch.nn`` layers in a module whose ``forward`` calls
them ([Embedding] -> LSTM/GRU/RNN [-> a second one] -> an ``nn.Sequential`` head). It lives at
module level so that a pickled one unpickles in the tests (``--trust-pickle``).

The references that an exported file is held to are the user's module itself (PyTorch, whole
sequence in one call), ONNX Runtime stepping the file with its state outputs fed back
(``torch_models.OrtStepper``), and edgeseq's runtime: nothing that edgeseq_export computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

import edgeseq_runtime
from support.torch_models import OrtStepper, ort_session

TOLERANCE = 1e-5  # max abs error, fp32, over a short sequence
ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}


@dataclass(frozen=True)
class UserSpec:
    cell: str = "LSTM"               # "LSTM", "GRU" or "RNN"
    input_size: int = 4
    hidden_size: int = 8
    num_layers: int = 1
    batch_first: bool = False
    bias: bool = True
    proj_size: int = 0               # LSTM only
    nonlinearity: str = "tanh"       # RNN only
    vocab_size: int = 0              # > 0: an nn.Embedding(vocab_size, input_size) first
    second_cell: str | None = None   # a second recurrent module after the first
    head: tuple = (3,)               # Linear output sizes, activation names between them

    @property
    def name(self) -> str:
        parts = [self.cell.lower() + (f"_{self.nonlinearity}" if self.cell == "RNN" else "")]
        for flag, text in ((self.num_layers > 1, f"{self.num_layers}layers"), (self.batch_first, "batch_first"),
                           (not self.bias, "nobias"), (self.proj_size, f"proj{self.proj_size}"),
                           (self.vocab_size, "embedding"), (self.second_cell, f"then_{self.second_cell}"),
                           (len(self.head) > 1, "head_" + "_".join(map(str, self.head)))):
            if flag:
                parts.append(text)
        return "-".join(parts)


def _recurrent(cell, input_size, spec: UserSpec) -> nn.Module:
    kwargs = dict(num_layers=spec.num_layers, batch_first=spec.batch_first, bias=spec.bias)
    if cell == "LSTM" and spec.proj_size:
        kwargs["proj_size"] = spec.proj_size
    if cell == "RNN":
        kwargs["nonlinearity"] = spec.nonlinearity
    return getattr(nn, cell)(input_size, spec.hidden_size, **kwargs)


class UserModel(nn.Module):
    def __init__(self, spec: UserSpec):
        super().__init__()
        self.embedding = nn.Embedding(spec.vocab_size, spec.input_size) if spec.vocab_size else None
        self.rnn = _recurrent(spec.cell, spec.input_size, spec)
        size = spec.proj_size if spec.cell == "LSTM" and spec.proj_size else spec.hidden_size
        self.rnn2 = _recurrent(spec.second_cell, size, spec) if spec.second_cell else None
        if spec.second_cell:
            size = spec.hidden_size
        layers = []
        for item in spec.head:
            if isinstance(item, str):
                layers.append(ACTIVATION_MODULES[item]())
            else:
                layers.append(nn.Linear(size, item))
                size = item
        self.head = nn.Sequential(*layers)

    def forward(self, x):
        if self.embedding is not None:
            x = self.embedding(x)
        x = self.rnn(x)[0]
        if self.rnn2 is not None:
            x = self.rnn2(x)[0]
        return self.head(x)


class HiddenActivation(UserModel):
    """Applies a ReLU in forward that no module shows: an export of its layers is wrong."""

    def forward(self, x):
        return self.head(torch.relu(self.rnn(x)[0]))


def build(spec: UserSpec, seed: int = 0) -> UserModel:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UserModel(spec).eval()


def random_inputs(spec: UserSpec, steps: int = 30, batch: int = 2, seed: int = 1) -> np.ndarray:
    """``(steps, batch, input_size)`` float32, or ``(steps, batch)`` int64 token ids."""
    rng = np.random.default_rng(seed)
    if spec.vocab_size:
        return rng.integers(0, spec.vocab_size, (steps, batch), dtype=np.int64)
    return rng.standard_normal((steps, batch, spec.input_size)).astype(np.float32)


def torch_outputs(model: nn.Module, x_tbi: np.ndarray, batch_first: bool) -> np.ndarray:
    """The module's own forward on the whole sequence, as ``(steps, batch, outputs)``."""
    x = torch.from_numpy(x_tbi)
    with torch.no_grad():
        y = model(x.transpose(0, 1) if batch_first else x)
    return (y.transpose(0, 1) if batch_first else y).numpy()


def streamed_outputs(path, x_tbi: np.ndarray, batch_first: bool) -> dict[str, np.ndarray]:
    """``{"onnxruntime": ..., "edgeseq": ...}``: both stepping the file, ``(steps, batch, outputs)``."""
    batch = x_tbi.shape[1]
    ort = OrtStepper.for_graph(ort_session(path), batch, batch_first).sequence(x_tbi)
    stream = edgeseq_runtime.load(path, batch=batch)
    edge = stream.run(x_tbi) if batch > 1 else stream.run(x_tbi[:, 0])[:, None]  # batch 1: no batch axis
    return {"onnxruntime": ort, "edgeseq": edge}


def assert_streams_like(path, model: nn.Module, x_tbi: np.ndarray, batch_first: bool) -> None:
    """ONNX Runtime and edgeseq, stepping the exported file, agree with the user's module."""
    expected = torch_outputs(model, x_tbi, batch_first)
    for name, actual in streamed_outputs(path, x_tbi, batch_first).items():
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        error = float(np.max(np.abs(actual.astype(np.float64) - expected)))
        assert error <= TOLERANCE, f"{path}: max |{name} - torch| = {error:.3g}"


def node_types(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]
