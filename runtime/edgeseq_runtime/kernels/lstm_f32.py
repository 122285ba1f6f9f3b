"""ONNX LSTM, forward direction, one time step, float32.

Fields: ``isa.LSTM`` (X, H and C in the arena, W and R matrix operands, the bias B, the
peepholes P, activations f, g and h, clip, input_forget, scratch). ``pre`` is empty, or holds
this step's X*(W^T) for every stream, computed by ``run`` for many steps at once (see sequence).
Each gate takes its bias after its last term (its peephole's, where it has one), as ONNX
Runtime does.

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
from numba import njit, types

from ..isa import LSTM
from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .linking import call_linked, link
from .matvec import add_bias, project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def lstm_f32(code, p, w, q, a, pre):
    n_in, n_h, batch = code[p + LSTM.INPUT_SIZE], code[p + LSTM.HIDDEN_SIZE], code[p + LSTM.BATCH]
    bias, input_forget = code[p + LSTM.B], code[p + LSTM.INPUT_FORGET]
    rare = code[p + LSTM.P] >= 0 or code[p + LSTM.CLIP] >= 0
    width = 4 * n_h  # i, o, f, c
    X = matrix(a, code[p + LSTM.X], batch, n_in)
    H = matrix(a, code[p + LSTM.H], batch, n_h)
    C = matrix(a, code[p + LSTM.C], batch, n_h)
    gates = input_part(code, p + LSTM.W, w, q, a, X, code[p + LSTM.SCRATCH], width, pre)
    call_linked(project, code, p + LSTM.R, w, q, width, 0, H, gates, 0, width)
    for b in range(batch):
        g, h, c = gates[b], H[b], C[b]
        if rare:
            call_linked(peephole_or_clip_cell, code, p, w, g, h, c)
            continue
        add_bias(g, w, bias, 0)
        # ot does not wait for Ct: f over i, o (and f), adjacent, in one pass
        apply_encoded(code, p + LSTM.ACT_F, w, g[:2 * n_h] if input_forget else g[:3 * n_h])
        _new_c(code, p, w, g, c)
        _new_h(code, p, w, g, c, h)


@njit(**JIT_OPTIONS)
def peephole_or_clip_cell(code, p, w, g, h, c):
    """``lstm_f32``'s step of one stream from its gates ``g`` (before their biases) where the layer
    has peepholes or clips: its own function, reached through its address, which the kernel
    table links only for such a layer (see ``linked_for``), so that the usual layer's kernel is
    not compiled and optimised with it (0.4 s of an empty cache's first LSTM step)."""
    n_h = code[p + LSTM.HIDDEN_SIZE]
    P, clip_off, input_forget = code[p + LSTM.P], code[p + LSTM.CLIP], code[p + LSTM.INPUT_FORGET]
    bias = code[p + LSTM.B]
    it, ot, ft = g[:n_h], g[n_h:2 * n_h], g[2 * n_h:3 * n_h]
    ft_ct = g[2 * n_h:]  # f and c are adjacent: clipped in one pass
    if P >= 0:
        p_i, p_f = w[P:P + n_h], w[P + 2 * n_h:P + 3 * n_h]
        for j in range(n_h):
            it[j] += p_i[j] * c[j]
            ft[j] += p_f[j] * c[j]
        add_bias(it, w, bias, 0)
        add_bias(ft_ct, w, bias, 2 * n_h)
    else:
        add_bias(g, w, bias, 0)
    if clip_off >= 0:
        clip(g if P < 0 else it, w[clip_off])
        if P >= 0:
            clip(ft_ct, w[clip_off])
    if P < 0:  # as lstm_f32: f over i, o (and f) in one pass
        apply_encoded(code, p + LSTM.ACT_F, w, g[:2 * n_h] if input_forget else g[:3 * n_h])
    else:
        apply_encoded(code, p + LSTM.ACT_F, w, it)
        if not input_forget:
            apply_encoded(code, p + LSTM.ACT_F, w, ft)
    _new_c(code, p, w, g, c)
    if P >= 0:
        p_o = w[P + n_h:P + 2 * n_h]
        for j in range(n_h):
            ot[j] += p_o[j] * c[j]
        add_bias(ot, w, bias, n_h)
        if clip_off >= 0:
            clip(ot, w[clip_off])
        apply_encoded(code, p + LSTM.ACT_F, w, ot)
    _new_h(code, p, w, g, c, h)


@njit(inline="always", **JIT_OPTIONS)
def _new_c(code, p, w, g, c):
    """Ct = ft (.) Ct-1 + it (.) ct, from i (and f) past f, and c before g."""
    n_h = code[p + LSTM.HIDDEN_SIZE]
    it, ft, ct = g[:n_h], g[2 * n_h:3 * n_h], g[3 * n_h:]
    if code[p + LSTM.INPUT_FORGET]:
        for j in range(n_h):
            ft[j] = np.float32(1.0) - it[j]
    apply_encoded(code, p + LSTM.ACT_G, w, ct)
    for j in range(n_h):
        c[j] = ft[j] * c[j] + it[j] * ct[j]


@njit(inline="always", **JIT_OPTIONS)
def _new_h(code, p, w, g, c, h):
    """Ht = ot (.) h(Ct), from o past f."""
    n_h = code[p + LSTM.HIDDEN_SIZE]
    ot, h_of_c = g[n_h:2 * n_h], g[3 * n_h:]  # the slot of ct, free now, takes h(Ct)
    for j in range(n_h):
        h_of_c[j] = c[j]
    apply_encoded(code, p + LSTM.ACT_H, w, h_of_c)
    for j in range(n_h):
        h[j] = ot[j] * h_of_c[j]


_ROW = types.Array(types.float32, 1, "C")
link(peephole_or_clip_cell, types.none, types.Array(types.int64, 1, "C"), types.int64, _ROW, _ROW, _ROW, _ROW)


def linked_for(code, p) -> tuple:
    """The functions ``lstm_f32`` reaches through their addresses for the layer at code[p:]."""
    return (peephole_or_clip_cell,) if code[p + LSTM.P] >= 0 or code[p + LSTM.CLIP] >= 0 else ()
