"""Elementwise arithmetic, standalone activations and (Log)Softmax."""

import math

import numpy as np

from .. import isa
from ..graph import attribute
from ..isa import ACTIVATIONS, BINARY_FUNCTION, SOURCE
from ..tensor import Tensor

BINARY = {"Add": BINARY_FUNCTION.ADD, "Sub": BINARY_FUNCTION.SUB, "Mul": BINARY_FUNCTION.MUL, "Div": BINARY_FUNCTION.DIV}
# Standalone ONNX activation ops: their attributes map onto the recurrent activations' alpha/beta.
UNARY = ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Elu", "Softsign", "Softplus", "ThresholdedRelu")


def _operand(ctx, node, value, out_shape):
    """The ``isa.BROADCAST`` operand (source, offset, period) reading ``value`` broadcast to
    ``out_shape`` as value[i % period]."""
    shape = value.shape if isinstance(value, Tensor) else np.shape(value)
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    lead = next((i for i, d in enumerate(padded) if d != 1), len(padded))
    periodic = padded[lead:] == tuple(out_shape[lead:])
    if isinstance(value, Tensor):
        if not periodic:
            value = ctx.from_addresses(np.broadcast_to(value.addresses().reshape(padded), out_shape).copy())
        return SOURCE.ARENA, value.offset, value.size
    array = np.asarray(value, np.float32)
    if not periodic:
        array = np.broadcast_to(array, out_shape)
    return SOURCE.WEIGHTS, ctx.builder.constant(array), max(array.size, 1)


def broadcast_shape(ctx, node, values) -> tuple[int, ...]:
    """The shape ``values`` (tensors or constants) broadcast to; ModelError if they do not."""
    shapes = [v.shape if isinstance(v, Tensor) else np.shape(v) for v in values]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        ctx.fail(node, f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")


def operands(ctx, node, values):
    """The output tensor of values broadcast together, and each value's ``isa.BROADCAST`` operand."""
    out_shape = broadcast_shape(ctx, node, values)
    return ctx.new_tensor(out_shape), [_operand(ctx, node, v, out_shape) for v in values]


def emit_binary(ctx, node, function, a, b) -> Tensor:
    """c = a (function) b, one BINARY instruction, broadcasting as numpy does."""
    out, (operand_a, operand_b) = operands(ctx, node, (a, b))
    ctx.builder.emit(isa.BINARY, function=function, a=operand_a, b=operand_b, c=out.offset, n=out.size)
    return out


def lower_binary(ctx, node, inputs):
    return [emit_binary(ctx, node, BINARY[node.op_type], *inputs)]


def activation_operand(ctx, node) -> list[int]:
    """The ``isa.FUNCTION`` operand of a standalone activation node (one of UNARY)."""
    kind, default_alpha, default_beta = ACTIVATIONS[node.op_type]
    alpha = attribute(node, "alpha", default_alpha if default_alpha is not None else 0.0)
    beta = attribute(node, "beta", default_beta if default_beta is not None else 0.0)
    return [kind, ctx.builder.constant([alpha, beta])]


def lower_unary(ctx, node, inputs):
    x = inputs[0]
    out = ctx.new_tensor(x.shape)
    ctx.builder.emit(isa.ACTIVATION, act=activation_operand(ctx, node), x=x.offset, y=out.offset, n=x.size)
    return [out]


def lower_hard_swish(ctx, node, inputs):
    """HardSwish(x) = x * HardSigmoid(x) with alpha 1/6, beta 0.5, as ONNX defines it."""
    x = inputs[0]
    gate = ctx.new_tensor(x.shape)
    kind = ACTIVATIONS["HardSigmoid"][0]
    ctx.builder.emit(isa.ACTIVATION, act=[kind, ctx.builder.constant([1.0 / 6.0, 0.5])], x=x.offset, y=gate.offset,
                     n=x.size)
    return [emit_binary(ctx, node, BINARY_FUNCTION.MUL, x, gate)]


def lower_softmax(ctx, node, inputs):
    x = inputs[0]
    rank = len(x.shape)
    default_axis = -1 if ctx.graph.opset >= 13 else 1
    axis = attribute(node, "axis", default_axis)
    if not -rank <= axis < rank:
        ctx.fail(node, f"axis={axis} is out of range for shape {list(x.shape)}")
    axis %= rank
    outer = math.prod(x.shape[:axis])
    if ctx.graph.opset >= 13:
        n, inner = x.shape[axis], math.prod(x.shape[axis + 1:])
    else:  # opsets before 13 flatten [axis:] into one reduced axis
        n, inner = math.prod(x.shape[axis:]), 1
    out = ctx.new_tensor(x.shape)
    ctx.builder.emit(isa.SOFTMAX, x=x.offset, y=out.offset, outer=outer, n=n, inner=inner,
                     log=int(node.op_type == "LogSoftmax"))
    return [out]


HANDLERS = {
    **{op: lower_binary for op in BINARY},
    **{op: lower_unary for op in UNARY},
    "HardSwish": lower_hard_swish,
    "Softmax": lower_softmax,
    "LogSoftmax": lower_softmax,
}
