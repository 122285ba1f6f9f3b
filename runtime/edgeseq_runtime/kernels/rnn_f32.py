"""ONNX RNN, forward direction, one time step, float32.

Arguments at code[p:] (offsets into the arena ``a`` or the weights ``w``)::

    0 X        arena, (batch, input_size)
    1 H        arena, (batch, hidden): initial_h on entry, Y_h on return (updated in place)
    2 input_size   3 hidden_size   4 batch
    5 Wt       weights, (input_size, hidden): Wi transposed
    6 Rt       weights, (hidden, hidden): Ri transposed
    7 B        weights, (hidden,): Wbi + Rbi
    8,9 f      activation kind, parameter offset
    10 clip    weights offset of the clip threshold, or -1
    11 scratch arena, hidden floats

Equation (ONNX spec names)::

    Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
"""

from numba import njit

from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .matvec import accumulate, fill


@njit(**JIT_OPTIONS)
def rnn_f32(code, p, w, a):
    x_off, h_off = code[p], code[p + 1]
    n_in, n_h, batch = code[p + 2], code[p + 3], code[p + 4]
    wt, rt, bias = code[p + 5], code[p + 6], code[p + 7]
    clip_off, s = code[p + 10], code[p + 11]
    pre = a[s:s + n_h]
    for b in range(batch):
        x = a[x_off + b * n_in:x_off + (b + 1) * n_in]
        h = a[h_off + b * n_h:h_off + (b + 1) * n_h]
        fill(pre, w, bias)
        accumulate(x, w, wt, n_h, pre)
        accumulate(h, w, rt, n_h, pre)
        if clip_off >= 0:
            clip(pre, w[clip_off])
        apply_encoded(code, p + 8, w, pre)
        h[:] = pre
