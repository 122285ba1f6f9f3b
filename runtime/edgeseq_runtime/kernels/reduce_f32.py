"""Reductions along one axis and the row normalization of the norm layers, float32.

Fields: ``isa.REDUCE`` (x viewed as (outer, n, inner), reduced along n: ONNX's Reduce ops over any
set of axes, which the planner first makes one contiguous run; ArgMax and ArgMin give the index as
a float, as the runtime holds integers) and ``isa.NORMALIZE`` (each row of
(rows, n) to mean 0 and variance 1, the variance biased as LayerNormalization and
InstanceNormalization define it; their scale and bias follow as BINARY instructions). Sums
accumulate in float64: a row of a few thousand float32 values then loses nothing to rounding.
Each reduction is its own function, which ``reduce_f32`` reaches through the table ``REDUCTIONS``
of their addresses by its number (``linking.call_indexed``): a model compiles only the reductions
it takes (all fourteen in one function took ~0.6 s of an empty cache's start).

Along one axis too: ``isa.CUMSUM`` (running sums in float32, each the previous one plus the next
value, as ONNX Runtime computes them) and ``isa.TOPK`` (the k best of each row, kept in order as
they are found: a value goes in front of the ones it beats strictly, so of equal values the first
comes first, as ONNX orders them).
"""

import numpy as np
from numba import njit, types

from ..isa import CUMSUM, NORMALIZE, REDUCE, REDUCE_FUNCTION, TOPK
from .config import JIT_OPTIONS
from .linking import Table, call_indexed


@njit(**JIT_OPTIONS)
def reduce_f32(code, p, w, a):
    fn, x, y = code[p + REDUCE.FUNCTION], code[p + REDUCE.X], code[p + REDUCE.Y]
    outer, n, inner = code[p + REDUCE.OUTER], code[p + REDUCE.N], code[p + REDUCE.INNER]
    for o in range(outer):
        for k in range(inner):
            a[y + o * inner + k] = call_indexed(REDUCTIONS, fn, a, x + o * n * inner + k, n, inner)


@njit(**JIT_OPTIONS)
def _total(a, first, n, stride):
    total = 0.0
    for i in range(n):
        total += np.float64(a[first + i * stride])
    return total


@njit(**JIT_OPTIONS)
def _total_square(a, first, n, stride):
    total = 0.0
    for i in range(n):
        v = np.float64(a[first + i * stride])
        total += v * v
    return total


@njit(**JIT_OPTIONS)
def sum_(a, first, n, stride):
    return _total(a, first, n, stride)


@njit(**JIT_OPTIONS)
def mean(a, first, n, stride):
    return _total(a, first, n, stride) / n


@njit(**JIT_OPTIONS)
def l1(a, first, n, stride):
    total = 0.0
    for i in range(n):
        v = np.float64(a[first + i * stride])
        total += abs(v)
    return total


@njit(**JIT_OPTIONS)
def l2(a, first, n, stride):
    return np.sqrt(_total_square(a, first, n, stride))


@njit(**JIT_OPTIONS)
def sum_square(a, first, n, stride):
    return _total_square(a, first, n, stride)


@njit(**JIT_OPTIONS)
def log_sum(a, first, n, stride):
    return np.log(_total(a, first, n, stride))


@njit(**JIT_OPTIONS)
def log_sum_exp(a, first, n, stride):
    top = 0.0
    if n:
        top = np.float64(a[first])
        for i in range(1, n):
            top = max(top, a[first + i * stride])
    total = 0.0
    for i in range(n):
        total += np.exp(np.float64(a[first + i * stride]) - top)
    return top + np.log(total)


@njit(**JIT_OPTIONS)
def max_(a, first, n, stride):
    best = a[first]
    for i in range(1, n):
        best = max(best, a[first + i * stride])
    return np.float64(best)


@njit(**JIT_OPTIONS)
def min_(a, first, n, stride):
    best = a[first]
    for i in range(1, n):
        best = min(best, a[first + i * stride])
    return np.float64(best)


@njit(**JIT_OPTIONS)
def prod(a, first, n, stride):
    product = 1.0
    for i in range(n):
        product *= a[first + i * stride]
    return product


@njit(**JIT_OPTIONS)
def arg_max(a, first, n, stride):
    best, at = a[first], 0
    for i in range(1, n):
        v = a[first + i * stride]
        if v > best:
            best, at = v, i
    return np.float64(at)


@njit(**JIT_OPTIONS)
def arg_min(a, first, n, stride):
    best, at = a[first], 0
    for i in range(1, n):
        v = a[first + i * stride]
        if v < best:
            best, at = v, i
    return np.float64(at)


@njit(**JIT_OPTIONS)
def last_arg_max(a, first, n, stride):
    best, at = a[first], 0
    for i in range(1, n):
        v = a[first + i * stride]
        if v >= best:
            best, at = v, i
    return np.float64(at)


@njit(**JIT_OPTIONS)
def last_arg_min(a, first, n, stride):
    best, at = a[first], 0
    for i in range(1, n):
        v = a[first + i * stride]
        if v <= best:
            best, at = v, i
    return np.float64(at)


# the reduction of the n values a[first], a[first + stride], ... for each function of REDUCE
# (isa.REDUCE_FUNCTION); ArgMax and ArgMin give the index of the first of equal values, LAST_* the last
REDUCTIONS = Table("reduction", {getattr(REDUCE_FUNCTION, f.__name__.rstrip("_").upper()): f for f in (
    sum_, mean, l1, l2, sum_square, log_sum, log_sum_exp, max_, min_, prod, arg_max, arg_min, last_arg_max, last_arg_min)}, types.float64, types.Array(types.float32, 1, "C"), types.int64, types.int64, types.int64)


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
