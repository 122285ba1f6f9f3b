"""The compiled entry points: run a plan for one or more time steps.

Every model shares them (their argument types never change): ``execute`` releases the GIL while
it runs, ``execute_holding_gil`` keeps it, for calls too short to be worth handing it over. Both
call the interpreter, ``run_plan``, through its one address, and it calls the kernels through
the model's table of their addresses (see linking): a model compiles only the kernels its
instructions use, once per install (numba's on-disk cache keeps each), and a model whose
kernels another one compiled before compiles nothing.
"""

import numpy as np
from numba import njit, types

from ..isa import (BINARY, FUNCTION, HEADER, INSTRUCTIONS, MATRIX, OPCODE, RECORD, REDUCE, STATUS, STATUS_SCALE, UNARY,
                   records)
from .activations import APPLY
from .config import JIT_OPTIONS
from .conv_f32 import conv_f32
from .dense_f32 import dense_f32
from .elementwise_f32 import BINARY_FUNCTIONS, activation_f32, binary_f32, softmax_f32
from .gru_f32 import gru_f32
from .linking import Kind, address, call, call_linked, declare, kind_of, link
from .lstm_f32 import linked_for as lstm_linked_for
from .lstm_f32 import lstm_f32, peephole_or_clip_cell
from .math_f32 import UNARY_FUNCTIONS, unary_f32, where_f32
from .matmul_f32 import matmul_f32
from .matvec import copy, link_products
from .movement import copy_indexed, embedding, is_row_index
from .packing import unpack
from .reduce_f32 import REDUCTIONS, cumsum_f32, normalize_f32, reduce_f32, topk_f32
from .rnn_f32 import rnn_f32
from .rollback import restore_state, save_state, state_is_finite
from .sequence import layer_inputs, next_stage, project_inputs, scratch_floats, stage_start, stage_states
from .views import matrix

_CODE, _FLOATS, _INT8S = (types.Array(t, 1, "C") for t in (types.int64, types.float32, types.int8))
_MATRIX = types.Array(types.float32, 2, "C")
# run_plan's and the entry points' arguments (model, a, x, y, steps, pre, kernels), of the same types
# in every call (StreamingModel checks them before the call)
ENTRY_TYPES = (types.Array(types.uint8, 1, "C"), _FLOATS, _FLOATS, _FLOATS, types.int64, _FLOATS, _CODE)
# the kinds of kernel, by the arguments run_plan passes them
RECURRENT = Kind("recurrent", types.none, _CODE, types.int64, _FLOATS, _INT8S, _FLOATS, _FLOATS)  # (code, p, w, q, a, pre)
WEIGHTED = Kind("weighted", types.none, _CODE, types.int64, _FLOATS, _INT8S, _FLOATS)  # (code, p, w, q, a)
PLAIN = Kind("plain", types.none, _CODE, types.int64, _FLOATS, _FLOATS)  # (code, p, w, a)
INDEXING = Kind("indexing", types.boolean, _CODE, types.int64, _FLOATS, _INT8S, _FLOATS)  # False: an index out of range
PROJECTING = Kind("input projection", types.none, _CODE, types.int64, _FLOATS, _INT8S, _MATRIX, _MATRIX)
KINDS = (RECURRENT, WEIGHTED, PLAIN, INDEXING)

KERNELS = {  # the kernel of each instruction
    OPCODE.GRU: declare(gru_f32, RECURRENT),
    OPCODE.LSTM: declare(lstm_f32, RECURRENT),
    OPCODE.RNN: declare(rnn_f32, RECURRENT),
    OPCODE.DENSE: declare(dense_f32, WEIGHTED),
    OPCODE.BINARY: declare(binary_f32, PLAIN),
    OPCODE.ACTIVATION: declare(activation_f32, PLAIN),
    OPCODE.SOFTMAX: declare(softmax_f32, PLAIN),
    OPCODE.COPY: declare(copy_indexed, PLAIN),
    OPCODE.CONV: declare(conv_f32, WEIGHTED),
    OPCODE.UNARY: declare(unary_f32, PLAIN),
    OPCODE.WHERE: declare(where_f32, PLAIN),
    OPCODE.REDUCE: declare(reduce_f32, PLAIN),
    OPCODE.NORMALIZE: declare(normalize_f32, PLAIN),
    OPCODE.MATMUL: declare(matmul_f32, PLAIN),
    OPCODE.CUMSUM: declare(cumsum_f32, PLAIN),
    OPCODE.TOPK: declare(topk_f32, PLAIN),
    OPCODE.EMBEDDING: declare(embedding, INDEXING),
}
PROJECTION = max(OPCODE) + 1  # the table's slot of project_inputs, after every instruction's
declare(project_inputs, PROJECTING)
# each opcode's kind of kernel, as its index in KINDS: run_plan calls every kernel of a kind from one
# call site
_KIND_OF = np.array([KINDS.index(kind_of(KERNELS[op])) if op in KERNELS else -1 for op in range(PROJECTION)], np.int64)
_RECURRENT_AT, _WEIGHTED_AT, _PLAIN_AT = (KINDS.index(kind) for kind in (RECURRENT, WEIGHTED, PLAIN))


# where each instruction's matrix operands are among its fields (an embedding's table is read, not
# multiplied), and the fields of its rows per product (a recurrent layer's batch, a Dense's or a
# Conv's rows)
_MATRICES = {i.opcode: i.operands(MATRIX) for i in INSTRUCTIONS if i.opcode != OPCODE.EMBEDDING}
_ROWS = {i.opcode: [i.layout[name] for name in ("ROWS", "BATCH") if name in i.layout.__members__]
         for i in INSTRUCTIONS}
# where the activations each instruction applies are among its fields
_ACTIVATIONS = {i.opcode: i.operands(FUNCTION) for i in INSTRUCTIONS if i.operands(FUNCTION)}
# the instructions whose kernel calls one function of a table, and the field that numbers it
_PICKED = {OPCODE.UNARY: (UNARY_FUNCTIONS, UNARY.FUNCTION), OPCODE.BINARY: (BINARY_FUNCTIONS, BINARY.FUNCTION),
           OPCODE.REDUCE: (REDUCTIONS, REDUCE.FUNCTION)}
TABLES = (APPLY, *(table for table, _ in _PICKED.values()))
# the functions a kernel reaches through their addresses for some of its records only (the cold
# paths of a layer, not compiled with its kernel): the record's opcode -> which of them it needs
_LINKED_FOR = {OPCODE.LSTM: lstm_linked_for}
KERNEL_PARTS = (peephole_or_clip_cell,)


def kernel_table(code: np.ndarray) -> np.ndarray:
    """The addresses of the kernels a plan's instructions run, at their opcodes (compiled now,
    or loaded from the cache), for ``execute`` (run_plan's own address is filled in first);
    the slot PROJECTION is filled by ``project``.
    The matrix products its steps take are linked too (matvec.project), the activations
    they apply (activations.APPLY), the unary, binary and reduction functions (``_PICKED``), and
    the parts of kernels the records need (``_LINKED_FOR``)."""
    address(run_plan)
    table = np.zeros(PROJECTION + 1, np.int64)
    for pc, op in records(code, code[HEADER.START], code[HEADER.END]):
        p = pc + RECORD.FIELDS
        for field in _ACTIVATIONS.get(op, ()):
            address(APPLY.functions[int(code[p + field + FUNCTION.KIND])])
        if op in _PICKED:
            functions, field = _PICKED[op]
            address(functions.functions[int(code[p + field])])
        for part in _LINKED_FOR[op](code, p) if op in _LINKED_FOR else ():
            address(part)
        if not table[op]:
            table[op] = address(KERNELS[op])
    most_rows = _products(code)
    if most_rows:
        link_products(most_rows)
    return table


def project(table: np.ndarray, code: np.ndarray) -> None:
    """Add project_inputs to a kernel table and link run_stages: ``execute`` calls them when given
    scratch (``pre``), and their products take many rows at once."""
    if not table[PROJECTION]:
        link_products(dict.fromkeys(_products(code)))
        address(run_stages)
        table[PROJECTION] = address(project_inputs)


def _products(code: np.ndarray) -> dict[int, int]:
    """The kinds of matrix a plan's instructions multiply, each with the most rows a product with
    it takes: Silero VAD's convolutions take four rows of float32 matrices and its LSTM one row of
    packed ones, which then need no product for more rows (0.4 s of an empty cache's start)."""
    most_rows = {}
    for pc, op in records(code, code[HEADER.START], code[HEADER.END]):
        p = pc + RECORD.FIELDS
        rows = max(int(code[p + field]) for field in _ROWS[op]) if _MATRICES.get(op) else 0
        for field in _MATRICES.get(op, ()):
            kind = int(code[p + field + MATRIX.KIND])
            most_rows[kind] = max(most_rows.get(kind, 0), rows)
    return most_rows


@njit(inline="always", **JIT_OPTIONS)
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
def run_plan(model, a, x, y, steps, pre, kernels):
    """Run ``steps`` time steps: x holds steps * X_SIZE inputs, y receives steps * Y_SIZE outputs.

    ``model`` is the plan's code and weights as ``packing.pack`` lays them out, ``a`` the
    stream's arena, ``kernels`` the plan's ``kernel_table``. ``pre`` is empty (the steps go one
    at a time through the whole plan), or scratch for the input projections of the stages'
    layers (the table ``project``ed): ``run_stages`` then takes the steps through the plan stage
    by stage (see stages), as many at once as it holds (a multiple of
    ``sequence.projection_floats``), with the same numbers.

    All inputs are checked before the first step runs, so a bad value anywhere leaves the
    state exactly as it was; the status says which value was bad (see isa.STATUS_SCALE). A step that
    goes wrong while it runs (an embedding index outside its table, a new state that is not
    finite) stops the call and puts the state back as it was when the call started (see
    rollback); the status says which step. Outputs of the steps before it are written.
    """
    code, w, q = unpack(model)
    status = check_inputs(code, x, steps * code[HEADER.X_SIZE])
    if status != STATUS.OK:
        return status
    save_state(code, a)
    if pre.size:
        status = call_linked(run_stages, code, w, q, a, x, y, steps, pre, kernels)
    else:
        status = run_steps(code, w, q, a, x, y, steps, kernels)
    if status != STATUS.OK:
        restore_state(code, a)
    return status


@njit(inline="always", **JIT_OPTIONS)
def run_steps(code, w, q, a, x, y, steps, kernels):
    """Steps one at a time, each through the whole plan; the status of the first step refused
    (or OK)."""
    x_off, x_size = code[HEADER.X_OFFSET], code[HEADER.X_SIZE]
    y_off, y_size = code[HEADER.Y_OFFSET], code[HEADER.Y_SIZE]
    states, n_states = code[HEADER.TABLES] + code[HEADER.STATES], code[HEADER.N_STATES]
    none = w[:0]
    for t in range(steps):
        copy(a[x_off:x_off + x_size], x[t * x_size:(t + 1) * x_size])
        if not run_records(code, w, q, a, kernels, code[HEADER.START], code[HEADER.END], -1, none):
            return STATUS.BAD_INDEX * STATUS_SCALE + t
        if not state_is_finite(code, a, states, n_states):
            return STATUS.STATE_NOT_FINITE * STATUS_SCALE + t
        copy(y[t * y_size:(t + 1) * y_size], a[y_off:y_off + y_size])
    return STATUS.OK


@njit(**JIT_OPTIONS)
def run_stages(code, w, q, a, x, y, steps, pre, kernels):
    """``run_plan``'s steps chunk by chunk, stage by stage (see run_chunk); the status of the
    first step refused (or OK). Reached through its address (linking.call_linked), linked by
    ``project``: a process that only steps never compiles it."""
    projections, inputs = scratch_floats(code)
    chunk = pre.size // (projections + inputs)
    for t in range(0, steps, chunk):
        status = run_chunk(code, w, q, a, x, y, t, min(chunk, steps - t),
                           pre[:chunk * projections], pre[chunk * projections:chunk * (projections + inputs)], kernels)
        if status != STATUS.OK:
            return status
    return STATUS.OK


@njit(inline="always", **JIT_OPTIONS)
def run_chunk(code, w, q, a, x, y, t, n, pre, kept, kernels):
    """Steps t to t + n - 1, pass by pass: a pass takes every step through stages s to end - 1, its
    first layer reading its row of ``pre`` (the chunk's input projections, made from its inputs in
    ``kept``; none in the first pass), and keeps each step's input of the next pass's layer in
    ``kept``. An empty first stage before a layer that reads the model input as is makes no pass:
    the layer's inputs are the steps' own. A step refused in a pass runs no later pass if an index
    was bad, and runs them if its state was not finite (a bad index there is what one step at a
    time reports); the steps after it run no more. Returns the status of the first step refused
    (or OK)."""
    x_off, x_size = code[HEADER.X_OFFSET], code[HEADER.X_SIZE]
    y_off, y_size = code[HEADER.Y_OFFSET], code[HEADER.Y_SIZE]
    last, refused, fault = code[HEADER.N_STAGES], n, STATUS.OK
    inputs = kept  # the layer inputs a pass projects: kept by the pass before, or the steps' own
    s = 0
    while s < last:
        end = next_stage(code, s, pre.size > 0)
        start, stop = stage_start(code, s), stage_start(code, end)
        states, n_states = stage_states(code, s, end)
        runs = refused + 1 if fault == STATUS.STATE_NOT_FINITE else refused
        layer, row_floats = -1, 0
        if s > 0 and runs:
            _, n_in, rows, width, mp = layer_inputs(code, start)
            layer, row_floats = start, rows * width
            call(PROJECTING, kernels[PROJECTION], code, mp, w, q, matrix(inputs, 0, runs * rows, n_in),
                 matrix(pre, 0, runs * rows, width))
        next_x, next_floats = 0, 0  # where the next pass's layer finds its input, and its floats
        if end < last:
            next_x, n_in, rows, _, _ = layer_inputs(code, stop)
            next_floats = rows * n_in
        inputs = kept
        if start == stop and next_x == x_off and next_floats == x_size:  # no pass: see above
            inputs, runs = x[t * x_size:(t + n) * x_size], 0
        for i in range(runs):
            if s == 0:
                copy(a[x_off:x_off + x_size], x[(t + i) * x_size:(t + i + 1) * x_size])
            if not run_records(code, w, q, a, kernels, start, stop, layer, pre[i * row_floats:(i + 1) * row_floats]):
                refused, fault = i, STATUS.BAD_INDEX
                break
            finite = state_is_finite(code, a, states, n_states)
            if end < last:
                copy(kept[i * next_floats:(i + 1) * next_floats], a[next_x:next_x + next_floats])
            if not finite:
                refused, fault = i, STATUS.STATE_NOT_FINITE
                break
            if end == last and i < refused:
                copy(y[(t + i) * y_size:(t + i + 1) * y_size], a[y_off:y_off + y_size])
        s = end
    return STATUS.OK if fault == STATUS.OK else fault * STATUS_SCALE + t + refused


@njit(inline="always", **JIT_OPTIONS)
def run_records(code, w, q, a, kernels, start, stop, layer, row):
    """Run the records from code position start to stop, the recurrent one at ``layer`` taking its
    input projections from ``row``; False when an embedding index is outside its table."""
    none = row[:0]
    pc = start
    while pc < stop:
        op = code[pc + RECORD.OPCODE]
        p = pc + RECORD.FIELDS
        kind = _KIND_OF[op]
        if kind == _RECURRENT_AT:
            call(RECURRENT, kernels[op], code, p, w, q, a, row if pc == layer else none)
        elif kind == _WEIGHTED_AT:
            call(WEIGHTED, kernels[op], code, p, w, q, a)
        elif kind == _PLAIN_AT:
            call(PLAIN, kernels[op], code, p, w, a)
        elif not call(INDEXING, kernels[op], code, p, w, q, a):
            return False
        pc += code[pc + RECORD.LENGTH]
    return True


link(run_stages, types.int64, _CODE, _FLOATS, _INT8S, _FLOATS, _FLOATS, _FLOATS, types.int64, _FLOATS, _CODE)


# Both entry points reach run_plan through its address (linking.call_linked): it compiles once,
# not again inside each entry point (0.2-0.4 s of an empty cache's start per entry point).
link(run_plan, types.int64, *ENTRY_TYPES)


@njit(**JIT_OPTIONS)
def execute(model, a, x, y, steps, pre, kernels):
    """``run_plan`` with the GIL released: other threads run meanwhile (their own streams too)."""
    return call_linked(run_plan, model, a, x, y, steps, pre, kernels)


@njit(**{**JIT_OPTIONS, "nogil": False})
def execute_holding_gil(model, a, x, y, steps, pre, kernels):
    """``run_plan`` holding the GIL, for a call shorter than handing the GIL to another thread
    and taking it back: two threads stepping a small model each got 0.51x the steps of one
    thread, as each call waited for the GIL (see model.StreamingModel)."""
    return call_linked(run_plan, model, a, x, y, steps, pre, kernels)


ENTRY_POINTS = (execute, execute_holding_gil)
# every function a plan may reach through its address (what compile-ahead compiles, with the products)
ADDRESSED = (run_plan, *(f for table in TABLES for f in table.functions.values()), *KERNELS.values(), *KERNEL_PARTS,
             project_inputs, run_stages)
