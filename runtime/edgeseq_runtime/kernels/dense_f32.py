"""Gemm and MatMul against a constant matrix: out = in @ W + bias, float32.

Arguments at code[p:]::

    0 in     arena, (rows, n_in)
    1 out    arena, (rows, n_out)
    2 rows   3 n_in   4 n_out
    5-7 W    matrix operand (see matvec), (n_in, n_out), alpha and transB already applied
    8 bias   weights, (rows, n_out), beta and broadcasting already applied; or -1
"""

from numba import njit

from .config import JIT_OPTIONS
from .matvec import fill, project
from .views import matrix


@njit(**JIT_OPTIONS)
def dense_f32(code, p, w, q, a):
    src, dst, rows, n_in, n_out = code[p], code[p + 1], code[p + 2], code[p + 3], code[p + 4]
    bias = code[p + 8]
    x = matrix(a, src, rows, n_in)
    out = matrix(a, dst, rows, n_out)
    for r in range(rows):
        fill(out[r], w, bias + r * n_out if bias >= 0 else -1)
    project(code, p + 5, w, q, n_out, 0, x, out, 0, n_out)
