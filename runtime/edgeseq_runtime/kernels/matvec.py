"""The one matrix product every layer uses: a row vector times a row-major weight block.

Weights are stored input-major ("W transposed", shape (n_in, ld)) so that the inner loop runs
over contiguous outputs and vectorises across them. Four inputs are folded into each pass
over the outputs, so the accumulator is loaded and stored a quarter as often. The order of
the terms is fixed by this code alone, so ``run`` and ``step`` stay bit-identical.
"""

from numba import njit

from .config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def accumulate(vec, m, m_off, ld, out):
    """out += vec @ M[:, :out.size], M row-major (vec.size, ld) starting at m[m_off]."""
    n_in, n_out = vec.size, out.size
    rows = m[m_off:m_off + n_in * ld].reshape((n_in, ld))
    k = 0
    while k + 4 <= n_in:
        v0, v1, v2, v3 = vec[k], vec[k + 1], vec[k + 2], vec[k + 3]
        for j in range(n_out):
            out[j] += v0 * rows[k, j] + v1 * rows[k + 1, j] + v2 * rows[k + 2, j] + v3 * rows[k + 3, j]
        k += 4
    while k < n_in:
        vk = vec[k]
        for j in range(n_out):
            out[j] += vk * rows[k, j]
        k += 1


@njit(**JIT_OPTIONS)
def fill(dst, w, w_off):
    """dst = w[w_off:w_off+dst.size], or zeros when w_off < 0 (an absent bias)."""
    if w_off < 0:
        dst[:] = 0.0
    else:
        src = w[w_off:w_off + dst.size]
        for j in range(dst.size):
            dst[j] = src[j]
