"""ONNX GRU, forward direction, one time step, float32.

Arguments at code[p:] (offsets into the arena ``a`` or the weights ``w``)::

    0 X        arena, (batch, input_size)
    1 H        arena, (batch, hidden): initial_h on entry, Y_h on return (updated in place)
    2 input_size   3 hidden_size   4 batch
    5-7 W      matrix operand (see matvec), (input_size, 3*hidden): W[zrh] transposed
    8-10 R     matrix operand, (hidden, 3*hidden): R[zrh] transposed
    11 Bx      weights, (3*hidden,): Wb[zr] + Rb[zr], then Wb[h] (+ Rb[h] if not linear_before_reset)
    12 Bh      weights, (hidden,): Rb[h] if linear_before_reset else zeros
    13,14 f    activation kind, parameter offset   15,16 g   the same
    17 clip    weights offset of the clip threshold, or -1
    18 linear_before_reset
    19 scratch arena, 7*hidden floats per stream

``pre`` is empty, or holds this step's X*(W^T) + Bx for every stream, computed by ``run`` for
many steps at once (see sequence).

Equations (ONNX spec names; (.) is the elementwise product)::

    zt = f(Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz)
    rt = f(Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr)
    ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)       # linear_before_reset = 0
    ht = g(Xt*(Wh^T) + (rt (.) (Ht-1*(Rh^T) + Rbh)) + Wbh)     # linear_before_reset != 0
    Ht = (1 - zt) (.) ht + zt (.) Ht-1
"""

import numpy as np
from numba import njit

from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .matvec import fill, project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def gru_f32(code, p, w, q, a, pre):
    x_off, h_off = code[p], code[p + 1]
    n_in, n_h, batch = code[p + 2], code[p + 3], code[p + 4]
    bx, bh = code[p + 11], code[p + 12]
    clip_off, linear_before_reset, s = code[p + 17], code[p + 18], code[p + 19]
    g3 = 3 * n_h
    x = matrix(a, x_off, batch, n_in)
    hs = matrix(a, h_off, batch, n_h)
    gh = matrix(a, s + batch * g3, batch, g3)     # recurrent parts
    rh = matrix(a, s + 2 * batch * g3, batch, n_h)
    gx = input_part(code, p + 5, bx, w, q, a, x, s, g3, pre)       # input parts of z, r, h
    for b in range(batch):
        fill(gh[b], w, -1)
        if linear_before_reset:
            fill(gh[b][2 * n_h:], w, bh)
    project(code, p + 8, w, q, g3, 0, hs, gh, 0, g3 if linear_before_reset else 2 * n_h)
    for b in range(batch):
        zr, r, hc = gx[b][:2 * n_h], gx[b][n_h:2 * n_h], gx[b][2 * n_h:]
        for j in range(2 * n_h):
            zr[j] += gh[b, j]
        if clip_off >= 0:
            clip(zr, w[clip_off])
        apply_encoded(code, p + 13, w, zr)
        if linear_before_reset:
            gh_h = gh[b][2 * n_h:]
            for j in range(n_h):
                hc[j] += r[j] * gh_h[j]
        else:
            for j in range(n_h):
                rh[b, j] = r[j] * hs[b, j]
    if not linear_before_reset:
        project(code, p + 8, w, q, g3, 2 * n_h, rh, gh, 2 * n_h, n_h)
        for b in range(batch):
            hc, gh_h = gx[b][2 * n_h:], gh[b][2 * n_h:]
            for j in range(n_h):
                hc[j] += gh_h[j]
    for b in range(batch):
        z, hc, h = gx[b][:n_h], gx[b][2 * n_h:], hs[b]
        if clip_off >= 0:
            clip(hc, w[clip_off])
        apply_encoded(code, p + 15, w, hc)
        for j in range(n_h):
            h[j] = (np.float32(1.0) - z[j]) * hc[j] + z[j] * h[j]
