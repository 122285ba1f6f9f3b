"""ONNX LSTM, forward direction, one time step, float32.

Arguments at code[p:] (offsets into the arena ``a`` or the weights ``w``)::

    0 X        arena, (batch, input_size)
    1 H        arena, (batch, hidden): initial_h on entry, Y_h on return (updated in place)
    2 C        arena, (batch, hidden): initial_c on entry, Y_c on return (updated in place)
    3 input_size   4 hidden_size   5 batch
    6-8 W      matrix operand (see matvec), (input_size, 4*hidden): W[iofc] transposed
    9-11 R     matrix operand, (hidden, 4*hidden): R[iofc] transposed
    12 B       weights, (4*hidden,): Wb[iofc] + Rb[iofc]
    13 P       weights, (3*hidden,): P[iof], or -1 without peepholes
    14,15 f    activation kind, parameter offset   16,17 g   18,19 h   the same
    20 clip    weights offset of the clip threshold, or -1
    21 input_forget
    22 scratch arena, 4*hidden floats per stream

``pre`` is empty, or holds this step's X*(W^T) + Wb + Rb for every stream, computed by ``run``
for many steps at once (see sequence).

Equations (ONNX spec names; (.) is the elementwise product)::

    it = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Pi (.) Ct-1 + Wbi + Rbi)
    ft = f(Xt*(Wf^T) + Ht-1*(Rf^T) + Pf (.) Ct-1 + Wbf + Rbf)    # 1 - it with input_forget
    ct = g(Xt*(Wc^T) + Ht-1*(Rc^T) + Wbc + Rbc)
    Ct = ft (.) Ct-1 + it (.) ct
    ot = f(Xt*(Wo^T) + Ht-1*(Ro^T) + Po (.) Ct + Wbo + Rbo)
    Ht = ot (.) h(Ct)

``clip`` bounds the input of f and g, as ONNX Runtime does; h(Ct) is not clipped.
"""

import numpy as np
from numba import njit

from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .matvec import project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def lstm_f32(code, p, w, q, a, pre):
    x_off, h_off, c_off = code[p], code[p + 1], code[p + 2]
    n_in, n_h, batch = code[p + 3], code[p + 4], code[p + 5]
    bias, peep = code[p + 12], code[p + 13]
    clip_off, input_forget, s = code[p + 20], code[p + 21], code[p + 22]
    g4 = 4 * n_h
    x = matrix(a, x_off, batch, n_in)
    hs = matrix(a, h_off, batch, n_h)
    cs = matrix(a, c_off, batch, n_h)
    gates = input_part(code, p + 6, bias, w, q, a, x, s, g4, pre)
    project(code, p + 9, w, q, g4, 0, hs, gates, 0, g4)
    for b in range(batch):
        g, h, c = gates[b], hs[b], cs[b]
        i, o, f, cc, fc = g[:n_h], g[n_h:2 * n_h], g[2 * n_h:3 * n_h], g[3 * n_h:], g[2 * n_h:]
        if peep >= 0:
            p_i, p_f = w[peep:peep + n_h], w[peep + 2 * n_h:peep + 3 * n_h]
            for j in range(n_h):
                i[j] += p_i[j] * c[j]
                f[j] += p_f[j] * c[j]
        if clip_off >= 0:
            clip(i, w[clip_off])
            clip(fc, w[clip_off])
        apply_encoded(code, p + 14, w, i)
        if input_forget:
            for j in range(n_h):
                f[j] = np.float32(1.0) - i[j]
        else:
            apply_encoded(code, p + 14, w, f)
        apply_encoded(code, p + 16, w, cc)
        for j in range(n_h):
            c[j] = f[j] * c[j] + i[j] * cc[j]
        if peep >= 0:
            p_o = w[peep + n_h:peep + 2 * n_h]
            for j in range(n_h):
                o[j] += p_o[j] * c[j]
        if clip_off >= 0:
            clip(o, w[clip_off])
        apply_encoded(code, p + 14, w, o)
        for j in range(n_h):
            cc[j] = c[j]
        apply_encoded(code, p + 18, w, cc)
        for j in range(n_h):
            h[j] = o[j] * cc[j]
