"""MatMul of two run-time tensors (attention scores, batched products), float32.

Fields: ``isa.MATMUL``: c[i] = a[i] @ b[i] for each of ``count`` matrices; broadcasting over the
leading axes is made into whole copies by the planner. The k loop is the middle one, so the
inner loop runs along rows of b and c and vectorises.
"""

from numba import njit

from ..isa import MATMUL
from .config import JIT_OPTIONS
from .views import matrix


@njit(**JIT_OPTIONS)
def matmul_f32(code, p, w, a):
    count, m, k, n = code[p + MATMUL.COUNT], code[p + MATMUL.M], code[p + MATMUL.K], code[p + MATMUL.N]
    for i in range(count):
        x = matrix(a, code[p + MATMUL.A] + i * m * k, m, k)
        y = matrix(a, code[p + MATMUL.B] + i * k * n, k, n)
        z = matrix(a, code[p + MATMUL.C] + i * m * n, m, n)
        for r in range(m):
            row = z[r]
            for j in range(n):
                row[j] = 0.0
            for t in range(k):
                v = x[r, t]
                source = y[t]
                for j in range(n):
                    row[j] += v * source[j]
