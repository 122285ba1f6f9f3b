"""Elementwise math beyond the recurrent activations: unary functions and Where, over flat float32
ranges (the two-operand functions are BINARY's, in elementwise_f32; Mod's floor form is here).

Fields: ``isa.UNARY`` (alpha, beta = w[params], w[params + 1]) and ``isa.WHERE``, whose operands
repeat with their period (``isa.BROADCAST``) as BINARY's do; a condition is non-zero for true.
The branch on the function sits outside each element loop, so each loop is one LLVM vectorises.
"""

import math

import numpy as np
from numba import njit

from ..isa import BROADCAST, SOURCE, UNARY, UNARY_FUNCTION, WHERE
from .bits import bits_from_float, float_from_bits
from .config import JIT_OPTIONS

_ONE, _ZERO, _HALF = np.float32(1.0), np.float32(0.0), np.float32(0.5)
# Gelu's constants, as ONNX's function body of Gelu writes them
_SQRT_HALF, _SQRT_2_OVER_PI, _GELU_CUBIC = np.float32(0.5 ** 0.5), np.float32((2.0 / math.pi) ** 0.5), np.float32(0.044715)
_FLOAT16_SMALLEST_NORMAL, _FLOAT16_MAX, _TWO_24 = np.float32(2.0 ** -14), np.float32(65504.0), np.float32(2.0 ** 24)


@njit(**JIT_OPTIONS)
def unary_f32(code, p, w, a):
    fn, n, params = code[p + UNARY.FUNCTION], code[p + UNARY.N], code[p + UNARY.PARAMS]
    x, y = a[code[p + UNARY.X]:code[p + UNARY.X] + n], a[code[p + UNARY.Y]:code[p + UNARY.Y] + n]
    alpha, beta = w[params], w[params + 1]
    if fn == UNARY_FUNCTION.SQRT:
        for i in range(n):
            y[i] = np.sqrt(x[i])
    elif fn == UNARY_FUNCTION.SQUARE:
        for i in range(n):
            y[i] = x[i] * x[i]
    elif fn == UNARY_FUNCTION.POW:
        for i in range(n):
            y[i] = x[i] ** alpha
    elif fn == UNARY_FUNCTION.EXP:
        for i in range(n):
            y[i] = np.exp(x[i])
    elif fn == UNARY_FUNCTION.LOG:
        for i in range(n):
            y[i] = np.log(x[i])
    elif fn == UNARY_FUNCTION.ABS:
        for i in range(n):
            y[i] = abs(x[i])
    elif fn == UNARY_FUNCTION.NEG:
        for i in range(n):
            y[i] = -x[i]
    elif fn == UNARY_FUNCTION.RECIPROCAL:
        for i in range(n):
            y[i] = _ONE / x[i]
    elif fn == UNARY_FUNCTION.CLIP:
        for i in range(n):
            y[i] = min(max(x[i], alpha), beta)
    elif fn == UNARY_FUNCTION.SELU:
        for i in range(n):
            v = x[i]
            y[i] = beta * (v if v > 0 else alpha * np.expm1(v))
    elif fn == UNARY_FUNCTION.FLOOR:
        for i in range(n):
            y[i] = np.floor(x[i])
    elif fn == UNARY_FUNCTION.CEIL:
        for i in range(n):
            y[i] = np.ceil(x[i])
    elif fn == UNARY_FUNCTION.ERF:
        for i in range(n):
            y[i] = math.erf(x[i])
    elif fn == UNARY_FUNCTION.NOT:
        for i in range(n):
            y[i] = _ONE if x[i] == 0 else _ZERO
    elif fn == UNARY_FUNCTION.TO_FLOAT16:
        for i in range(n):
            y[i] = _to_float16(x[i])
    elif fn == UNARY_FUNCTION.TO_BFLOAT16:
        for i in range(n):
            y[i] = _round_bits(x[i], 16)
    elif fn == UNARY_FUNCTION.SIN:
        for i in range(n):
            y[i] = np.sin(x[i])
    elif fn == UNARY_FUNCTION.COS:
        for i in range(n):
            y[i] = np.cos(x[i])
    elif fn == UNARY_FUNCTION.ROUND:
        for i in range(n):
            y[i] = np.rint(x[i])
    elif fn == UNARY_FUNCTION.GELU:
        for i in range(n):
            y[i] = _HALF * x[i] * (_ONE + np.float32(math.erf(x[i] * _SQRT_HALF)))
    else:
        for i in range(n):
            v = x[i]
            y[i] = _HALF * v * (_ONE + np.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v)))


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
    rounded = _round_bits(v, 13)
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
