"""Reductions along one axis and the row normalization of the norm layers, float32.

Fields: ``isa.REDUCE`` (x viewed as (outer, n, inner), reduced along n: ONNX's Reduce ops over any
set of axes, which the planner first makes one contiguous run; ArgMax and ArgMin give the index as
a float, as the runtime holds integers) and ``isa.NORMALIZE`` (each row of
(rows, n) to mean 0 and variance 1, the variance biased as LayerNormalization and
InstanceNormalization define it; their scale and bias follow as BINARY instructions). Sums
accumulate in float64: a row of a few thousand float32 values then loses nothing to rounding.

Along one axis too: ``isa.CUMSUM`` (running sums in float32, each the previous one plus the next
value, as ONNX Runtime computes them) and ``isa.TOPK`` (the k best of each row, kept in order as
they are found: a value goes in front of the ones it beats strictly, so of equal values the first
comes first, as ONNX orders them).
"""

import numpy as np
from numba import njit

from ..isa import CUMSUM, NORMALIZE, REDUCE, REDUCE_FUNCTION, TOPK
from .config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def reduce_f32(code, p, w, a):
    fn, x, y = code[p + REDUCE.FUNCTION], code[p + REDUCE.X], code[p + REDUCE.Y]
    outer, n, inner = code[p + REDUCE.OUTER], code[p + REDUCE.N], code[p + REDUCE.INNER]
    for o in range(outer):
        for k in range(inner):
            first = x + o * n * inner + k
            a[y + o * inner + k] = _reduce(fn, a, first, n, inner)


@njit(**JIT_OPTIONS)
def _reduce(fn, a, first, n, stride):
    """The reduction of a[first], a[first + stride], ... (n values)."""
    if fn >= REDUCE_FUNCTION.ARG_MAX:
        return _arg_best(fn, a, first, n, stride)
    if fn == REDUCE_FUNCTION.MAX or fn == REDUCE_FUNCTION.MIN:
        best = a[first]
        for i in range(1, n):
            v = a[first + i * stride]
            best = max(best, v) if fn == REDUCE_FUNCTION.MAX else min(best, v)
        return best
    if fn == REDUCE_FUNCTION.PROD:
        product = 1.0
        for i in range(n):
            product *= a[first + i * stride]
        return product
    top = 0.0
    if fn == REDUCE_FUNCTION.LOG_SUM_EXP and n:
        top = a[first]
        for i in range(1, n):
            top = max(top, a[first + i * stride])
    total = 0.0
    for i in range(n):
        v = np.float64(a[first + i * stride])
        if fn == REDUCE_FUNCTION.L1:
            v = abs(v)
        elif fn == REDUCE_FUNCTION.L2 or fn == REDUCE_FUNCTION.SUM_SQUARE:
            v = v * v
        elif fn == REDUCE_FUNCTION.LOG_SUM_EXP:
            v = np.exp(v - top)
        total += v
    if fn == REDUCE_FUNCTION.MEAN:
        return total / n
    if fn == REDUCE_FUNCTION.L2:
        return np.sqrt(total)
    if fn == REDUCE_FUNCTION.LOG_SUM:
        return np.log(total)
    if fn == REDUCE_FUNCTION.LOG_SUM_EXP:
        return top + np.log(total)
    return total


@njit(**JIT_OPTIONS)
def _arg_best(fn, a, first, n, stride):
    """The index of the maximum (ARG_MAX, LAST_ARG_MAX) or minimum of n values: the first of
    equal ones, or the last (LAST_*)."""
    largest = fn == REDUCE_FUNCTION.ARG_MAX or fn == REDUCE_FUNCTION.LAST_ARG_MAX
    last = fn == REDUCE_FUNCTION.LAST_ARG_MAX or fn == REDUCE_FUNCTION.LAST_ARG_MIN
    best, at = a[first], 0
    for i in range(1, n):
        v = a[first + i * stride]
        if (v > best if largest else v < best) or (last and v == best):
            best, at = v, i
    return float(at)


@njit(**JIT_OPTIONS)
def normalize_f32(code, p, w, a):
    rows, n, epsilon = code[p + NORMALIZE.ROWS], code[p + NORMALIZE.N], w[code[p + NORMALIZE.EPSILON]]
    for r in range(rows):
        x, y = code[p + NORMALIZE.X] + r * n, code[p + NORMALIZE.Y] + r * n
        total = 0.0
        for i in range(n):
            total += a[x + i]
        mean = total / n
        spread = 0.0
        for i in range(n):
            d = a[x + i] - mean
            spread += d * d
        inverse = 1.0 / np.sqrt(spread / n + epsilon)
        for i in range(n):
            a[y + i] = (a[x + i] - mean) * inverse


@njit(**JIT_OPTIONS)
def cumsum_f32(code, p, w, a):
    x, y = code[p + CUMSUM.X], code[p + CUMSUM.Y]
    outer, n, inner = code[p + CUMSUM.OUTER], code[p + CUMSUM.N], code[p + CUMSUM.INNER]
    exclusive, reverse = code[p + CUMSUM.EXCLUSIVE], code[p + CUMSUM.REVERSE]
    for o in range(outer):
        for k in range(inner):
            first = o * n * inner + k
            total = np.float32(0.0)
            for j in range(n):
                at = first + (n - 1 - j if reverse else j) * inner
                v = a[x + at]
                if exclusive:
                    a[y + at] = total
                    total += v
                else:
                    total += v
                    a[y + at] = total


@njit(**JIT_OPTIONS)
def topk_f32(code, p, w, a):
    x, values, indices = code[p + TOPK.X], code[p + TOPK.VALUES], code[p + TOPK.INDICES]
    outer, n, inner, k = code[p + TOPK.OUTER], code[p + TOPK.N], code[p + TOPK.INNER], code[p + TOPK.K]
    largest = code[p + TOPK.LARGEST]
    if k == 0:
        return
    for o in range(outer):
        for i in range(inner):
            source, kept = x + o * n * inner + i, o * k * inner + i
            count = 0
            for j in range(n):
                v = a[source + j * inner]
                if count == k and not _beats(v, a[values + kept + (k - 1) * inner], largest):
                    continue
                if count < k:
                    count += 1
                at = count - 1
                while at > 0 and _beats(v, a[values + kept + (at - 1) * inner], largest):
                    a[values + kept + at * inner] = a[values + kept + (at - 1) * inner]
                    a[indices + kept + at * inner] = a[indices + kept + (at - 1) * inner]
                    at -= 1
                a[values + kept + at * inner] = v
                a[indices + kept + at * inner] = j


@njit(**JIT_OPTIONS)
def _beats(v, other, largest):
    return v > other if largest else v < other
