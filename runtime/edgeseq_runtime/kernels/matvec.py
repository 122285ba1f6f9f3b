"""The one matrix product every layer uses: rows of inputs times a constant weight matrix.

``project`` computes OUT[b, out_col:out_col+n] += X[b] @ M[:, col:col+n] for every stream b.
Weights are stored input-major ("W transposed", shape (n_in, ld)), so the inner loop runs over
contiguous outputs and vectorises across them. Streams are taken four at a time, each weight
row loaded once for all four (what makes ``batch=256`` cheap per stream); a lone stream folds
four inputs into each pass instead, so its accumulator is loaded and stored a quarter as often.
The order of the terms is fixed by this code alone, so ``run`` and ``step`` stay bit-identical.

A matrix operand is three ints in the code: ``[kind, offset, scale offset]``. FLOAT32 matrices
live in the float weights ``w``; INT8 ones in the int8 weights ``q``, with one float scale per
output column in ``w`` (symmetric per-channel quantization: value = q * scale).
"""

import numpy as np
from numba import njit

from .config import JIT_OPTIONS

FLOAT32 = 0
INT8 = 1


@njit(**JIT_OPTIONS)
def project(code, mp, w, q, ld, col, x, out, out_col, n):
    """out[b, out_col:out_col+n] += x[b] @ M[:, col:col+n] for each row b, M the matrix operand
    encoded at code[mp:mp+3] with ``ld`` columns."""
    kind, off, scale_off = code[mp], code[mp + 1], code[mp + 2]
    n_in = x.shape[1]
    if kind == INT8:
        _project(x, q[off:off + n_in * ld].reshape((n_in, ld)), col, out, out_col, n,
                 w[scale_off + col:scale_off + col + n])
    else:
        _project(x, w[off:off + n_in * ld].reshape((n_in, ld)), col, out, out_col, n, None)


@njit(**JIT_OPTIONS)
def _project(x, m, col, out, out_col, n, scale):
    """``project`` for one storage type; ``scale`` is None for float32 weights (numba compiles
    the two cases separately, so the float path has no multiply by one)."""
    b = 0
    while b + 4 <= x.shape[0]:
        _four_streams(x, b, m, col, out, out_col, n, scale)
        b += 4
    while b < x.shape[0]:
        _one_stream(x[b], m, col, out[b], out_col, n, scale)
        b += 1


@njit(**JIT_OPTIONS)
def _four_streams(x, b, m, col, out, out_col, n, scale):
    """Rows b..b+3 at once, two inputs per pass: each weight is loaded once for four streams.
    (Every array is indexed by a ``range`` index over a view, so numba drops its negative-index
    check and LLVM vectorises the loops.)"""
    o0, o1 = out[b, out_col:out_col + n], out[b + 1, out_col:out_col + n]
    o2, o3 = out[b + 2, out_col:out_col + n], out[b + 3, out_col:out_col + n]
    n_in = x.shape[1]
    for k in range(0, n_in - 1, 2):
        a0, a1, a2, a3 = x[b, k], x[b + 1, k], x[b + 2, k], x[b + 3, k]
        c0, c1, c2, c3 = x[b, k + 1], x[b + 1, k + 1], x[b + 2, k + 1], x[b + 3, k + 1]
        wu, wv = m[k, col:col + n], m[k + 1, col:col + n]
        for j in range(n):
            u = np.float32(wu[j])
            v = np.float32(wv[j])
            if scale is not None:
                u *= scale[j]
                v *= scale[j]
            o0[j] += a0 * u + c0 * v
            o1[j] += a1 * u + c1 * v
            o2[j] += a2 * u + c2 * v
            o3[j] += a3 * u + c3 * v
    if n_in % 2:
        k = n_in - 1
        a0, a1, a2, a3 = x[b, k], x[b + 1, k], x[b + 2, k], x[b + 3, k]
        wu = m[k, col:col + n]
        for j in range(n):
            u = np.float32(wu[j])
            if scale is not None:
                u *= scale[j]
            o0[j] += a0 * u
            o1[j] += a1 * u
            o2[j] += a2 * u
            o3[j] += a3 * u


@njit(**JIT_OPTIONS)
def _one_stream(vec, m, col, out, out_col, n, scale):
    """One row, four inputs per pass over the outputs."""
    o = out[out_col:out_col + n]
    n_in = vec.size
    k = 0
    while k + 4 <= n_in:
        v0, v1, v2, v3 = vec[k], vec[k + 1], vec[k + 2], vec[k + 3]
        w0, w1, w2, w3 = m[k, col:col + n], m[k + 1, col:col + n], m[k + 2, col:col + n], m[k + 3, col:col + n]
        for j in range(n):
            t = (v0 * np.float32(w0[j]) + v1 * np.float32(w1[j])
                 + v2 * np.float32(w2[j]) + v3 * np.float32(w3[j]))
            if scale is None:
                o[j] += t
            else:
                o[j] += scale[j] * t
        k += 4
    while k < n_in:
        vk, w0 = vec[k], m[k, col:col + n]
        for j in range(n):
            if scale is None:
                o[j] += vk * np.float32(w0[j])
            else:
                o[j] += scale[j] * (vk * np.float32(w0[j]))
        k += 1


@njit(**JIT_OPTIONS)
def fill(dst, w, w_off):
    """dst = w[w_off:w_off+dst.size], or zeros when w_off < 0 (an absent bias)."""
    if w_off < 0:
        for j in range(dst.size):
            dst[j] = 0.0
    else:
        copy(dst, w[w_off:w_off + dst.size])


@njit(**JIT_OPTIONS)
def copy(dst, src):
    """dst[:] = src, as a loop: the kernels run without numba's runtime (no allocation, no
    reference counting), and a slice assignment may want a temporary."""
    for j in range(dst.size):
        dst[j] = src[j]
