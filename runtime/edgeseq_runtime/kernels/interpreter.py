"""The single compiled entry point: runs a plan for one or more time steps.

Every model shares this one function (its argument types never change), so a new model
never triggers a compilation, and numba's on-disk cache makes a fresh process start quickly.
"""

import numpy as np
from numba import njit

from .config import JIT_OPTIONS
from .dense_f32 import dense_f32
from .elementwise_f32 import activation_f32, binary_f32, softmax_f32
from .gru_f32 import gru_f32
from .lstm_f32 import lstm_f32
from .matvec import copy
from .movement import copy_indexed, embedding, is_row_index
from .opcodes import (
    HEADER_END, HEADER_START, HEADER_VOCAB, HEADER_X_OFFSET, HEADER_X_SIZE, HEADER_Y_OFFSET,
    HEADER_Y_SIZE, OP_ACTIVATION, OP_BINARY, OP_COPY, OP_DENSE, OP_EMBEDDING, OP_GRU, OP_LSTM,
    OP_RNN, OP_SOFTMAX, STATUS_BAD_INDEX, STATUS_BAD_TOKEN, STATUS_NOT_FINITE, STATUS_OK,
    STATUS_SCALE, STATUS_STATE_NOT_FINITE,
)
from .packing import unpack
from .rnn_f32 import rnn_f32
from .rollback import restore_state, save_state, state_is_finite
from .sequence import layer_inputs, project_inputs, projected_layer
from .views import matrix


@njit(**JIT_OPTIONS)
def check_inputs(code, x, n):
    """Status of the first n input values: every value finite, and token ids in range."""
    vocab = code[HEADER_VOCAB]
    for i in range(n):
        v = x[i]
        if not np.isfinite(v):
            return STATUS_NOT_FINITE * STATUS_SCALE + i
        if vocab > 0 and not is_row_index(v, vocab):
            return STATUS_BAD_TOKEN * STATUS_SCALE + i
    return STATUS_OK


@njit(**JIT_OPTIONS)
def execute(model, a, x, y, steps, pre):
    """Run ``steps`` time steps: x holds steps * X_SIZE inputs, y receives steps * Y_SIZE outputs.

    ``model`` is the plan's code and weights as ``packing.pack`` lays them out, ``a`` the
    stream's arena. ``pre``
    is empty, or scratch for the first layer's input projections, made for as many steps at
    once as it holds (a multiple of ``sequence.projection_floats``; see sequence).

    All inputs are checked before the first step runs, so a bad value anywhere leaves the
    state exactly as it was; the status says which value was bad (see opcodes). A step that
    goes wrong while it runs (an embedding index outside its table, a new state that is not
    finite) stops the call and puts the state back as it was when the call started (see
    rollback); the status says which step. Outputs of the steps before it are written.
    """
    code, w, q = unpack(model)
    x_off, x_size = code[HEADER_X_OFFSET], code[HEADER_X_SIZE]
    y_off, y_size = code[HEADER_Y_OFFSET], code[HEADER_Y_SIZE]
    status = check_inputs(code, x, steps * x_size)
    if status != STATUS_OK:
        return status
    save_state(code, a)
    layer = projected_layer(code) if pre.size else -1
    n_in, rows, width, mp, bias = 0, 0, 0, 0, -1
    if layer >= 0:
        n_in, rows, width, mp, bias = layer_inputs(code, layer)
    chunk = pre.size // max(rows * width, 1)
    none = pre[:0]
    start, end = code[HEADER_START], code[HEADER_END]
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
            op = code[pc]
            p = pc + 2
            if op == OP_GRU:
                gru_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OP_LSTM:
                lstm_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OP_RNN:
                rnn_f32(code, p, w, q, a, row if pc == layer else none)
            elif op == OP_DENSE:
                dense_f32(code, p, w, q, a)
            elif op == OP_BINARY:
                binary_f32(code, p, w, a)
            elif op == OP_ACTIVATION:
                activation_f32(code, p, w, a)
            elif op == OP_SOFTMAX:
                softmax_f32(code, p, w, a)
            elif op == OP_COPY:
                copy_indexed(code, p, w, a)
            elif op == OP_EMBEDDING:
                if not embedding(code, p, w, q, a):
                    restore_state(code, a)
                    return STATUS_BAD_INDEX * STATUS_SCALE + t
            pc += code[pc + 1]
        if not state_is_finite(code, a):
            restore_state(code, a)
            return STATUS_STATE_NOT_FINITE * STATUS_SCALE + t
        copy(y[t * y_size:(t + 1) * y_size], a[y_off:y_off + y_size])
    return STATUS_OK
