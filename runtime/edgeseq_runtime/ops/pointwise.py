"""Pointwise math of the front ends: unary functions (Sqrt, Pow, Exp, Clip, Sin, Round, Gelu, ...),
two-operand functions and comparisons (Min, Max, PRelu, Equal, Less, ...: BINARY, as Add is),
Where; every tensor is float32 in the arena, so a comparison gives 1.0 or 0.0 (see
kernels.elementwise_f32)."""

import numpy as np

from .. import isa
from ..graph import FLOAT_TYPES, attribute
from ..isa import BINARY_FUNCTION, UNARY_FUNCTION
from ..tensor import Tensor
from .elementwise import emit_binary, operands
from .recurrent import text

UNARY = {"Sqrt": UNARY_FUNCTION.SQRT, "Exp": UNARY_FUNCTION.EXP, "Log": UNARY_FUNCTION.LOG,
         "Abs": UNARY_FUNCTION.ABS, "Neg": UNARY_FUNCTION.NEG, "Reciprocal": UNARY_FUNCTION.RECIPROCAL,
         "Floor": UNARY_FUNCTION.FLOOR, "Ceil": UNARY_FUNCTION.CEIL, "Erf": UNARY_FUNCTION.ERF,
         "Not": UNARY_FUNCTION.NOT, "Sin": UNARY_FUNCTION.SIN, "Cos": UNARY_FUNCTION.COS,
         "Round": UNARY_FUNCTION.ROUND}
GELU = {"none": UNARY_FUNCTION.GELU, "tanh": UNARY_FUNCTION.GELU_TANH}  # by attribute 'approximate'
TWO_OPERANDS = {"Pow": BINARY_FUNCTION.POW, "PRelu": BINARY_FUNCTION.PRELU,
                "Equal": BINARY_FUNCTION.EQUAL, "Less": BINARY_FUNCTION.LESS,
                "LessOrEqual": BINARY_FUNCTION.LESS_OR_EQUAL, "Greater": BINARY_FUNCTION.GREATER,
                "GreaterOrEqual": BINARY_FUNCTION.GREATER_OR_EQUAL, "And": BINARY_FUNCTION.AND,
                "Or": BINARY_FUNCTION.OR, "Xor": BINARY_FUNCTION.XOR}
VARIADIC = {"Min": BINARY_FUNCTION.MIN, "Max": BINARY_FUNCTION.MAX}
SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX's defaults


def emit_unary(ctx, x: Tensor, function, alpha=0.0, beta=0.0) -> Tensor:
    y = ctx.new_tensor(x.shape)
    ctx.builder.emit(isa.UNARY, function=function, x=x.offset, y=y.offset, n=x.size,
                     params=ctx.builder.constant([alpha, beta]))
    return y


def lower_unary(ctx, node, inputs):
    return [emit_unary(ctx, inputs[0], UNARY[node.op_type])]


def lower_selu(ctx, node, inputs):
    return [emit_unary(ctx, inputs[0], UNARY_FUNCTION.SELU, attribute(node, "alpha", SELU_ALPHA),
                       attribute(node, "gamma", SELU_GAMMA))]


def lower_gelu(ctx, node, inputs):
    approximate = text(attribute(node, "approximate", "none"))
    if approximate not in GELU:
        ctx.fail(node, f"attribute 'approximate'='{approximate}' is not supported ({', '.join(GELU)})")
    return [emit_unary(ctx, inputs[0], GELU[approximate])]


FLOAT_FLOOR_MOD_OPSET = 28  # Mod with fmod=0 is defined for floats from this opset on


def lower_mod(ctx, node, inputs):
    """Mod: fmod=1 truncates (the sign of A), fmod=0 floors (the sign of B). The arena holds
    integers as their float values, on which both are exact, so one function serves integers
    and floats; fmod=0 on floats only where the graph's opset defines it."""
    fmod = attribute(node, "fmod", 0)
    if fmod not in (0, 1):
        ctx.fail(node, f"attribute 'fmod'={fmod} is not 0 or 1")
    if fmod == 0 and ctx.graph.opset < FLOAT_FLOOR_MOD_OPSET and \
            any(ctx.graph.value_types.get(name) in FLOAT_TYPES for name in node.input):
        ctx.fail(node, f"attribute 'fmod'=0 on float tensors is defined from opset {FLOAT_FLOOR_MOD_OPSET} on "
                       f"(the graph has opset {ctx.graph.opset}); set fmod=1")
    return [emit_binary(ctx, node, BINARY_FUNCTION.FMOD if fmod else BINARY_FUNCTION.MOD, *inputs)]


def lower_clip(ctx, node, inputs):
    """Clip's bounds: attributes min and max before opset 11, optional constant inputs after."""
    x, low, high = (list(inputs) + [None, None])[:3]
    if isinstance(low, Tensor) or isinstance(high, Tensor):
        return [emit_binary(ctx, node, BINARY_FUNCTION.MIN,
                          emit_binary(ctx, node, BINARY_FUNCTION.MAX, x, -np.inf if low is None else low),
                          np.inf if high is None else high)]
    low = attribute(node, "min", -np.inf) if low is None else float(np.asarray(low).reshape(()))
    high = attribute(node, "max", np.inf) if high is None else float(np.asarray(high).reshape(()))
    return [emit_unary(ctx, x, UNARY_FUNCTION.CLIP, low, high)]


def lower_pow(ctx, node, inputs):
    """x ^ constant: 2 as a product, 0.5 as sqrt, 1 as x itself; anything else as a power."""
    x, exponent = inputs
    if isinstance(x, Tensor) and not isinstance(exponent, Tensor) and np.size(exponent) == 1:
        e = float(np.asarray(exponent).reshape(()))
        if np.broadcast_shapes(x.shape, np.shape(exponent)) == x.shape:
            if e == 1.0:
                return [x]
            special = {2.0: UNARY_FUNCTION.SQUARE, 0.5: UNARY_FUNCTION.SQRT}
            return [emit_unary(ctx, x, special.get(e, UNARY_FUNCTION.POW), e)]
    return [emit_binary(ctx, node, BINARY_FUNCTION.POW, x, exponent)]


def lower_two_operands(ctx, node, inputs):
    return [emit_binary(ctx, node, TWO_OPERANDS[node.op_type], *inputs)]


def lower_variadic(ctx, node, inputs):
    """Min and Max of one or more inputs, pairwise."""
    result = inputs[0]
    for other in inputs[1:]:
        result = emit_binary(ctx, node, VARIADIC[node.op_type], result, other)
    return [result if isinstance(result, Tensor) else ctx.resident(result)]


def lower_where(ctx, node, inputs):
    out, (condition, a, b) = operands(ctx, node, inputs)
    ctx.builder.emit(isa.WHERE, condition=condition, a=a, b=b, y=out.offset, n=out.size)
    return [out]


def lower_sum_mean(ctx, node, inputs):
    """Sum and Mean of one or more inputs: BINARY adds, then a scale for Mean."""
    result = inputs[0]
    for other in inputs[1:]:
        result = emit_binary(ctx, node, BINARY_FUNCTION.ADD, result, other)
    if node.op_type == "Mean":
        result = emit_binary(ctx, node, BINARY_FUNCTION.MUL, result, np.float32(1.0 / len(inputs)))
    return [result if isinstance(result, Tensor) else ctx.resident(result)]


HANDLERS = {
    **{op: lower_unary for op in UNARY},
    **{op: lower_two_operands for op in TWO_OPERANDS if op != "Pow"},
    **{op: lower_variadic for op in VARIADIC},
    "Pow": lower_pow, "Selu": lower_selu, "Gelu": lower_gelu, "Mod": lower_mod, "Clip": lower_clip, "Where": lower_where,
    "Sum": lower_sum_mean, "Mean": lower_sum_mean,
}
