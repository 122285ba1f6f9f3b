"""What an ONNX model holds, for ``edgeseq inspect``: layers, parameters, state, metadata, size.

Works on any ONNX file. The state layout is the one edgeseq's runtime keeps for a stream of
the model (or the reason it cannot stream it), each state with the graph output that carries its
next value. Weights are counted where they are: initializers, Constant nodes, and inside the If
branches the runtime takes (both branches when it cannot tell which, as it cannot load the file).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import edgeseq_runtime
import onnx

from ..errors import SourceError
from .metadata import PREFIX, read_structure

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
               onnx.TensorProto.BFLOAT16)


@dataclass(frozen=True)
class LayerSummary:
    node: str
    op: str
    detail: str       # e.g. "hidden 64" for a recurrent node
    weights: str      # the shapes of its weight initializers
    parameters: int


@dataclass(frozen=True)
class StateSummary:
    name: str                 # the graph input that carries it
    shape: tuple[int, ...]    # for one stream (batch 1)
    next_name: str | None     # the graph output with its next value, when the metadata says


@dataclass(frozen=True)
class ValueSummary:
    name: str
    dtype: str
    shape: list               # ints, or names of dynamic axes


@dataclass
class Inspection:
    path: str
    file_size: int            # bytes, external data files included
    opset: int
    producer: str
    inputs: list[ValueSummary]
    outputs: list[ValueSummary]
    layers: list[LayerSummary]
    parameters: int           # the layers' weights and biases, as PyTorch counts a module's parameters
    constants: int            # other float constants: normalisation, quantization scales, ...
    states: list[StateSummary]
    not_streamable: str | None  # why edgeseq's runtime cannot stream it, or None
    metadata: dict[str, str]
    delay: int | None = None  # steps by which the stream lags the full-sequence forward (conv front ends)


# Ops whose constant operands are a layer's learned weights; an Add of a constant right after
# one of them is that layer's bias.
WEIGHTED_OPS = (*RECURRENT_OPS, "MatMul", "Gemm", "Gather", "Conv", "ConvTranspose")
# Nodes that only decode a stored weight (int8 behind DequantizeLinear, fp16 behind Cast).
DECODING_OPS = ("DequantizeLinear", "Cast")
# Nodes that only move a weight's values on its way to its layer (exporters unsqueeze an LSTM's
# W, or slice and concatenate it to reorder the gates): the result stands for its sources.
MOVING_OPS = ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat", "Split")


def inspect_model(path: str | os.PathLike, load_options: edgeseq_runtime.LoadOptions | None = None) -> Inspection:
    """What the file at ``path`` holds, and whether (and with what state) edgeseq's runtime
    streams it when loaded with ``load_options``."""
    path = os.fspath(path)
    model = read_structure(path, path)
    graph = model.graph
    if not graph.node:
        raise SourceError(f"{path}: not an ONNX model with a graph (no nodes found)")
    lowered, not_streamable = _lowered(path, load_options or edgeseq_runtime.LoadOptions())
    nodes, tensors = _taken(graph, lowered.branches if lowered else {})
    dims = {t.name: list(t.dims) for t in tensors}
    stored = _stored_weights(nodes, {t.name for t in tensors if t.data_type in FLOAT_TYPES}, set(dims))
    producer = {name: node for node in nodes for name in node.output}
    layers, claimed = [], set()
    for node in nodes:
        if node.op_type not in WEIGHTED_OPS and not _is_bias(node, producer, stored):
            continue
        mine = [source for name in node.input for source in stored.get(name, ()) if source not in claimed]
        mine = list(dict.fromkeys(mine))
        claimed.update(mine)
        if mine or node.op_type in RECURRENT_OPS:
            layers.append(LayerSummary(node.name or node.output[0], node.op_type, _detail(node, producer, dims),
                                       " ".join(_shape(dims[name]) for name in mine),
                                       sum(math.prod(dims[name]) for name in mine)))
    read = {name for node in nodes for name in node.input}  # not the weights of a branch not taken
    floats = {t.name: math.prod(t.dims) for t in tensors if t.data_type in FLOAT_TYPES and t.name in read}
    metadata = {p.key: p.value for p in model.metadata_props}
    states = _states(lowered, metadata) if lowered else []
    initializers = {t.name for t in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return Inspection(
        path, _file_size(path, graph), opset, f"{model.producer_name} {model.producer_version}".strip(),
        [_value(v) for v in graph.input if v.name not in initializers], [_value(v) for v in graph.output],
        layers, sum(layer.parameters for layer in layers),
        sum(size for name, size in floats.items() if name not in claimed),
        states, not_streamable, metadata, _delay(metadata))


def _taken(graph: onnx.GraphProto, branches: dict[str, str]) -> tuple[list, list]:
    """The nodes the runtime runs, those of the If branches it takes included (both branches
    of an If it did not decide), and every stored tensor they read: initializers of the graph
    and of those branches, and the values of Constant nodes (named by the node's output)."""
    nodes, tensors, pending = [], list(graph.initializer), [iter(graph.node)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
            continue
        nodes.append(node)
        if node.op_type == "Constant":
            tensors += [_named(a.t, node.output[0]) for a in node.attribute if a.name == "value"]
        if node.op_type != "If":
            continue
        taken = branches.get(node.output[0]) if node.output else None
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH and taken in (None, attr.name):
                tensors += list(attr.g.initializer)
                pending.append(iter(attr.g.node))
    return nodes, tensors


def _named(tensor: onnx.TensorProto, name: str) -> onnx.TensorProto:
    named = onnx.TensorProto()
    named.CopyFrom(tensor)
    named.name = name
    return named


def _stored_weights(nodes: list, floats: set[str], stored_names: set[str]) -> dict[str, tuple[str, ...]]:
    """Each value that holds weights, mapped to the tensors that store them: a float tensor
    stands for itself, the output of a DequantizeLinear or Cast of a stored tensor for that
    tensor (its scales and zero points are not weights), weights moved around for their sources."""
    stored = {name: (name,) for name in floats}
    for node in nodes:
        if not node.input or not node.output:
            continue
        if node.op_type in DECODING_OPS and node.input[0] in stored_names:
            stored[node.output[0]] = (node.input[0],)
        elif node.op_type in MOVING_OPS:
            data = node.input if node.op_type == "Concat" else node.input[:1]
            sources = tuple(dict.fromkeys(s for name in data for s in stored.get(name, ())))
            if sources:
                stored.update((out, sources) for out in node.output if out)
    return stored


def _is_bias(node: onnx.NodeProto, producer: dict, stored: dict) -> bool:
    """An Add of a stored constant to the output of a weighted op: that op's bias."""
    if node.op_type != "Add" or not any(name in stored for name in node.input):
        return False
    return any(name in producer and producer[name].op_type in WEIGHTED_OPS for name in node.input)


def _lowered(path: str, load_options) -> tuple[edgeseq_runtime.LoweredModel | None, str | None]:
    """The plan edgeseq's runtime makes for one stream, or why it cannot make one."""
    try:
        return edgeseq_runtime.lower_model(path, 1, load_options), None
    except edgeseq_runtime.EdgeseqError as e:
        return None, str(e)


def _states(lowered: edgeseq_runtime.LoweredModel, metadata: dict[str, str]) -> list[StateSummary]:
    """Each piece of state, with the output that carries its next value: as the runtime paired
    them, else as the edgeseq metadata says."""
    try:
        pairs = {s["input"]: s["output"] for s in json.loads(metadata.get(PREFIX + "states", "[]"))}
    except (ValueError, TypeError, KeyError):
        pairs = {}
    pairs.update(lowered.state_outputs)
    return [StateSummary(s.name, s.shape, pairs.get(s.name)) for s in lowered.states]


def _delay(metadata: dict[str, str]) -> int | None:
    """The delay the edgeseq metadata records, or None (no front end, or a value that is no count)."""
    try:
        delay = json.loads(metadata.get(PREFIX + "delay", "null"))
    except ValueError:
        return None
    return delay if isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0 else None


def _detail(node: onnx.NodeProto, producer: dict, dims: dict[str, list[int]]) -> str:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in RECURRENT_OPS:
        parts = [f"hidden {attributes.get('hidden_size')}"]
        if "activations" in attributes:
            parts.append("/".join(a.decode() for a in attributes["activations"]))
        if len(node.input) < 4 or not node.input[3]:
            parts.append("no bias")
        return ", ".join(parts)
    if node.op_type == "Conv":
        kernel = attributes.get("kernel_shape") or _stored_dims(node.input[1], producer, dims)[2:] or ["?"]
        parts = [f"kernel {'x'.join(map(str, kernel))}"]
        parts += [f"dilation {'x'.join(map(str, attributes['dilations']))}"] if any(
            d != 1 for d in attributes.get("dilations", ())) else []
        parts += [f"groups {attributes['group']}"] if attributes.get("group", 1) != 1 else []
        return ", ".join(parts)
    return {"Gather": "embedding", "MatMul": "dense", "Gemm": "dense"}.get(node.op_type, "")


def _stored_dims(name: str, producer: dict, dims: dict[str, list[int]]) -> list[int]:
    """The dims of the stored tensor ``name`` decodes (through DequantizeLinear or Cast), or []
    when it is computed: a Conv's kernel where the file leaves out kernel_shape, as it may."""
    while name in producer and producer[name].op_type in DECODING_OPS:
        name = producer[name].input[0]
    return dims.get(name, [])


def _value(info: onnx.ValueInfoProto) -> ValueSummary:
    tensor = info.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
    return ValueSummary(info.name, dtype, [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
                                           for d in tensor.shape.dim])


def _file_size(path: str, graph: onnx.GraphProto) -> int:
    folder = os.path.dirname(path)
    external = {entry.value for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                for entry in t.external_data if entry.key == "location"}
    return os.path.getsize(path) + sum(os.path.getsize(os.path.join(folder, name)) for name in external
                                       if os.path.isfile(os.path.join(folder, name)))


def _shape(dims: list[int]) -> str:
    return "[" + ",".join(map(str, dims)) + "]"
