"""The one matrix product every layer uses: a row vector times a row-major weight block.

Weights are stored input-major ("W transposed", shape (n_in, ld)) so that the inner loop runs
over contiguous outputs: each output accumulates its terms in input order (no reassociation),
which keeps ``run`` and ``step`` bit-identical, and the loop vectorises across outputs.
"""

from numba import njit

from .config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def accumulate(vec, m, m_off, ld, out):
    """out += vec @ M[:, :out.size], M row-major (vec.size, ld) starting at m[m_off]."""
    n_out = out.size
    for k in range(vec.size):
        vk = vec[k]
        row = m[m_off + k * ld:m_off + k * ld + n_out]
        for j in range(n_out):
            out[j] += vk * row[j]


@njit(**JIT_OPTIONS)
def fill(dst, w, w_off):
    """dst = w[w_off:w_off+dst.size], or zeros when w_off < 0 (an absent bias)."""
    if w_off < 0:
        dst[:] = 0.0
    else:
        src = w[w_off:w_off + dst.size]
        for j in range(dst.size):
            dst[j] = src[j]
