"""The single compiled entry point: runs a plan for one or more time steps.

Every model shares this one function (its argument types never change), so a new model
never triggers a compilation, and numba's on-disk cache makes a fresh process start quickly.
"""

import numpy as np
from numba import njit

from ..isa import HEADER, OPCODE, RECORD, STATUS, STATUS_SCALE
from .config import JIT_OPTIONS
from .conv_f32 import conv_f32
from .dense_f32 import dense_f32
from .elementwise_f32 import activation_f32, binary_f32, softmax_f32
from .gru_f32 import gru_f32
from .lstm_f32 import lstm_f32
from .math_f32 import unary_f32, where_f32
from .matmul_f32 import matmul_f32
from .matvec import copy
from .movement import copy_indexed, embedding, is_row_index
from .packing import unpack
from .reduce_f32 import cumsum_f32, normalize_f32, reduce_f32, topk_f32
from .rnn_f32 import rnn_f32
from .rollback import restore_state, save_state, state_is_finite
from .sequence import layer_inputs, project_inputs, projected_layer
from .views import matrix


@njit(**JIT_OPTIONS)
def check_inputs(code, x, n):
    """Status of the first n input values: every value finite, and token ids in range."""
    vocab = code[HEADER.VOCAB]
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            return STATUS.NOT_FINITE * STATUS_SCALE + i
        if vocab > 0 and not is_row_index(v, vocab):
            return STATUS.BAD_TOKEN * STATUS_SCALE + i
    return STATUS.OK


@njit(**JIT_OPTIONS)
def execute(model, a, x, y, steps, pre):
    """Run ``steps`` time steps: x holds steps * X_SIZE inputs, y receives steps * Y_SIZE outputs.

    ``model`` is the plan's code and weights as ``packing.pack`` lays them out, ``a`` the
    stream's arena. ``pre``
    is empty, or scratch for the first layer's input projections, made for as many steps at
    once as it holds (a multiple of ``sequence.projection_floats``; see sequence).

    All inputs are checked before the first step runs, so a bad value anywhere leaves the
    state exactly as it was; the status says which value was bad (see isa.STATUS_SCALE). A step that
    goes wrong while it runs (an embedding index outside its table, a new state that is not
    finite) stops the call and puts the state back as it was when the call started (see
    rollback); the status says which step. Outputs of the steps before it are written.
    """
    code, w, q = unpack(model)
    x_off, x_size = code[HEADER.X_OFFSET], code[HEADER.X_SIZE]
    y_off, y_size = code[HEADER.Y_OFFSET], code[HEADER.Y_SIZE]
    status = check_inputs(code, x, steps * x_size)
    if status != STATUS.OK:
        return status
    save_state(code, a)
    layer = projected_layer(code) if pre.size else -1
    n_in, rows, width, mp, bias = 0, 0, 0, 0, -1
    if layer >= 0:
        _, n_in, rows, width, mp, bias = layer_inputs(code, layer)
    chunk = pre.size // max(rows * width, 1)
    none = pre[:0]
    start, end = code[HEADER.START], code[HEADER.END]
    for t in range(steps):
        row = none
        if layer >= 0:
            i = t % chunk
            if i == 0:
                n = min(chunk, steps - t)
                project_inputs(code, mp, bias, w, q, matrix(x, t * x_size, n * rows, n_in),
                               matrix(pre, 0, n * rows, width))
            row = pre[i * rows * width:(i + 1) * rows * width]
        copy(a[x_off:x_off + x_size], x[t * x_size:(t + 1) * x_size])
        pc = start
        while pc < end:
            op = code[pc + RECORD.OPCODE]
            p = pc + RECORD.FIELDS
            if op == OPCODE.GRU:
                gru_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OPCODE.LSTM:
                lstm_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OPCODE.RNN:
                rnn_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OPCODE.DENSE:
                dense_f32(code, p, w, q, a)
            elif op == OPCODE.BINARY:
                binary_f32(code, p, w, a)
            elif op == OPCODE.ACTIVATION:
                activation_f32(code, p, w, a)
            elif op == OPCODE.SOFTMAX:
                softmax_f32(code, p, w, a)
            elif op == OPCODE.COPY:
                copy_indexed(code, p, w, a)
            elif op == OPCODE.CONV:
                conv_f32(code, p, w, q, a)
            elif op == OPCODE.UNARY:
                unary_f32(code, p, w, a)
            elif op == OPCODE.WHERE:
                where_f32(code, p, w, a)
            elif op == OPCODE.REDUCE:
                reduce_f32(code, p, w, a)
            elif op == OPCODE.NORMALIZE:
                normalize_f32(code, p, w, a)
            elif op == OPCODE.MATMUL:
                matmul_f32(code, p, w, a)
            elif op == OPCODE.CUMSUM:
                cumsum_f32(code, p, w, a)
            elif op == OPCODE.TOPK:
                topk_f32(code, p, w, a)
            elif op == OPCODE.EMBEDDING:
                if not embedding(code, p, w, q, a):
                    restore_state(code, a)
                    return STATUS.BAD_INDEX * STATUS_SCALE + t
            pc += code[pc + RECORD.LENGTH]
        if not state_is_finite(code, a):
            restore_state(code, a)
            return STATUS.STATE_NOT_FINITE * STATUS_SCALE + t
        copy(y[t * y_size:(t + 1) * y_size], a[y_off:y_off + y_size])
    return STATUS.OK
