"""The activation functions of the ONNX recurrent operators, also used for standalone ops.

Each function is applied in place to a float32 view, in a simple loop LLVM can vectorise.
(Kernels index views with ``range`` indices only: numba then knows an index is never negative and
skips the wrap-around check that would otherwise stop vectorisation.) ``alpha`` and ``beta``
follow the ONNX definitions (see ``isa.ACTIVATION_KIND``).

The kernels reach each function through the table ``APPLY`` of their addresses, by its kind
(``linking.call_indexed``): a function compiles once, not again inside every kernel that applies
an activation (0.15-0.2 s each of an empty cache's start), and only when a model applies it (the
eleven in one function took 0.25-0.33 s to compile; two of them alone, 0.1 s).
"""

import numpy as np
from numba import njit, types

from ..isa import ACTIVATION_KIND, FUNCTION
from .config import JIT_OPTIONS
from .fastexp import fast_exp, fast_expm1, fast_sigmoid, fast_tanh
from .linking import Table, call_indexed


@njit(**JIT_OPTIONS)
def sigmoid(alpha, beta, v):
    for i in range(v.size):
        v[i] = fast_sigmoid(v[i])


@njit(**JIT_OPTIONS)
def tanh(alpha, beta, v):
    for i in range(v.size):
        v[i] = fast_tanh(v[i])


@njit(**JIT_OPTIONS)
def relu(alpha, beta, v):
    for i in range(v.size):
        v[i] = max(v[i], np.float32(0.0))


@njit(**JIT_OPTIONS)
def affine(alpha, beta, v):
    for i in range(v.size):
        v[i] = alpha * v[i] + beta


@njit(**JIT_OPTIONS)
def leaky_relu(alpha, beta, v):
    for i in range(v.size):
        x = v[i]
        v[i] = x if x >= 0 else alpha * x


@njit(**JIT_OPTIONS)
def thresholded_relu(alpha, beta, v):
    for i in range(v.size):
        x = v[i]
        v[i] = x if x > alpha else np.float32(0.0)


@njit(**JIT_OPTIONS)
def scaled_tanh(alpha, beta, v):
    for i in range(v.size):
        v[i] = alpha * fast_tanh(beta * v[i])


@njit(**JIT_OPTIONS)
def hard_sigmoid(alpha, beta, v):
    for i in range(v.size):
        v[i] = min(max(alpha * v[i] + beta, np.float32(0.0)), np.float32(1.0))


@njit(**JIT_OPTIONS)
def elu(alpha, beta, v):
    for i in range(v.size):
        x = v[i]
        v[i] = x if x >= 0 else alpha * fast_expm1(x)


@njit(**JIT_OPTIONS)
def softsign(alpha, beta, v):
    for i in range(v.size):
        x = v[i]
        v[i] = x / (np.float32(1.0) + abs(x))


@njit(**JIT_OPTIONS)
def softplus(alpha, beta, v):
    for i in range(v.size):
        x = v[i]
        # log(1 + e^x) without overflow for large x.
        v[i] = max(x, np.float32(0.0)) + np.log1p(fast_exp(-abs(x)))


# v = activation(alpha, beta, v), in place, for each kind (isa.ACTIVATION_KIND)
APPLY = Table("activation", {getattr(ACTIVATION_KIND, f.__name__.upper()): f for f in (
    sigmoid, tanh, relu, affine, leaky_relu, thresholded_relu, scaled_tanh, hard_sigmoid, elu, softsign, softplus)},
    types.none, types.float32, types.float32, types.Array(types.float32, 1, "C"))


@njit(**JIT_OPTIONS)
def apply_encoded(code, fp, w, v):
    """Apply the activation whose ``isa.FUNCTION`` operand is at code[fp:]; its parameters are
    alpha, beta = w[params], w[params + 1]. (Its function needs its address: ``linking.address``.)"""
    params = code[fp + FUNCTION.PARAMS]
    call_indexed(APPLY, code[fp + FUNCTION.KIND], w[params], w[params + 1], v)


@njit(**JIT_OPTIONS)
def clip(v, limit):
    """v = clamp(v, -limit, limit), in place: the ONNX ``clip`` attribute."""
    for i in range(v.size):
        v[i] = min(max(v[i], -limit), limit)
