"""The one matrix product every layer uses: a row vector times a constant weight matrix.

Weights are stored input-major ("W transposed", shape (n_in, ld)) so that the inner loop runs
over contiguous outputs and vectorises across them. Four inputs are folded into each pass
over the outputs, so the accumulator is loaded and stored a quarter as often. The order of
the terms is fixed by this code alone, so ``run`` and ``step`` stay bit-identical.

A matrix operand is three ints in the code: ``[kind, offset, scale offset]``. FLOAT32 matrices
live in the float weights ``w``; INT8 ones in the int8 weights ``q``, with one float scale per
output column in ``w`` (symmetric per-channel quantization: value = q * scale).
"""

from numba import njit

from .config import JIT_OPTIONS

FLOAT32 = 0
INT8 = 1


@njit(**JIT_OPTIONS)
def accumulate_f32(vec, m, off, ld, col, out):
    """out += vec @ M[:, col:col+out.size], M row-major (vec.size, ld) at m[off]."""
    n_in, n_out = vec.size, out.size
    rows = m[off:off + n_in * ld].reshape((n_in, ld))
    k = 0
    while k + 4 <= n_in:
        v0, v1, v2, v3 = vec[k], vec[k + 1], vec[k + 2], vec[k + 3]
        for j in range(n_out):
            c = col + j
            out[j] += v0 * rows[k, c] + v1 * rows[k + 1, c] + v2 * rows[k + 2, c] + v3 * rows[k + 3, c]
        k += 4
    while k < n_in:
        vk = vec[k]
        for j in range(n_out):
            out[j] += vk * rows[k, col + j]
        k += 1


@njit(**JIT_OPTIONS)
def accumulate_i8(vec, q, off, ld, col, scale, out):
    """out += vec @ (Q[:, col:col+out.size] * scale), Q int8 row-major (vec.size, ld) at q[off],
    scale[j] the scale of output column j."""
    n_in, n_out = vec.size, out.size
    rows = q[off:off + n_in * ld].reshape((n_in, ld))
    k = 0
    while k + 4 <= n_in:
        v0, v1, v2, v3 = vec[k], vec[k + 1], vec[k + 2], vec[k + 3]
        for j in range(n_out):
            c = col + j
            out[j] += scale[j] * (v0 * rows[k, c] + v1 * rows[k + 1, c] + v2 * rows[k + 2, c] + v3 * rows[k + 3, c])
        k += 4
    while k < n_in:
        vk = vec[k]
        for j in range(n_out):
            out[j] += scale[j] * (vk * rows[k, col + j])
        k += 1


@njit(**JIT_OPTIONS)
def accumulate(code, mp, w, q, ld, col, vec, out):
    """out += vec @ columns [col, col+out.size) of the matrix operand encoded at code[mp:mp+3]."""
    kind, off, scale_off = code[mp], code[mp + 1], code[mp + 2]
    if kind == INT8:
        accumulate_i8(vec, q, off, ld, col, w[scale_off + col:scale_off + col + out.size], out)
    else:
        accumulate_f32(vec, w, off, ld, col, out)


@njit(**JIT_OPTIONS)
def fill(dst, w, w_off):
    """dst = w[w_off:w_off+dst.size], or zeros when w_off < 0 (an absent bias)."""
    if w_off < 0:
        dst[:] = 0.0
    else:
        src = w[w_off:w_off + dst.size]
        for j in range(dst.size):
            dst[j] = src[j]
