"""Ops that only move data: views when the result is contiguous, one indexed copy otherwise.

Each is evaluated with ONNX's reference evaluator on the arena addresses of its data inputs
instead of their values, so every attribute and opset variant of these ops is handled exactly
as ONNX defines it, without re-implementing their index arithmetic here.
"""

import numpy as np
import onnx

from .. import isa
from ..graph import attribute
from ..isa import BINARY_FUNCTION, MATRIX_KIND
from ..quantized import QuantizedWeight
from ..tensor import Tensor
from .elementwise import emit_binary
from .recurrent import text

MOVEMENT = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat", "Split", "Expand", "Tile",
            "DepthToSpace", "SpaceToDepth", "GatherND")


DATA_INPUTS = {"Concat": None, "ScatterND": (0, 2), "ScatterElements": (0, 2)}  # None: every input


def lower_movement(ctx, node, inputs):
    data = DATA_INPUTS.get(node.op_type, (0,)) or range(len(inputs))
    feeds = {}
    for index, (name, value) in enumerate(zip(node.input, inputs)):
        if not name:
            continue
        if index in data:
            feeds[name] = ctx.resident(value).addresses()
        elif isinstance(value, Tensor):
            ctx.fail(node, f"input '{name}' is computed at run time; shapes, axes and indices must be constant")
        else:
            feeds[name] = value
    return [ctx.from_addresses(np.asarray(out)) for out in ctx.evaluate(node, feeds)]


def lower_pad(ctx, node, inputs):
    """Pad as movement: the padding value (0, or the constant given) is one arena cell whose
    address the reference evaluator pads with, so every mode (constant, reflect, edge, wrap)
    and every axes/pads form is ONNX's own; an indexed copy per step at run time."""
    inputs = list(inputs) + [None] * (3 - len(inputs))
    value = inputs[2] if inputs[2] is not None else np.float32(attribute(node, "value", 0.0))
    if isinstance(value, Tensor):
        ctx.fail(node, "input 'constant_value' is computed at run time; it must be constant")
    cell = ctx.resident(np.asarray(value, np.float32).reshape(1))
    if ctx.graph.opset >= 11:
        inputs[0], inputs[1] = _cropped(ctx, node, inputs)
        inputs[2] = np.asarray(cell.offset, np.int64)
        node = _with_inputs(node, [*node.input[:2], node.input[2] if len(node.input) > 2 and node.input[2]
                                   else f"{node.output[0]}/constant_value", *node.input[3:]])
        return lower_movement(ctx, node, inputs)
    # Before opset 11, pads is an attribute and the data must be float, which addresses are not;
    # its three modes are numpy's, as in ONNX's reference (which evaluates a lone node at the
    # latest opset, so it cannot run this form).
    addresses = ctx.resident(inputs[0]).addresses()
    pads, mode = attribute(node, "pads", []), text(attribute(node, "mode", "constant"))
    if len(pads) != 2 * addresses.ndim or min(pads, default=0) < 0 or mode not in ("constant", "reflect", "edge"):
        ctx.fail(node, f"attributes pads={pads}, mode='{mode}' are not {2 * addresses.ndim} pads >= 0 "
                       f"with mode constant, reflect or edge")
    widths = list(zip(pads[:addresses.ndim], pads[addresses.ndim:]))
    extra = {"constant_values": cell.offset} if mode == "constant" else {}
    return [ctx.from_addresses(np.pad(addresses, widths, mode=mode, **extra))]


def _cropped(ctx, node, inputs):
    """(data, pads) with the negative pads applied first, as crops (as ONNX Runtime does: the
    rest then pads what is left); the reference evaluator pads by numpy's, which takes no
    negative widths."""
    data, pads, axes = inputs[0], inputs[1], inputs[3] if len(inputs) > 3 else None
    if isinstance(pads, Tensor) or isinstance(axes, Tensor) or pads is None:
        return data, pads  # lower_movement refuses these, naming the input
    pads = np.asarray(pads, np.int64).ravel()
    if not (pads < 0).any():
        return data, pads
    addresses = ctx.resident(data).addresses()
    rank = addresses.ndim
    axes = range(rank) if axes is None else [int(a) % rank for a in np.asarray(axes).ravel()]
    if pads.size != 2 * len(axes):
        ctx.fail(node, f"pads {pads.tolist()} do not give a start and an end for each of {len(axes)} axes")
    index = [slice(None)] * rank
    for k, axis in enumerate(axes):
        start, end = -min(pads[k], 0), -min(pads[k + len(axes)], 0)
        if start + end > addresses.shape[axis]:
            ctx.fail(node, f"pads {pads.tolist()} crop more than the {addresses.shape[axis]} elements of axis {axis}")
        index[axis] = slice(start, addresses.shape[axis] - end)
    return ctx.from_addresses(addresses[tuple(index)]), np.maximum(pads, 0)


def lower_gather_elements(ctx, node, inputs):
    """GatherElements as movement, its axis counted from the front first (the reference
    evaluator takes a negative axis for another)."""
    rank = len(inputs[0].shape)  # a Tensor's, or a constant array's
    axis = attribute(node, "axis", 0)
    if not -rank <= axis < rank:
        ctx.fail(node, f"attribute 'axis'={axis} is out of range for data of rank {rank}")
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.attribute[:]
    copy.attribute.extend([*(a for a in node.attribute if a.name != "axis"), onnx.helper.make_attribute("axis", axis % rank)])
    return lower_movement(ctx, copy, inputs)


def _with_inputs(node, names):
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.input[:]
    copy.input.extend(names)
    return copy


SCATTER_REDUCTIONS = {"add": BINARY_FUNCTION.ADD, "mul": BINARY_FUNCTION.MUL, "max": BINARY_FUNCTION.MAX,
                      "min": BINARY_FUNCTION.MIN}


def lower_scatter(ctx, node, inputs):
    """ScatterND and ScatterElements. Without a reduction, movement. With one, each update is
    combined with the value at its target in the order of the updates, as ONNX's loop does: in
    rounds, the n-th update of every target in round n, each round one gather of the targets'
    current values, one instruction, and the results taking the targets' place."""
    reduction = text(attribute(node, "reduction", "none"))
    if reduction == "none":
        return lower_movement(ctx, node, inputs)
    if reduction not in SCATTER_REDUCTIONS:
        ctx.fail(node, f"reduction='{reduction}' is not supported (none, {', '.join(SCATTER_REDUCTIONS)})")
    data, indices, updates = inputs
    if isinstance(indices, Tensor):
        ctx.fail(node, f"input '{node.input[1]}' is computed at run time; shapes, axes and indices must be constant")
    data, updates = ctx.resident(data).addresses(), ctx.resident(updates).addresses().ravel()
    targets = _scatter_targets(ctx, node, np.arange(data.size).reshape(data.shape), np.asarray(indices, np.int64))
    if targets.size != updates.size:
        ctx.fail(node, f"updates of shape {list(updates.shape)} do not match indices of shape {list(np.shape(indices))}")
    result = data.ravel().copy()
    occurrence = np.zeros(targets.size, np.int64)
    seen: dict[int, int] = {}
    for k, target in enumerate(targets):
        occurrence[k] = seen.get(target, 0)
        seen[target] = occurrence[k] + 1
    for round_ in range(int(occurrence.max(initial=-1)) + 1):
        picked = targets[occurrence == round_]
        combined = emit_binary(ctx, node, SCATTER_REDUCTIONS[reduction], ctx.from_addresses(result[picked]),
                               ctx.from_addresses(updates[occurrence == round_]))
        result[picked] = combined.addresses()
    return [ctx.from_addresses(result.reshape(data.shape))]


def _scatter_targets(ctx, node, positions, indices) -> np.ndarray:
    """The flat position in data that each update element lands on, in the updates' order: what
    GatherND / GatherElements with the same indices read from the positions."""
    try:
        if node.op_type == "ScatterND":
            if indices.ndim < 1 or indices.shape[-1] > positions.ndim:
                raise IndexError(f"indices of shape {list(indices.shape)} for data of rank {positions.ndim}")
            return positions[tuple(np.moveaxis(indices, -1, 0))].ravel()
        return np.take_along_axis(positions, indices, axis=attribute(node, "axis", 0)).ravel()
    except (IndexError, ValueError, np.exceptions.AxisError) as e:
        ctx.fail(node, f"indices do not index the data: {e}")


def lower_gather(ctx, node, inputs):
    data, indices = inputs
    if isinstance(indices, Tensor):
        return [_embedding(ctx, node, data, indices)]
    return lower_movement(ctx, node, inputs)


def _embedding(ctx, node, table, ids: Tensor) -> Tensor:
    """Rows of a constant table picked by run-time ids, each checked against this table's rows
    by the kernel whatever made it (the model input, or values computed from it)."""
    if isinstance(table, Tensor) or len(table.shape) != 2 or attribute(node, "axis", 0) != 0:
        ctx.fail(node, "run-time indices are supported for an embedding lookup only: "
                       "a constant 2-D table, axis=0")
    vocab, dim = table.shape
    if ctx.token_input and ids.offset == ctx.values[ctx.input_name].offset:
        ctx.vocab = min(ctx.vocab or vocab, vocab)  # the ids every table the input indexes takes
    out = ctx.new_tensor(ids.shape + (dim,))
    scales = table.scales_along(0) if isinstance(table, QuantizedWeight) else None
    if scales is not None:  # int8 rows, one scale per row
        rows = [MATRIX_KIND.INT8, ctx.builder.constant_int8(table.q), ctx.builder.constant(scales)]
    else:
        rows = [MATRIX_KIND.FLOAT32, ctx.builder.constant(np.asarray(table, np.float32)), -1]
    ctx.builder.emit(isa.EMBEDDING, ids=ids.offset, y=out.offset, count=ids.size, vocab=vocab, dim=dim, table=rows)
    return out


def lower_identity(ctx, node, inputs):
    return [inputs[0]]


def lower_dropout(ctx, node, inputs):
    """Dropout is the identity at inference. A graph that asks for training mode (the third
    input, opset 12 on) with a ratio above 0 drops values at random: refused, not ignored."""
    ratio, training = (list(inputs[1:3]) + [None, None])[:2]
    if isinstance(ratio, Tensor) or isinstance(training, Tensor):
        ctx.fail(node, "its ratio or training_mode is computed at run time; export the model in eval mode")
    if training is not None and bool(np.asarray(training).ravel()[0]) and \
            (ratio is None or float(np.asarray(ratio).ravel()[0]) > 0):
        ctx.fail(node, "training_mode is true: it would drop values at random; export the model in eval mode")
    return [inputs[0]]


def lower_shape(ctx, node, inputs):
    """Shape and Size of a run-time tensor are known at load time: every shape is fixed."""
    return ctx.evaluate(node, {node.input[0]: np.zeros(inputs[0].shape, np.float32)})


HANDLERS = {
    **{op: lower_movement for op in MOVEMENT},
    "Gather": lower_gather,
    "GatherElements": lower_gather_elements,
    "Pad": lower_pad,
    "ScatterND": lower_scatter,
    "ScatterElements": lower_scatter,
    "Identity": lower_identity,
    "Dropout": lower_dropout,
    "Shape": lower_shape,
    "Size": lower_shape,
}
