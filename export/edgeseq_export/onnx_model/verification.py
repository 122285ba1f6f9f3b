"""Do PyTorch, ONNX Runtime and edgeseq compute the same thing? One random sequence, state carried.

ONNX Runtime steps the exported file one time step at a time, its state outputs fed back as
inputs; edgeseq's runtime steps it with the state kept inside; PyTorch (when there is a
reference model) runs the whole sequence in one call, an independent path through the
recurrence. For every pair the report gives the largest absolute and relative difference of
the outputs over all steps, and the largest absolute difference of the final state.

The inputs are standard normal in the data's units (through the input normalisation, when the
model has one) or uniform token ids. The outputs of a model that restores the data's units are
compared in normalised units, ``(y - output_mean) / output_std``, so that a tolerance of 1e-4
means the same for sales in the thousands as for values around 1.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

import edgeseq_runtime
import numpy as np
import onnxruntime as ort

from ..errors import SourceError, VerificationFailed
from ..pytorch.architecture import INPUT_NAME, OUTPUT_NAME, Architecture
from . import metadata

DEFAULT_STEPS = 200
DEFAULT_TOLERANCE = 1e-4  # absolute, fp32


@dataclass(frozen=True)
class Difference:
    first: str
    second: str
    max_abs: float        # largest |first - second| over every output of every step
    max_rel: float        # max_abs relative to the largest |first| output
    state_max_abs: float  # largest |first - second| over the final state
    state_error: float    # largest |first - second| / max(1, |first|) over the final state: absolute up
                          # to 1, relative beyond (an LSTM's cell state runs into the hundreds)
    judged: bool = True   # False: shown for information, not held to the tolerance

    @property
    def worst(self) -> float:
        return max(self.max_abs, self.state_error)


@dataclass
class VerificationReport:
    model: str
    steps: int
    batch: int
    seed: int
    tolerance: float
    normalised_units: bool  # outputs compared as (y - output_mean) / output_std
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.worst <= self.tolerance for d in self.differences if d.judged)

    def check(self) -> VerificationReport:
        """``self`` when every pair agrees within the tolerance, else VerificationFailed."""
        if self.ok:
            return self
        worst = max((d for d in self.differences if d.judged), key=lambda d: d.worst)
        raise VerificationFailed(
            f"{self.model}: {worst.first} and {worst.second} differ by up to {worst.worst:.3g} over "
            f"{self.steps} steps (tolerance {self.tolerance:g})", self)


def verify(path: str | os.PathLike, source=None, *, label: str | None = None, steps: int = DEFAULT_STEPS,
           batch: int = 1, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
           load_options: edgeseq_runtime.LoadOptions | None = None) -> VerificationReport:
    """Compare the exported model at ``path`` with ``source`` (a ``sources.Source``, or None
    for ONNX Runtime against edgeseq only). ``label`` names the model in the report;
    ``load_options`` as edgeseq's runtime loads it (constants are fed to ONNX Runtime too)."""
    if steps < 1 or batch < 1 or not tolerance >= 0:
        raise ValueError(f"steps and batch must be positive and tolerance >= 0; got {steps}, {batch}, {tolerance}")
    path, label = os.fspath(path), label or os.fspath(path)
    load_options = load_options or edgeseq_runtime.LoadOptions()
    if source is None and not _has_description(path, label):
        return _verify_graph(path, label, steps, batch, tolerance, seed, load_options)
    description = describe_file(path, label)
    architecture = description.architecture
    if source is not None:
        _check_same_interface(source.network.architecture, architecture, source.label, label)
    if steps <= architecture.delay:
        raise SourceError(f"{label}: its stream lags the full-sequence forward by {architecture.delay} steps; "
                          f"check it over more than {steps} steps")
    x = random_sequence(architecture, description.normalisation, steps, batch, seed)

    runs, notes = {}, []
    if source is not None:
        run = source.run(x)
        runs["PyTorch"] = run.y, run.state
        notes += [run.note] if run.note else []
    quantized = _has_qdq(path)
    runs["ONNX Runtime"] = _onnxruntime(path, label, architecture, x, not quantized, load_options.constants)
    runs["edgeseq"] = _edgeseq(path, label, architecture, x, load_options)
    if architecture.front:
        runs = _aligned(runs, architecture.delay, steps)
        notes += [DELAY_NOTE.format(delay=architecture.delay)] if architecture.delay else []
    mean, std = (np.asarray(description.normalisation.get(k, default), np.float64)
                 for k, default in (("output_mean", 0.0), ("output_std", 1.0)))

    def difference(a, b, judged=True):
        return _difference(a, b, (runs[a][0] - mean) / std, (runs[b][0] - mean) / std, runs[a][1], runs[b][1],
                           judged)

    differences = [difference(a, b) for a, b in itertools.combinations(runs, 2)]
    if quantized:
        runs[STOCK_ORT] = _onnxruntime(path, label, architecture, x, True, load_options.constants)
        if architecture.front:
            runs[STOCK_ORT] = _aligned({STOCK_ORT: runs[STOCK_ORT]}, architecture.delay, steps)[STOCK_ORT]
        differences.append(difference(STOCK_ORT, "edgeseq", judged=False))
        notes.append(QDQ_NOTE)
    return VerificationReport(label, steps, batch, seed, tolerance, "output_std" in description.normalisation,
                              differences, notes)


STOCK_ORT = "stock ONNX Runtime"
ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_}  # for the constants fed to ONNX Runtime
QDQ_NOTE = ("int8 (QDQ) file: ONNX Runtime runs it with graph optimisations off, which computes the "
            "file's own math (int8 weights, float activations). With its default optimisations it fuses "
            "the QDQ nodes into integer kernels that also quantize the activations: that row is shown, "
            "not judged.")


DELAY_NOTE = ("the stream lags the full-sequence forward by {delay} steps (the frames its convs read beyond "
              "their padding): PyTorch's output t compared with the streams' output t + {delay}; the streams' "
              "first {delay} outputs are zeros")


def _aligned(runs: dict, delay: int, steps: int) -> dict:
    """Each run's outputs from the step that PyTorch's full-sequence output 0 corresponds to:
    the streams' from step ``delay`` on, PyTorch's first ``steps - delay`` (a front end's full
    forward also gives the outputs of a padded conv's right padding, which no stream has reached).
    ``steps`` exceeds ``delay`` (``verify`` checks it first)."""
    return {name: (y[:steps - delay] if name == "PyTorch" else y[delay:], state) for name, (y, state) in runs.items()}


def _has_description(path: str, label: str) -> bool:
    """Whether the file carries edgeseq's metadata (it was written by edgeseq export)."""
    model = metadata.read_structure(path, label)
    return any(p.key == metadata.PREFIX + "architecture" for p in model.metadata_props)


def _verify_graph(path, label, steps, batch, tolerance, seed, load_options) -> VerificationReport:
    """A file edgeseq did not export: ONNX Runtime stepping it (each state output fed back as
    edgeseq's runtime pairs them, the constants fed, the context kept) against edgeseq, on a
    standard normal sequence of the step input's size."""
    from ..backends.bench import OnnxRuntimeStepper  # here: bench imports this module

    try:
        stream = edgeseq_runtime.load(path, batch=batch, **load_options.fields())
    except edgeseq_runtime.EdgeseqError as e:
        raise SourceError(f"{label}: has no edgeseq metadata, and edgeseq's runtime cannot load it to "
                          f"compare with ONNX Runtime: {e}") from None
    if stream.is_token_model:
        raise SourceError(f"{label}: a token model without edgeseq metadata: its vocabulary is not known")
    stepper = OnnxRuntimeStepper(path, batch, load_options)
    x = np.random.default_rng(seed).standard_normal((steps, batch, stream.input_size)).astype(np.float32)
    per_step = x if batch > 1 else x[:, 0]
    ours = stream.run(per_step).reshape(steps, batch, -1)
    theirs = np.stack([np.asarray(stepper.step(row)).reshape(batch, -1) for row in per_step])
    names = [name for name, _ in stepper.pairs]
    ours_state, theirs_state = stream.get_state(), stepper.feeds
    difference = _difference("ONNX Runtime", "edgeseq", theirs, ours, {n: theirs_state[n] for n in names},
                             {n: ours_state[n] for n in names}, True)
    return VerificationReport(label, steps, batch, seed, tolerance, False, [difference],
                              ["no edgeseq metadata: ONNX Runtime and edgeseq compared on standard normal inputs"])


def _has_qdq(path: str) -> bool:
    """Whether the file stores weights as int8 behind DequantizeLinear nodes."""
    model = metadata.read_structure(path, path)
    return any(node.op_type == "DequantizeLinear" for node in model.graph.node)


def describe_file(path: str, label: str) -> metadata.Description:
    """The edgeseq metadata of the ONNX file at ``path``; SourceError when there is none."""
    return metadata.describe(metadata.read_structure(path, label), label)


def random_sequence(architecture: Architecture, normalisation: dict, steps: int, batch: int,
                    seed: int) -> np.ndarray:
    """(steps, batch, features) float32, standard normal in normalised units; or (steps, batch)
    int64 token ids."""
    rng = np.random.default_rng(seed)
    if architecture.vocab_size:
        return rng.integers(0, architecture.vocab_size, (steps, batch), dtype=np.int64)
    x = rng.standard_normal((steps, batch, architecture.input_size))
    x = x * np.asarray(normalisation.get("input_std", 1.0)) + np.asarray(normalisation.get("input_mean", 0.0))
    return x.astype(np.float32)


def onnxruntime_session_options() -> ort.SessionOptions:
    """One thread, as every engine is measured and compared here; ONNX Runtime's warnings (an
    unused initializer, say) kept off the user's terminal: errors still raise."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors and fatal only
    return options


def _onnxruntime(path, label, architecture, x, optimised: bool, constants: dict) -> tuple[np.ndarray, dict]:
    """Step the graph with ONNX Runtime, feeding each state output back as its input and the
    ``constants`` ({input: array}) as given; with its graph optimisations on (its default) or off."""
    options = onnxruntime_session_options()
    if not optimised:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise SourceError(f"{label}: ONNX Runtime cannot load it ({' '.join(str(e).split())})") from None
    steps, batch = x.shape[:2]
    states = architecture.states
    feeds = {s.name: np.zeros(s.shape(batch), np.float32) for s in states}
    feeds.update(onnxruntime_constants(session, constants))
    wanted = [OUTPUT_NAME, *(s.next_name for s in states)]
    y = np.empty((steps, batch, architecture.output_size), np.float32)
    for t in range(steps):
        step = x[t:t + 1]  # (1, batch, ...): time-first
        feeds[INPUT_NAME] = np.ascontiguousarray(step.swapaxes(0, 1)) if architecture.batch_first else step
        out, *state = session.run(wanted, feeds)
        y[t] = out.reshape(batch, -1)
        feeds.update(zip((s.name for s in states), state))
    return y, {s.name: feeds[s.name] for s in states}


def onnxruntime_constants(session, constants: dict) -> dict:
    """The fixed inputs ({name: array}) as the session's inputs take them."""
    types = {i.name: i.type for i in session.get_inputs()}
    return {name: value.astype(ORT_TYPES.get(types.get(name), value.dtype)) for name, value in constants.items()}


def _edgeseq(path, label, architecture, x, load_options) -> tuple[np.ndarray, dict]:
    """Step the graph with edgeseq's runtime, which keeps the state inside."""
    steps, batch = x.shape[:2]
    stream = edgeseq_runtime.load(path, batch=batch, **load_options.fields())
    if stream.output_size != architecture.output_size:
        raise SourceError(f"{label}: edgeseq's runtime finds {stream.output_size} outputs per step, the "
                          f"metadata says {architecture.output_size}")
    y = np.empty((steps, batch, architecture.output_size), np.float32)
    for t in range(steps):
        y[t] = stream.step(x[t] if batch > 1 else x[t, 0])
    return y, stream.get_state()


def _difference(first, second, y_first, y_second, state_first, state_second, judged: bool) -> Difference:
    max_abs = float(np.max(np.abs(y_first - y_second)))
    peak = float(np.max(np.abs(y_first)))
    max_rel = max_abs / peak if peak > 0 else (0.0 if max_abs == 0 else float("inf"))
    gaps = {name: np.abs(state_first[name].astype(np.float64) - state_second[name]) for name in state_first}
    state_max_abs = max((float(np.max(gap)) for gap in gaps.values()), default=0.0)
    state_error = max((float(np.max(gap / np.maximum(1.0, np.abs(state_first[name].astype(np.float64)))))
                       for name, gap in gaps.items()), default=0.0)
    return Difference(first, second, max_abs, max_rel, state_max_abs, state_error, judged)


def _check_same_interface(reference: Architecture, exported: Architecture, reference_label, label):
    """The reference must take and give what the exported model does, or nothing compares."""
    def interface(a: Architecture):
        return dict(input_size=a.input_size, vocab_size=a.vocab_size, output_size=a.output_size,
                    batch_first=a.batch_first, states=[(s.name, s.dims) for s in a.states], delay=a.delay)
    ours, theirs = interface(exported), interface(reference)
    for key in ours:
        if ours[key] != theirs[key]:
            raise SourceError(f"{label}: the reference {reference_label} does not match it ({key}: "
                              f"{theirs[key]} in the reference, {ours[key]} in the model)")
