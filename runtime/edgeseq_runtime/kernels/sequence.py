"""Input projections of many time steps at once, for ``run``.

A recurrent layer's gates are X_t @ W (no state involved) plus H_t-1 @ R, then the biases.
``run`` takes a chunk of steps through the plan stage by stage (see stages): before a stage, it
computes the first part for the chunk's inputs of the stage's layer in one matrix product (each
weight loaded once for the whole chunk, and the per-step work left with R alone), and the layer's
kernel takes its row of the result instead of computing it. A stage starts a pass of its own only
where the product is ``matvec.rows_independent``, so that the numbers are exactly those of one
step at a time; elsewhere it runs on within the stage before it.

The products start from zero and the kernels add the biases after the last term, as ONNX
Runtime does (and as conv_f32 and dense_f32 do): carried from a large bias, small terms would
lose their low bits at every one.
"""

from numba import njit

from ..isa import GRU, HEADER, LSTM, OPCODE, RECORD, RNN, SLOTS, STAGE
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


@njit(inline="always", **JIT_OPTIONS)
def _stage(code, s):
    """Code position of the entry (STAGE) of stage s in the stage table."""
    return code[HEADER.TABLES] + code[HEADER.STAGES] + s * SLOTS.STAGE


@njit(inline="always", **JIT_OPTIONS)
def stage_start(code, s):
    """Code position of stage s's first record; END for s = N_STAGES."""
    return code[HEADER.END] if s == code[HEADER.N_STAGES] else code[_stage(code, s) + STAGE.START]


@njit(inline="always", **JIT_OPTIONS)
def next_stage(code, s, projecting):
    """The stage after which ``run`` ends a pass that starts with stage s: the next one whose layer's
    product is rows_independent (the others run on in this pass), N_STAGES after the last one, and
    at once when nothing is projected (a call of ``step``)."""
    n = code[HEADER.N_STAGES]
    s += 1
    while projecting and s < n:
        _, _, _, width, _ = layer_inputs(code, stage_start(code, s))
        if rows_independent(width):
            return s
        s += 1
    return n


@njit(inline="always", **JIT_OPTIONS)
def stage_states(code, s, end):
    """(code position, entries) of the parts of the state that stages s to end - 1 touch: the
    STATE_ENTRY entries a pass through them checks."""
    table, n = code[HEADER.TABLES] + code[_stage(code, s) + STAGE.STATES], 0
    for k in range(s, end):
        n += code[_stage(code, k) + STAGE.N_STATES]
    return table, n


@njit(**JIT_OPTIONS)
def projection_floats(code):
    """Floats of ``run``'s scratch per time step (all streams): 0 if no stage is projected."""
    projections, inputs = scratch_floats(code)
    return projections + inputs


@njit(**JIT_OPTIONS)
def scratch_floats(code):
    """(floats of input projections, floats of kept layer inputs) per time step (all streams) of
    ``run``'s scratch: the largest of any stage's, as the stages take turns with it."""
    projections, inputs = 0, 0
    s = next_stage(code, 0, True)
    while s < code[HEADER.N_STAGES]:
        _, n_in, batch, width, _ = layer_inputs(code, stage_start(code, s))
        projections, inputs = max(projections, batch * width), max(inputs, batch * n_in)
        s = next_stage(code, s, True)
    return projections, inputs
