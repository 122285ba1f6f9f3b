"""Gemm and MatMul against a constant matrix: out = in @ W + bias, float32.

The products start from zero and take the bias after their last term, as ONNX Runtime's do (and
as conv_f32's): carried from a large bias, small terms would lose their low bits at every one.

Fields: ``isa.DENSE``.
"""

from numba import njit

from ..isa import DENSE
from .config import JIT_OPTIONS
from .linking import call_linked
from .matvec import add_bias, fill, project
from .views import matrix


@njit(**JIT_OPTIONS)
def dense_f32(code, p, w, q, a):
    rows, n_in, n_out, bias = code[p + DENSE.ROWS], code[p + DENSE.N_IN], code[p + DENSE.N_OUT], code[p + DENSE.BIAS]
    x = matrix(a, code[p + DENSE.X], rows, n_in)
    y = matrix(a, code[p + DENSE.Y], rows, n_out)
    for r in range(rows):
        fill(y[r], w, -1)
    call_linked(project, code, p + DENSE.W, w, q, n_out, 0, x, y, 0, n_out)
    for r in range(rows):
        add_bias(y[r], w, bias, r * n_out)
