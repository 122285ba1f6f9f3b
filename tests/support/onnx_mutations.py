"""Ways to damage a valid ONNX model, for fuzzing the loader.

Every mutation takes its decisions from a ``Choices`` object, so that the same mutations serve
hypothesis (whose report of a failure lists every decision) and atheris (which steers the
decisions by coverage). ``MODEL_MUTATIONS`` change the ``ModelProto`` (types, shapes,
attributes, the graph's structure, external data, and constant computations that folding must
refuse: ``FOLD_BOMBS``, ``CONTROL_FLOW_BOMBS``); ``BYTE_MUTATIONS`` change the serialized file
(damage, millions of empty entries). ``seed_models`` writes the valid models they start from:
each cell, heads, token models, layouts, stacked state and quantized weights, built with
``onnx_builders``.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Protocol, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeseq_export.backends.quantize import quantize_fp16, quantize_int8
from support.onnx_builders import build_model


class Choices(Protocol):
    """The source of every decision a mutation takes."""

    def integer(self, low: int, high: int) -> int:
        """An int in [low, high]."""

    def pick(self, options: Sequence):
        """One of ``options``."""


# -- the valid models mutations start from -----------------------------------------------------

SEEDS = {  # name -> (build_model options, batch to load with)
    "lstm_matmul_head": (dict(op="LSTM", head="matmul"), 1),
    "gru_gemm_head_on_y_h": (dict(op="GRU", head="gemm", empty_y=True, linear_before_reset=1), 1),
    "rnn_plain_y": (dict(op="RNN", activations=["Affine"], activation_alpha=[0.6], activation_beta=[0.1]), 1),
    "lstm_layout1_peepholes_clip": (dict(op="LSTM", layout=1, peepholes=True, clip=3.0, input_forget=1,
                                         head="matmul", head_activation="Softmax"), 1),
    "gru_two_layers_stacked_state": (dict(op="GRU", num_layers=2, stacked_state=True, glue="transpose_reshape",
                                          head="matmul", head_activation="LogSoftmax"), 1),
    "rnn_tokens": (dict(op="RNN", vocab=11, head="matmul", head_activation="Tanh"), 1),
    "lstm_tokens_batch2": (dict(op="LSTM", vocab=7, batch=2, head="matmul"), 2),
    "gru_constant_initial_state": (dict(op="GRU", state="initializer", batch_dim=1, head="matmul",
                                        head_activation="Sigmoid"), 1),
    "lstm_no_bias_no_state": (dict(op="LSTM", bias=False, state="absent", hidden_size_attr=False,
                                   head="gemm", head_activation="Relu"), 1),
    "gru_batch3": (dict(op="GRU", batch=3, hidden_size=5, head="matmul"), 3),
}
QUANTIZED_SEEDS = {"lstm_int8": ("lstm_matmul_head", "int8"), "gru_fp16": ("gru_two_layers_stacked_state", "fp16")}


class Seed:
    """A valid model file to damage, and the batch it loads with."""

    def __init__(self, data: bytes, batch: int):
        self.data, self.batch = data, batch

    def __repr__(self) -> str:  # short: failure reports print every seed
        return f"Seed({len(self.data)} bytes, batch={self.batch})"


def seed_models(folder) -> dict[str, Seed]:
    """name -> every valid model the fuzzing starts from."""
    quantizers = {"int8": quantize_int8, "fp16": quantize_fp16}
    seeds = {}
    for name, (options, batch) in SEEDS.items():
        built = build_model(folder, filename=f"{name}.onnx", **options)
        seeds[name] = Seed(built.path.read_bytes(), batch)
    for name, (source, mode) in QUANTIZED_SEEDS.items():
        quantized, _ = quantizers[mode](onnx.load_from_string(seeds[source].data))
        seeds[name] = Seed(quantized.SerializeToString(), seeds[source].batch)
    return seeds


# -- hostile values ----------------------------------------------------------------------------

HUGE = [2**27, 10**9, 2**31, 2**40, 2**62, 2**63 - 1]
DIMS = [0, 1, 2, 3, 7, -1, -5, *HUGE]
ELEMENT_TYPES = [*TensorProto.DataType.values(), 1000]
ATTRIBUTE_VALUES = {  # attribute -> values that a careless loader might trip on
    "hidden_size": [-8, 0, 1, 3, 9, *HUGE],
    "clip": [0.0, -1.0, math.nan, math.inf, 1e-30, 1e30],
    "layout": [2, -1, 1, 2**40],
    "direction": ["reverse", "bidirectional", "sideways", ""],
    "activations": [[], ["Unknown"], ["Tanh"], ["sigmoid", "TANH", "tanh"], ["Affine"] * 3,
                    ["Sigmoid", "Tanh", "Tanh", "Tanh"], ["ScaledTanh", "Elu"], [""]],
    "activation_alpha": [[], [math.nan], [1e30] * 4, [-1.0, 2.0]],
    "activation_beta": [[], [math.inf], [-1e30] * 4],
    "linear_before_reset": [2, -1, 2**40],
    "input_forget": [5, -1],
    "axis": [-100, -1, 0, 1, 5, 2**40],
    "axes": [[100], [-100], [0, 0], [], [1, 2, 3, 4, 5, 6]],
    "perm": [[0, 0, 1, 2], [5, 1, 2, 3], [], [3, 2, 1, 0, 4]],
    "transA": [1, 7],
    "transB": [0, 2],
    "alpha": [math.nan, math.inf, 0.0, -1.0],
    "beta": [math.nan, -math.inf, 0.0],
    "to": [TensorProto.STRING, TensorProto.INT64, TensorProto.BOOL, 0, 1000],
    "value": [numpy_helper.from_array(np.zeros((2, 3), np.float32)), numpy_helper.from_array(np.array(["x"]))],
}
EMPTY_LIST_TYPES = {"activations": onnx.AttributeProto.STRINGS, "activation_alpha": onnx.AttributeProto.FLOATS,
                    "activation_beta": onnx.AttributeProto.FLOATS, "axes": onnx.AttributeProto.INTS,
                    "perm": onnx.AttributeProto.INTS}  # an empty list does not say its type
WRONG_TYPED = [1.5, 7, "text", [1, 2], [0.5, 2.5], ["a", "b"], b"\xff\xfe"]
OTHER_OPS = ["LSTM", "GRU", "RNN", "Gemm", "MatMul", "Add", "Div", "Softmax", "Squeeze", "Unsqueeze",
             "Reshape", "Transpose", "Concat", "Slice", "Gather", "Identity", "Expand", "Tile", "Shape",
             "DequantizeLinear", "Conv", "Scan", "Loop", "If", "Einsum", "NonZero", "TopK", "CumSum",
             "Where", "Pow", "ConstantOfShape", "Range", "NotAnOnnxOp", ""]
DOMAINS = ["com.microsoft", "ai.onnx.ml", "edgeseq.custom", "ai.onnx", "\x00"]
OPSETS = [1, 5, 6, 7, 9, 11, 12, 13, 14, 21, 22, 23, 99, 10**6]
IR_VERSIONS = [0, 1, 3, 4, 7, 11, 12, 100]
EXTERNAL_LOCATIONS = ["missing.bin", "../outside.bin", "/dev/zero", "/etc/hostname", "model.onnx", "", ".",
                      "warm_up.onnx", "/proc/self/mem"]
FILL_VALUES = [math.nan, math.inf, -math.inf, 3.0e38, 0.0]
CHAIN_LENGTHS = [2, 50, 1200, 5000]
DIAMOND_DEPTHS = [3, 12, 40]


# -- helpers -----------------------------------------------------------------------------------


def _pick_index(choose: Choices, items) -> int | None:
    return choose.integer(0, len(items) - 1) if len(items) else None


def _value_names(graph: onnx.GraphProto) -> list[str]:
    names = [v.name for v in graph.input] + [t.name for t in graph.initializer]
    return names + [o for n in graph.node for o in n.output if o]


def _array(tensor: onnx.TensorProto) -> np.ndarray | None:
    """The tensor's values, or None when an earlier mutation left them unreadable."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001 - onnx raises ValueError, TypeError, ValidationError, ...
        return None


def _set_attribute(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    kind = EMPTY_LIST_TYPES[name] if isinstance(value, list) and not value else None
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value, attr_type=kind)])


def route_output(graph: onnx.GraphProto, index: int, make_nodes) -> None:
    """Put new nodes between graph output ``index`` and its producer: ``make_nodes(pre, out)``
    returns them (and may add initializers), computing ``out`` from ``pre``."""
    out = graph.output[index].name
    pre = f"{out}_before_mutation"
    for node in graph.node:
        node.output[:] = [pre if o == out else o for o in node.output]
        node.input[:] = [pre if i == out else i for i in node.input]
    graph.node.extend(make_nodes(pre, out))


def insert_identity_chain(graph: onnx.GraphProto, index: int, length: int) -> None:
    """``length`` Identity nodes in a row before graph output ``index``."""
    def chain(pre, out):
        names = [pre, *(f"{out}_chain_{i}" for i in range(length - 1)), out]
        return [helper.make_node("Identity", [a], [b], name=f"{b}_identity") for a, b in zip(names, names[1:])]

    route_output(graph, index, chain)


def insert_concat_diamonds(graph: onnx.GraphProto, index: int, depth: int) -> None:
    """``depth`` Concat nodes before graph output ``index``, each reading the one before it
    twice: ``depth`` nodes, but 2**depth paths for a walk that does not remember them."""
    def doubled(pre, out):
        names = [pre, *(f"{out}_doubled_{i}" for i in range(depth - 1)), out]
        return [helper.make_node("Concat", [a, a], [b], axis=0) for a, b in zip(names, names[1:])]

    route_output(graph, index, doubled)


def append_gather_diamonds(graph: onnx.GraphProto, name: str, depth: int) -> None:
    """``depth`` Gather nodes after value ``name``, each indexing the one before it by itself
    (unused; no type check looks at them): 2**depth paths away from ``name``."""
    names = [name, *(f"{name}_gathered_{i}" for i in range(depth))]
    graph.node.extend(helper.make_node("Gather", [a, a], [b], axis=0) for a, b in zip(names, names[1:]))


HUGE_SHAPE_OPS = ["Expand", "Tile", "Reshape", "ConstantOfShape", "Range"]


def insert_huge_shape(graph: onnx.GraphProto, index: int, op: str, size: int) -> None:
    """Graph output ``index`` routed through ``op`` (one of HUGE_SHAPE_OPS) with a constant
    shape, repeat count or range of ``size``."""
    def const(name, values):
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def nodes(pre, out):
        if op == "Expand":
            return [helper.make_node("Expand", [pre, const(f"{out}_shape", [size, 1, 1, 1])], [out])]
        if op == "Tile":
            return [helper.make_node("Tile", [pre, const(f"{out}_repeats", [size, 1, 1, 1])], [out])]
        if op == "Reshape":
            return [helper.make_node("Reshape", [pre, const(f"{out}_shape", [size, -1])], [out])]
        if op == "ConstantOfShape":
            return [helper.make_node("ConstantOfShape", [const(f"{out}_shape", [size, 1])], [f"{out}_big"]),
                    helper.make_node("Add", [pre, f"{out}_big"], [out])]
        return [helper.make_node("Range", [const(f"{out}_start", 0), const(f"{out}_limit", size),
                                           const(f"{out}_delta", 1)], [f"{out}_range"]),
                helper.make_node("Cast", [f"{out}_range"], [f"{out}_float"], to=TensorProto.FLOAT),
                helper.make_node("Add", [pre, f"{out}_float"], [out])]

    route_output(graph, index, nodes)


class ConstantNodes:
    """Nodes that compute a value from constants only (the loader folds them), named after
    one prefix so that an error can be traced to them."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, values, dtype=np.int64) -> str:
        name = f"{self.prefix}_c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def filled(self, shape) -> str:
        """A float32 tensor of ones of ``shape``, made by ConstantOfShape (a few bytes in the file)."""
        return self.node("ConstantOfShape", [self.const(shape)],
                         value=numpy_helper.from_array(np.ones(1, np.float32)))

    def node(self, op: str, inputs, **attrs) -> str:
        output = f"{self.prefix}_{op.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _body(nodes, inputs, outputs, name="body") -> onnx.GraphProto:
    """A subgraph of float/bool/int64 scalars and vectors, typed loosely as the spec allows."""
    def info(spec):
        name, elem = spec
        return helper.make_tensor_value_info(name, elem, None)

    return helper.make_graph(nodes, name, [info(i) for i in inputs], [info(o) for o in outputs])


def _counting_loop(c: ConstantNodes, trip_count: str, body_nodes=(), step: str | None = None) -> str:
    """A Loop adding ``step`` (1 by default; computed by ``body_nodes``) to a float each
    iteration while its condition stays true: with ``trip_count`` "" it loops until the
    condition turns false, which it never does."""
    p = c.prefix
    if step is None:
        step = f"{p}_one"
        body_nodes = [helper.make_node("Constant", [], [step], value=numpy_helper.from_array(np.ones(1, np.float32)))]
    body = [helper.make_node("Identity", [f"{p}_cond_in"], [f"{p}_cond_out"]), *body_nodes,
            helper.make_node("Add", [f"{p}_v_in", step], [f"{p}_v_out"])]
    graph = _body(body, [(f"{p}_i", TensorProto.INT64), (f"{p}_cond_in", TensorProto.BOOL),
                         (f"{p}_v_in", TensorProto.FLOAT)],
                  [(f"{p}_cond_out", TensorProto.BOOL), (f"{p}_v_out", TensorProto.FLOAT)])
    return c.node("Loop", [trip_count, c.const(True, np.bool_), c.const([0.0], np.float32)], body=graph)


def _constant_branch(name: str, output: str) -> onnx.GraphProto:
    one = numpy_helper.from_array(np.ones(1, np.float32))
    return _body([helper.make_node("Constant", [], [output], value=one)], [], [(output, TensorProto.FLOAT)], name)


def _nested_ifs(c: ConstantNodes, depth: int) -> str:
    """``depth`` If nodes, each taking a branch that holds the next (all reading one condition
    from the outer graph); the output of the outermost."""
    cond = c.const(True, np.bool_)
    node = helper.make_node("Constant", [], ["leaf"], value=numpy_helper.from_array(np.ones(1, np.float32)))
    for level in range(depth):
        taken = _body([node], [], [(node.output[0], TensorProto.FLOAT)], f"then{level}")
        node = helper.make_node("If", [cond], [f"{c.prefix}_if{level}"], then_branch=taken,
                                else_branch=_constant_branch(f"else{level}", f"{c.prefix}_else{level}"))
    c.nodes.append(node)
    return node.output[0]


def _fold_bomb(c: ConstantNodes, kind: str, size: int) -> str:
    """The output of a constant computation whose result (or work) is about ``size`` elements
    (multiply-adds, iterations), from a file of a few hundred bytes."""
    side = max(math.isqrt(size), 1)
    if kind == "Pad":
        return c.node("Pad", [c.const([[1.0]], np.float32), c.const([0, 0, 0, size])])
    if kind == "OneHot":
        return c.node("OneHot", [c.const([0]), c.const(size), c.const([0.0, 1.0], np.float32)])
    if kind == "Resize":
        return c.node("Resize", [c.const(np.ones((1, 1, 1, 1)), np.float32), "",
                                 c.const([1, 1, side, side], np.float32)])
    if kind in ("Mul", "Where"):  # two vectors of `side` elements broadcast against each other
        column, row = c.filled([side, 1]), c.filled([1, side])
        if kind == "Mul":
            return c.node("Mul", [column, row])
        return c.node("Where", [c.const([[True]], np.bool_), column, row])
    if kind == "Conv":  # a small output, but each element a sum over a huge kernel
        kernel = max(round(size ** 0.25), 1)
        return c.node("Conv", [c.filled([1, 1, 2 * kernel, 2 * kernel]), c.filled([1, 1, kernel, kernel])])
    if kind == "ConvTranspose":
        return c.node("ConvTranspose", [c.filled([1, 1, 1, 1]), c.filled([1, 1, 1, 1])],
                      output_shape=[side, side])
    if kind == "MatMul":
        inner = max(round(size ** (1 / 3)), 1)
        return c.node("MatMul", [c.filled([inner, inner]), c.filled([inner, inner])])
    if kind == "Einsum":  # every index combination once, unless contracted cleverly
        n = max(round(size ** 0.25), 1)
        return c.node("Einsum", [c.filled([n, n]), c.filled([n, n])], equation="ij,kl->ijkl")
    if kind in ("RandomNormal", "RandomUniform"):  # one value: it broadcasts into any output
        return c.node(kind, [], shape=[1])
    if kind in ("RandomNormalLike", "RandomUniformLike", "Bernoulli"):
        return c.node(kind, [c.const([0.5], np.float32)])
    if kind == "Multinomial":
        return c.node("Cast", [c.node("Multinomial", [c.const([[0.5, 0.5]], np.float32)])], to=TensorProto.FLOAT)
    if kind == "Loop":
        return _counting_loop(c, c.const(size))
    if kind == "LoopForever":
        return _counting_loop(c, "")
    if kind == "NestedLoop":  # each loop's trip count is small; their product is not
        count = max(math.isqrt(size), 1)
        inner = ConstantNodes(f"{c.prefix}_inner")
        step = _counting_loop(inner, inner.const(count))
        constants = [helper.make_node("Constant", [], [t.name], value=t) for t in inner.initializers]
        return _counting_loop(c, c.const(count), body_nodes=[*constants, *inner.nodes], step=step)
    if kind == "Scan":  # one iteration per row of a constant
        rows = c.filled([min(size, 1 << 22), 1])
        body = _body([helper.make_node("Add", ["s_in", "x"], ["s_out"])],
                     [("s_in", TensorProto.FLOAT), ("x", TensorProto.FLOAT)], [("s_out", TensorProto.FLOAT)])
        return c.node("Scan", [c.const([0.0], np.float32), rows], body=body, num_scan_inputs=1)
    if kind == "If":  # the taken branch pads a scalar to `size` elements
        pad = helper.make_node("Pad", ["one_by_one", "pads"], ["padded"])
        branch = _body([helper.make_node("Constant", [], ["one_by_one"], value=numpy_helper.from_array(np.ones((1, 1), np.float32))),
                        helper.make_node("Constant", [], ["pads"], value=numpy_helper.from_array(np.array([0, 0, 0, size]))),
                        pad], [], [("padded", TensorProto.FLOAT)], "padding")
        return c.node("If", [c.const(True, np.bool_)], then_branch=branch,
                      else_branch=_constant_branch("constant", "padded_else"))
    if kind == "NestedIf":  # `size` levels of If (at most 24), each a few dozen bytes
        return _nested_ifs(c, min(size, 24))  # protobuf refuses to parse ~30 levels
    raise ValueError(f"no fold bomb {kind!r}; known: {FOLD_BOMBS}")


FOLD_BOMBS = ["Pad", "OneHot", "Resize", "Mul", "Where", "Conv", "ConvTranspose", "MatMul", "Einsum",
              "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"]
CONTROL_FLOW_BOMBS = ["Loop", "LoopForever", "NestedLoop", "Scan", "If", "NestedIf"]


def insert_fold_bomb(graph: onnx.GraphProto, index: int, kind: str, size: int) -> str:
    """Graph output ``index`` plus a constant computation of ``kind`` (one of FOLD_BOMBS or
    CONTROL_FLOW_BOMBS) sized by ``size``; the name prefix of its nodes."""
    c = ConstantNodes(f"bomb_{kind.lower()}")
    bomb = _fold_bomb(c, kind, size)
    graph.initializer.extend(c.initializers)
    route_output(graph, index, lambda pre, out: [*c.nodes, helper.make_node("Add", [pre, bomb], [out])])
    return c.prefix


# -- mutations of the model --------------------------------------------------------------------


def initializer_relabelled(model, choose):
    """An initializer's element type changed, its bytes kept: they now disagree."""
    k = _pick_index(choose, model.graph.initializer)
    if k is not None:
        model.graph.initializer[k].data_type = choose.pick(ELEMENT_TYPES)


def initializer_converted(model, choose):
    """An initializer stored faithfully in another dtype, which the graph does not expect."""
    k = _pick_index(choose, model.graph.initializer)
    if k is None:
        return
    tensor = model.graph.initializer[k]
    dtype = choose.pick([np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_,
                         np.complex64, np.str_])
    array = _array(tensor)
    if array is None or (array.dtype.kind in "OSU" and dtype is not np.str_):
        return  # text converts to nothing but text
    with np.errstate(all="ignore"), warnings.catch_warnings():  # lossy casts are the point
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        tensor.CopyFrom(numpy_helper.from_array(array.astype(dtype), tensor.name))


def initializer_dims_disagree_with_data(model, choose):
    """An initializer's header claims other dims than its data holds (huge ones included)."""
    k = _pick_index(choose, model.graph.initializer)
    if k is None:
        return
    tensor = model.graph.initializer[k]
    dims = list(tensor.dims)
    action = choose.pick(["change", "drop", "add", "all_huge", "huge_without_data"])
    if action == "change" and dims:
        dims[choose.integer(0, len(dims) - 1)] = choose.pick(DIMS)
    elif action == "drop" and dims:
        dims.pop(choose.integer(0, len(dims) - 1))
    elif action == "add":
        dims.insert(choose.integer(0, len(dims)), choose.pick(DIMS))
    elif action in ("all_huge", "huge_without_data"):
        dims = [choose.pick(HUGE) for _ in dims or [0]]
        if action == "huge_without_data":
            tensor.ClearField("raw_data")
    del tensor.dims[:]
    tensor.dims.extend(dims)


def initializer_resized(model, choose):
    """An initializer with consistent data of another shape: it disagrees with the graph."""
    k = _pick_index(choose, model.graph.initializer)
    if k is None:
        return
    tensor = model.graph.initializer[k]
    array = _array(tensor)
    if array is None:
        return
    if array.ndim == 0:
        array = array.reshape(1)
    axis = choose.integer(0, array.ndim - 1)
    if choose.pick([True, False]) and array.shape[axis] > 0:
        array = np.delete(array, -1, axis=axis)
    else:
        array = np.concatenate([array, np.take(array, [0], axis=axis) if array.shape[axis] else array], axis=axis)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))


def initializer_filled(model, choose):
    """Float weights set to NaN, Inf or near float32's limit: loads, outputs may not be finite."""
    floats = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    k = _pick_index(choose, floats)
    if k is None:
        return
    array = _array(floats[k])
    if array is None or not array.size:
        return
    array = array.copy()
    array.flat[choose.integer(0, array.size - 1)::choose.integer(1, 5)] = choose.pick(FILL_VALUES)
    floats[k].CopyFrom(numpy_helper.from_array(array, floats[k].name))


def initializer_removed(model, choose):
    k = _pick_index(choose, model.graph.initializer)
    if k is not None:
        del model.graph.initializer[k]


def initializer_external(model, choose):
    """An initializer whose data is said to live in another file: missing, outside the model's
    folder, a device that never ends, the model itself, at offsets and lengths beyond it."""
    k = _pick_index(choose, model.graph.initializer)
    if k is None:
        return
    tensor = model.graph.initializer[k]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": choose.pick(EXTERNAL_LOCATIONS),
               "offset": str(choose.pick([0, 16, -1, 10**12, "x"])),
               "length": str(choose.pick([0, 16, 10**10, -4, 2**31, 2**63]))}
    del tensor.external_data[:]
    for key in choose.pick([["location"], ["location", "offset"], ["location", "length"],
                            ["location", "offset", "length"], []]):
        tensor.external_data.add(key=key, value=entries[key])


def graph_input_changed(model, choose):
    """A graph input's dims or element type changed, or the input renamed, removed or doubled."""
    inputs = model.graph.input
    k = _pick_index(choose, inputs)
    if k is None:
        return
    value = inputs[k]
    shape = value.type.tensor_type.shape
    action = choose.pick(["dim", "symbolic", "drop_dim", "add_dim", "no_shape", "elem_type",
                          "renamed", "removed", "doubled"])
    if action == "dim" and shape.dim:
        shape.dim[choose.integer(0, len(shape.dim) - 1)].dim_value = choose.pick(DIMS)
    elif action == "symbolic" and shape.dim:
        shape.dim[choose.integer(0, len(shape.dim) - 1)].dim_param = choose.pick(["n", "seq", "batch", ""])
    elif action == "drop_dim" and shape.dim:
        del shape.dim[choose.integer(0, len(shape.dim) - 1)]
    elif action == "add_dim":
        shape.dim.add().dim_value = choose.pick(DIMS)
    elif action == "no_shape":
        value.type.tensor_type.ClearField("shape")
    elif action == "elem_type":
        value.type.tensor_type.elem_type = choose.pick(ELEMENT_TYPES)
    elif action == "renamed":
        value.name = choose.pick(["renamed", "", *_value_names(model.graph)])
    elif action == "removed":
        del inputs[k]
    elif action == "doubled":
        inputs.add().CopyFrom(value)


def graph_output_changed(model, choose):
    """A graph output renamed, removed or doubled, all removed, or an inner value made one."""
    outputs = model.graph.output
    k = _pick_index(choose, outputs)
    if k is None:
        return
    action = choose.pick(["renamed", "removed", "all_removed", "doubled", "inner_value", "reordered"])
    if action == "renamed":
        outputs[k].name = choose.pick(["renamed", "", *_value_names(model.graph)])
    elif action == "removed":
        del outputs[k]
    elif action == "all_removed":
        del outputs[:]
    elif action == "doubled":
        outputs.add().CopyFrom(outputs[k])
    elif action == "inner_value":
        outputs.add().CopyFrom(helper.make_tensor_value_info(choose.pick(_value_names(model.graph)),
                                                             TensorProto.FLOAT, None))
    else:
        first = onnx.ValueInfoProto()
        first.CopyFrom(outputs[k])
        del outputs[k]
        outputs.insert(0, first)


def attribute_value(model, choose):
    """An attribute set to a hostile value: huge or negative sizes, unknown activations,
    clip <= 0, layout 2, axes out of range, and the like."""
    k = _pick_index(choose, model.graph.node)
    if k is None:
        return
    node = model.graph.node[k]
    try:
        known = set(onnx.defs.get_schema(node.op_type, 22, node.domain).attributes)
    except onnx.defs.SchemaError:
        known = set()
    names = sorted(known & set(ATTRIBUTE_VALUES)) or sorted(ATTRIBUTE_VALUES)
    name = choose.pick(names)
    _set_attribute(node, name, choose.pick(ATTRIBUTE_VALUES[name]))


def attribute_wrong_type(model, choose):
    """An existing attribute replaced by one of another type (a float hidden_size, ...)."""
    nodes = [n for n in model.graph.node if n.attribute]
    k = _pick_index(choose, nodes)
    if k is None:
        return
    name = choose.pick([a.name for a in nodes[k].attribute])
    _set_attribute(nodes[k], name, choose.pick(WRONG_TYPED))


def op_replaced(model, choose):
    """A node's op type replaced: other supported ops, ops outside the set, unknown ones."""
    k = _pick_index(choose, model.graph.node)
    if k is not None:
        model.graph.node[k].op_type = choose.pick(OTHER_OPS)


def domain_changed(model, choose):
    k = _pick_index(choose, model.graph.node)
    if k is None:
        return
    domain = choose.pick(DOMAINS)
    model.graph.node[k].domain = domain
    if choose.pick([True, False]):
        model.opset_import.add(domain=domain, version=1)


def node_removed(model, choose):
    k = _pick_index(choose, model.graph.node)
    if k is not None:
        del model.graph.node[k]


def nodes_reordered(model, choose):
    """Two nodes swapped: the graph is no longer in execution order."""
    nodes = model.graph.node
    if len(nodes) < 2:
        return
    i, j = choose.integer(0, len(nodes) - 1), choose.integer(0, len(nodes) - 1)
    first, second = onnx.NodeProto(), onnx.NodeProto()
    first.CopyFrom(nodes[i])
    second.CopyFrom(nodes[j])
    nodes[i].CopyFrom(second)
    nodes[j].CopyFrom(first)


def cycle(model, choose):
    """A node reads the output of itself or of a node after it."""
    nodes = model.graph.node
    i = _pick_index(choose, nodes)
    if i is None or not nodes[i].input:
        return
    j = choose.integer(i, len(nodes) - 1)
    outputs = [o for o in nodes[j].output if o]
    if outputs:
        nodes[i].input[choose.integer(0, len(nodes[i].input) - 1)] = choose.pick(outputs)


def input_rewired(model, choose):
    """A node reads another value than it should: shapes and types disagree, or it is absent."""
    nodes = model.graph.node
    i = _pick_index(choose, nodes)
    if i is None or not nodes[i].input:
        return
    nodes[i].input[choose.integer(0, len(nodes[i].input) - 1)] = choose.pick(
        ["", "not_a_value", *_value_names(model.graph)])


def name_duplicated(model, choose):
    """Two initializers, or a node output and an existing value, share a name."""
    graph = model.graph
    names = _value_names(graph)
    if choose.pick(["initializer", "node_output"]) == "initializer" and graph.initializer:
        graph.initializer.add().CopyFrom(graph.initializer[choose.integer(0, len(graph.initializer) - 1)])
    elif graph.node and names:
        node = graph.node[choose.integer(0, len(graph.node) - 1)]
        node.output[choose.integer(0, len(node.output) - 1)] = choose.pick(names)


def opset_changed(model, choose):
    """The default domain's opset or the IR version changed, or the opset import removed."""
    action = choose.pick(["opset", "no_opset", "ir_version"])
    if action == "ir_version":
        model.ir_version = choose.pick(IR_VERSIONS)
    elif action == "no_opset":
        del model.opset_import[:]
    else:
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = choose.pick(OPSETS)


def identity_chain(model, choose):
    """A long chain of Identity nodes before a graph output: deep glue between state and output."""
    k = _pick_index(choose, model.graph.output)
    if k is not None:
        insert_identity_chain(model.graph, k, choose.pick(CHAIN_LENGTHS))


def diamonds(model, choose):
    """Nodes that read one value twice, in a chain: after a graph output or a graph input."""
    graph, depth = model.graph, choose.pick(DIAMOND_DEPTHS)
    if choose.pick(["output", "input"]) == "output":
        k = _pick_index(choose, graph.output)
        if k is not None:
            insert_concat_diamonds(graph, k, depth)
    elif graph.input:
        append_gather_diamonds(graph, choose.pick([v.name for v in graph.input]), depth)


def huge_shape(model, choose):
    """A graph output routed through an op whose constant shape argument is huge."""
    k = _pick_index(choose, model.graph.output)
    if k is not None:
        insert_huge_shape(model.graph, k, choose.pick(HUGE_SHAPE_OPS), choose.pick(HUGE))


BOMB_SIZES = [0, 1, 4, 7, 4096, 2**31, 10**12]  # small ones fold (and may load); the rest must be refused


def fold_bomb(model, choose):
    """A graph output plus a constant computation: a folding bomb (Pad, OneHot, Resize, broadcast
    Mul, Conv, ... of up to 10**12 elements or multiply-adds), a random op, or control flow
    (Loop, Scan, If, nested) of up to 10**12 iterations, or within the budget."""
    k = _pick_index(choose, model.graph.output)
    if k is not None:
        insert_fold_bomb(model.graph, k, choose.pick(FOLD_BOMBS + CONTROL_FLOW_BOMBS), choose.pick(BOMB_SIZES))


MODEL_MUTATIONS: dict[str, Callable[[onnx.ModelProto, Choices], None]] = {
    f.__name__: f for f in (
        initializer_relabelled, initializer_converted, initializer_dims_disagree_with_data,
        initializer_resized, initializer_filled, initializer_removed, initializer_external,
        graph_input_changed, graph_output_changed, attribute_value, attribute_wrong_type,
        op_replaced, domain_changed, node_removed, nodes_reordered, cycle, input_rewired,
        name_duplicated, opset_changed, identity_chain, diamonds, huge_shape, fold_bomb,
    )
}


# -- mutations of the file ---------------------------------------------------------------------


def truncated(data: bytes, choose: Choices) -> bytes:
    return data[:choose.integer(0, max(len(data) - 1, 0))]


def flipped_bytes(data: bytes, choose: Choices) -> bytes:
    damaged = bytearray(data)
    for _ in range(choose.integer(1, 8)):
        if damaged:
            damaged[choose.integer(0, len(damaged) - 1)] ^= choose.integer(1, 255)
    return bytes(damaged)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def protobuf_field_bomb(data: bytes, size: int) -> bytes:
    """``data`` followed by a second ``graph`` field holding ``size`` bytes of empty ``node``
    entries (protobuf merges it into the first): 2 bytes each in the file, hundreds parsed."""
    empty_nodes = b"\x0a\x00" * (size // 2)  # field 1 (GraphProto.node), length 0
    return data + b"\x3a" + _varint(len(empty_nodes)) + empty_nodes  # field 7 (ModelProto.graph)


def empty_entries(data: bytes, choose: Choices) -> bytes:
    """Up to megabytes of empty repeated entries appended to the graph."""
    return protobuf_field_bomb(data, choose.pick([2, 1000, 1 << 20, 10 << 20]))


BYTE_MUTATIONS: dict[str, Callable[[bytes, Choices], bytes]] = {
    f.__name__: f for f in (truncated, flipped_bytes, empty_entries)}
MUTATIONS = sorted([*MODEL_MUTATIONS, *BYTE_MUTATIONS])


def mutated(seed: bytes, names: Sequence[str], choose: Choices) -> bytes:
    """``seed`` after the named mutations: those of the model first, then those of the file."""
    model = onnx.load_from_string(seed)
    for name in names:
        if name in MODEL_MUTATIONS:
            MODEL_MUTATIONS[name](model, choose)
    data = model.SerializeToString()
    for name in names:
        if name in BYTE_MUTATIONS:
            data = BYTE_MUTATIONS[name](data, choose)
    return data
