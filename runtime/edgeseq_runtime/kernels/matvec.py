"""The one matrix product every layer uses: rows of inputs times a constant weight matrix.

``project`` computes OUT[b, out_col:out_col+n] += X[b] @ M[:, col:col+n] for every stream b.

A matrix operand is ``isa.MATRIX`` in the code: kind, offset, scale offset. The kind
(``isa.MATRIX_KIND``) says how the matrix is stored:

* FLOAT32, INT8: input-major ("W transposed", shape (n_in, ld)), so that a run of consecutive
  outputs is contiguous and the register-blocked tiles of ``blocked`` take 8 to 64 of them at
  once, for 1, 2 or 4 rows (each weight loaded once for all of them), with loops blocked so that
  the data a tile reads again stays in cache;
* FLOAT32_BY_OUTPUT, INT8_BY_OUTPUT: output-major (shape (ld, n_in)), for matrices with fewer
  outputs than a vector holds (a regression or classifier head): one dot product per output,
  vectorised over the inputs.

FLOAT32 matrices live in the float weights ``w``; INT8 ones in the int8 weights ``q``, with one
float scale per output column in ``w`` (symmetric per-channel quantization: value = q * scale).
The order of the terms is fixed by this code alone, so ``run`` and ``step`` stay bit-identical.
"""

import numpy as np
from numba import njit

from ..isa import LANES, MATRIX, MATRIX_KIND
from .blocked import block
from .config import JIT_OPTIONS
from .views import matrix

L1_ELEMENTS = 1 << 13  # 32 KB of float32, an L1 cache: larger matrices are swept K_BLOCK inputs at a time
K_BLOCK = 8
ROW_BLOCK = 32  # rows (streams) whose inputs stay in L1 while a product passes over the weights

_tile_1x64, _tile_1x32, _tile_1x16, _tile_1x8 = (block(1, v) for v in (8, 4, 2, 1))
_tile_4x24, _tile_4x16, _tile_4x8 = block(4, 3), block(4, 2), block(4, 1)
_tile_2x32, _tile_2x16, _tile_2x8 = block(2, 4), block(2, 2), block(2, 1)


@njit(**JIT_OPTIONS)
def project(code, mp, w, q, ld, col, x, out, out_col, n):
    """out[b, out_col:out_col+n] += x[b] @ M[:, col:col+n] for each row b, M the matrix operand
    at code[mp:] with ``ld`` columns."""
    kind, off, scale_off = code[mp + MATRIX.KIND], code[mp + MATRIX.OFFSET], code[mp + MATRIX.SCALES]
    n_in = x.shape[1]
    if kind == MATRIX_KIND.FLOAT32:
        _project(x, matrix(w, off, n_in, ld), col, out, out_col, n, None)
    elif kind == MATRIX_KIND.INT8:
        _project(x, matrix(q, off, n_in, ld), col, out, out_col, n,
                 w[scale_off + col:scale_off + col + n])
    elif kind == MATRIX_KIND.FLOAT32_BY_OUTPUT:
        _dot_outputs(x, matrix(w, off, ld, n_in), col, out, out_col, n, None)
    else:
        _dot_outputs(x, matrix(q, off, ld, n_in), col, out, out_col, n,
                     w[scale_off + col:scale_off + col + n])


@njit(**JIT_OPTIONS)
def rows_independent(n):
    """Whether ``project`` computes every output of a product with n outputs the same way (the same
    operations in the same order) whatever the number of rows: when all n outputs are in tiles
    (see blocked). Then a product for many rows at once equals the rows done one by one."""
    return n % LANES == 0


@njit(**JIT_OPTIONS)
def _project(x, m, col, out, out_col, n, scale):
    """``project`` for an input-major matrix; ``scale`` is None for float32 weights (numba
    compiles the two cases separately)."""
    if x.shape[0] >= 4:
        _row_groups(x, m, col, out, out_col, n, scale)
    elif x.shape[0] >= 2:
        _row_pair(x, m, col, out, out_col, n, scale)
    elif x.shape[0] == 1:
        _one_row(x, 0, m, col, out, out_col, n, scale)


@njit(**JIT_OPTIONS)
def _row_pair(x, m, col, out, out_col, n, scale):
    """Two or three rows: tiles of 2 x 32 outputs, then 2 x 16 and 2 x 8, a third row in tiles of
    1 x 32, 16 and 8 in the same pass, then the last n % 8 one by one: the weights are read once
    for all of them (a convolution's two or three output positions), not once per row."""
    rows, n_in, ld, os = x.shape[0], x.shape[1], m.shape[1], out.shape[1]
    third = 2 * n_in  # where row 2's inputs start, if there is one
    j = 0
    while j + 4 * LANES <= n:
        _tile_2x32(m, col + j, ld, x, 0, n_in, n_in, out, out_col + j, os, scale, j)
        if rows == 3:
            _tile_1x32(m, col + j, ld, x, third, n_in, n_in, out, 2 * os + out_col + j, os, scale, j)
        j += 4 * LANES
    if j + 2 * LANES <= n:
        _tile_2x16(m, col + j, ld, x, 0, n_in, n_in, out, out_col + j, os, scale, j)
        if rows == 3:
            _tile_1x16(m, col + j, ld, x, third, n_in, n_in, out, 2 * os + out_col + j, os, scale, j)
        j += 2 * LANES
    if j + LANES <= n:
        _tile_2x8(m, col + j, ld, x, 0, n_in, n_in, out, out_col + j, os, scale, j)
        if rows == 3:
            _tile_1x8(m, col + j, ld, x, third, n_in, n_in, out, 2 * os + out_col + j, os, scale, j)
        j += LANES
    for b in range(rows):
        _remainder(x[b], m, col + j, out[b], out_col + j, n - j, scale, j)


@njit(**JIT_OPTIONS)
def _row_groups(x, m, col, out, out_col, n, scale):
    """Four rows or more: tiles of 4 x 24 outputs, then 4 x 16 and 4 x 8, the rows past the last
    group of four in tiles of 1 x 16 and 1 x 8, then the last n % 8 outputs one by one. Rows are taken ROW_BLOCK
    (a multiple of 4) at a time and, within a block, the column block is the outer loop: the
    block's inputs stay in L1 while the weights pass over them once, the rows past the groups
    included (a convolution's 5 output positions read the filters once, not twice)."""
    rows, n_in, ld, os = x.shape[0], x.shape[1], m.shape[1], out.shape[1]
    grouped = rows // 4 * 4
    for r0 in range(0, rows, ROW_BLOCK):
        r1 = min(rows, r0 + ROW_BLOCK)
        g1 = max(r0, min(r1, grouped))
        j = 0
        while j + 3 * LANES <= n:  # 12 accumulators, 3 weight vectors and an input: AVX2's 16 registers
            for b in range(r0, g1, 4):
                _tile_4x24(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
            for b in range(g1, r1):
                _tile_1x16(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
                _tile_1x8(m, col + j + 2 * LANES, ld, x, b * n_in, n_in, n_in, out,
                          b * os + out_col + j + 2 * LANES, os, scale, j + 2 * LANES)
            j += 3 * LANES
        if j + 2 * LANES <= n:
            for b in range(r0, g1, 4):
                _tile_4x16(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
            for b in range(g1, r1):
                _tile_1x16(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
            j += 2 * LANES
        if j + LANES <= n:
            for b in range(r0, g1, 4):
                _tile_4x8(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
            for b in range(g1, r1):
                _tile_1x8(m, col + j, ld, x, b * n_in, n_in, n_in, out, b * os + out_col + j, os, scale, j)
            j += LANES
        for b in range(r0, r1):
            _remainder(x[b], m, col + j, out[b], out_col + j, n - j, scale, j)


@njit(**JIT_OPTIONS)
def _one_row(x, b, m, col, out, out_col, n, scale):
    """Row b alone: tiles of 64 outputs, then 32, 16 and 8, then the last n % 8 one by one.
    A float32 matrix larger than L1 is swept K_BLOCK inputs at a time, so that its rows are read
    as a few sequential streams (what hardware prefetchers follow); an int8 one, a quarter the
    bytes, in one sweep (its scales apply to whole sums: see blocked)."""
    n_in, ld, os = x.shape[1], m.shape[1], out.shape[1]
    step = K_BLOCK if scale is None and n_in * n > L1_ELEMENTS else n_in
    for k0 in range(0, n_in, step):
        kn = min(step, n_in - k0)
        xo, mo, oo = b * n_in + k0, k0 * ld + col, b * os + out_col
        j = 0
        while j + 8 * LANES <= n:
            _tile_1x64(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            j += 8 * LANES
        if j + 4 * LANES <= n:
            _tile_1x32(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            j += 4 * LANES
        if j + 2 * LANES <= n:
            _tile_1x16(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            j += 2 * LANES
        if j + LANES <= n:
            _tile_1x8(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            j += LANES
    j = n // LANES * LANES
    _remainder(x[b], m, col + j, out[b], out_col + j, n - j, scale, j)


@njit(**JIT_OPTIONS)
def _remainder(vec, m, col, out, out_col, n, scale, scale_col):
    """The last n (< 8) outputs of one row: a dot product with each column."""
    for j in range(n):
        s = _dot(vec, m[:, col + j])
        out[out_col + j] += s if scale is None else scale[scale_col + j] * s


@njit(**JIT_OPTIONS)
def _dot_outputs(x, m, col, out, out_col, n, scale):
    """``project`` for an output-major matrix: a dot product with each row of m."""
    for b in range(x.shape[0]):
        vec, o = x[b], out[b, out_col:out_col + n]
        for j in range(n):
            s = _dot(vec, m[col + j])
            o[j] += s if scale is None else scale[j] * s


@njit(**JIT_OPTIONS)
def _dot(vec, weights):
    """sum of vec[k] * weights[k] (float32 or int8 weights)."""
    s = np.float32(0.0)
    for k in range(vec.size):
        s += vec[k] * np.float32(weights[k])
    return s


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
