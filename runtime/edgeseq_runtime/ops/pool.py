"""MaxPool and AveragePool over the spatial axes of (N, C, ...), every attribute as ONNX defines it.

Which input positions each output pools, and with what weight, is read off ONNX's reference
AveragePool (opset 19, which takes every window attribute) running on a one-hot basis (one batch
entry per input position), so kernel_shape, strides, pads, auto_pad, dilations, ceil_mode and
count_include_pad are ONNX's own, with no window arithmetic here; a MaxPool's windows are those
of the AveragePool with its attributes (the reference's own MaxPool mis-indexes padded windows).
At run time: one indexed copy gathers each output's window (padded with -inf for a maximum, 0
for a mean), one REDUCE takes its maximum or sum, and for AveragePool one BINARY multiplies by
the window's weight (1 / the count ONNX divides by).
"""

import math

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from ..errors import first_line
from ..isa import BINARY_FUNCTION, REDUCE_FUNCTION
from ..tensor import Tensor
from .elementwise import emit_binary
from .reduce import reduce_axes

MAX_POSITIONS = 2048  # spatial positions per channel: the basis is this squared, at most 16 MB
WINDOW_ATTRIBUTES = ("kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "dilations")
WINDOW_OPSET = 19  # AveragePool takes dilations from here on


def lower_pool(ctx, node, inputs):
    x = inputs[0]
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        ctx.fail(node, "output Indices is not supported; use output Y only")
    if not isinstance(x, Tensor) or len(x.shape) < 3:
        ctx.fail(node, f"X of shape {list(np.shape(x))} has no spatial axis to pool over")
    spatial, channels = x.shape[2:], x.shape[0] * x.shape[1]
    positions = math.prod(spatial)
    if positions > MAX_POSITIONS:
        ctx.fail(node, f"pools {positions} positions per channel; at most {MAX_POSITIONS} are supported")
    pooled = _windows(ctx, node, spatial)
    out_spatial = pooled.shape[2:]
    weights = pooled.reshape(positions, -1)  # [input position, output position]
    windows = [np.flatnonzero(weights[:, o] > 0) for o in range(weights.shape[1])]
    width = max((w.size for w in windows), default=0)
    if width == 0:
        ctx.fail(node, "its windows hold no input position")
    is_max = node.op_type == "MaxPool"
    filler = ctx.resident(np.array([-np.inf if is_max else 0.0], np.float32)).offset
    rows = x.addresses().reshape(channels, positions)
    table = np.full((channels, len(windows), width), filler, np.int64)
    for o, window in enumerate(windows):
        table[:, o, :window.size] = rows[:, window]
    gathered = ctx.from_addresses(table)
    y = reduce_axes(ctx, node, gathered, [2], 0, REDUCE_FUNCTION.MAX if is_max else REDUCE_FUNCTION.SUM)
    if not is_max:
        scale = np.array([weights[w[0], o] if w.size else 0.0 for o, w in enumerate(windows)], np.float32)
        if any(not np.all(weights[w, o] == scale[o]) for o, w in enumerate(windows)):
            ctx.fail(node, "weighs the positions of one window unequally, which no pooling does")
        y = emit_binary(ctx, node, BINARY_FUNCTION.MUL, y, scale)
    return [Tensor((*x.shape[:2], *out_spatial), y.offset)]


def _windows(ctx, node, spatial) -> np.ndarray:
    """The reference AveragePool of the node's windows on a one-hot basis, (positions, 1, ...out):
    entry [p, 0, o] is the weight of input position p in output o, 0 outside its window."""
    taken = WINDOW_ATTRIBUTES + (("count_include_pad",) if node.op_type == "AveragePool" else ())
    probe = onnx.helper.make_node("AveragePool", ["x"], ["y"])
    probe.attribute.extend(a for a in node.attribute if a.name in taken)
    positions = math.prod(spatial)
    basis = np.eye(positions, dtype=np.float32).reshape(positions, 1, *spatial)
    try:
        return np.asarray(ReferenceEvaluator(probe, opsets={"": WINDOW_OPSET}).run(None, {"x": basis})[0], np.float32)
    except Exception as e:  # noqa: BLE001 - the reference evaluator raises whatever numpy raises
        ctx.fail(node, f"its windows cannot be evaluated ({first_line(e)})")


HANDLERS = {"MaxPool": lower_pool, "AveragePool": lower_pool}
