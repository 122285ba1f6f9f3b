"""The activation functions of the ONNX recurrent operators, also used for standalone ops.

Each function is applied in place to a float32 view; the branch on the kind sits outside the
element loop so that every loop is a simple one LLVM can vectorise. (Kernels index views
with ``range`` indices only: numba then knows an index is never negative and skips the
wrap-around check that would otherwise stop vectorisation.)
``alpha`` and ``beta`` follow the ONNX definitions (see ``ACTIVATIONS``).
"""

import numpy as np
from numba import njit

from .config import JIT_OPTIONS
from .fastexp import fast_exp, fast_expm1, fast_sigmoid, fast_tanh

RELU = 0
TANH = 1
SIGMOID = 2
AFFINE = 3
LEAKY_RELU = 4
THRESHOLDED_RELU = 5
SCALED_TANH = 6
HARD_SIGMOID = 7
ELU = 8
SOFTSIGN = 9
SOFTPLUS = 10

# ONNX name -> (code, default alpha or None if unused, default beta or None if unused).
# The defaults are those of the standalone ONNX operators of the same name; Affine and
# ScaledTanh have no standalone operator and take alpha=1, beta=0 (the identity) and
# alpha=1, beta=1 (plain tanh).
ACTIVATIONS = {
    "Relu": (RELU, None, None),
    "Tanh": (TANH, None, None),
    "Sigmoid": (SIGMOID, None, None),
    "Affine": (AFFINE, 1.0, 0.0),
    "LeakyRelu": (LEAKY_RELU, 0.01, None),
    "ThresholdedRelu": (THRESHOLDED_RELU, 1.0, None),
    "ScaledTanh": (SCALED_TANH, 1.0, 1.0),
    "HardSigmoid": (HARD_SIGMOID, 0.2, 0.5),
    "Elu": (ELU, 1.0, None),
    "Softsign": (SOFTSIGN, None, None),
    "Softplus": (SOFTPLUS, None, None),
}


@njit(**JIT_OPTIONS)
def apply(kind, alpha, beta, v):
    """v = activation(v), in place."""
    if kind == SIGMOID:
        for i in range(v.size):
            v[i] = fast_sigmoid(v[i])
    elif kind == TANH:
        for i in range(v.size):
            v[i] = fast_tanh(v[i])
    elif kind == RELU:
        for i in range(v.size):
            v[i] = max(v[i], np.float32(0.0))
    elif kind == AFFINE:
        for i in range(v.size):
            v[i] = alpha * v[i] + beta
    elif kind == LEAKY_RELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x >= 0 else alpha * x
    elif kind == THRESHOLDED_RELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x > alpha else np.float32(0.0)
    elif kind == SCALED_TANH:
        for i in range(v.size):
            v[i] = alpha * fast_tanh(beta * v[i])
    elif kind == HARD_SIGMOID:
        for i in range(v.size):
            v[i] = min(max(alpha * v[i] + beta, np.float32(0.0)), np.float32(1.0))
    elif kind == ELU:
        for i in range(v.size):
            x = v[i]
            v[i] = x if x >= 0 else alpha * fast_expm1(x)
    elif kind == SOFTSIGN:
        for i in range(v.size):
            x = v[i]
            v[i] = x / (np.float32(1.0) + abs(x))
    elif kind == SOFTPLUS:
        for i in range(v.size):
            x = v[i]
            # log(1 + e^x) without overflow for large x.
            v[i] = max(x, np.float32(0.0)) + np.log1p(fast_exp(-abs(x)))


@njit(**JIT_OPTIONS)
def apply_encoded(code, p, w, v):
    """Apply the activation encoded as ``[kind, params_offset]`` at code[p:p+2]; the
    parameters are ``w[params_offset:params_offset+2]`` = alpha, beta."""
    po = code[p + 1]
    apply(code[p], w[po], w[po + 1], v)


@njit(**JIT_OPTIONS)
def clip(v, limit):
    """v = clamp(v, -limit, limit), in place: the ONNX ``clip`` attribute."""
    for i in range(v.size):
        v[i] = min(max(v[i], -limit), limit)
