"""Cast, and the integer and bool tensors a Cast of a computed tensor makes.

The arena holds every tensor as float32, whatever type the graph names. An integer or a bool is
held as its value, exact while |value| <= 2^24 (float32's integers): a Cast to an integer type
truncates toward zero, as ONNX and ONNX Runtime do; a Cast to bool gives 1.0 where the value is
not 0 (NaN included) and 0.0 elsewhere. Add, Sub, Mul, comparisons, Where, Min, Max and Gather
indices then compute exactly what the integer types would, and the ops whose float result of
integers may be a fraction (Div, Pow, ReduceMean, ReduceL2, ...) truncate it toward zero where
the result is an integer tensor, as ONNX Runtime's integer kernels do (C's integer division;
exact for |values| <= 2^24).

Values outside the target type's range, and NaN, are undefined in ONNX (ONNX Runtime wraps
them modulo 2^bits below int32, or gives the type's minimum, as the machine's conversion does).
A Cast whose input is known at load time to reach outside the target's range (the output of an
op with a bounded range: a comparison, Sigmoid, Tanh, Clip, ...) is refused; otherwise the
runtime keeps the truncated value, not wrapped, and NaN stays NaN (a state that holds it is
refused at the end of the step).
"""

import numpy as np
import onnx

from ..graph import FLOAT_TYPES, INTEGER_TYPES, attribute, type_name
from ..isa import BINARY_FUNCTION, UNARY_FUNCTION
from ..tensor import Tensor
from .elementwise import emit_binary
from .pointwise import emit_unary

NARROWING_CASTS = {onnx.TensorProto.FLOAT16: UNARY_FUNCTION.TO_FLOAT16,
                   onnx.TensorProto.BFLOAT16: UNARY_FUNCTION.TO_BFLOAT16}
BOOL = onnx.TensorProto.BOOL
# Ops whose output lies in a range known at load time, whatever their input: [low, high].
BOUNDED = {**dict.fromkeys(("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor",
                            "Not", "IsNaN", "IsInf"), (0.0, 1.0)),
           "Sigmoid": (0.0, 1.0), "HardSigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Softsign": (-1.0, 1.0)}


def lower_cast(ctx, node, inputs):
    """Cast of a computed tensor, to any numeric type or bool (see the module docstring)."""
    to = attribute(node, "to", onnx.TensorProto.FLOAT)
    x = inputs[0]
    if to in FLOAT_TYPES:
        if to not in NARROWING_CASTS:
            return [x]
        # float16 / bfloat16: rounded as that type holds them, so what follows sees ONNX's numbers
        return [emit_unary(ctx, x, NARROWING_CASTS[to])]
    source = ctx.graph.value_types.get(node.input[0])
    if to == BOOL:
        if source == BOOL:
            return [x]
        return [emit_unary(ctx, emit_unary(ctx, x, UNARY_FUNCTION.NOT), UNARY_FUNCTION.NOT)]
    if to not in INTEGER_TYPES:
        ctx.fail(node, f"casting a computed tensor to {type_name(to)} is not supported (to numbers and bool only)")
    _check_range(ctx, node, to)
    if source in INTEGER_TYPES or source == BOOL:
        return [x]  # integers already
    return [truncated(ctx, node, x)]


def truncated(ctx, node, x: Tensor) -> Tensor:
    """x rounded toward zero, as floor(|x|) * clip(x, -1, 1): where |x| >= 1 the clip is x's sign
    exactly, and below 1 the floor is 0 (NaN stays NaN)."""
    magnitude = emit_unary(ctx, emit_unary(ctx, x, UNARY_FUNCTION.ABS), UNARY_FUNCTION.FLOOR)
    return emit_binary(ctx, node, BINARY_FUNCTION.MUL, magnitude, emit_unary(ctx, x, UNARY_FUNCTION.CLIP, -1.0, 1.0))


def _check_range(ctx, node, to) -> None:
    """Refuse a Cast whose input's range, known at load time, reaches outside the type's."""
    known = _known_range(ctx, node.input[0])
    if known is None:
        return
    info = np.iinfo(onnx.helper.tensor_dtype_to_np_dtype(to))
    low, high = (float(np.trunc(v)) for v in known)
    if low < info.min or high > info.max:
        producer = ctx.graph.describe(ctx.graph.producer[node.input[0]])
        ctx.fail(node, f"casts values in [{known[0]:g}, {known[1]:g}] (from {producer}) to {type_name(to)}, which "
                       f"holds [{info.min}, {info.max}]: ONNX leaves the values outside undefined")


def _known_range(ctx, name) -> tuple[float, float] | None:
    """[low, high] that the run-time value ``name`` lies in, when the op that makes it bounds it
    whatever its input (BOUNDED, a Cast to bool, a Clip with constant bounds), else None."""
    node = ctx.graph.producer.get(name)
    if node is None:
        return None
    if node.op_type in BOUNDED:
        return BOUNDED[node.op_type]
    if node.op_type == "Cast" and attribute(node, "to", None) == BOOL:
        return (0.0, 1.0)
    if node.op_type == "Clip":
        bounds = [ctx.values.get(n) if n else None for n in [*node.input, "", ""][1:3]]
        if any(isinstance(b, Tensor) for b in bounds):
            return None
        low = attribute(node, "min", -np.inf) if bounds[0] is None else float(np.asarray(bounds[0]).reshape(()))
        high = attribute(node, "max", np.inf) if bounds[1] is None else float(np.asarray(bounds[1]).reshape(()))
        return (low, high) if np.isfinite(low) and np.isfinite(high) else None
    return None


def truncating(handler):
    """``handler`` of an op that computes fractions from integers (FRACTIONAL), its outputs
    truncated toward zero where they are integer tensors, as ONNX Runtime's integer kernels
    give them (C's integer division, a cast of the float result)."""
    def lower(ctx, node, inputs):
        outputs = handler(ctx, node, inputs)
        types = ctx.graph.value_types
        integer = types.get(node.output[0]) in INTEGER_TYPES or (
            node.output[0] not in types and any(types.get(n) in INTEGER_TYPES for n in node.input))
        return [truncated(ctx, node, y) for y in outputs] if integer else outputs
    return lower


FRACTIONAL = ("Div", "Pow", "ReduceMean", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
HANDLERS = {"Cast": lower_cast}
