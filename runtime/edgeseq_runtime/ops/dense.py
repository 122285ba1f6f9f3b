"""Gemm and MatMul with a constant weight matrix: the heads that follow a recurrent layer."""

import numpy as np

from ..graph import attribute
from ..kernels import opcodes
from ..tensor import Tensor


def _emit_dense(ctx, node, a: Tensor, matrix: np.ndarray, bias, out_shape) -> Tensor:
    """out = a (rows, n_in) @ matrix (n_in, n_out) + bias, bias broadcast to (rows, n_out)."""
    n_in, n_out = matrix.shape
    rows = a.size // n_in
    bias_off = -1
    if bias is not None:
        try:
            bias = np.broadcast_to(np.asarray(bias, np.float32), (rows, n_out))
        except ValueError:
            ctx.fail(node, f"bias of shape {list(np.shape(bias))} does not broadcast to {[rows, n_out]}")
        bias_off = ctx.builder.constant(bias)
    out = ctx.new_tensor(out_shape)
    ctx.builder.emit(opcodes.OP_DENSE, [a.offset, out.offset, rows, n_in, n_out,
                                        ctx.builder.constant(matrix), bias_off])
    return out


def lower_gemm(ctx, node, inputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if not isinstance(a, Tensor) or isinstance(b, Tensor) or isinstance(c, Tensor):
        ctx.fail(node, "only A may depend on the input: B and C must be constant")
    if len(a.shape) != 2 or np.ndim(b) != 2:
        ctx.fail(node, f"A and B must be matrices; got shapes {list(a.shape)} and {list(np.shape(b))}")
    if attribute(node, "transA", 0):
        a = ctx.from_addresses(a.addresses().T)
    matrix = np.asarray(b, np.float32)
    if attribute(node, "transB", 0):
        matrix = matrix.T
    if a.shape[1] != matrix.shape[0]:
        ctx.fail(node, f"A {list(a.shape)} and B {list(matrix.shape)} do not multiply")
    matrix = matrix * np.float32(attribute(node, "alpha", 1.0))
    bias = None if c is None else np.asarray(c, np.float32) * np.float32(attribute(node, "beta", 1.0))
    return [_emit_dense(ctx, node, a, matrix, bias, (a.shape[0], matrix.shape[1]))]


def lower_matmul(ctx, node, inputs):
    a, b = inputs
    if not isinstance(a, Tensor) or isinstance(b, Tensor):
        ctx.fail(node, "only the first operand may depend on the input: the second must be constant")
    b = np.asarray(b, np.float32)
    if b.ndim not in (1, 2):
        ctx.fail(node, f"the constant operand must be a vector or a matrix; got shape {list(b.shape)}")
    matrix = b if b.ndim == 2 else b[:, None]
    if a.shape[-1] != matrix.shape[0]:
        ctx.fail(node, f"shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    out_shape = a.shape[:-1] + ((matrix.shape[1],) if b.ndim == 2 else ())
    return [_emit_dense(ctx, node, a, matrix, None, out_shape)]


HANDLERS = {"Gemm": lower_gemm, "MatMul": lower_matmul}
