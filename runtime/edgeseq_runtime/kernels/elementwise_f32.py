"""Elementwise ops over flat float32 ranges: two-operand functions, activations and softmax.

Fields: ``isa.BINARY``, ``isa.ACTIVATION``, ``isa.SOFTMAX``. A binary operand is read from the
arena or the weights and repeats with its period (``isa.BROADCAST``), which covers broadcasting
over leading axes; other broadcasts are materialised at load time. Comparisons and logic give 1.0
or 0.0: the runtime holds every tensor as float32, booleans too.
"""

import numpy as np
from numba import njit

from ..isa import ACTIVATION, BINARY, BINARY_FUNCTION, BROADCAST, SOFTMAX, SOURCE
from .activations import apply_encoded
from .config import JIT_OPTIONS
from .math_f32 import floor_mod
from .matvec import copy


@njit(**JIT_OPTIONS)
def binary_f32(code, p, w, a):
    fn, n, c_off = code[p + BINARY.FUNCTION], code[p + BINARY.N], code[p + BINARY.C]
    pa, pb = p + BINARY.A, p + BINARY.B
    va = a if code[pa + BROADCAST.SOURCE] == SOURCE.ARENA else w
    vb = a if code[pb + BROADCAST.SOURCE] == SOURCE.ARENA else w
    ao, ap = code[pa + BROADCAST.OFFSET], code[pa + BROADCAST.PERIOD]
    bo, bp = code[pb + BROADCAST.OFFSET], code[pb + BROADCAST.PERIOD]
    xa, xb, out = va[ao:ao + ap], vb[bo:bo + bp], a[c_off:c_off + n]
    if ap == n and bp == n and fn <= BINARY_FUNCTION.DIV:  # arithmetic without broadcast: vectorised
        _arithmetic(fn, xa, xb, out)
        return
    for i in range(n):
        out[i] = _function(fn, xa[i % ap], xb[i % bp])


@njit(**JIT_OPTIONS)
def _arithmetic(fn, xa, xb, out):
    """out = xa (fn) xb for the four arithmetic functions, all of one length: a loop each, without
    the index arithmetic or a branch inside."""
    if fn == BINARY_FUNCTION.ADD:
        for i in range(out.size):
            out[i] = xa[i] + xb[i]
    elif fn == BINARY_FUNCTION.SUB:
        for i in range(out.size):
            out[i] = xa[i] - xb[i]
    elif fn == BINARY_FUNCTION.MUL:
        for i in range(out.size):
            out[i] = xa[i] * xb[i]
    else:
        for i in range(out.size):
            out[i] = xa[i] / xb[i]


@njit(**JIT_OPTIONS)
def _function(fn, x, y):
    """fn(x, y) for one pair of values (``isa.BINARY_FUNCTION``)."""
    if fn == BINARY_FUNCTION.ADD:
        return x + y
    if fn == BINARY_FUNCTION.SUB:
        return x - y
    if fn == BINARY_FUNCTION.MUL:
        return x * y
    if fn == BINARY_FUNCTION.DIV:
        return x / y
    if fn == BINARY_FUNCTION.POW:
        return x ** y
    if fn == BINARY_FUNCTION.MIN:
        return min(x, y)
    if fn == BINARY_FUNCTION.MAX:
        return max(x, y)
    if fn == BINARY_FUNCTION.PRELU:
        return x if x >= 0 else y * x
    if fn == BINARY_FUNCTION.MOD:
        return floor_mod(x, y)
    if fn == BINARY_FUNCTION.FMOD:
        return np.fmod(x, y)
    if fn == BINARY_FUNCTION.EQUAL:
        truth = x == y
    elif fn == BINARY_FUNCTION.LESS:
        truth = x < y
    elif fn == BINARY_FUNCTION.LESS_OR_EQUAL:
        truth = x <= y
    elif fn == BINARY_FUNCTION.GREATER:
        truth = x > y
    elif fn == BINARY_FUNCTION.GREATER_OR_EQUAL:
        truth = x >= y
    elif fn == BINARY_FUNCTION.AND:
        truth = x != 0 and y != 0
    elif fn == BINARY_FUNCTION.OR:
        truth = x != 0 or y != 0
    else:
        truth = (x != 0) != (y != 0)
    return np.float32(1.0) if truth else np.float32(0.0)


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
