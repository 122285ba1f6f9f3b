"""Data movement that is not a view: copies through an index table, and embedding lookups.

Copy arguments at code[p:]: 0 out (arena), 1 n, 2 table (offset in the index tables, relative
to the table base); out[i] = arena[table[i]]. Transpose, Slice, Concat, Gather with constant
indices and the like all lower to this when their result is not a contiguous view.

Embedding arguments: 0 ids (arena, floats holding integer ids), 1 out (arena, (count, dim)),
2 count, 3 vocab, 4 dim, 5-7 the table (vocab, dim) as a matrix operand (see matvec), whose
int8 form has one scale per row. The ids are computed at run time (the model input, or values
made from it), so each is checked against this table's own rows before it is used.
"""

import numpy as np
from numba import njit

from .config import JIT_OPTIONS
from .matvec import INT8, copy
from .opcodes import HEADER_FAULT, HEADER_TABLES


@njit(**JIT_OPTIONS)
def copy_indexed(code, p, w, a):
    out, n, table = code[p], code[p + 1], code[HEADER_TABLES] + code[p + 2]
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
    ids, out, count, vocab, dim = code[p], code[p + 1], code[p + 2], code[p + 3], code[p + 4]
    kind, table, scales = code[p + 5], code[p + 6], code[p + 7]
    for r in range(count):
        v = a[ids + r]
        if not is_row_index(v, vocab):
            fault = code[HEADER_FAULT]
            a[fault], a[fault + 1] = v, vocab
            return False
        row = int(v)
        if row < 0:
            row += vocab
        dst = a[out + r * dim:out + (r + 1) * dim]
        if kind == INT8:
            src8, scale = q[table + row * dim:table + (row + 1) * dim], w[scales + row]
            for j in range(dim):
                dst[j] = src8[j] * scale
        else:
            copy(dst, w[table + row * dim:table + (row + 1) * dim])
    return True
