"""The one matrix product every layer uses: rows of inputs times a constant weight matrix.

``project`` computes OUT[b, out_col:out_col+n] += X[b] @ M[:, col:col+n] for every stream b.

A matrix operand is ``isa.MATRIX`` in the code: kind, offset, scale offset. The kind
(``isa.MATRIX_KIND``) says how the matrix is stored:

* FLOAT32, INT8: input-major ("W transposed", shape (n_in, ld)), so that a run of consecutive
  outputs is contiguous and the register-blocked tiles of ``blocked`` take 8 to 64 of them at
  once, for 1 to 8 rows (each weight loaded once for all of them). From two rows the product
  goes strip by strip of outputs, every row passing over a strip before the next; from 64 rows
  a float32 strip is first copied into a panel on the stack of the call, as MLAS packs B (see
  ``_strips``), so the plan, the arena and the C runtime know nothing of it;
* FLOAT32_PANELS: the same float32 matrix packed once at load, strips of PANEL (64) outputs one
  after another, each strip's n_in rows of PANEL floats in turn: every tile reads its strip
  sequentially whatever the number of rows, with no copy per call (see ``_panel_row``). The planner
  packs a matrix so only where every product with it takes whole strips (``PlanBuilder.matrix``);
  lean plans, and so the C runtime, never see it;
* FLOAT32_BY_OUTPUT, INT8_BY_OUTPUT: output-major (shape (ld, n_in)), for matrices with fewer
  outputs than a vector holds (a regression or classifier head): one dot product per output,
  vectorised over the inputs.

FLOAT32 matrices live in the float weights ``w``; INT8 ones in the int8 weights ``q``, with one
float scale per output column in ``w`` (symmetric per-channel quantization: value = q * scale).
The order of the terms is fixed by this code alone, so ``run`` and ``step`` stay bit-identical.
"""

from pathlib import Path

import numpy as np
from numba import njit, types

from ..isa import LANES, MATRIX, MATRIX_KIND, PANEL
from .blocked import WIDE_LANES, block, copy_block, stack_floats, tiles
from .config import JIT_OPTIONS
from .linking import address, call_linked, link
from .views import matrix

L1_ELEMENTS = 1 << 13  # 32 KB of float32, an L1 cache: larger matrices are swept K_BLOCK inputs at a time
K_BLOCK = 8
# Four rows or more: tiles of ROW_TILE rows x STRIP outputs, all in registers with the weight
# vectors and an input: 8 x 32 (16 accumulators of AVX-512's 32 registers), else 4 x 24 (12 of
# AVX2's 16).
ROW_TILE, STRIP = (8, 2 * WIDE_LANES) if WIDE_LANES > LANES else (4, 3 * LANES)
STRIP_ROWS = 2  # from this many rows, the product goes strip by strip (see _strips)
PACK_ROWS = 64  # from this many rows, float32 strips are read from a panel (see _strips)
PANEL_K = 256  # inputs per panel: 256 x 32 floats, 32 KB, which stay in a 48 KB L1 while the rows pass
PACKED_K = L1_ELEMENTS // PANEL  # inputs of a FLOAT32_PANELS strip read by every row before the next ones
PANEL_TILE = STRIP if PANEL % STRIP == 0 else WIDE_LANES  # outputs per tile of rows in a FLOAT32_PANELS strip

# One row: tiles of ONE_ROW outputs, eight chains of WIDE_LANES (128 outputs where numba compiles
# for AVX-512: eight 16-float FMAs a step, twice their latency of 4 cycles at one a cycle; four
# chains were latency-bound), then 64, 32, 16 and 8. A FLOAT32_PANELS matrix is read so from
# ONE_ROW // PANEL strips at once only where it stays in L1 (L1_DATA floats) from one step to the
# next: one streaming from L2 is bound by it, and read faster strip by strip, one sequential
# stream (1 x 40 @ 40 x 512 here: 436 ns strip by strip, 629 two strips at once; 1 x 32 @ 32 x
# 128 in L1: 74 and 39).
ONE_ROW = 8 * WIDE_LANES


def _l1_data_floats() -> int:
    """Floats the L1 data cache of this machine holds (as Linux's sysfs says: "48K"), else
    L1_ELEMENTS."""
    def field(cache, name):
        return (cache / name).read_text().strip()

    try:
        return next(int(field(cache, "size").removesuffix("K")) * 1024 // 4
                    for cache in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")
                    if field(cache, "level") == "1" and field(cache, "type") == "Data")
    except (OSError, ValueError, StopIteration):
        return L1_ELEMENTS


L1_DATA = _l1_data_floats()
_tile_1xrow, _panel_tile_1xrow = block(1, 8, WIDE_LANES), block(1, 8, WIDE_LANES, strips=ONE_ROW // PANEL)
_tile_1x64, _tile_1x32, _tile_1x16, _tile_1x8 = (block(1, v) for v in (8, 4, 2, 1))
# 64 outputs of one row of int8 weights past its tiles of ONE_ROW: 16 converted at once where numba
# compiles for AVX-512 (four chains; int8 rows take the eight of ONE_ROW too: LSTM 64/256 and
# 40/128/2 int8 `step` at batch 1 in 6.0 and 4.5 us with four, 5.6 and 4.2 with eight).
_tile_1x64_int8 = block(1, 8 * LANES // WIDE_LANES, WIDE_LANES)
_tile_2x32 = block(2, 4)
HALF_TILE = ROW_TILE // 2
# _tile(rows, width, ...): the tile of ROW_TILE, HALF_TILE, 2 or 1 rows x STRIP, WIDE_LANES or LANES outputs
_tile = tiles({(rows, width): (width // lanes, lanes) for rows in (ROW_TILE, HALF_TILE, 2, 1)
               for width, lanes in ((STRIP, WIDE_LANES), (WIDE_LANES, WIDE_LANES), (LANES, LANES))})
_copy_strip, _copy_wide, _copy_narrow = (copy_block(STRIP // WIDE_LANES, WIDE_LANES), copy_block(1, WIDE_LANES),
                                         copy_block(1, LANES))
_panel = stack_floats(PANEL_K * STRIP)


@njit(**JIT_OPTIONS)
def project(code, mp, w, q, ld, col, x, out, out_col, n):
    """out[b, out_col:out_col+n] += x[b] @ M[:, col:col+n] for each row b, M the matrix operand
    at code[mp:] with ``ld`` columns. Each kind of matrix is multiplied through the address of
    its own product (see ``link_products``)."""
    kind = code[mp + MATRIX.KIND]
    if kind == MATRIX_KIND.FLOAT32 and x.shape[0] >= PACK_ROWS:
        call_linked(_float32_packed, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.FLOAT32 and x.shape[0] >= STRIP_ROWS:
        call_linked(_float32_strips, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.FLOAT32:
        call_linked(_float32, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.FLOAT32_PANELS and x.shape[0] >= 2:
        call_linked(_float32_panel_rows, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.FLOAT32_PANELS:
        call_linked(_float32_panels, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.INT8:
        call_linked(_int8, code, mp, w, q, ld, col, x, out, out_col, n)
    elif kind == MATRIX_KIND.FLOAT32_BY_OUTPUT:
        call_linked(_float32_by_output, code, mp, w, q, ld, col, x, out, out_col, n)
    else:
        call_linked(_int8_by_output, code, mp, w, q, ld, col, x, out, out_col, n)


@njit(**JIT_OPTIONS)
def _float32(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32 matrix and one row (or none)."""
    if x.shape[0] == 1:
        _one_row(x, 0, matrix(w, code[mp + MATRIX.OFFSET], x.shape[1], ld), col, out, out_col, n, None)


@njit(**JIT_OPTIONS)
def _float32_strips(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32 matrix and STRIP_ROWS to PACK_ROWS - 1 rows (a batch, a
    convolution's positions, ``run``'s input projections): a larger tree of tiles, linked apart
    so that a model that steps one stream does not compile it."""
    _strips(x, matrix(w, code[mp + MATRIX.OFFSET], x.shape[1], ld), col, out, out_col, n, None)


@njit(**JIT_OPTIONS)
def _float32_packed(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32 matrix and PACK_ROWS rows or more: strips copied into a panel,
    linked apart as ``_float32_strips`` is."""
    _panel_strips(x, matrix(w, code[mp + MATRIX.OFFSET], x.shape[1], ld), col, out, out_col, n)


@njit(**JIT_OPTIONS)
def _float32_panels(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32_PANELS matrix and one row (or none)."""
    if x.shape[0] == 1:
        _panel_row(x, w, code[mp + MATRIX.OFFSET], col, out, out_col, n)


@njit(**JIT_OPTIONS)
def _float32_panel_rows(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32_PANELS matrix and two rows or more, linked apart so that a model
    that steps one stream does not compile it."""
    _panel_rows(x, w, code[mp + MATRIX.OFFSET], col, out, out_col, n)


@njit(**JIT_OPTIONS)
def _int8(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for an INT8 matrix."""
    off, scale_off = code[mp + MATRIX.OFFSET], code[mp + MATRIX.SCALES]
    _project(x, matrix(q, off, x.shape[1], ld), col, out, out_col, n, w[scale_off + col:scale_off + col + n])


@njit(**JIT_OPTIONS)
def _float32_by_output(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for a FLOAT32_BY_OUTPUT matrix."""
    _dot_outputs(x, matrix(w, code[mp + MATRIX.OFFSET], ld, x.shape[1]), col, out, out_col, n, None)


@njit(**JIT_OPTIONS)
def _int8_by_output(code, mp, w, q, ld, col, x, out, out_col, n):
    """``project`` for an INT8_BY_OUTPUT matrix."""
    off, scale_off = code[mp + MATRIX.OFFSET], code[mp + MATRIX.SCALES]
    _dot_outputs(x, matrix(q, off, ld, x.shape[1]), col, out, out_col, n, w[scale_off + col:scale_off + col + n])


# The kernels reach project, and project the product of each kind of matrix, through their
# addresses (linking.call_linked): each is compiled on its own, the product of a kind when a model
# first holds it. The tree of tiles compiles once, not again inside each kernel that multiplies,
# a float32 model compiles no int8 tiles, and a FLOAT32 model only the products for as many rows
# as its steps take. What a product calls for one row (_one_row, _panel_row, _dot_outputs) is
# inlined into it: a call passes each array as seven to nine words on the stack, which the callee
# read back 64 bytes at a time before the stores had landed, a stall at every call (LSTM 1/32
# `run` at batch 1: 1.04-1.09x ONNX Runtime's with the calls, 1.18-1.20x inlined). So are the
# helpers of more rows (_strips, _panel_strips, _panel_rows, _strip_of), which numba would compile
# on their own and then again inside each caller: Silero VAD's first step compiled _strip_of
# four times (a literal width each) and its tiles in three modules, 1.3 s where its one
# product of strips now takes 0.3.
_ARGUMENTS = (types.Array(types.int64, 1, "C"), types.int64, types.Array(types.float32, 1, "C"),
              types.Array(types.int8, 1, "C"), types.int64, types.int64, types.Array(types.float32, 2, "C"),
              types.Array(types.float32, 2, "C"), types.int64, types.int64)
link(project, types.none, *_ARGUMENTS)
PRODUCTS = {kind: link(product, types.none, *_ARGUMENTS)
            for kind, product in ((MATRIX_KIND.FLOAT32, _float32), (MATRIX_KIND.FLOAT32_PANELS, _float32_panels),
                                  (MATRIX_KIND.INT8, _int8), (MATRIX_KIND.FLOAT32_BY_OUTPUT, _float32_by_output),
                                  (MATRIX_KIND.INT8_BY_OUTPUT, _int8_by_output))}
MORE_ROWS = {(kind, rows): link(product, types.none, *_ARGUMENTS)  # the products of a kind from so many rows on
             for kind, rows, product in ((MATRIX_KIND.FLOAT32, STRIP_ROWS, _float32_strips),
                                         (MATRIX_KIND.FLOAT32, PACK_ROWS, _float32_packed),
                                         (MATRIX_KIND.FLOAT32_PANELS, 2, _float32_panel_rows))}
LINKED = (project, *PRODUCTS.values(), *MORE_ROWS.values())  # every function here called through its address


def link_products(most_rows=None) -> None:
    """Give ``project`` and the products of the kinds of matrix in ``most_rows`` their addresses
    (compiled now, or loaded from the cache): for each kind, those for up to ``most_rows[kind]``
    rows (None: any number). A model's kernel table links what its plan's steps multiply, ``run``
    adds many rows; a caller of ``project`` outside a model (a test, a benchmark) links every
    product (``most_rows`` None)."""
    most_rows = dict.fromkeys(MATRIX_KIND) if most_rows is None else most_rows
    address(project)
    for kind in most_rows:
        address(PRODUCTS[kind])
    for (kind, least), product in MORE_ROWS.items():
        if kind in most_rows and (most_rows[kind] is None or most_rows[kind] >= least):
            address(product)


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
    if x.shape[0] >= STRIP_ROWS:
        _strips(x, m, col, out, out_col, n, scale)
    elif x.shape[0] == 1:
        _one_row(x, 0, m, col, out, out_col, n, scale)


@njit(inline="always", **JIT_OPTIONS)
def _strips(x, m, col, out, out_col, n, scale):
    """Two rows or more, by strips of outputs: STRIP outputs (then WIDE_LANES, then LANES) for
    every row, in tiles of ROW_TILE rows (then ROW_TILE / 2, then 2, then 1), then the last n % 8
    outputs one by one. Every tile of rows reads a strip's weights in turn, from L2 after the
    first; two or three rows (a convolution's few output positions) read them once for a pair.

    From PACK_ROWS rows, ``project`` takes ``_panel_strips`` instead for a float32 matrix: each
    strip is first copied PANEL_K inputs at a time into a contiguous panel on the stack (as BLAS
    packs B), which the tiles then read. In the matrix,
    consecutive inputs are ld floats apart, 4 KB for a 256-wide LSTM, so a strip's 512 lines
    fall in a thirty-second of L2's sets and are evicted before the last tile has read them (117
    against 85 GMAC/s for 256 x 256 @ 256 x 1024). With fewer rows the copy costs more than it
    saves (55 against 94 at 16 rows), and int8 strips, a quarter of the bytes and ld bytes apart,
    read in place as fast as a panel would. The output being the accumulator, splitting the
    inputs into blocks leaves every sum in the same order."""
    rows, n_in, ld = x.shape[0], x.shape[1], m.shape[1]
    whole = n // LANES * LANES
    j = 0
    while j < whole:
        width = _strip_width(j, whole)
        _strip_of(width, m, col + j, ld, x, 0, n_in, out, out_col + j, scale, j)
        j += width
    for b in range(rows if whole < n else 0):  # views of x[b] and out[b]: 1.4 µs for 256 rows
        _remainder(x[b], m, col + whole, out[b], out_col + whole, n - whole, scale, whole)


@njit(inline="always", **JIT_OPTIONS)
def _panel_strips(x, m, col, out, out_col, n):
    """``_strips`` for a float32 matrix and PACK_ROWS rows or more: each strip copied PANEL_K
    inputs at a time into a panel on the stack before every tile of rows reads it."""
    rows, n_in, ld = x.shape[0], x.shape[1], m.shape[1]
    whole = n // LANES * LANES
    panel = _panel()
    for k0 in range(0, n_in, PANEL_K):
        kn = min(PANEL_K, n_in - k0)
        j = 0
        while j < whole:
            width = _strip_width(j, whole)
            _pack(width, m, k0 * ld + col + j, ld, kn, panel)
            _strip_of(width, panel, 0, width, x, k0, kn, out, out_col + j, None, j)
            j += width
    for b in range(rows if whole < n else 0):
        _remainder(x[b], m, col + whole, out[b], out_col + whole, n - whole, None, whole)


@njit(inline="always", **JIT_OPTIONS)
def _panel_row(x, w, off, col, out, out_col, n):
    """One row of ``project`` for a FLOAT32_PANELS matrix from w[off], col and n whole strips: the
    strip of outputs j .. j+PANEL-1 is its n_in rows of PANEL floats from off + j*n_in. ONE_ROW //
    PANEL strips a tile where the matrix fits L1, else (and the last) a strip in a 1 x 64 one.
    Every output is the fma chain of the input-major layout's tiles, in the same order: the
    numbers are those of FLOAT32, bit for bit."""
    n_in, os = x.shape[1], out.shape[1]
    j = 0
    while j + ONE_ROW <= n and n_in * n <= L1_DATA:
        _panel_tile_1xrow(w, off + (col + j) * n_in, PANEL, x, 0, n_in, n_in, out, out_col + j, os, None, 0)
        j += ONE_ROW
    for j in range(j, n, PANEL):
        _tile_1x64(w, off + (col + j) * n_in, PANEL, x, 0, n_in, n_in, out, out_col + j, os, None, 0)


@njit(inline="always", **JIT_OPTIONS)
def _panel_rows(x, w, off, col, out, out_col, n):
    """``_panel_row`` for two rows or more: two or three rows take 2 x 32 tiles (a third row
    1 x 64); from four rows, PACKED_K inputs of a strip (32 KB, which stay in L1) pass every tile
    of rows before the next PACKED_K. The numbers are those of FLOAT32 too."""
    rows, n_in, os = x.shape[0], x.shape[1], out.shape[1]
    if rows >= 4:
        for k0 in range(0, n_in, PACKED_K):
            kn = min(PACKED_K, n_in - k0)
            for j in range(0, n, PANEL):
                strip = off + (col + j) * n_in + k0 * PANEL
                for t in range(0, PANEL, PANEL_TILE):
                    _strip_of(PANEL_TILE, w, strip + t, PANEL, x, k0, kn, out, out_col + j + t, None, 0)
        return
    for j in range(0, n, PANEL):
        strip, oo = off + (col + j) * n_in, out_col + j
        for t in range(0, PANEL, 4 * LANES):
            _tile_2x32(w, strip + t, PANEL, x, 0, n_in, n_in, out, oo + t, os, None, 0)
        if rows == 3:
            _tile_1x64(w, strip, PANEL, x, 2 * n_in, n_in, n_in, out, 2 * os + oo, os, None, 0)


@njit(inline="always", **JIT_OPTIONS)
def _strip_width(j, whole):
    """The width of the strip at output j of ``whole``: STRIP, else WIDE_LANES, else LANES."""
    return STRIP if j + STRIP <= whole else (WIDE_LANES if j + WIDE_LANES <= whole else LANES)


@njit(**JIT_OPTIONS)
def _pack(width, m, m_off, ld, n_rows, panel):
    """panel[k*width + j] = M's element at m_off + k*ld + j, for k < n_rows and j < width."""
    if width == STRIP:
        _copy_strip(m, m_off, ld, n_rows, panel)
    elif width == WIDE_LANES:
        _copy_wide(m, m_off, ld, n_rows, panel)
    else:
        _copy_narrow(m, m_off, ld, n_rows, panel)


@njit(inline="always", **JIT_OPTIONS)
def _strip_of(width, m, m_off, ld, x, k0, kn, out, out_col, scale, scale_col):
    """Inputs k0 .. k0+kn-1 of ``width`` (STRIP, WIDE_LANES or LANES) outputs, M's columns from
    m_off, rows ld apart, for every row of x: ROW_TILE rows at a time, then HALF_TILE, then two,
    then one (the tiles of the width, see blocked.tiles)."""
    rows, n_in, os = x.shape[0], x.shape[1], out.shape[1]
    b = 0
    while b + ROW_TILE <= rows:
        _tile(ROW_TILE, width, m, m_off, ld, x, b * n_in + k0, n_in, kn, out, b * os + out_col, os, scale, scale_col)
        b += ROW_TILE
    if b + HALF_TILE <= rows:
        _tile(HALF_TILE, width, m, m_off, ld, x, b * n_in + k0, n_in, kn, out, b * os + out_col, os, scale, scale_col)
        b += HALF_TILE
    if b + 2 <= rows:
        _tile(2, width, m, m_off, ld, x, b * n_in + k0, n_in, kn, out, b * os + out_col, os, scale, scale_col)
        b += 2
    while b < rows:
        _tile(1, width, m, m_off, ld, x, b * n_in + k0, n_in, kn, out, b * os + out_col, os, scale, scale_col)
        b += 1


@njit(inline="always", **JIT_OPTIONS)
def _one_row(x, b, m, col, out, out_col, n, scale):
    """Row b alone: tiles of ONE_ROW outputs, then of 64 (of int8 weights: 16 converted at once
    where numba compiles for AVX-512), 32, 16 and 8, then the last n % 8 one by one.
    A float32 matrix larger than L1 is swept K_BLOCK inputs at a time, so that its rows are read
    as a few sequential streams (what hardware prefetchers follow); an int8 one, a quarter the
    bytes, in one sweep (its scales apply to whole sums: see blocked)."""
    n_in, ld, os = x.shape[1], m.shape[1], out.shape[1]
    step = K_BLOCK if scale is None and n_in * n > L1_ELEMENTS else max(n_in, 1)  # no inputs: no term
    for k0 in range(0, n_in, step):
        kn = min(step, n_in - k0)
        xo, mo, oo = b * n_in + k0, k0 * ld + col, b * os + out_col
        j = 0
        while j + ONE_ROW <= n:
            _tile_1xrow(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            j += ONE_ROW
        while j + 8 * LANES <= n:
            if scale is None:
                _tile_1x64(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
            else:
                _tile_1x64_int8(m, mo + j, ld, x, xo, n_in, kn, out, oo + j, os, scale, j)
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


@njit(inline="always", **JIT_OPTIONS)
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


@njit(inline="always", **JIT_OPTIONS)
def add_bias(v, w, bias, start):
    """v += the values of the bias at weights offset ``bias`` from its ``start``-th on; nothing
    when bias < 0 (absent). After a product's last term, in a loop of its own (fastmath's reassoc
    may not fold it into the sum), as ONNX Runtime adds it: carried from a large bias, small terms
    would lose their low bits at every one. Inlined: called, its three a GRU step cost 0.1 us at 16/64."""
    if bias >= 0:
        for j in range(v.size):
            v[j] += w[bias + start + j]


@njit(**JIT_OPTIONS)
def copy(dst, src):
    """dst[:] = src, as a loop: the kernels run without numba's runtime (no allocation, no
    reference counting), and a slice assignment may want a temporary."""
    for j in range(dst.size):
        dst[j] = src[j]
