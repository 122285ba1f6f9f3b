"""Gemm and MatMul with a constant weight matrix: the heads that follow a recurrent layer."""

import numpy as np

from .. import isa
from ..graph import attribute
from ..tensor import Tensor


def _emit_dense(ctx, node, a: Tensor, matrix: list[int], n_in: int, n_out: int, bias, out_shape) -> Tensor:
    """out = a (rows, n_in) @ matrix (n_in, n_out) + bias, bias broadcast to (rows, n_out);
    ``matrix`` is an operand from ``PlanBuilder.matrix``. Without a bias of its own, a constant
    that an Add adds to the result next is taken as the bias (see ``_following_bias``)."""
    rows = a.size // n_in
    bias_off = -1
    add = None
    if bias is None:
        add, bias = _following_bias(ctx, node, out_shape, n_out)
    if bias is not None:
        try:
            bias = np.broadcast_to(np.asarray(bias, np.float32), (rows, n_out))
        except ValueError:
            ctx.fail(node, f"bias of shape {list(np.shape(bias))} does not broadcast to {[rows, n_out]}")
        bias_off = ctx.builder.constant(bias)
    out = ctx.new_tensor(out_shape)
    ctx.builder.emit(isa.DENSE, x=a.offset, y=out.offset, rows=rows, n_in=n_in, n_out=n_out, w=matrix, bias=bias_off)
    if add is not None:
        ctx.absorb(add, out)
    return out


def _following_bias(ctx, node, out_shape, n_out: int):
    """(the Add node, its constant) when the product's only use is an Add of a constant that
    keeps its shape: MatMul + Add is how exporters write a Linear layer on 3-D input, and one
    dense instruction does both in one pass. Otherwise (None, None)."""
    add = ctx.only_use(node.output[0])
    if add is None or add.op_type != "Add":
        return None, None
    other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
    constant = ctx.values.get(other)
    if constant is None or isinstance(constant, Tensor):
        return None, None
    try:
        if np.broadcast_shapes(tuple(out_shape), np.shape(constant)) != tuple(out_shape):
            return None, None
    except ValueError:
        return None, None
    return add, np.broadcast_to(np.asarray(constant, np.float32), out_shape).reshape(-1, n_out)


def lower_gemm(ctx, node, inputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if not isinstance(a, Tensor) or isinstance(b, Tensor) or isinstance(c, Tensor):
        ctx.fail(node, "only A may depend on the input: B and C must be constant")
    if len(a.shape) != 2 or len(b.shape) != 2:
        ctx.fail(node, f"A and B must be matrices; got shapes {list(a.shape)} and {list(b.shape)}")
    if attribute(node, "transA", 0):
        a = ctx.from_addresses(a.addresses().T)
    trans_b = attribute(node, "transB", 0)
    n_in, n_out = b.shape[::-1] if trans_b else b.shape
    if a.shape[1] != n_in:
        ctx.fail(node, f"A {list(a.shape)} and B {list(b.shape)} (transB={trans_b}) do not multiply")
    matrix = ctx.builder.matrix(b, out_axis=0 if trans_b else 1, factor=attribute(node, "alpha", 1.0),
                                panels=not ctx.lean)
    bias = None if c is None else np.asarray(c, np.float32) * np.float32(attribute(node, "beta", 1.0))
    return [_emit_dense(ctx, node, a, matrix, n_in, n_out, bias, (a.shape[0], n_out))]


def lower_matmul(ctx, node, inputs):
    a, b = inputs
    if not isinstance(a, Tensor) or isinstance(b, Tensor):
        ctx.fail(node, "only the first operand may depend on the input: the second must be constant")
    if len(b.shape) not in (1, 2) or not a.shape:
        ctx.fail(node, f"MatMul needs a vector or a matrix on the right and at least a vector on the left; "
                       f"got shapes {list(a.shape)} and {list(b.shape)}")
    if a.shape[-1] != b.shape[0]:
        ctx.fail(node, f"shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    if len(b.shape) == 1:
        b = np.asarray(b, np.float32)[:, None]
        out_shape = a.shape[:-1]
    else:
        out_shape = a.shape[:-1] + (b.shape[1],)
    matrix = ctx.builder.matrix(b, out_axis=1, panels=not ctx.lean)
    return [_emit_dense(ctx, node, a, matrix, b.shape[0], b.shape[1], None, out_shape)]


HANDLERS = {"Gemm": lower_gemm, "MatMul": lower_matmul}
