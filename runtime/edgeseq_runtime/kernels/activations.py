"""The activation functions of the ONNX recurrent operators, also used for standalone ops.

Each function is applied in place to a float32 view; the branch on the kind sits outside the
element loop so that every loop is a simple one LLVM can vectorise. (Kernels index views
with ``range`` indices only: numba then knows an index is never negative and skips the
wrap-around check that would otherwise stop vectorisation.)
``alpha`` and ``beta`` follow the ONNX definitions (see ``isa.ACTIVATION_KIND``).

The kernels reach ``apply`` through its address (``linking.call_linked``): its eleven loops
compile once, not again inside every kernel that applies an activation (0.15-0.2 s each of an
empty cache's start).
"""

import numpy as np
from numba import njit, types

from ..isa import ACTIVATION_KIND, FUNCTION
from .config import JIT_OPTIONS
from .fastexp import fast_exp, fast_expm1, fast_sigmoid, fast_tanh
from .linking import call_linked, link


@njit(**JIT_OPTIONS)
def apply(kind, alpha, beta, v):
    """v = activation(v), in place."""
    if kind == ACTIVATION_KIND.SIGMOID:
        for i in range(v.size):
            v[i] = fast_sigmoid(v[i])
    elif kind == ACTIVATION_KIND.TANH:
        for i in range(v.size):
            v[i] = fast_tanh(v[i])
    elif kind == ACTIVATION_KIND.RELU:
        for i in range(v.size):
            v[i] = max(v[i], np.float32(0.0))
    elif kind == ACTIVATION_KIND.AFFINE:
        for i in range(v.size):
            v[i] = alpha * v[i] + beta
    elif kind == ACTIVATION_KIND.LEAKY_RELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x >= 0 else alpha * x
    elif kind == ACTIVATION_KIND.THRESHOLDED_RELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x > alpha else np.float32(0.0)
    elif kind == ACTIVATION_KIND.SCALED_TANH:
        for i in range(v.size):
            v[i] = alpha * fast_tanh(beta * v[i])
    elif kind == ACTIVATION_KIND.HARD_SIGMOID:
        for i in range(v.size):
            v[i] = min(max(alpha * v[i] + beta, np.float32(0.0)), np.float32(1.0))
    elif kind == ACTIVATION_KIND.ELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x >= 0 else alpha * fast_expm1(x)
    elif kind == ACTIVATION_KIND.SOFTSIGN:
        for i in range(v.size):
            x = v[i]
            v[i] = x / (np.float32(1.0) + abs(x))
    elif kind == ACTIVATION_KIND.SOFTPLUS:
        for i in range(v.size):
            x = v[i]
            # log(1 + e^x) without overflow for large x.
            v[i] = max(x, np.float32(0.0)) + np.log1p(fast_exp(-abs(x)))


link(apply, types.none, types.int64, types.float32, types.float32, types.Array(types.float32, 1, "C"))


@njit(**JIT_OPTIONS)
def apply_encoded(code, fp, w, v):
    """Apply the activation whose ``isa.FUNCTION`` operand is at code[fp:]; its parameters are
    alpha, beta = w[params], w[params + 1]. (``apply`` needs its address: ``linking.address``.)"""
    params = code[fp + FUNCTION.PARAMS]
    call_linked(apply, code[fp + FUNCTION.KIND], w[params], w[params + 1], v)


@njit(**JIT_OPTIONS)
def clip(v, limit):
    """v = clamp(v, -limit, limit), in place: the ONNX ``clip`` attribute."""
    for i in range(v.size):
        v[i] = min(max(v[i], -limit), limit)
