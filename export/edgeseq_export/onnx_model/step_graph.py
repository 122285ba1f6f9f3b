"""A ``RecurrentNetwork`` as a streaming ("step") ONNX graph, written by ``torch.onnx.export``.

The graph takes ``x`` (time steps in the network's layout: (batch, time, features) when
batch-first, else (time, batch, features); int64 ids without the features axis for token
models) and the recurrent state ``h0, c0, h1, ...`` (each (layers, batch, size)); it returns
``y`` (laid out like ``x``) and the next state ``h0_next, c0_next, ...``. The batch axis is
dynamic; so is the time axis, unless a module is written out as a one-step cell (``cells``).

A convolutional front end streams one frame a step (``cells.FrontEndStep``): its state adds each
conv's cache ``conv<i>`` (batch, channels, frames) and, for a padded conv, the ``warmup`` count
(1, batch, 1). While the stream is younger than its delay, the recurrent state stays as it was
and ``y`` is zeros: the full-sequence forward has no output there.

Which exporter. The default is the TorchScript one (``dynamo=False``), although PyTorch
deprecates it, because for recurrent models it writes the better graph:

* it keeps ``nn.RNN`` as a native ONNX ``RNN`` node, where the dynamo exporter (torch 2.13)
  unrolls it into MatMul/Add/Tanh glue that no tool recognises as a recurrent layer (GRU and
  LSTM stay native with both);
* it keeps the time axis dynamic, so ONNX Runtime can run a whole sequence in one call; the
  dynamo exporter fixes it to the example's length;
* it exports in about a second, the dynamo exporter in five to ten;
* it always writes one file; the dynamo exporter puts weights in a ``.onnx.data`` file unless
  told not to.

``exporter="dynamo"`` is kept, and tested, for when the TorchScript exporter is gone: its
graphs stream the same (an unrolled RNN is fed back like a written-out cell).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import ExportError
from ..pytorch.architecture import INPUT_NAME, OUTPUT_NAME
from ..pytorch.cells import FrontEndStep, ProjectedLSTMStep
from ..pytorch.network import RecurrentNetwork

OPSET = 20  # the newest opset both exporters write for LSTM, GRU and RNN
EXPORTERS = ("torchscript", "dynamo")
EXAMPLE_BATCH = 2  # the dynamo exporter fixes a batch axis of 1 to 1


class StepModule(nn.Module):
    """``network`` with the state as separate positional tensors, as the graph's inputs are."""

    def __init__(self, network: RecurrentNetwork):
        super().__init__()
        self.network = network
        self.recurrent = nn.ModuleList(
            ProjectedLSTMStep(module) if spec.proj_size else module
            for spec, module in zip(network.architecture.recurrent, network.recurrent))
        self.front = FrontEndStep(network) if network.architecture.front else None
        self.recurrent_states = len(network.architecture.recurrent_states)

    def forward(self, x, *state):
        if self.front is None:
            y, next_state = self.network.forward_with(self.recurrent, x, state)
            return (y, *next_state)
        state, front_state = state[:self.recurrent_states], state[self.recurrent_states:]
        front_next = []

        def front(frame):
            frame, front_next[:] = self.front(frame, front_state)
            return frame

        if not self.front.delay:
            y, next_state = self.network.forward_with(self.recurrent, x, state, front)
            return (y, *next_state, *front_next)
        # Before the delay, keep the state and give zeros. What is kept is computed before the
        # recurrent nodes (graph order): edgeseq's runtime updates their state inputs in place.
        reached = self.front.reached(front_state[-1], self.front.delay)
        kept = [(1 - reached) * old for old in state]
        y, next_state = self.network.forward_with(self.recurrent, x, state, front)
        next_state = tuple(reached * new + old for new, old in zip(next_state, kept))
        y = y * (reached.transpose(0, 1) if self.network.architecture.batch_first else reached)
        return (y, *next_state, *front_next)


def export_step_graph(network: RecurrentNetwork, exporter: str, label: str) -> onnx.ModelProto:
    """The step graph of ``network`` (in eval mode), with its weights inside.

    ``label`` names the model in an ``ExportError`` when the exporter fails.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    architecture = network.architecture
    states = architecture.states
    one_step = bool(architecture.front) or any(layer.proj_size for layer in architecture.recurrent)
    batch_axis, time_axis = (0, 1) if architecture.batch_first else (1, 0)
    x_shape = [EXAMPLE_BATCH, 1] if architecture.batch_first else [1, EXAMPLE_BATCH]
    if architecture.vocab_size:
        x = torch.zeros(x_shape, dtype=torch.int64)
    else:
        x = torch.zeros(*x_shape, architecture.input_size)
    args = (x, *network.initial_state(EXAMPLE_BATCH))
    names = dict(input_names=[INPUT_NAME, *(s.name for s in states)],
                 output_names=[OUTPUT_NAME, *(s.next_name for s in states)])
    if exporter == "torchscript":
        sequence_axes = {batch_axis: "batch", **({} if one_step else {time_axis: "time"})}
        options = dict(dynamo=False, dynamic_axes={
            INPUT_NAME: sequence_axes, OUTPUT_NAME: sequence_axes,
            **{name: {s.dims.index("batch"): "batch"} for s in states for name in (s.name, s.next_name)}})
    else:
        batch = torch.export.Dim("batch")
        options = dict(dynamo=True, external_data=False, verbose=False,
                       dynamic_shapes=({batch_axis: batch}, tuple({s.dims.index("batch"): batch} for s in states)))
    step = StepModule(network).eval()
    with tempfile.TemporaryDirectory() as folder, _quiet():
        path = Path(folder) / "step.onnx"
        try:
            torch.onnx.export(step, args, str(path), opset_version=OPSET, **names, **options)
        except Exception as e:
            message = " ".join(str(e).split()) or type(e).__name__
            raise ExportError(f"{label}: torch.onnx.export ({exporter} exporter) failed: {message}") from e
        return onnx.load(str(path))


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, deprecation warnings and torchvision notices."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)
