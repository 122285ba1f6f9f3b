"""Elementwise ops over flat float32 ranges: two-operand functions, activations and softmax.

Fields: ``isa.BINARY``, ``isa.ACTIVATION``, ``isa.SOFTMAX``. A binary operand is read from the
arena or the weights and repeats with its period (``isa.BROADCAST``), which covers broadcasting
over leading axes; other broadcasts are materialised at load time. Comparisons and logic give 1.0
or 0.0: the runtime holds every tensor as float32, booleans too.
"""

import numpy as np
from numba import njit, types

from ..isa import ACTIVATION, BINARY, BINARY_FUNCTION, BROADCAST, SOFTMAX, SOURCE
from .activations import apply_encoded
from .config import JIT_OPTIONS
from .linking import Table, call_indexed
from .math_f32 import floor_mod
from .matvec import copy


@njit(**JIT_OPTIONS)
def binary_f32(code, p, w, a):
    n, c_off = code[p + BINARY.N], code[p + BINARY.C]
    pa, pb = p + BINARY.A, p + BINARY.B
    va = a if code[pa + BROADCAST.SOURCE] == SOURCE.ARENA else w
    vb = a if code[pb + BROADCAST.SOURCE] == SOURCE.ARENA else w
    ao, ap = code[pa + BROADCAST.OFFSET], code[pa + BROADCAST.PERIOD]
    bo, bp = code[pb + BROADCAST.OFFSET], code[pb + BROADCAST.PERIOD]
    call_indexed(BINARY_FUNCTIONS, code[p + BINARY.FUNCTION], va[ao:ao + ap], vb[bo:bo + bp], a[c_off:c_off + n])


@njit(**JIT_OPTIONS)
def _truth(condition):
    return np.float32(1.0) if condition else np.float32(0.0)


@njit(**JIT_OPTIONS)
def add(xa, xb, out):
    if xa.size == out.size and xb.size == out.size:  # neither operand repeats: a loop LLVM vectorises
        for i in range(out.size):
            out[i] = xa[i] + xb[i]
    else:
        for i in range(out.size):
            out[i] = xa[i % xa.size] + xb[i % xb.size]


@njit(**JIT_OPTIONS)
def sub(xa, xb, out):
    if xa.size == out.size and xb.size == out.size:  # neither operand repeats: a loop LLVM vectorises
        for i in range(out.size):
            out[i] = xa[i] - xb[i]
    else:
        for i in range(out.size):
            out[i] = xa[i % xa.size] - xb[i % xb.size]


@njit(**JIT_OPTIONS)
def mul(xa, xb, out):
    if xa.size == out.size and xb.size == out.size:  # neither operand repeats: a loop LLVM vectorises
        for i in range(out.size):
            out[i] = xa[i] * xb[i]
    else:
        for i in range(out.size):
            out[i] = xa[i % xa.size] * xb[i % xb.size]


@njit(**JIT_OPTIONS)
def div(xa, xb, out):
    if xa.size == out.size and xb.size == out.size:  # neither operand repeats: a loop LLVM vectorises
        for i in range(out.size):
            out[i] = xa[i] / xb[i]
    else:
        for i in range(out.size):
            out[i] = xa[i % xa.size] / xb[i % xb.size]


@njit(**JIT_OPTIONS)
def pow(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = x ** y


@njit(**JIT_OPTIONS)
def min_(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = min(x, y)


@njit(**JIT_OPTIONS)
def max_(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = max(x, y)


@njit(**JIT_OPTIONS)
def prelu(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = x if x >= 0 else y * x


@njit(**JIT_OPTIONS)
def mod(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = floor_mod(x, y)


@njit(**JIT_OPTIONS)
def fmod(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = np.fmod(x, y)


@njit(**JIT_OPTIONS)
def equal(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x == y)


@njit(**JIT_OPTIONS)
def less(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x < y)


@njit(**JIT_OPTIONS)
def less_or_equal(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x <= y)


@njit(**JIT_OPTIONS)
def greater(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x > y)


@njit(**JIT_OPTIONS)
def greater_or_equal(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x >= y)


@njit(**JIT_OPTIONS)
def and_(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x != 0 and y != 0)


@njit(**JIT_OPTIONS)
def or_(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth(x != 0 or y != 0)


@njit(**JIT_OPTIONS)
def xor(xa, xb, out):
    for i in range(out.size):
        x, y = xa[i % xa.size], xb[i % xb.size]
        out[i] = _truth((x != 0) != (y != 0))


_FLOATS = types.Array(types.float32, 1, "C")
# out[i] = function(xa[i % xa.size], xb[i % xb.size]) for each function of BINARY (isa.BINARY_FUNCTION)
BINARY_FUNCTIONS = Table("binary function", {getattr(BINARY_FUNCTION, f.__name__.rstrip("_").upper()): f for f in (
    add, sub, mul, div, pow, min_, max_, prelu, mod, fmod, equal, less, less_or_equal, greater, greater_or_equal, and_, or_, xor)}, types.none, _FLOATS, _FLOATS, _FLOATS)


@njit(**JIT_OPTIONS)
def activation_f32(code, p, w, a):
    src, dst, n = code[p + ACTIVATION.X], code[p + ACTIVATION.Y], code[p + ACTIVATION.N]
    out = a[dst:dst + n]
    if src != dst:
        copy(out, a[src:src + n])
    apply_encoded(code, p + ACTIVATION.ACT, w, out)


@njit(**JIT_OPTIONS)
def softmax_f32(code, p, w, a):
    src, dst, log = code[p + SOFTMAX.X], code[p + SOFTMAX.Y], code[p + SOFTMAX.LOG]
    outer, n, inner = code[p + SOFTMAX.OUTER], code[p + SOFTMAX.N], code[p + SOFTMAX.INNER]
    for o in range(outer):
        x = a[src + o * n * inner:src + (o + 1) * n * inner]
        y = a[dst + o * n * inner:dst + (o + 1) * n * inner]
        for k in range(inner):
            top = x[k]
            for i in range(1, n):
                top = max(top, x[i * inner + k])
            total = np.float32(0.0)
            for i in range(n):
                total += np.exp(x[i * inner + k] - top)
            if log:  # (x - max) - log(sum): top + log(sum) would round away a large top's low bits;
                # two passes, so that fastmath's reassociation cannot fold the two subtractions
                for i in range(n):
                    y[i * inner + k] = x[i * inner + k] - top
                log_total = np.log(total)
                for i in range(n):
                    y[i * inner + k] -= log_total
            else:
                for i in range(n):
                    y[i * inner + k] = np.exp(x[i * inner + k] - top) / total
