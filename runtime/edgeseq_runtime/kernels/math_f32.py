"""Elementwise math beyond the recurrent activations: unary functions and Where, over flat float32
ranges (the two-operand functions are BINARY's, in elementwise_f32; Mod's floor form is here).

Fields: ``isa.UNARY`` (alpha, beta = w[params], w[params + 1]) and ``isa.WHERE``, whose operands
repeat with their period (``isa.BROADCAST``) as BINARY's do; a condition is non-zero for true.
Each unary function is its own function, a simple loop LLVM vectorises, which ``unary_f32`` reaches
through the table ``UNARY_FUNCTIONS`` of their addresses by its number (``linking.call_indexed``):
a model compiles only the functions it applies (the 21 loops in one kernel took ~0.7 s of an
empty cache's start, float16 and bfloat16 rounding included).
"""

import math

import numpy as np
from numba import njit, types

from ..isa import BROADCAST, SOURCE, UNARY, UNARY_FUNCTION, WHERE
from .bits import bits_from_float, float_from_bits
from .config import JIT_OPTIONS
from .linking import Table, call_indexed

_ONE, _ZERO, _HALF = np.float32(1.0), np.float32(0.0), np.float32(0.5)
# Gelu's constants, as ONNX's function body of Gelu writes them
_SQRT_HALF, _SQRT_2_OVER_PI, _GELU_CUBIC = np.float32(0.5 ** 0.5), np.float32((2.0 / math.pi) ** 0.5), np.float32(0.044715)
_FLOAT16_SMALLEST_NORMAL, _FLOAT16_MAX, _TWO_24 = np.float32(2.0 ** -14), np.float32(65504.0), np.float32(2.0 ** 24)


@njit(**JIT_OPTIONS)
def sqrt(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.sqrt(x[i])


@njit(**JIT_OPTIONS)
def square(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = x[i] * x[i]


@njit(**JIT_OPTIONS)
def pow(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = x[i] ** alpha


@njit(**JIT_OPTIONS)
def exp(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.exp(x[i])


@njit(**JIT_OPTIONS)
def log(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.log(x[i])


@njit(**JIT_OPTIONS)
def abs_(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = abs(x[i])


@njit(**JIT_OPTIONS)
def neg(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = -x[i]


@njit(**JIT_OPTIONS)
def reciprocal(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = _ONE / x[i]


@njit(**JIT_OPTIONS)
def clip(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = min(max(x[i], alpha), beta)


@njit(**JIT_OPTIONS)
def selu(x, y, alpha, beta):
    for i in range(x.size):
        v = x[i]
        y[i] = beta * (v if v > 0 else alpha * np.expm1(v))


@njit(**JIT_OPTIONS)
def floor(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.floor(x[i])


@njit(**JIT_OPTIONS)
def ceil(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.ceil(x[i])


@njit(**JIT_OPTIONS)
def erf(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = math.erf(x[i])


@njit(**JIT_OPTIONS)
def not_(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = _ONE if x[i] == 0 else _ZERO


@njit(**JIT_OPTIONS)
def to_float16(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = _to_float16(x[i])


@njit(**JIT_OPTIONS)
def to_bfloat16(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = _round_bits(x[i], np.int64(16))


@njit(**JIT_OPTIONS)
def sin(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.sin(x[i])


@njit(**JIT_OPTIONS)
def cos(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.cos(x[i])


@njit(**JIT_OPTIONS)
def round_(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = np.rint(x[i])


@njit(**JIT_OPTIONS)
def gelu(x, y, alpha, beta):
    for i in range(x.size):
        y[i] = _HALF * x[i] * (_ONE + np.float32(math.erf(x[i] * _SQRT_HALF)))


@njit(**JIT_OPTIONS)
def gelu_tanh(x, y, alpha, beta):
    for i in range(x.size):
        v = x[i]
        y[i] = _HALF * v * (_ONE + np.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v)))


_FLOATS = types.Array(types.float32, 1, "C")
# y = function(x, alpha, beta) for each function of UNARY (isa.UNARY_FUNCTION), x and y of one length
UNARY_FUNCTIONS = Table("unary function", {getattr(UNARY_FUNCTION, f.__name__.rstrip("_").upper()): f for f in (
    sqrt, square, pow, exp, log, abs_, neg, reciprocal, clip, selu, floor, ceil, erf, not_, to_float16,
    to_bfloat16, sin, cos, round_, gelu, gelu_tanh)}, types.none, _FLOATS, _FLOATS, types.float32, types.float32)


@njit(**JIT_OPTIONS)
def unary_f32(code, p, w, a):
    n, params = code[p + UNARY.N], code[p + UNARY.PARAMS]
    x, y = a[code[p + UNARY.X]:code[p + UNARY.X] + n], a[code[p + UNARY.Y]:code[p + UNARY.Y] + n]
    call_indexed(UNARY_FUNCTIONS, code[p + UNARY.FUNCTION], x, y, w[params], w[params + 1])


@njit(**JIT_OPTIONS)
def floor_mod(x, y):
    """x - floor(x / y) * y, the sign of y (ONNX's Mod with fmod=0): the remainder of fmod moved
    by y where their signs differ; exact for integers (|values| <= 2^24)."""
    r = np.fmod(x, y)
    if r != 0 and (r < 0) != (y < 0):
        r += y
    return r


@njit(**JIT_OPTIONS)
def _round_bits(v, dropped):
    """v with its ``dropped`` lowest mantissa bits rounded off, ties to even (a carry into the
    exponent is the next power of two, or inf); NaN and inf unchanged."""
    if not np.isfinite(v):
        return v
    bits = np.int64(bits_from_float(v)) & 0xFFFFFFFF
    half, low = (1 << (dropped - 1)) - 1, (1 << dropped) - 1
    bits = (bits + half + ((bits >> dropped) & 1)) & ~low
    return float_from_bits(np.int32(bits - (1 << 32) if bits >= (1 << 31) else bits))


@njit(**JIT_OPTIONS)
def _to_float16(v):
    """The float16 nearest v, as float32: 10 mantissa bits for normal float16s, multiples of 2^-24
    below 2^-14 (its subnormals), inf from 65520 on (what rounds past 65504)."""
    magnitude = abs(v)
    if magnitude < _FLOAT16_SMALLEST_NORMAL:
        return np.rint(v * _TWO_24) / _TWO_24  # exact: scaling by a power of two
    rounded = _round_bits(v, np.int64(13))
    return rounded if abs(rounded) <= _FLOAT16_MAX or not np.isfinite(v) else np.float32(np.inf) * np.sign(v)


@njit(**JIT_OPTIONS)
def _operand(code, op, w, a):
    """The values a BROADCAST operand at code[op:] reads, and its period."""
    source = a if code[op + BROADCAST.SOURCE] == SOURCE.ARENA else w
    offset, period = code[op + BROADCAST.OFFSET], code[op + BROADCAST.PERIOD]
    return source[offset:offset + period], period


@njit(**JIT_OPTIONS)
def where_f32(code, p, w, a):
    n, out = code[p + WHERE.N], code[p + WHERE.Y]
    condition, cp = _operand(code, p + WHERE.CONDITION, w, a)
    xa, ap = _operand(code, p + WHERE.A, w, a)
    xb, bp = _operand(code, p + WHERE.B, w, a)
    y = a[out:out + n]
    for i in range(n):
        y[i] = xa[i % ap] if condition[i % cp] != 0 else xb[i % bp]
