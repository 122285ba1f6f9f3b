"""A plan's code, float weights and int8 weights in one byte array.

A step hands the compiled interpreter one array for the model instead of three: numba checks
and unpacks every array argument of every call (about 30 ns each), which at a few microseconds
a step is worth saving. ``pack`` lays the three out at 64-byte boundaries behind a header of
their offsets and lengths; ``unpack`` takes views of them again inside the kernel.
"""

from enum import IntEnum

import numpy as np
from numba import njit

from .config import JIT_OPTIONS
from .views import items

PART = IntEnum("PART", {"CODE": 0, "WEIGHTS": 1, "QWEIGHTS": 2})  # in this order in the array
_HEADER = 64  # bytes: (offset in bytes, length in items) of each part, as int64 pairs
_ALIGN = 64


def pack(code: np.ndarray, weights: np.ndarray, qweights: np.ndarray):
    """(model bytes, code, weights, qweights): the packed array and views of its three parts."""
    parts = (np.ascontiguousarray(code, np.int64), np.ascontiguousarray(weights, np.float32),
             np.ascontiguousarray(qweights, np.int8))
    offsets, position = [], _HEADER
    for part in parts:
        offsets.append(position)
        position = (position + part.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    model = _aligned_zeros(position)
    header = model[:_HEADER].view(np.int64)
    views = []
    for i, (part, offset) in enumerate(zip(parts, offsets)):
        header[2 * i], header[2 * i + 1] = offset, part.size  # i: PART
        view = model[offset:offset + part.nbytes].view(part.dtype)
        view[:] = part
        views.append(view)
    return model, *views


def _aligned_zeros(size: int) -> np.ndarray:
    """np.zeros(size, np.uint8) from an _ALIGN-byte boundary: numpy's allocator promises 16 bytes,
    and a 64-byte vector load of weights that straddles two cache lines costs two (1 x 32 @ 32 x
    128 from panels: 61 ns aligned, 97 at 16 bytes past)."""
    raw = np.zeros(size + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start:start + size]


@njit(inline="always", **JIT_OPTIONS)
def unpack(model):
    """(code, weights, qweights) views of an array made by ``pack``."""
    header = items(model, 0, _HEADER // 8, np.int64)
    c, w, q = 2 * PART.CODE, 2 * PART.WEIGHTS, 2 * PART.QWEIGHTS  # where each part's (offset, length) is
    return (items(model, header[c], header[c + 1], np.int64), items(model, header[w], header[w + 1], np.float32),
            items(model, header[q], header[q + 1], np.int8))
