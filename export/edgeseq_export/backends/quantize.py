"""Weight quantization of streaming ONNX models: int8 (QDQ) and fp16.

int8: every weight matrix (LSTM/GRU/RNN W and R, Gemm/MatMul weights, embedding tables) is
stored as int8 with one symmetric scale per output channel, behind a standard
``DequantizeLinear`` node (QDQ), so that onnxruntime, ``onnx.checker`` and Netron read the file
and edgeseq's runtime keeps the weights int8 in memory. Biases and peepholes stay float32.
A recurrent node's W and R share one scale per gate row (as if [W R] were one matrix), and the
zero point is left out (ONNX's default, 0: symmetric): for a small model these bytes are a
noticeable part of the file.
ONNX Runtime's own quantizer leaves GRU in float and emits a contrib op for LSTM; this one
covers all three cells with standard ops only.

fp16: every float32 initializer is stored as float16 behind a ``Cast`` to float32: half the
file, computed in float32.
"""

import json
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from edgeseq_runtime import EdgeseqError, LoadOptions, StreamingModel, load
from edgeseq_runtime.atomic import write_atomic
from edgeseq_runtime.lowering import lower
from onnx import helper, numpy_helper

from ..rows import read_rows

MODES = ("int8", "fp16")
INT8_MAX = 127
MIN_OPSET = 13  # per-axis DequantizeLinear


class QuantizationError(EdgeseqError):
    """A model that cannot be quantized as asked, or whose quantized outputs drift too far."""


@dataclass
class QuantizationReport:
    mode: str
    source: str
    output: str
    bytes_before: int
    bytes_after: int
    steps: int
    max_abs_error: float
    mean_abs_error: float
    quantized: list[str] = field(default_factory=list)   # initializers that were converted
    task_metric: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (before, after)
    tolerance: float | None = None

    @property
    def size_ratio(self) -> float:
        return self.bytes_after / self.bytes_before

    @property
    def passed(self) -> bool:
        return self.tolerance is None or self.max_abs_error <= self.tolerance


def weight_axes(graph: onnx.GraphProto) -> dict[str, int]:
    """Initializers that are weight matrices, each with its output-channel axis.

    An initializer qualifies when every node that reads it reads it as a weight along the
    same axis: W and R of a recurrent node ([1, gates*hidden, n], axis 1), the B of Gemm
    (axis 0 with transB, else 1), the constant right operand of MatMul (axis 1), the table
    of an embedding Gather (axis 0, one scale per row), the W of Conv ([c_out, c_in/group,
    *kernel], axis 0: one scale per filter) and of ConvTranspose ([c_in, c_out/group, *kernel],
    axis 1). Nodes inside If, Loop and Scan bodies count as readers of the outer initializers.
    """
    initializers = {t.name: t for t in graph.initializer}
    uses: dict[str, set] = {}
    for node in _readers(graph, set()):
        for index, name in enumerate(node.input):
            if name in initializers:
                uses.setdefault(name, set()).add(_weight_axis(node, index, initializers))
    return {name: axes.pop() for name, axes in uses.items()
            if len(axes) == 1 and None not in axes
            and initializers[name].data_type == onnx.TensorProto.FLOAT}


def _readers(graph: onnx.GraphProto, shadowed: set):
    """Every node of ``graph`` and of its subgraphs (the branches of If, the bodies of Loop and
    Scan read the outer graph's initializers too), each with the inputs that name one of the
    outer graph's values; a name a subgraph defines itself (``shadowed``) is blanked."""
    for node in graph.node:
        if shadowed & set(node.input):
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.input[:] = ["" if name in shadowed else name for name in node.input]
            node = copy
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs):
                own = {t.name for t in subgraph.initializer} | {i.name for i in subgraph.input} \
                    | {o for n in subgraph.node for o in n.output}
                yield from _readers(subgraph, shadowed | own)


def _weight_axis(node, index, initializers) -> int | None:
    """The output-channel axis of input ``index`` of ``node`` if it is a weight, else None."""
    def rank(i):
        return len(initializers[node.input[i]].dims) if node.input[i] in initializers else None

    if node.op_type in ("LSTM", "GRU", "RNN") and index in (1, 2):
        return 1
    if node.op_type == "Gemm" and index == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul" and index == 1 and rank(1) == 2:
        return 1
    if node.op_type in ("Conv", "ConvTranspose") and index == 1:
        return 0 if node.op_type == "Conv" else 1
    if node.op_type == "Gather" and index == 0 and rank(0) == 2 and node.input[1] not in initializers:
        return 0
    return None


def weight_groups(graph: onnx.GraphProto) -> list[tuple[list[str], int]]:
    """The weights of ``weight_axes`` grouped by shared scale: a recurrent node's W and R
    together, every other weight alone. Each group comes with its output-channel axis."""
    axes = weight_axes(graph)
    groups, grouped = [], set()
    for node in graph.node:
        pair = list(node.input[1:3])
        if node.op_type in ("LSTM", "GRU", "RNN") and len(pair) == 2 and all(n in axes for n in pair) \
                and not grouped & set(pair) and pair[0] != pair[1]:
            groups.append((pair, 1))
            grouped.update(pair)
    groups += [([name], axis) for name, axis in axes.items() if name not in grouped]
    return groups


def quantize_int8(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with its weight matrices in QDQ int8 form, and their names."""
    model = _copy(model, MIN_OPSET)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    groups = weight_groups(graph)
    converted = {name for names, _ in groups for name in names}
    kept = [t for t in graph.initializer if t.name not in converted]
    nodes = []
    for names, axis in groups:
        arrays = [numpy_helper.to_array(initializers[name]) for name in names]
        scale = channel_scales(arrays, axis)
        scale_name = f"{names[0]}_scale"
        kept.append(numpy_helper.from_array(scale, scale_name))
        for name, weights in zip(names, arrays):
            kept.append(numpy_helper.from_array(to_int8(weights, scale, axis), f"{name}_int8"))
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}_int8", scale_name], [name], axis=axis))
    _replace(graph, kept, nodes, converted)
    return model, sorted(converted)


def channel_scales(arrays: list[np.ndarray], axis: int) -> np.ndarray:
    """One symmetric int8 scale per index of ``axis``, over all ``arrays``: max|w| / 127, so
    that every channel uses the full int8 range; an all-zero channel gets scale 1."""
    peak = np.zeros(arrays[0].shape[axis], np.float64)
    for weights in arrays:
        others = tuple(i for i in range(weights.ndim) if i != axis)
        peak = np.maximum(peak, np.abs(weights).max(axis=others))
    return np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)


def to_int8(weights: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    shape = [-1 if i == axis else 1 for i in range(weights.ndim)]
    return np.clip(np.rint(weights / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)


def quantize_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with every float32 initializer stored as float16 behind a Cast."""
    model = _copy(model, 1)
    graph = model.graph
    kept, nodes, converted = [], [], []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            kept.append(tensor)
            continue
        half = f"{tensor.name}_fp16"
        kept.append(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), half))
        nodes.append(helper.make_node("Cast", [half], [tensor.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{tensor.name}_to_float"))
        converted.append(tensor.name)
    _replace(graph, kept, nodes, set(converted))
    return model, converted


def quantize(source, output, mode: str = "int8", calibration=None, tolerance: float | None = None,
             steps: int = 200, seed: int = 0, columns: list[str] | None = None,
             load_options: LoadOptions | None = None) -> QuantizationReport:
    """Quantize the ONNX file ``source`` into ``output`` and measure what it costs.

    The outputs of the fp32 and the quantized model are compared with edgeseq's runtime over
    ``calibration`` rows (CSV or .npy; of a CSV, the ``columns`` named, by default those the model
    was trained on when its metadata records them), or ``steps`` random steps, state carried. The report
    says the file sizes and the errors, and whether they are within ``tolerance``. ``output``
    is written (atomically) only when everything succeeded and the errors are within
    ``tolerance``: a failed quantization leaves no file behind. ``load_options``: how edgeseq's
    runtime loads both files (constants, state pairs, input shape, context).
    """
    if mode not in MODES:
        raise QuantizationError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    source, output = os.fspath(source), os.fspath(output)
    load_options = load_options or LoadOptions()
    reference = load(source, **load_options.fields())  # validates the model before any work
    model = onnx.load(source)
    inputs = _inputs(reference, calibration, columns or _trained_columns(model), steps, seed)
    bytes_before = _file_bytes(source)
    quantized, names = (quantize_int8 if mode == "int8" else quantize_fp16)(model)
    if not names:
        raise QuantizationError(f"{source}: no weights to quantize")
    onnx.checker.check_model(quantized)
    serialized = quantized.SerializeToString()
    expected = reference.run(inputs)
    got = StreamingModel(lower(quantized, output, 1, load_options), 1, output).run(inputs)
    error = np.abs(got.astype(np.float64) - expected)
    report = QuantizationReport(mode, source, output, bytes_before, len(serialized), len(inputs),
                                float(error.max()), float(error.mean()), names,
                                _task_metrics(model, inputs, expected, got, calibration is not None), tolerance)
    if report.passed:
        write_atomic(output, serialized)
    return report


def _task_metrics(model: onnx.ModelProto, inputs, expected, got, real_data: bool) -> dict:
    """The model's own score before and after, for the task its edgeseq metadata names:
    classes and tokens: how often the top class agrees with the fp32 model's; a one-step-ahead
    forecaster (as many outputs as inputs) on real data: the RMSE of its forecasts."""
    task = json.loads({p.key: p.value for p in model.metadata_props}.get("edgeseq.task", "{}"))
    kind = task.get("kind")
    if kind in ("classification", "tokens"):
        agreement = float(np.mean(np.argmax(expected, -1) == np.argmax(got, -1)))
        return {"top-1 agreement with fp32": (1.0, agreement)}
    if kind == "regression" and real_data and inputs.ndim == 2 and expected.shape[-1] == inputs.shape[-1]:
        target = inputs[1:].astype(np.float64)
        return {"forecast RMSE (next row)": (float(np.sqrt(np.mean((expected[:-1] - target) ** 2))),
                                             float(np.sqrt(np.mean((got[:-1] - target) ** 2))))}
    return {}


def _trained_columns(model: onnx.ModelProto) -> list[str] | None:
    """The CSV columns the model was trained on, as its edgeseq metadata records them."""
    recorded = {p.key: p.value for p in model.metadata_props}.get("edgeseq.input_columns")
    try:
        columns = json.loads(recorded) if recorded else None
    except ValueError:
        return None
    return columns if isinstance(columns, list) and all(isinstance(c, str) for c in columns) else None


def _inputs(model, calibration, columns, steps: int, seed: int) -> np.ndarray:
    if calibration is not None:
        if model.is_token_model:
            return read_rows(calibration, 1, columns)[:, 0].astype(np.int64)
        return read_rows(calibration, model.input_size, columns)
    rng = np.random.default_rng(seed)
    if model.is_token_model:
        return rng.integers(0, model.vocab_size, steps)
    return rng.standard_normal((steps, model.input_size)).astype(np.float32)


def _copy(model: onnx.ModelProto, min_opset: int) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for opset in copy.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < min_opset:
            raise QuantizationError(f"the model uses opset {opset.version}; per-channel int8 needs "
                                    f"opset {min_opset} or later (re-export with a newer opset)")
    return copy


def _replace(graph: onnx.GraphProto, initializers, new_nodes, renamed: set[str]) -> None:
    """Swap in the new initializers and put the new nodes first (they read initializers only)."""
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(list(new_nodes) + nodes)
    inputs = [vi for vi in graph.input if vi.name not in renamed]  # IR < 4 lists initializers as inputs
    del graph.input[:]
    graph.input.extend(inputs)


def _file_bytes(path: str) -> int:
    """The model's size on disk, external data included."""
    total = os.path.getsize(path)
    model = onnx.load(path, load_external_data=False)
    folder = os.path.dirname(os.path.abspath(path))
    locations = {entry.value for t in model.graph.initializer for entry in t.external_data if entry.key == "location"}
    return total + sum(os.path.getsize(os.path.join(folder, loc)) for loc in locations
                       if os.path.exists(os.path.join(folder, loc)))
