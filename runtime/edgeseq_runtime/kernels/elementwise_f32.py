"""Elementwise ops over flat float32 ranges: binary arithmetic, activations and softmax.

Binary arguments at code[p:] (each operand is read from the arena (source 0) or the weights
(source 1) and repeats with its period, which covers broadcasting over leading axes; other
broadcasts are materialised at load time)::

    0 function (ADD, SUB, MUL, DIV)
    1,2,3 a: source, offset, period     4,5,6 b: source, offset, period
    7 out (arena)   8 n

Activation arguments: 0 kind, 1 parameter offset, 2 in, 3 out, 4 n.
Softmax arguments: 0 in, 1 out, 2 outer, 3 n (the reduced axis), 4 inner, 5 log (LogSoftmax).
"""

import numpy as np
from numba import njit

from .activations import apply
from .config import JIT_OPTIONS
from .matvec import copy

ADD = 0
SUB = 1
MUL = 2
DIV = 3


@njit(**JIT_OPTIONS)
def binary_f32(code, p, w, a):
    fn = code[p]
    va = a if code[p + 1] == 0 else w
    vb = a if code[p + 4] == 0 else w
    ao, ap, bo, bp = code[p + 2], code[p + 3], code[p + 5], code[p + 6]
    n = code[p + 8]
    xa, xb, out = va[ao:ao + ap], vb[bo:bo + bp], a[code[p + 7]:code[p + 7] + n]
    for i in range(n):
        x = xa[i % ap]
        y = xb[i % bp]
        if fn == ADD:
            out[i] = x + y
        elif fn == SUB:
            out[i] = x - y
        elif fn == MUL:
            out[i] = x * y
        else:
            out[i] = x / y


@njit(**JIT_OPTIONS)
def activation_f32(code, p, w, a):
    kind, params, src, dst, n = code[p], code[p + 1], code[p + 2], code[p + 3], code[p + 4]
    out = a[dst:dst + n]
    if src != dst:
        copy(out, a[src:src + n])
    apply(kind, w[params], w[params + 1], out)


@njit(**JIT_OPTIONS)
def softmax_f32(code, p, w, a):
    src, dst, outer, n, inner, log = code[p], code[p + 1], code[p + 2], code[p + 3], code[p + 4], code[p + 5]
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
