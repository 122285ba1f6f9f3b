"""Reduce{Sum,Mean,Max,Min,Prod,L1,L2,SumSquare,LogSum,LogSumExp} over any axes, the other ops along
one axis (ArgMax, ArgMin, CumSum, TopK), and the norm layers that normalize along trailing axes
(LayerNormalization, InstanceNormalization).

A reduction over axes that are not one contiguous run first gathers them last (one indexed
copy), so that the kernel always reduces the middle axis of (outer, n, inner).
"""

import math

import numpy as np

from .. import isa
from ..graph import attribute
from ..isa import REDUCE_FUNCTION
from ..tensor import Tensor
from .elementwise import emit_binary

REDUCE = {"ReduceSum": REDUCE_FUNCTION.SUM, "ReduceMean": REDUCE_FUNCTION.MEAN, "ReduceMax": REDUCE_FUNCTION.MAX,
          "ReduceMin": REDUCE_FUNCTION.MIN, "ReduceProd": REDUCE_FUNCTION.PROD, "ReduceL1": REDUCE_FUNCTION.L1,
          "ReduceL2": REDUCE_FUNCTION.L2, "ReduceSumSquare": REDUCE_FUNCTION.SUM_SQUARE,
          "ReduceLogSum": REDUCE_FUNCTION.LOG_SUM, "ReduceLogSumExp": REDUCE_FUNCTION.LOG_SUM_EXP}


def _axes(ctx, node, inputs, rank):
    """The reduced axes, sorted, from the attribute or the constant second input."""
    axes = inputs[1] if len(inputs) > 1 else None
    if isinstance(axes, Tensor):
        ctx.fail(node, "input 'axes' is computed at run time; the reduced axes must be constant")
    axes = attribute(node, "axes", None) if axes is None else [int(a) for a in np.asarray(axes).ravel()]
    if not axes:
        return None if attribute(node, "noop_with_empty_axes", 0) else list(range(rank))
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        ctx.fail(node, f"attribute 'axes'={axes} is not a set of distinct axes of a rank-{rank} tensor")
    return sorted(a % rank for a in axes)


def lower_reduce(ctx, node, inputs):
    x = inputs[0]
    keepdims = attribute(node, "keepdims", 1)
    if keepdims not in (0, 1):
        ctx.fail(node, f"attribute 'keepdims'={keepdims} is not 0 or 1")
    axes = _axes(ctx, node, inputs, len(x.shape))
    if axes is None:
        return [x]
    return [reduce_axes(ctx, node, x, axes, keepdims, REDUCE[node.op_type])]


ARG = {("ArgMax", 0): REDUCE_FUNCTION.ARG_MAX, ("ArgMin", 0): REDUCE_FUNCTION.ARG_MIN,
       ("ArgMax", 1): REDUCE_FUNCTION.LAST_ARG_MAX, ("ArgMin", 1): REDUCE_FUNCTION.LAST_ARG_MIN}


def lower_arg(ctx, node, inputs):
    """ArgMax and ArgMin along one axis: the index, an int64 tensor, held as its float value."""
    x = inputs[0]
    keepdims, last = _flag(ctx, node, "keepdims", 1), _flag(ctx, node, "select_last_index", 0)
    axis, _, n, _ = _axis(ctx, node, x, attribute(node, "axis", 0))
    if n == 0:
        ctx.fail(node, f"axis {axis} of data of shape {list(x.shape)} is empty: it has no maximum or minimum")
    return [reduce_axes(ctx, node, x, [axis], keepdims, ARG[node.op_type, last])]


def _axis(ctx, node, x: Tensor, axis) -> tuple[int, int, int, int]:
    """(axis, outer, n, inner): x viewed as (outer, n, inner) along ``axis`` (checked)."""
    rank = len(x.shape)
    if not -rank <= axis < rank:
        ctx.fail(node, f"axis {axis} is out of range for data of shape {list(x.shape)}")
    axis %= rank
    return axis, math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])


def _flag(ctx, node, name: str, default: int) -> int:
    """A 0-or-1 attribute."""
    value = attribute(node, name, default)
    if value not in (0, 1):
        ctx.fail(node, f"attribute '{name}'={value} is not 0 or 1")
    return value


def _constant(ctx, node, value, index: int, what: str) -> int:
    if isinstance(value, Tensor):
        ctx.fail(node, f"input '{node.input[index]}' ({what}) is computed at run time; it must be constant")
    if value is None or np.size(value) != 1:
        ctx.fail(node, f"input {what} must be one integer, not {value!r}")
    return int(np.asarray(value).reshape(()))


def lower_cumsum(ctx, node, inputs):
    x, axis = inputs
    exclusive, reverse = _flag(ctx, node, "exclusive", 0), _flag(ctx, node, "reverse", 0)
    _, outer, n, inner = _axis(ctx, node, x, _constant(ctx, node, axis, 1, "axis"))
    y = ctx.new_tensor(x.shape)
    ctx.builder.emit(isa.CUMSUM, x=x.offset, y=y.offset, outer=outer, n=n, inner=inner, exclusive=exclusive,
                     reverse=reverse)
    return [y]


def lower_topk(ctx, node, inputs):
    """TopK with a constant k: Values and Indices (an int64 tensor, held as its values), always in
    order (with sorted=0 ONNX leaves the order open)."""
    x = inputs[0]
    k = _constant(ctx, node, inputs[1], 1, "K") if len(inputs) > 1 else attribute(node, "k", None)
    if k is None:
        ctx.fail(node, "has no k (input K or attribute k)")
    largest = _flag(ctx, node, "largest", 1)
    _flag(ctx, node, "sorted", 1)
    axis, outer, n, inner = _axis(ctx, node, x, attribute(node, "axis", -1))
    if not 0 <= k <= n:
        ctx.fail(node, f"k={k} is not within the {n} values of axis {axis}")
    shape = [k if a == axis else d for a, d in enumerate(x.shape)]
    values, indices = ctx.new_tensor(shape), ctx.new_tensor(shape)
    ctx.builder.emit(isa.TOPK, x=x.offset, values=values.offset, indices=indices.offset, outer=outer, n=n,
                     inner=inner, k=k, largest=largest)
    return [values, indices]


def lower_global_pool(ctx, node, inputs):
    """GlobalAveragePool and GlobalMaxPool: the mean or maximum over every spatial axis, kept."""
    x = inputs[0]
    if len(x.shape) < 3:
        ctx.fail(node, f"X of shape {list(x.shape)} has no spatial axis to pool over")
    function = REDUCE_FUNCTION.MEAN if node.op_type == "GlobalAveragePool" else REDUCE_FUNCTION.MAX
    return [reduce_axes(ctx, node, x, list(range(2, len(x.shape))), 1, function)]


# What a reduction of no values is, as ONNX defines it (and ONNX Runtime computes it); the mean of
# none is not defined (ONNX Runtime gives 0, the reference NaN), nor the index of the best
EMPTY = {REDUCE_FUNCTION.SUM: 0.0, REDUCE_FUNCTION.PROD: 1.0, REDUCE_FUNCTION.MAX: -np.inf,
         REDUCE_FUNCTION.MIN: np.inf, REDUCE_FUNCTION.L1: 0.0, REDUCE_FUNCTION.L2: 0.0,
         REDUCE_FUNCTION.SUM_SQUARE: 0.0, REDUCE_FUNCTION.LOG_SUM: -np.inf, REDUCE_FUNCTION.LOG_SUM_EXP: -np.inf}


def reduce_axes(ctx, node, x: Tensor, axes: list[int], keepdims: int, function) -> Tensor:
    """x reduced over ``axes`` (sorted) by ``function``, one REDUCE instruction (after one
    indexed copy that gathers the axes last when they are not one contiguous run). Over an
    empty axis, the constant ONNX defines: the kernels always reduce one value or more."""
    source = x
    kept = [a for a in range(len(x.shape)) if a not in axes]
    shape = [1 if a in axes else d for a, d in enumerate(source.shape)] if keepdims \
        else [source.shape[a] for a in kept]
    if any(x.shape[a] == 0 for a in axes):
        if function not in EMPTY:
            ctx.fail(node, f"reduces empty axes {axes} of data of shape {list(x.shape)}, which gives no "
                           f"defined value")
        # a view until the arena has taken its size: a file's dims never size memory unchecked
        return ctx.new_tensor(shape, init=np.broadcast_to(np.float32(EMPTY[function]), shape))
    if axes == list(range(axes[0], axes[-1] + 1)):
        outer, n = math.prod(x.shape[:axes[0]]), math.prod(x.shape[axes[0]:axes[-1] + 1])
        inner = math.prod(x.shape[axes[-1] + 1:])
    else:
        x = ctx.from_addresses(x.addresses().transpose(kept + axes))
        outer, n, inner = math.prod(x.shape[:len(kept)]), math.prod(x.shape[len(kept):]), 1
    y = ctx.new_tensor(shape)
    ctx.builder.emit(isa.REDUCE, function=function, x=x.offset, y=y.offset, outer=outer, n=n, inner=inner)
    return y


def _normalize(ctx, x: Tensor, rows: int, epsilon: float) -> Tensor:
    y = ctx.new_tensor(x.shape)
    ctx.builder.emit(isa.NORMALIZE, x=x.offset, y=y.offset, rows=rows, n=x.size // max(rows, 1),
                     epsilon=ctx.builder.constant([epsilon]))
    return y


def _scaled(ctx, node, y: Tensor, scale, bias) -> Tensor:
    if isinstance(scale, Tensor) or isinstance(bias, Tensor):
        ctx.fail(node, "scale and B must be constant")
    if scale is not None:
        y = emit_binary(ctx, node, isa.BINARY_FUNCTION.MUL, y, np.asarray(scale, np.float32))
    if bias is not None:
        y = emit_binary(ctx, node, isa.BINARY_FUNCTION.ADD, y, np.asarray(bias, np.float32))
    return y


def lower_layer_norm(ctx, node, inputs):
    x, scale, bias = (list(inputs) + [None, None])[:3]
    if any(node.output[1:]):
        ctx.fail(node, "outputs Mean and InvStdDev are not supported; use output Y only")
    rank = len(x.shape)
    axis = attribute(node, "axis", -1)
    if not -rank <= axis < rank:
        ctx.fail(node, f"attribute 'axis'={axis} is out of range for X of shape {list(x.shape)}")
    y = _normalize(ctx, x, math.prod(x.shape[:axis % rank]), attribute(node, "epsilon", 1e-5))
    return [_scaled(ctx, node, y, scale, bias)]


def lower_instance_norm(ctx, node, inputs):
    x, scale, bias = inputs
    if isinstance(scale, Tensor) or isinstance(bias, Tensor):
        ctx.fail(node, "scale and B must be constant")
    if len(x.shape) < 3:
        ctx.fail(node, f"X of shape {list(x.shape)} has no spatial axis to normalize over")
    per_channel = (-1,) + (1,) * (len(x.shape) - 2)
    y = _normalize(ctx, x, x.shape[0] * x.shape[1], attribute(node, "epsilon", 1e-5))
    return [_scaled(ctx, node, y, np.asarray(scale, np.float32).reshape(per_channel),
                    np.asarray(bias, np.float32).reshape(per_channel))]


HANDLERS = {**{op: lower_reduce for op in REDUCE}, "LayerNormalization": lower_layer_norm,
            "InstanceNormalization": lower_instance_norm, "GlobalAveragePool": lower_global_pool,
            "GlobalMaxPool": lower_global_pool, "ArgMax": lower_arg, "ArgMin": lower_arg, "CumSum": lower_cumsum,
            "TopK": lower_topk}
