"""exp and expm1 for float32 written as arithmetic that LLVM vectorises.

Scalar ``np.exp`` is a libm call per element and dominates a small LSTM/GRU step; this
version is range reduction (x = n*ln2 + r, |r| <= ln2/2), a polynomial for (e^r - 1)/r, and
2^n assembled from its exponent bits. Both results come from the same two parts::

    exp(x)   = 2^n + 2^n * r*q(r)
    expm1(x) = (2^n - 1) + 2^n * r*q(r)        (exact cancellation-free for small x: n = 0)

The polynomial is the Taylor series of (e^r - 1)/r to r^6; its truncation error on the
reduced range is below 2e-8 relative, under float32's rounding. Inputs are clamped to
[-87, 88] so that 2^n stays a normal float.
"""

import numpy as np
from numba import njit

from .bits import float_from_bits
from .config import JIT_OPTIONS

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693145751953125)      # ln 2 split so that n * _LN2_HI is exact
_LN2_LO = np.float32(1.4286067653302e-06)
_LOW, _HIGH = np.float32(-87.0), np.float32(88.0)
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6 = (np.float32(1.0 / f) for f in (1, 2, 6, 24, 120, 720, 5040))


@njit(**JIT_OPTIONS)
def exp_parts(x):
    """(2^n, r*q(r)) for x = n*ln2 + r; see the module docstring."""
    x = min(max(x, _LOW), _HIGH)
    n = np.floor(x * _LOG2E + np.float32(0.5))
    r = (x - n * _LN2_HI) - n * _LN2_LO
    q = ((((((_Q6 * r + _Q5) * r + _Q4) * r + _Q3) * r + _Q2) * r + _Q1) * r + _Q0)
    scale = float_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return scale, r * q


@njit(**JIT_OPTIONS)
def fast_exp(x):
    scale, rq = exp_parts(x)
    return scale + scale * rq


@njit(**JIT_OPTIONS)
def fast_expm1(x):
    scale, rq = exp_parts(x)
    return (scale - np.float32(1.0)) + scale * rq


@njit(**JIT_OPTIONS)
def fast_sigmoid(x):
    return np.float32(1.0) / (np.float32(1.0) + fast_exp(-x))


@njit(**JIT_OPTIONS)
def fast_tanh(x):
    """tanh(|x|) = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x restored."""
    e = fast_expm1(np.float32(-2.0) * abs(x))
    t = -e / (np.float32(2.0) + e)
    return t if x >= 0 else -t
