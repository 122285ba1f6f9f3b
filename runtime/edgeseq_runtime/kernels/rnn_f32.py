"""ONNX RNN, forward direction, one time step, float32.

Fields: ``isa.RNN`` (X and H in the arena, W and R matrix operands, the bias B, activation f,
clip, scratch). ``pre`` is empty, or holds this step's X*(Wi^T) for every stream, computed by
``run`` for many steps at once (see sequence). The bias comes after the last term.

Equation (ONNX spec names)::

    Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
"""

from numba import njit

from ..isa import RNN
from .activations import apply_encoded, clip
from .config import JIT_OPTIONS
from .linking import call_linked
from .matvec import add_bias, copy, project
from .sequence import input_part
from .views import matrix


@njit(**JIT_OPTIONS)
def rnn_f32(code, p, w, q, a, pre):
    n_in, n_h, batch = code[p + RNN.INPUT_SIZE], code[p + RNN.HIDDEN_SIZE], code[p + RNN.BATCH]
    bias, clip_off = code[p + RNN.B], code[p + RNN.CLIP]
    X = matrix(a, code[p + RNN.X], batch, n_in)
    H = matrix(a, code[p + RNN.H], batch, n_h)
    ht = input_part(code, p + RNN.W, w, q, a, X, code[p + RNN.SCRATCH], n_h, pre)
    call_linked(project, code, p + RNN.R, w, q, n_h, 0, H, ht, 0, n_h)
    for b in range(batch):
        add_bias(ht[b], w, bias, 0)
        if clip_off >= 0:
            clip(ht[b], w[clip_off])
        apply_encoded(code, p + RNN.ACT_F, w, ht[b])
        copy(H[b], ht[b])
