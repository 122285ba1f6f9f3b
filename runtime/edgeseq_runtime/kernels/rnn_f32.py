"""ONNX RNN, forward direction, one time step, float32.

Arguments at code[p:] (offsets into the arena ``a`` or the weights ``w``)::

    0 X        arena, (batch, input_size)
    1 H        arena, (batch, hidden): initial_h on entry, Y_h on return (updated in place)
    2 input_size   3 hidden_size   4 batch
    5-7 W      matrix operand (see matvec), (input_size, hidden): Wi transposed
    8-10 R     matrix operand, (hidden, hidden): Ri transposed
    11 B       weights, (hidden,): Wbi + Rbi
    12,13 f    activation kind, parameter offset
    14 clip    weights offset of the clip threshold, or -1
    15 scratch arena, hidden floats per stream

``pre`` is empty, or holds this step's X*(Wi^T) + Wbi + Rbi for every stream, computed by
``run`` for many steps at once (see sequence).

Equation (ONNX spec names)::

    Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
"""

from numba import njit

from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .matvec import copy, project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def rnn_f32(code, p, w, q, a, pre):
    x_off, h_off = code[p], code[p + 1]
    n_in, n_h, batch = code[p + 2], code[p + 3], code[p + 4]
    bias, clip_off, s = code[p + 11], code[p + 14], code[p + 15]
    x = matrix(a, x_off, batch, n_in)
    hs = matrix(a, h_off, batch, n_h)
    total = input_part(code, p + 5, bias, w, q, a, x, s, n_h, pre)
    project(code, p + 8, w, q, n_h, 0, hs, total, 0, n_h)
    for b in range(batch):
        if clip_off >= 0:
            clip(total[b], w[clip_off])
        apply_encoded(code, p + 12, w, total[b])
        copy(hs[b], total[b])
