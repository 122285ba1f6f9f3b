"""ONNX GRU, forward direction, one time step, float32.

Fields: ``isa.GRU`` (X and H in the arena, W and R matrix operands, the biases Bx and Bh,
activations f and g, clip, linear_before_reset, scratch). ``pre`` is empty, or holds this step's
X*(W^T) for every stream, computed by ``run`` for many steps at once (see sequence). The biases
come after the terms they join, as ONNX Runtime adds them: Bx after a gate's last term, Bh
(Rbh with linear_before_reset) after Ht-1*(Rh^T), inside rt (.) (...).

Equations (ONNX spec names; (.) is the elementwise product)::

    zt = f(Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz)
    rt = f(Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr)
    ht = g(Xt*(Wh^T) + (rt (.) Ht-1)*(Rh^T) + Rbh + Wbh)       # linear_before_reset = 0
    ht = g(Xt*(Wh^T) + (rt (.) (Ht-1*(Rh^T) + Rbh)) + Wbh)     # linear_before_reset != 0
    Ht = (1 - zt) (.) ht + zt (.) Ht-1
"""

import numpy as np
from numba import njit

from ..isa import GRU
from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .linking import call_linked
from .matvec import add_bias, fill, project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def gru_f32(code, p, w, q, a, pre):
    n_in, n_h, batch = code[p + GRU.INPUT_SIZE], code[p + GRU.HIDDEN_SIZE], code[p + GRU.BATCH]
    bx, bh, clip_off, s = code[p + GRU.BX], code[p + GRU.BH], code[p + GRU.CLIP], code[p + GRU.SCRATCH]
    linear_before_reset = code[p + GRU.LINEAR_BEFORE_RESET]
    width = 3 * n_h  # z, r, h
    X = matrix(a, code[p + GRU.X], batch, n_in)
    H = matrix(a, code[p + GRU.H], batch, n_h)
    hr = matrix(a, s + batch * width, batch, width)      # Ht-1*(R^T) of z, r, h (h: of rt (.) Ht-1 without lbr)
    rh = matrix(a, s + 2 * batch * width, batch, n_h)    # rt (.) Ht-1
    xw = input_part(code, p + GRU.W, w, q, a, X, s, width, pre)  # Xt*(W^T)
    for b in range(batch):
        fill(hr[b], w, -1)
    call_linked(project, code, p + GRU.R, w, q, width, 0, H, hr, 0, width if linear_before_reset else 2 * n_h)
    for b in range(batch):
        zr, rt, ht = xw[b][:2 * n_h], xw[b][n_h:2 * n_h], xw[b][2 * n_h:]
        for j in range(2 * n_h):
            zr[j] += hr[b, j]
        add_bias(zr, w, bx, 0)
        if clip_off >= 0:
            clip(zr, w[clip_off])
        apply_encoded(code, p + GRU.ACT_F, w, zr)
        if linear_before_reset:
            hr_h = hr[b][2 * n_h:]
            add_bias(hr_h, w, bh, 0)
            for j in range(n_h):
                ht[j] += rt[j] * hr_h[j]
        else:
            for j in range(n_h):
                rh[b, j] = rt[j] * H[b, j]
    if not linear_before_reset:
        call_linked(project, code, p + GRU.R, w, q, width, 2 * n_h, rh, hr, 2 * n_h, n_h)
        for b in range(batch):
            ht, hr_h = xw[b][2 * n_h:], hr[b][2 * n_h:]
            for j in range(n_h):
                ht[j] += hr_h[j]
    for b in range(batch):
        zt, ht, h = xw[b][:n_h], xw[b][2 * n_h:], H[b]
        add_bias(ht, w, bx, 2 * n_h)
        if clip_off >= 0:
            clip(ht, w[clip_off])
        apply_encoded(code, p + GRU.ACT_G, w, ht)
        for j in range(n_h):
            h[j] = (np.float32(1.0) - zt[j]) * ht[j] + zt[j] * h[j]
