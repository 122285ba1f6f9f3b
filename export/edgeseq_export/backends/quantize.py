"""Weight quantization of streaming ONNX models: int8 (QDQ) and fp16.

int8: every weight (what a Conv, ConvTranspose, Gemm, MatMul, LSTM, GRU or RNN reads as its
weight, and embedding tables) is stored as int8 with one symmetric scale per output channel,
behind a standard ``DequantizeLinear`` node (QDQ), so that onnxruntime, ``onnx.checker`` and
Netron read the file and edgeseq's runtime keeps the weights int8 in memory. Biases and
peepholes stay float32; the zero point is left out (ONNX's default, 0: symmetric). A weight is
found wherever the file keeps it: an initializer of the graph or of an If, Loop or Scan body, or
a ``Constant`` node (Silero VAD keeps its whole network in Constants inside If branches), and
through the layout ops between it and its reader (Slice and Concat reordering gates, Unsqueeze
adding the direction axis), which keep the weight's channels apart. ``quantize(block_size=B)``
stores one scale per B values along each weight's first input axis instead (DequantizeLinear's
``block_size``, opset 21): ONNX Runtime runs such files, edgeseq's runtime does not load them
(``benchmarks/silero_int8_granularity.py`` measures what they would gain).

fp16: every weight is stored as float16 behind a ``Cast`` to float32: half the file, computed
in float32. Biases and the other float tensors stay float32, as in int8: they are a few floats,
and a bias weighs on every output of its channel (one of Silero VAD's conv biases in float16
alone moves its speech probability by 0.015).

Rounding: each int8 weight is rounded to nearest or by GPTQ on the inputs it meets over the
calibration steps (``gptq.py``), whichever moves the model's outputs less, measured; with a
tolerance, a Conv's filters may also be scaled along another axis (then the runtime holds them
as float32). Mixed
precision: with a tolerance, the weights whose int8 form would take the outputs past it stay
float (fp16, or float32 where fp16 too would pass it). What each weight became, and how it was rounded, is recorded in the file's metadata
(``edgeseq.quantization``) and in the report.
"""

import json
import os
import wave
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from edgeseq_runtime import EdgeseqError, LoadOptions, StreamingModel, load
from edgeseq_runtime.atomic import write_atomic
from edgeseq_runtime.errors import first_line
from edgeseq_runtime.lowering import lower
from edgeseq_runtime.untrusted_file import UnreadableFile, open_regular
from onnx import helper, numpy_helper, version_converter

from ..rows import MAX_DATA_BYTES, DataError, read_rows
from . import audio_variants
from .gptq import (
    INT8_MAX,
    UNREADABLE,
    Curvature,
    features,
    gptq,
    inline_taken_branches,
    layer_inputs,
)

MODES = ("int8", "fp16")
MAX_GPTQ_COLUMNS = 4096  # inputs per output channel: H takes columns^2 float64 (128 MB here)
MAX_GPTQ_STEPS = 4096  # calibration steps whose layer inputs GPTQ reads (all are kept in memory)
MIN_OPSET = 13  # per-axis DequantizeLinear
BLOCKED_OPSET = 21  # DequantizeLinear's block_size
METADATA_KEY = "edgeseq.quantization"
RECURRENT = ("LSTM", "GRU", "RNN")
# Ops that move a weight's values without mixing its channels: each output axis comes from one
# input axis (or is a new axis of size 1).
LAYOUT = ("Identity", "Unsqueeze", "Squeeze", "Transpose", "Slice", "Concat", "Split")


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
    quantized: list[str] = field(default_factory=list)   # tensors stored in ``mode``
    task_metric: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (before, after)
    tolerance: float | None = None
    precisions: dict[str, str] = field(default_factory=dict)  # int8: each weight's precision
    unreached: list[str] = field(default_factory=list)  # weights the calibration never reads
    rounding: dict[str, str] = field(default_factory=dict)  # int8 weights not rounded to nearest: how
    nearest_because: str | None = None  # why no weight could be rounded on its inputs
    variants: tuple[str, ...] = ()  # the calibration audio's variants measured too (``audio_variants``)

    @property
    def size_ratio(self) -> float:
        return self.bytes_after / self.bytes_before

    @property
    def passed(self) -> bool:
        return self.tolerance is None or self.max_abs_error <= self.tolerance

    def count(self, precision: str) -> int:
        return sum(1 for p in self.precisions.values() if p == precision)


# -- where the weights are ---------------------------------------------------------------

@dataclass(frozen=True)
class Tensor:
    """A float tensor the file stores: an initializer or a Constant node's value in graph number
    ``graph`` (``_Values.graphs``: the main graph, then its subgraphs depth first)."""
    graph: int
    name: str


class _Values:
    """Every value of a graph and of its subgraphs, found by name from where it is read:
    a subgraph sees its own names first, then its enclosing graphs'."""

    def __init__(self, graph: onnx.GraphProto):
        self.graphs: list[onnx.GraphProto] = []
        self.defined: list[dict] = []  # per graph: name -> ("initializer", tensor) | ("node", node) | ("input", None)
        self.readers: dict = defaultdict(list)  # (graph, name) -> [(node, input index, scope)]
        self.owners: dict[int, tuple] = {}  # subgraph -> (the node holding it, its attribute name)
        self._walk(graph, ())

    def _walk(self, graph, outer: tuple, owner: tuple | None = None):
        number = len(self.graphs)
        self.graphs.append(graph)
        if owner:
            self.owners[number] = owner
        defined = {i.name: ("input", None) for i in graph.input}
        defined.update({t.name: ("initializer", t) for t in graph.initializer})
        defined.update({o: ("node", n) for n in graph.node for o in n.output if o})
        self.defined.append(defined)
        scope = (*outer, number)
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name and (key := self.resolve(scope, name)):
                    self.readers[key].append((node, index, scope))
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                    self._walk(subgraph, scope, (node, attribute.name))
        for output in graph.output:
            if key := self.resolve(scope, output.name):
                self.readers[key].append((None, 0, scope))

    def taken(self, scope: tuple, branches: dict) -> bool:
        """Whether the graphs of ``scope`` are those the loader ran: each an If branch it took
        (``branches``: {If's first output: branch name}), none a Loop or Scan body."""
        return all(branches.get(self.owners[g][0].output[0]) == self.owners[g][1]
                   for g in scope if g in self.owners)

    def resolve(self, scope: tuple, name: str):
        return next(((g, name) for g in reversed(scope) if name in self.defined[g]), None)

    def constant(self, scope: tuple, name: str) -> np.ndarray | None:
        """The value of ``name`` if the file stores it (an initializer or a Constant node)."""
        key = self.resolve(scope, name) if name else None
        if key is None:
            return None
        kind, where = self.defined[key[0]][name]
        if kind == "initializer":
            return numpy_helper.to_array(where)
        if kind == "node" and where.op_type == "Constant":
            value = _constant_tensor(where)
            return None if value is None else numpy_helper.to_array(value)
        return None

    def tensors(self):
        """Every float32 tensor stored: (Tensor, its TensorProto)."""
        for number, defined in enumerate(self.defined):
            for name, (kind, where) in defined.items():
                tensor = where if kind == "initializer" else \
                    _constant_tensor(where) if kind == "node" and where.op_type == "Constant" else None
                if tensor is not None and tensor.data_type == onnx.TensorProto.FLOAT:
                    yield Tensor(number, name), tensor


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    return next((a.t for a in node.attribute if a.name == "value"), None)


def _axes(node, values: _Values, scope) -> list[int] | None:
    """The ``axes`` of an Unsqueeze or Squeeze (an attribute before opset 13, an input since);
    None when they are computed at run time."""
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1:
        value = values.constant(scope, node.input[1])
        return None if value is None else [int(v) for v in value.ravel()]
    return axes if axes is not None else []


def _moved(node, values: _Values, scope, layout: list) -> list | None:
    """``layout`` (for each axis of a layout op's data input, the weight's own axis it holds, or
    None) as it is on the op's output; None when the op mixes axes (or its axes are unknown)."""
    if node.op_type in ("Identity", "Slice", "Concat", "Split"):
        return layout
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), list(range(len(layout)))[::-1])
        return [layout[p] for p in perm]
    axes = _axes(node, values, scope) if node.op_type in ("Unsqueeze", "Squeeze") else None
    if axes is None:
        return None
    if node.op_type == "Unsqueeze":
        moved = list(layout)
        for axis in sorted(a % (len(layout) + len(axes)) for a in axes):
            moved.insert(axis, None)
        return moved
    squeezed = {a % len(layout) for a in axes}  # Squeeze without axes drops every axis of size 1: unknown here
    return [a for i, a in enumerate(layout) if i not in squeezed] if axes else None


def _channel_axis(node, index, rank: int, values: _Values, scope) -> int | None:
    """The output-channel axis of input ``index`` of ``node`` if it reads it as a weight of
    ``rank`` dims, else None."""
    if node.op_type in RECURRENT and index in (1, 2):
        return 1
    if node.op_type == "Gemm" and index == 1 and rank == 2:
        return 0 if next((a.i for a in node.attribute if a.name == "transB"), 0) else 1
    if node.op_type == "MatMul" and index == 1 and rank == 2:
        return 1
    if node.op_type in ("Conv", "ConvTranspose") and index == 1:
        return 0 if node.op_type == "Conv" else 1
    if node.op_type == "Gather" and index == 0 and rank == 2 and values.constant(scope, node.input[1]) is None:
        return 0
    return None


def _weight_axis(values: _Values, key, layout: list, seen: set, uses: list) -> set:
    """The weight's own axes that its readers (through layout ops) take as output channels;
    None in the set when some reader does not read it as a weight. Each reading is added to
    ``uses`` as (node, input index, layout there, scope)."""
    axes = set()
    for node, index, scope in values.readers.get(key, []):
        if node is None or id(node) in seen:
            axes.add(None)
            continue
        axis = _channel_axis(node, index, len(layout), values, scope)
        if axis is not None:
            axes.add(layout[axis])
            uses.append((node, index, layout, scope))
            continue
        moved = _moved(node, values, scope, layout) if node.op_type in LAYOUT and \
            (index == 0 or node.op_type == "Concat") else None
        if moved is None:
            axes.add(None)
            continue
        for output in node.output:
            if output:
                axes |= _weight_axis(values, values.resolve(scope, output), moved, seen | {id(node)}, uses)
    return axes


def weights(graph: onnx.GraphProto) -> dict[Tensor, int]:
    """The stored tensors that are weights, each with its output-channel axis.

    A float tensor qualifies when every reader, through layout ops, reads it as a weight along
    one and the same axis of its own: W and R of a recurrent node ([1, gates*hidden, n], axis 1),
    the B of Gemm (axis 0 with transB, else 1), the constant right operand of MatMul (axis 1),
    the table of an embedding Gather (axis 0), the W of Conv (axis 0: one scale per filter) and
    of ConvTranspose (axis 1)."""
    return {tensor: axis for tensor, (axis, _) in _weights_and_uses(_Values(graph)).items()}


def _weights_and_uses(values: _Values) -> dict:
    """{Tensor: (output-channel axis, [(reader, input index, layout there, scope)])} of ``weights``."""
    found = {}
    for tensor, proto in values.tensors():
        uses = []
        axes = _weight_axis(values, (tensor.graph, tensor.name), list(range(len(proto.dims))), set(), uses)
        if len(axes) == 1 and None not in axes:
            found[tensor] = (axes.pop(), uses)
    return found


def weight_axes(graph: onnx.GraphProto) -> dict[str, int]:
    """``weights`` by name."""
    return {tensor.name: axis for tensor, axis in weights(graph).items()}


# -- storing them ------------------------------------------------------------------------

def channel_scales(weights: np.ndarray, axis: int) -> np.ndarray:
    """One symmetric int8 scale per index of ``axis``: max|w| / 127, so that every channel uses
    the full int8 range; an all-zero channel gets scale 1."""
    others = tuple(i for i in range(weights.ndim) if i != axis)
    peak = np.abs(weights.astype(np.float64)).max(axis=others)
    return np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)


def input_axis(shape, axis: int) -> int | None:
    """The first of a weight's input axes (all but its output-channel ``axis``) longer than 1,
    along which its scales are blocked; None when each output channel holds one value."""
    return next((i for i, n in enumerate(shape) if i != axis and n > 1), None)


def blocked_scales(weights: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """One symmetric int8 scale per ``block_size`` consecutive values along ``axis``, for each
    index of the other axes: DequantizeLinear's blocked scales (the weights' rank, ``axis``
    ceil(n / block_size) long); an all-zero block gets scale 1."""
    moved = np.moveaxis(np.abs(weights.astype(np.float64)), axis, -1)
    count = -(-moved.shape[-1] // block_size)
    padded = np.zeros((*moved.shape[:-1], count * block_size))
    padded[..., :moved.shape[-1]] = moved
    peak = padded.reshape(*moved.shape[:-1], count, block_size).max(axis=-1)
    return np.moveaxis(np.where(peak > 0, peak / INT8_MAX, 1.0), -1, axis).astype(np.float32)


def to_int8(weights: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    shape = [-1 if i == axis else 1 for i in range(weights.ndim)]
    return np.clip(np.rint(weights / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)


def _halves(array: np.ndarray) -> bool:
    """Whether float16 holds ``array`` without turning a finite value infinite."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(array.astype(np.float16)[np.isfinite(array)]).all())


def quantize_int8(model: onnx.ModelProto, keep: dict | None = None, rounded: dict | None = None,
                  block_size: int = 0) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with its weights in QDQ int8 form, and their names. ``keep``:
    {Tensor: "fp16" or "float32"} for weights stored otherwise; ``rounded``: {Tensor: Rounding}
    for weights whose int8 values were worked out already (else: nearest, per output channel, or
    with a ``block_size``, per that many values along the weight's first input axis, which needs
    opset 21)."""
    model = _copy(model, BLOCKED_OPSET if block_size else MIN_OPSET)
    keep, rounded = keep or {}, rounded or {}
    plan = {tensor: (keep.get(tensor, "int8"), rounded.get(tensor, axis))
            for tensor, axis in weights(model.graph).items()}
    plan = {tensor: how for tensor, how in plan.items() if how[0] != "float32"}
    _store(model, plan, block_size)
    return model, sorted({tensor.name for tensor, (precision, _) in plan.items() if precision == "int8"})


def quantize_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with every weight it stores (``weights``: initializers and Constants,
    in subgraphs too) as float16 behind a Cast; a weight float16 cannot hold stays float32, and
    so do biases and every other float tensor, as in int8."""
    model = _copy(model, 1)
    values = _Values(model.graph)
    found = _weights_and_uses(values)
    plan = {tensor: ("fp16", None) for tensor, proto in values.tensors()
            if tensor in found and _halves(numpy_helper.to_array(proto))}
    _store(model, plan)
    return model, sorted({tensor.name for tensor in plan})


def _store(model: onnx.ModelProto, plan: dict, block_size: int = 0) -> None:
    """Store each tensor of ``plan`` ({Tensor: (precision, axis)}) in its precision, with the node
    that turns it back into float32 under its old name, where the tensor was (int8 rounded to
    nearest: scales per ``block_size`` values, or per output channel)."""
    values = _Values(model.graph)
    fresh = _FreshNames(values)
    # Innermost graphs first: rebuilding a graph's node list copies its nodes, subgraphs included.
    for number, graph in reversed(list(enumerate(values.graphs))):
        mine = {tensor.name: how for tensor, how in plan.items() if tensor.graph == number}
        if not mine:
            continue
        initializers, front, nodes = [], [], []
        for tensor in graph.initializer:
            if tensor.name in mine:
                stored, node = _stored(numpy_helper.to_array(tensor), tensor.name, *mine[tensor.name], fresh,
                                       block_size)
                initializers += stored
                front.append(node)
            else:
                initializers.append(tensor)
        for node in graph.node:
            name = node.output[0] if node.op_type == "Constant" and node.output else None
            if name in mine and _constant_tensor(node) is not None:
                stored, restore = _stored(numpy_helper.to_array(_constant_tensor(node)), name, *mine[name], fresh,
                                          block_size)
                nodes += [helper.make_node("Constant", [], [t.name], name=fresh(t.name), value=t) for t in stored]
                nodes.append(restore)
            else:
                nodes.append(node)
        del graph.initializer[:]
        graph.initializer.extend(initializers)
        del graph.node[:]
        graph.node.extend(front + nodes)
        inputs = [vi for vi in graph.input if vi.name not in mine]  # IR < 4 lists initializers as inputs
        del graph.input[:]
        graph.input.extend(inputs)


@dataclass(frozen=True)
class Rounding:
    """A weight's int8 values and scales, worked out beforehand (``gptq``), along ``axis``: one
    scale per index, or with a ``block_size``, per that many values along it (of the weight's rank)."""
    q: np.ndarray
    scale: np.ndarray
    axis: int
    block_size: int = 0

    @classmethod
    def nearest(cls, array: np.ndarray, axis: int, block_size: int) -> "Rounding":
        """``array`` rounded to nearest with scales blocked along its first input axis (per output
        channel ``axis`` when it has none)."""
        blocked = input_axis(array.shape, axis)
        if blocked is None:
            scale = channel_scales(array, axis)
            return cls(to_int8(array, scale, axis), scale, axis)
        scale = blocked_scales(array, blocked, block_size)
        steps = np.repeat(scale, block_size, blocked).take(range(array.shape[blocked]), blocked)
        return cls(np.clip(np.rint(array / steps), -INT8_MAX, INT8_MAX).astype(np.int8), scale, blocked, block_size)


def _stored(array: np.ndarray, name: str, precision: str, axis, fresh, block_size: int = 0):
    """The tensors that store ``array`` in ``precision`` and the node that computes ``name``
    from them. ``axis``: the int8 scales' axis (per output channel, or blocked per
    ``block_size`` values), or a ``Rounding``."""
    if precision == "fp16":
        half = numpy_helper.from_array(array.astype(np.float16), fresh(f"{name}_fp16"))
        return [half], helper.make_node("Cast", [half.name], [name], name=fresh(f"{name}_to_float"),
                                        to=onnx.TensorProto.FLOAT)
    if block_size and not isinstance(axis, Rounding):
        axis = Rounding.nearest(array, axis, block_size)
    if not isinstance(axis, Rounding):
        scale = channel_scales(array, axis)
        axis = Rounding(to_int8(array, scale, axis), scale, axis)
    q = numpy_helper.from_array(axis.q, fresh(f"{name}_int8"))
    scales = numpy_helper.from_array(axis.scale, fresh(f"{name}_scale"))
    blocked = {"block_size": axis.block_size} if axis.block_size else {}
    return [q, scales], helper.make_node("DequantizeLinear", [q.name, scales.name], [name],
                                         name=fresh(f"{name}_dequantize"), axis=axis.axis, **blocked)


def calibrated_rounding(model: onnx.ModelProto, load_options: LoadOptions, steps: np.ndarray,
                        branches: dict, other_axes: bool = False, block_size: int = 0) -> tuple[dict, str | None]:
    """{Tensor: [Rounding]} by GPTQ on the inputs each weight meets over ``steps``, for the weights
    whose inputs can be read (those of the If branches the loader took, ``branches``). With
    ``other_axes``, a Conv's filters may take their scales along another axis where that halves
    the error on those inputs (Silero's STFT basis: one scale per tap, its window's shape); the
    runtime and the generated C then hold them as float32 (only one scale per output channel
    stays int8 in memory). With a ``block_size``, the scales are blocked instead (``Rounding.nearest``),
    each block's fixed as GPTQ reaches it. With it, why no weight could be rounded so (then every
    weight is rounded to nearest)."""
    values = _Values(_copy(model, MIN_OPSET).graph)
    found = _weights_and_uses(values)
    wanted = {tensor: [(node, index, layout) for node, index, layout, scope in uses if values.taken(scope, branches)]
              for tensor, (_, uses) in found.items()}
    names = sorted({name for uses in wanted.values() for node, _, _ in uses
                    for name in (node.input[0], *(node.output[:2] if node.op_type in RECURRENT else ())) if name})
    flat = inline_taken_branches(model, branches)
    if flat is None:
        return {}, "an If whose branch the loader did not record"
    try:
        seen = layer_inputs(flat, load_options, steps[:MAX_GPTQ_STEPS], names)
    except UNREADABLE as e:
        return {}, f"ONNX Runtime cannot step the model to read its layers' inputs ({first_line(e)})"
    rounded = {}
    for tensor, (axis, _) in found.items():
        array = numpy_helper.to_array(_tensor_proto(values, tensor))
        columns = array.size // max(array.shape[axis], 1)
        readings = [features(node, index, seen, columns) for node, index, layout in wanted[tensor]
                    if columns <= MAX_GPTQ_COLUMNS and _in_order(layout, axis, array.shape)]
        readings = [inputs for inputs in readings if inputs is not None and inputs.shape[1] == columns]
        if readings:
            hessian = sum(inputs.T.astype(np.float64) @ inputs for inputs in readings)
            conv = any(node.op_type == "Conv" for node, _, _ in wanted[tensor])
            rounded[tensor] = _gptq_roundings(array, axis, hessian, other_axes and conv, block_size)
    return rounded, None


def _in_order(layout: list, axis: int, shape) -> bool:
    """Whether the reader sees the weight's input axes (all but ``axis``) in the weight's own order."""
    own = [a for a in layout if a is not None and a != axis and shape[a] > 1]
    return own == [a for a in range(len(shape)) if a != axis and shape[a] > 1]


def _gptq_roundings(array: np.ndarray, axis: int, hessian: np.ndarray, other_axes: bool,
                    block_size: int = 0) -> list[Rounding]:
    """GPTQ with one scale per output channel (``axis``); with ``other_axes`` also along the
    other axis, of at most 1/16 as many scales as values, that has the least error on the inputs
    (tr(D H D^T)), when that is under half the first one's; with a ``block_size``, with blocked
    scales alone."""
    rows = np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1).astype(np.float64)
    curvature = Curvature.of(hessian)
    blocked = input_axis(array.shape, axis) if block_size else None
    if blocked is not None:
        # Each scale's group, numbered over the scales' shape without the output axis.
        shape = [1 if i == axis else -(-n // block_size) if i == blocked else n for i, n in enumerate(array.shape)]
        groups = np.repeat(np.arange(np.prod(shape)).reshape(shape), block_size, blocked)
        groups = groups.take(range(array.shape[blocked]), blocked)
        scales = np.empty((rows.shape[0], int(np.prod(shape))))
        q = gptq(rows, curvature, scales, np.moveaxis(groups, axis, 0).ravel())
        scale = np.moveaxis(scales.reshape(rows.shape[0], *np.delete(shape, axis)), 0, axis)
        restored = np.moveaxis(q.reshape(np.moveaxis(array, axis, 0).shape), 0, axis)
        return [Rounding(np.ascontiguousarray(restored), scale.astype(np.float32), blocked, block_size)]

    def attempt(scale_axis):
        scale = channel_scales(array, scale_axis)
        shape = [-1 if i == scale_axis else 1 for i in range(array.ndim)]
        steps = np.moveaxis(np.broadcast_to(scale.reshape(shape), array.shape), axis, 0).reshape(rows.shape)
        q = gptq(rows, curvature, steps)
        difference = rows - q * steps
        restored = np.moveaxis(q.reshape(np.moveaxis(array, axis, 0).shape), 0, axis)
        return float(np.sum((difference @ hessian) * difference)), Rounding(np.ascontiguousarray(restored), scale,
                                                                             scale_axis)

    channel_error, channel = attempt(axis)
    found = [attempt(a) for a in range(array.ndim)
             if other_axes and a != axis and 1 < array.shape[a] <= array.size // 16]
    best = min(found, key=lambda attempt: attempt[0], default=None)
    return [channel] + ([best[1]] if best and best[0] < channel_error / 2 else [])


def _tensor_proto(values: _Values, tensor: Tensor) -> onnx.TensorProto:
    kind, where = values.defined[tensor.graph][tensor.name]
    return _constant_tensor(where) if kind == "node" else where


class _FreshNames:
    """Names no value or node of the model uses yet."""

    def __init__(self, values: _Values):
        self.used = {name for defined in values.defined for name in defined}
        self.used |= {n.name for g in values.graphs for n in g.node}

    def __call__(self, wanted: str) -> str:
        name, number = wanted, 0
        while name in self.used:
            number += 1
            name = f"{wanted}_{number}"
        self.used.add(name)
        return name


# -- measuring ---------------------------------------------------------------------------

def quantize(source, output, mode: str = "int8", calibration=None, tolerance: float | None = None,
             steps: int = 200, seed: int = 0, columns: list[str] | None = None,
             load_options: LoadOptions | None = None, *, block_size: int = 0, outputs=None) -> QuantizationReport:
    """Quantize the ONNX file ``source`` into ``output`` and measure what it costs.

    The outputs of the fp32 and the quantized model are compared with edgeseq's runtime, both
    loaded with ``load_options`` (constants, state pairs, input shape, context), over
    ``calibration``: rows of a CSV or .npy (of a CSV, the ``columns`` named, by default those
    the model was trained on when its metadata records them), or a mono PCM WAV cut into steps
    of the step input's size; else ``steps`` random steps; state carried. In int8 mode with a
    ``tolerance``, the weights whose int8 form would take the outputs past it are kept in fp16
    (mixed precision, measured weight by weight). A tolerance is held on steps the roundings were
    not fitted to: GPTQ reads the first half of the calibration, the error is measured over all
    of it, and over ``audio_variants`` of a WAV (other loudness, noise and speed), so that it
    holds on audio other than the calibration's. ``output`` is written (atomically) only when
    everything succeeded and the errors are within ``tolerance``: a failed quantization leaves
    no file behind.

    ``block_size`` (int8): scales per that many values along each weight's first input axis
    instead of per output channel (DequantizeLinear's ``block_size``; the model is converted to
    opset 21), which edgeseq's runtime does not load: such files are measured by ``outputs``
    (``outputs(model, streams)``: the outputs of an ONNX model over each stream from its initial
    state, e.g. ONNX Runtime's), which replaces the runtime in measuring.
    """
    if mode not in MODES:
        raise QuantizationError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if type(block_size) is not int or block_size < 0 or (block_size and mode != "int8"):
        raise QuantizationError(f"block_size must be a whole number of values >= 0, for int8 only; got {block_size!r}")
    source, output = os.fspath(source), os.fspath(output)
    load_options = load_options or LoadOptions()
    reference = load(source, **load_options.fields())  # validates the model before any work
    model = onnx.load(source)
    if block_size and mode == "int8":
        model = version_converter.convert_version(model, BLOCKED_OPSET)
    inputs = _inputs(reference, calibration, columns or _trained_columns(model), steps, seed)
    # Under a tolerance, the choices are judged on what they were not fitted to: GPTQ reads the
    # first half of the calibration, the error is measured over all of it; a WAV's variants
    # (louder, quieter, noisier, faster, slower) join both, of the first half and of all.
    audio = calibration is not None and _is_wav(calibration) and not reference.is_token_model
    held_out = tolerance is not None
    fitted = inputs[:max(len(inputs) // 2, 1)] if held_out else inputs
    variants = audio_variants.NAMES if held_out and audio else ()
    if variants:
        fitted = np.concatenate([fitted, *audio_variants.variants(fitted)])
    streams = [inputs, *audio_variants.variants(inputs)] if variants else [inputs]
    expected = []
    for stream in streams:  # each from the initial state
        reference.reset()
        expected.append(reference.run(stream))

    def measure(candidate: onnx.ModelProto) -> tuple[float, list[np.ndarray]]:
        if outputs is None:
            plan = lower(candidate, output, 1, load_options)
            got = [StreamingModel(plan, 1, output).run(stream) for stream in streams]
        else:
            got = outputs(candidate, streams)
        return max(float(np.abs(g.astype(np.float64) - e).max()) for g, e in zip(got, expected)), got

    precisions, unreached, rounded, nearest_because = {}, [], {}, None
    if mode == "fp16":
        quantized, names = quantize_fp16(model)
    else:
        branches = lower(model, source, 1, load_options).branches
        # Scales along another axis only where a tolerance asks for accuracy before memory.
        options, nearest_because = calibrated_rounding(model, load_options, fitted, branches, held_out, block_size)
        quantized, names, precisions, rounded, unreached = _int8_within(source, model, tolerance, measure, options,
                                                                        block_size)
    if not names:
        raise QuantizationError(f"{source}: no weights to quantize")
    rounding = {tensor.name: f"gptq, scales along axis {r.axis}" + (f" in blocks of {r.block_size}" * bool(r.block_size))
                for tensor, r in rounded.items() if precisions.get(tensor.name) == "int8"}
    _record(quantized, mode, precisions, unreached, tolerance, rounding)
    onnx.checker.check_model(quantized)
    serialized = quantized.SerializeToString()
    got = measure(quantized)[1]
    error = np.concatenate([np.abs(g.astype(np.float64) - e).ravel() for g, e in zip(got, expected)])
    report = QuantizationReport(mode, source, output, _file_bytes(source), len(serialized), len(inputs),
                                float(error.max()), float(error.mean()), names,
                                _task_metrics(model, inputs, expected[0], got[0], calibration is not None), tolerance,
                                precisions, unreached, rounding, nearest_because, variants)
    if report.passed:
        write_atomic(output, serialized)
    return report


def _int8_within(source: str, model: onnx.ModelProto, tolerance: float | None, measure, options: dict,
                 block_size: int = 0):
    """int8 weights, each rounded the way that moves the outputs least; with a ``tolerance``,
    float kept for those that must stay float for the outputs to stay within it.

    Each weight is measured alone in int8 (the others float32), rounded to nearest and by each of
    its ``options`` ({Tensor: [Rounding]}); its best rounding is kept. With a tolerance the
    all-int8 model comes first; past it, from all fp16 (all float32 where fp16 too passes it), the
    weights are made int8 in the order of their error per value, then (from float32) the rest
    fp16 from the largest, each change kept only while the whole stays within. A weight whose
    int8 form does not change the outputs at all is one the calibration never runs (an untaken
    If branch): rounded to nearest, unmeasured. Scales per ``block_size`` values where given
    (``quantize_int8``)."""
    found = weights(_copy(model, MIN_OPSET).graph)
    floats = {tensor: "float32" for tensor in found}
    baseline = measure(quantize_int8(model, floats, block_size=block_size)[0])[1]
    alone, rounded = {}, {}
    for tensor in found:
        for option in (None, *options.get(tensor, ())):
            error, got = measure(quantize_int8(model, {**floats, tensor: "int8"}, {tensor: option} if option else {},
                                               block_size)[0])
            if all(np.array_equal(g, b) for g, b in zip(got, baseline)):
                break
            if tensor not in alone or error < alone[tensor]:
                alone[tensor] = error
                rounded.pop(tensor, None)
                if option:
                    rounded[tensor] = option
    unreached = sorted(tensor.name for tensor in found if tensor not in alone)
    quantized, names = quantize_int8(model, rounded=rounded, block_size=block_size)
    if tolerance is None or not found or measure(quantized)[0] <= tolerance:
        return quantized, names, {tensor.name: "int8" for tensor in found}, rounded, unreached

    def within(precisions: dict) -> bool:
        keep = {tensor: precision for tensor, precision in precisions.items() if precision != "int8"}
        return measure(quantize_int8(model, keep, rounded, block_size)[0])[0] <= tolerance

    sizes = {tensor: int(np.prod(proto.dims)) for tensor, proto in _Values(model.graph).tensors()}
    halves = measure(quantize_int8(model, {tensor: "fp16" for tensor in found}, block_size=block_size)[0])[0]
    # On all-fp16 weights where they stay within: never a larger file than fp16's.
    chosen = {tensor: "fp16" for tensor in found} if halves <= tolerance else dict(floats)
    for tensor in sorted(alone, key=lambda t: alone[t] / sizes[t]):  # the least error per value saved first
        if alone[tensor] <= tolerance and within({**chosen, tensor: "int8"}):
            chosen[tensor] = "int8"
    if "int8" not in chosen.values():
        least = min(alone, key=alone.get)
        raise QuantizationError(f"{source}: no weight stays within the tolerance {tolerance:g} as int8 (the least "
                                f"sensitive, {least.name}, moves the outputs by {alone[least]:.3g}); fp16 weights "
                                f"move them by {halves:.3g} (--mode fp16)")
    for tensor in sorted((t for t in found if chosen[t] == "float32"), key=lambda t: -sizes[t]):
        if within({**chosen, tensor: "fp16"}):
            chosen[tensor] = "fp16"
    quantized, names = quantize_int8(model, {t: p for t, p in chosen.items() if p != "int8"}, rounded, block_size)
    return quantized, names, {tensor.name: precision for tensor, precision in chosen.items()}, rounded, unreached


def _record(model: onnx.ModelProto, mode: str, precisions: dict, unreached: list, tolerance, rounding: dict) -> None:
    """What each weight became, in the file's metadata (``inspect`` and readers of the file see it)."""
    record = {"mode": mode, "tolerance": tolerance, "weights": precisions, "unreached": unreached,
              "rounding": rounding}
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(record, sort_keys=True))


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


def _is_wav(calibration) -> bool:
    return os.fspath(calibration).lower().endswith(".wav")


def _inputs(model, calibration, columns, steps: int, seed: int) -> np.ndarray:
    if calibration is not None:
        if _is_wav(calibration) and not model.is_token_model:
            return wav_steps(calibration, model.input_size)
        if model.is_token_model:
            return read_rows(calibration, 1, columns)[:, 0].astype(np.int64)
        return read_rows(calibration, model.input_size, columns)
    rng = np.random.default_rng(seed)
    if model.is_token_model:
        return rng.integers(0, model.vocab_size, steps)
    return rng.standard_normal((steps, model.input_size)).astype(np.float32)


def wav_steps(path, width: int) -> np.ndarray:
    """A mono PCM WAV (8, 16 or 32 bit) as float32 samples in [-1, 1), cut into steps of ``width``
    samples (a last partial step is left out): what an audio model streams, e.g. 576-sample
    windows for Silero VAD with ``--input-shape 576``, or its 512 new samples with ``--context 64``."""
    path = os.fspath(path)
    try:
        with open_regular(path, MAX_DATA_BYTES, "a data file may have") as f, wave.open(f, "rb") as wav:
            channels, width_bytes, frames = wav.getnchannels(), wav.getsampwidth(), wav.readframes(wav.getnframes())
    except UnreadableFile as e:
        raise DataError(f"{path}: {e}") from None
    except (wave.Error, EOFError) as e:
        raise DataError(f"{path}: not a PCM WAV file ({e})") from None
    if channels != 1 or width_bytes not in (1, 2, 4):
        raise DataError(f"{path}: expected mono 8, 16 or 32-bit PCM; got {channels} channel(s) of "
                        f"{width_bytes * 8} bits")
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width_bytes]
    whole = len(frames) // width_bytes * width_bytes  # a recording cut off mid-sample ends before it
    samples = np.frombuffer(frames[:whole], dtype).astype(np.float64)
    samples = (samples - 128) / 128 if width_bytes == 1 else samples / 2.0 ** (8 * width_bytes - 1)
    if len(samples) < width:
        raise DataError(f"{path}: {len(samples)} samples, fewer than one step of {width}")
    return samples[:len(samples) // width * width].reshape(-1, width).astype(np.float32)


def _copy(model: onnx.ModelProto, min_opset: int) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for opset in copy.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < min_opset:
            kind = "blocked" if min_opset == BLOCKED_OPSET else "per-channel"
            raise QuantizationError(f"the model uses opset {opset.version}; {kind} int8 needs "
                                    f"opset {min_opset} or later (re-export with a newer opset)")
    return copy


def _file_bytes(path: str) -> int:
    """The model's size on disk, external data included."""
    total = os.path.getsize(path)
    model = onnx.load(path, load_external_data=False)
    folder = os.path.dirname(os.path.abspath(path))
    locations = {entry.value for t in model.graph.initializer for entry in t.external_data if entry.key == "location"}
    return total + sum(os.path.getsize(os.path.join(folder, loc)) for loc in locations
                       if os.path.exists(os.path.join(folder, loc)))
