"""Input projections of many time steps at once, for ``run``.

A recurrent layer's gates are X_t @ W (no state involved) plus H_t-1 @ R, then the biases.
When the first recurrent layer reads the model input as it is, ``run`` computes the first part
for a chunk of steps in one matrix product (each weight loaded once for the whole chunk, and the
per-step work left with R alone), and the layer's kernel takes its row of the result instead
of computing it. Used only where the product is ``matvec.rows_independent``, so that the
numbers are exactly those of one step at a time.

The products start from zero and the kernels add the biases after the last term, as ONNX
Runtime does (and as conv_f32 and dense_f32 do): carried from a large bias, small terms would
lose their low bits at every one.
"""

from numba import njit

from ..isa import GRU, HEADER, LSTM, OPCODE, RECORD, RNN
from .config import JIT_OPTIONS
from .linking import call_linked
from .matvec import fill, project, rows_independent
from .views import matrix


@njit(**JIT_OPTIONS)
def project_inputs(code, mp, w, q, x, out):
    """out[r] = x[r] @ W for every row r, from zero; W is the matrix operand at code[mp:]. Every
    recurrent kernel computes its input part with it."""
    for r in range(x.shape[0]):
        fill(out[r], w, -1)
    call_linked(project, code, mp, w, q, out.shape[1], 0, x, out, 0, out.shape[1])


@njit(inline="always", **JIT_OPTIONS)
def input_part(code, mp, w, q, a, x, scratch, width, pre):
    """A recurrent kernel's X @ W for every stream, (batch, width): ``pre`` when ``run`` made it
    ahead, else computed into the arena at offset ``scratch``. (Inlined into its callers:
    without numba's runtime a compiled function cannot return a new view.)"""
    if pre.size:
        return matrix(pre, 0, x.shape[0], width)
    out = matrix(a, scratch, x.shape[0], width)
    project_inputs(code, mp, w, q, x, out)
    return out


@njit(inline="always", **JIT_OPTIONS)
def add_bias(v, w, bias, start):
    """v += the values of the bias at weights offset ``bias`` from its ``start``-th on; nothing
    when bias < 0 (absent). After a gate's last term, in a loop of its own (fastmath's reassoc
    may not fold it into the sum). Inlined: called, its three a GRU step cost 0.1 us at 16/64."""
    if bias >= 0:
        for j in range(v.size):
            v[j] += w[bias + start + j]


@njit(**JIT_OPTIONS)
def layer_inputs(code, pc):
    """(arena offset of X, input_size, batch, gate width, W operand position) of the recurrent
    instruction at pc; input_size 0 if pc holds another instruction."""
    op, p = code[pc + RECORD.OPCODE], pc + RECORD.FIELDS
    if op == OPCODE.GRU:
        return (code[p + GRU.X], code[p + GRU.INPUT_SIZE], code[p + GRU.BATCH], 3 * code[p + GRU.HIDDEN_SIZE],
                p + GRU.W)
    if op == OPCODE.LSTM:
        return (code[p + LSTM.X], code[p + LSTM.INPUT_SIZE], code[p + LSTM.BATCH], 4 * code[p + LSTM.HIDDEN_SIZE],
                p + LSTM.W)
    if op == OPCODE.RNN:
        return (code[p + RNN.X], code[p + RNN.INPUT_SIZE], code[p + RNN.BATCH], code[p + RNN.HIDDEN_SIZE],
                p + RNN.W)
    return -1, 0, 0, 0, 0


@njit(**JIT_OPTIONS)
def projected_layer(code):
    """The pc of the recurrent instruction whose input projections ``run`` precomputes, or -1:
    the first one, if it reads the model input as is (the plan says which: the input's memory
    is shared, so its address alone does not tell) and its product is rows_independent."""
    pc = code[HEADER.PROJECTED]
    if pc < 0:
        return -1
    _, _, _, width, _ = layer_inputs(code, pc)
    return pc if rows_independent(width) else -1


@njit(**JIT_OPTIONS)
def projection_floats(code):
    """Floats of precomputed projection per time step (all streams): 0 if none is made."""
    pc = projected_layer(code)
    if pc < 0:
        return 0
    _, _, batch, width, _ = layer_inputs(code, pc)
    return batch * width
