"""Data movement that is not a view: copies through an index table, and embedding lookups.

Fields: ``isa.COPY`` (y[i] = arena[table[i]]; Transpose, Slice, Concat, Gather with constant
indices and the like all lower to it when their result is not a contiguous view) and
``isa.EMBEDDING`` (rows of a table picked by ids; its int8 form has one scale per row). The ids
are computed at run time (the model input, or values made from it), so each is checked against
this table's own rows before it is used.
"""

import numpy as np
from numba import njit

from ..isa import COPY, EMBEDDING, HEADER, MATRIX, MATRIX_KIND
from .config import JIT_OPTIONS
from .matvec import copy


@njit(**JIT_OPTIONS)
def copy_indexed(code, p, w, a):
    out, n, table = code[p + COPY.Y], code[p + COPY.N], code[HEADER.TABLES] + code[p + COPY.TABLE]
    dst, index = a[out:out + n], code[table:table + n]
    for i in range(n):
        dst[i] = a[index[i]]


@njit(**JIT_OPTIONS)
def is_row_index(v, vocab):
    """Whether v picks a row of a table of ``vocab`` rows: an integer in [-vocab, vocab)
    (negative ids count from the end, as in ONNX Gather). NaN fails every comparison."""
    return v >= -vocab and v < vocab and v == np.floor(v)


@njit(**JIT_OPTIONS)
def embedding(code, p, w, q, a):
    """Copy the picked rows; False, with the refused index and the table's rows in the arena's
    fault slot, for an id outside the table (the rows before it are copied, the caller rolls back)."""
    ids, out, dim = code[p + EMBEDDING.IDS], code[p + EMBEDDING.Y], code[p + EMBEDDING.DIM]
    count, vocab, mp = code[p + EMBEDDING.COUNT], code[p + EMBEDDING.VOCAB], p + EMBEDDING.TABLE
    kind, table, scales = code[mp + MATRIX.KIND], code[mp + MATRIX.OFFSET], code[mp + MATRIX.SCALES]
    for r in range(count):
        v = a[ids + r]
        if not is_row_index(v, vocab):
            fault = code[HEADER.FAULT]
            a[fault], a[fault + 1] = v, vocab
            return False
        row = int(v)
        if row < 0:
            row += vocab
        dst = a[out + r * dim:out + (r + 1) * dim]
        if kind == MATRIX_KIND.INT8:
            src8, scale = q[table + row * dim:table + (row + 1) * dim], w[scales + row]
            for j in range(dim):
                dst[j] = src8[j] * scale
        else:
            copy(dst, w[table + row * dim:table + (row + 1) * dim])
    return True
