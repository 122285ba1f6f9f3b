"""What an ONNX model holds, for ``edgeseq inspect``: layers, parameters, state, metadata, size.

Works on any ONNX file. The state layout is the one edgeseq's runtime keeps for a stream of
the model (or the reason it cannot stream it), paired with the graph outputs that the edgeseq
metadata names as the next state.
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


# Ops whose constant operands are a layer's learned weights; an Add of a constant right after
# one of them is that layer's bias.
WEIGHTED_OPS = (*RECURRENT_OPS, "MatMul", "Gemm", "Gather", "Conv", "ConvTranspose")
# Nodes that only decode a stored weight (int8 behind DequantizeLinear, fp16 behind Cast).
DECODING_OPS = ("DequantizeLinear", "Cast")


def inspect_model(path: str | os.PathLike, load_options: edgeseq_runtime.LoadOptions | None = None) -> Inspection:
    """What the file at ``path`` holds, and whether (and with what state) edgeseq's runtime
    streams it when loaded with ``load_options``."""
    path = os.fspath(path)
    model = read_structure(path, path)
    graph = model.graph
    if not graph.node:
        raise SourceError(f"{path}: not an ONNX model with a graph (no nodes found)")
    stored = _stored_weights(graph)
    producer = {name: node for node in graph.node for name in node.output}
    layers, claimed = [], set()
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS and not _is_bias(node, producer, stored):
            continue
        mine = [stored[name] for name in node.input if name in stored and stored[name] not in claimed]
        claimed.update(mine)
        if mine or node.op_type in RECURRENT_OPS:
            layers.append(LayerSummary(node.name or node.output[0], node.op_type, _detail(node),
                                       " ".join(_shape(_dims(graph, name)) for name in mine),
                                       sum(math.prod(_dims(graph, name)) for name in mine)))
    floats = {t.name: math.prod(t.dims) for t in graph.initializer if t.data_type in FLOAT_TYPES}
    metadata = {p.key: p.value for p in model.metadata_props}
    states, not_streamable = _states(path, metadata, load_options or edgeseq_runtime.LoadOptions())
    initializers = {t.name for t in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return Inspection(
        path, _file_size(path, graph), opset, f"{model.producer_name} {model.producer_version}".strip(),
        [_value(v) for v in graph.input if v.name not in initializers], [_value(v) for v in graph.output],
        layers, sum(layer.parameters for layer in layers),
        sum(size for name, size in floats.items() if name not in claimed),
        states, not_streamable, metadata)


def _stored_weights(graph: onnx.GraphProto) -> dict[str, str]:
    """Each value that holds a weight, mapped to the initializer that stores it: a float
    initializer stands for itself, the output of a DequantizeLinear or Cast of an initializer
    for that initializer (its scales and zero points are not weights)."""
    initializers = {t.name for t in graph.initializer}
    stored = {t.name: t.name for t in graph.initializer if t.data_type in FLOAT_TYPES}
    for node in graph.node:
        if node.op_type in DECODING_OPS and node.input and node.input[0] in initializers:
            stored[node.output[0]] = node.input[0]
    return stored


def _is_bias(node: onnx.NodeProto, producer: dict, stored: dict[str, str]) -> bool:
    """An Add of a stored constant to the output of a weighted op: that op's bias."""
    if node.op_type != "Add" or not any(name in stored for name in node.input):
        return False
    return any(name in producer and producer[name].op_type in WEIGHTED_OPS for name in node.input)


def _dims(graph: onnx.GraphProto, initializer: str) -> list[int]:
    return next(list(t.dims) for t in graph.initializer if t.name == initializer)


def _states(path: str, metadata: dict[str, str], load_options) -> tuple[list[StateSummary], str | None]:
    try:
        stream = edgeseq_runtime.load(path, **load_options.fields())
    except edgeseq_runtime.EdgeseqError as e:
        return [], str(e)
    try:
        pairs = {s["input"]: s["output"] for s in json.loads(metadata.get(PREFIX + "states", "[]"))}
    except (ValueError, TypeError, KeyError):
        pairs = {}
    return [StateSummary(name, value.shape, pairs.get(name)) for name, value in stream.get_state().items()], None


def _detail(node: onnx.NodeProto) -> str:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in RECURRENT_OPS:
        parts = [f"hidden {attributes.get('hidden_size')}"]
        if "activations" in attributes:
            parts.append("/".join(a.decode() for a in attributes["activations"]))
        if len(node.input) < 4 or not node.input[3]:
            parts.append("no bias")
        return ", ".join(parts)
    return {"Gather": "embedding", "MatMul": "dense", "Gemm": "dense"}.get(node.op_type, "")


def _value(info: onnx.ValueInfoProto) -> ValueSummary:
    tensor = info.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
    return ValueSummary(info.name, dtype, [d.dim_param or d.dim_value for d in tensor.shape.dim])


def _file_size(path: str, graph: onnx.GraphProto) -> int:
    folder = os.path.dirname(path)
    external = {entry.value for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                for entry in t.external_data if entry.key == "location"}
    return os.path.getsize(path) + sum(os.path.getsize(os.path.join(folder, name)) for name in external
                                       if os.path.isfile(os.path.join(folder, name)))


def _shape(dims: list[int]) -> str:
    return "[" + ",".join(map(str, dims)) + "]"
