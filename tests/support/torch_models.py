"""PyTorch step models, their ONNX exports, and the references that stream them.

Used by ``tests/test_runtime_torch_export.py`` (and ``support.export_cases``); imports
torch, onnx and onnxruntime at the top, so callers that must skip without torch import this
module only after ``pytest.importorskip("torch")``.

A *step model* is a ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` followed by a ``torch.nn.Linear`` head,
whose ``forward(x, h0[, c0])`` returns ``(y, h_n[, c_n])``. It is exported with one time step
(``T = 1``) so that the graph is what a streaming runtime runs: the graph inputs ``h0`` / ``c0``
carry the recurrent state and the graph outputs ``hn`` / ``cn`` give the next step's state.

PyTorch quirks kept here, in one place:

* ``x`` is ``(T, batch, input)``, or ``(batch, T, input)`` with ``batch_first=True``; ``h0`` and
  ``c0`` are always ``(num_layers, batch, hidden)`` whatever ``batch_first`` says.
* The dynamo exporter (``dynamo=True``) always specializes the sequence length to the example's
  T (and a batch of 1 to 1), so its examples use ``T = 1`` and ``batch = 2``; only the batch axis
  is dynamic. The TorchScript exporter (``dynamo=False``) keeps both batch and time dynamic.
* The dynamo exporter writes weights larger than a few hundred bytes to ``<name>.onnx.data`` by
  default (``external_data=True``); the TorchScript exporter writes one file.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

CELLS = ("GRU", "LSTM", "RNN")

# How a step model is exported: the exporter, and whether weights go to an external file.
EXPORTERS = {
    "torchscript": dict(dynamo=False, external_data=False),
    "dynamo": dict(dynamo=True, external_data=False),
    "dynamo-external": dict(dynamo=True, external_data=True),
}

EXAMPLE_BATCH = 2  # >= 2, or the dynamo exporter fixes the batch axis to 1


@dataclass(frozen=True)
class StepSpec:
    """The shape of a step model: recurrent layer(s) + Linear head."""

    cell: str  # "GRU", "LSTM" or "RNN"
    input_size: int = 5
    hidden_size: int = 16
    num_layers: int = 1
    batch_first: bool = False
    bias: bool = True
    nonlinearity: str = "tanh"  # RNN only: "tanh" or "relu"
    output_size: int = 3

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell {self.cell!r}: expected one of {CELLS}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity {self.nonlinearity!r}: expected 'tanh' or 'relu'")
        if self.cell != "RNN" and self.nonlinearity != "tanh":
            raise ValueError(f"nonlinearity applies to RNN only, not {self.cell}")

    @property
    def name(self) -> str:
        """A short id such as ``lstm-2layers-batch_first-nobias`` (used as a pytest id)."""
        parts = [self.cell.lower() + (f"_{self.nonlinearity}" if self.cell == "RNN" else "")]
        parts.append(f"i{self.input_size}h{self.hidden_size}")
        if self.num_layers > 1:
            parts.append(f"{self.num_layers}layers")
        if self.batch_first:
            parts.append("batch_first")
        if not self.bias:
            parts.append("nobias")
        return "-".join(parts)

    @property
    def state_inputs(self) -> tuple[str, ...]:
        """Graph inputs that carry the recurrent state, in forward() order."""
        return ("h0", "c0") if self.cell == "LSTM" else ("h0",)

    @property
    def state_outputs(self) -> tuple[str, ...]:
        """Graph outputs that give the next step's state, paired with ``state_inputs``."""
        return ("hn", "cn") if self.cell == "LSTM" else ("hn",)

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(num_layers, hidden_size)``: a state tensor is ``(num_layers, batch, hidden_size)``."""
        return (self.num_layers, self.hidden_size)

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """Zeros for every state input (what a streaming runtime starts from)."""
        shape = (self.num_layers, batch, self.hidden_size)
        return {name: np.zeros(shape, np.float32) for name in self.state_inputs}

    def to_model_layout(self, x_tbi: np.ndarray) -> np.ndarray:
        """``(T, batch, input)`` -> the layout the module takes (batch-first transposes)."""
        return np.ascontiguousarray(x_tbi.swapaxes(0, 1)) if self.batch_first else x_tbi

    def from_model_layout(self, y: np.ndarray) -> np.ndarray:
        """The module's output layout -> ``(T, batch, output)``."""
        return np.ascontiguousarray(y.swapaxes(0, 1)) if self.batch_first else y


class StepModel(torch.nn.Module):
    """``torch.nn.GRU`` / ``LSTM`` / ``RNN`` + ``torch.nn.Linear``, state in and out."""

    def __init__(self, spec: StepSpec):
        super().__init__()
        self.spec = spec
        kwargs = dict(num_layers=spec.num_layers, batch_first=spec.batch_first, bias=spec.bias)
        if spec.cell == "RNN":
            kwargs["nonlinearity"] = spec.nonlinearity
        self.rnn = getattr(torch.nn, spec.cell)(spec.input_size, spec.hidden_size, **kwargs)
        self.head = torch.nn.Linear(spec.hidden_size, spec.output_size)

    def forward(self, x, h0, c0=None):
        if self.spec.cell == "LSTM":
            y, (h_n, c_n) = self.rnn(x, (h0, c0))
            return self.head(y), h_n, c_n
        y, h_n = self.rnn(x, h0)
        return self.head(y), h_n


def build(spec: StepSpec, seed: int = 0) -> StepModel:
    """A step model with PyTorch's default initialization under ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return StepModel(spec).eval()


def export_step(model: StepModel, path: str | Path, exporter: str) -> Path:
    """Export ``model`` as a one-step ONNX graph to ``path``; ``exporter`` is a key of EXPORTERS.

    Graph inputs ``x, h0[, c0]``, outputs ``y, hn[, cn]``, with a dynamic batch axis (and, for
    the TorchScript exporter, a dynamic time axis). Returns ``path``.
    """
    try:
        options = EXPORTERS[exporter]
    except KeyError:
        raise ValueError(f"exporter {exporter!r}: expected one of {sorted(EXPORTERS)}") from None
    spec, path = model.spec, Path(path)
    batch_axis, time_axis = (0, 1) if spec.batch_first else (1, 0)
    x = torch.zeros((EXAMPLE_BATCH, 1, spec.input_size) if spec.batch_first
                    else (1, EXAMPLE_BATCH, spec.input_size))
    state = tuple(torch.zeros(spec.num_layers, EXAMPLE_BATCH, spec.hidden_size)
                  for _ in spec.state_inputs)
    input_names = ["x", *spec.state_inputs]
    output_names = ["y", *spec.state_outputs]

    if options["dynamo"]:
        batch = torch.export.Dim("batch")
        kwargs = dict(dynamic_shapes={"x": {batch_axis: batch},
                                      **{name: {1: batch} for name in spec.state_inputs}},
                      external_data=options["external_data"], verbose=False)
    else:
        sequence_axes = {batch_axis: "batch", time_axis: "time"}
        kwargs = dict(dynamic_axes={"x": sequence_axes, "y": sequence_axes,
                                    **{name: {1: "batch"}
                                       for name in spec.state_inputs + spec.state_outputs}})
    # The exporters print progress and warn about torchvision and flat weights: not our business.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x, *state), str(path), input_names=input_names,
                          output_names=output_names, dynamo=options["dynamo"], **kwargs)
    return path


def external_initializers(path: str | Path) -> list[str]:
    """Names of the initializers of ``path`` whose data lives in an external file."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return [t.name for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


# ---------------------------------------------------------------------------------------------
# References: PyTorch on the whole sequence, and onnxruntime stepping the exported graph.
# ---------------------------------------------------------------------------------------------


def torch_sequence(model: StepModel, x_tbi: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``model`` on the whole ``(T, batch, input)`` sequence from a zero state.

    Returns ``(y, state)``: ``y`` is ``(T, batch, output)`` and ``state`` maps each state input
    name (``h0``, ``c0``) to the final state, ``(num_layers, batch, hidden)``.
    """
    spec = model.spec
    initial = [torch.from_numpy(s) for s in spec.initial_state(x_tbi.shape[1]).values()]
    with torch.inference_mode():
        y, *final = model(torch.from_numpy(spec.to_model_layout(x_tbi)), *initial)
    state = {name: t.numpy().copy() for name, t in zip(spec.state_inputs, final)}
    return spec.from_model_layout(y.numpy()), state


def ort_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, one inter-op thread, sequential."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OrtStepper:
    """Steps an exported step graph with onnxruntime, feeding ``hn``/``cn`` back as ``h0``/``c0``.

    ``step`` takes and returns the module's one-step layout: ``x`` is ``(1, batch, input)``, or
    ``(batch, 1, input)`` for batch-first models, and so is ``y``. ``for_graph`` steps any graph
    laid out like a step model's: input ``x`` then the state inputs, output ``y`` then the next
    state in the same order (as ``edgeseq export`` writes them).
    """

    def __init__(self, spec: StepSpec, session: ort.InferenceSession, batch: int):
        self._start(session, spec.state_inputs, spec.state_outputs, spec.initial_state(batch),
                    spec.batch_first)

    @classmethod
    def for_graph(cls, session: ort.InferenceSession, batch: int, batch_first: bool = False) -> "OrtStepper":
        """Names from the graph; each state starts at zeros, its dynamic dims set to ``batch``."""
        stepper = cls.__new__(cls)
        inputs, outputs = session.get_inputs()[1:], session.get_outputs()[1:]
        initial = {i.name: np.zeros([d if isinstance(d, int) else batch for d in i.shape], np.float32)
                   for i in inputs}
        stepper._start(session, [i.name for i in inputs], [o.name for o in outputs], initial, batch_first)
        return stepper

    def _start(self, session, state_inputs, state_outputs, initial_state, batch_first):
        self.session, self.batch_first = session, batch_first
        self.state_inputs = list(state_inputs)
        self.output_names = ["y", *state_outputs]
        self.feeds = {"x": None, **initial_state}

    def step(self, x: np.ndarray) -> np.ndarray:
        self.feeds["x"] = x
        y, *state = self.session.run(self.output_names, self.feeds)
        self.feeds.update(zip(self.state_inputs, state))
        return y

    @property
    def state(self) -> dict[str, np.ndarray]:
        return {name: self.feeds[name] for name in self.state_inputs}

    def sequence(self, x_tbi: np.ndarray) -> np.ndarray:
        """Step through ``(T, batch, ...)``; returns ``(T, batch, output)``."""
        def layout(a):  # (T, batch, ...) <-> the module's layout
            return np.ascontiguousarray(a.swapaxes(0, 1)) if self.batch_first else a
        ys = [self.step(layout(x_tbi[t:t + 1])) for t in range(len(x_tbi))]
        return layout(np.concatenate(ys, axis=1 if self.batch_first else 0))
