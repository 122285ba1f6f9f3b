"""Where ``run`` may go layer by layer: the plan's stages.

A recurrent layer's input product X @ W involves no state, so ONNX Runtime runs a stacked model
layer by layer, each layer's input product as one matrix product over the whole sequence. ``run``
does the same for a chunk of steps: a stage is the records from one recurrent layer to the next
cut (the first stage, from the step's start); ``run`` takes the chunk's steps through a stage,
keeping for each the input of the next stage's layer, projects those through its W in one product
(kernels.sequence), and takes the steps through the next stage, the layer reading its row of them.

That gives the numbers of one step at a time only if a stage reads nothing a later stage of the
same step writes, and a later stage nothing an earlier one wrote but its layer's input (which the
layer takes from the projections): a cut before layer L is made when the records from L on (the
step's output with them) touch nothing the records before it (the step's input with them) touch,
L's input aside, which they do not touch either. Decided on the plan before its regions are placed,
while no two share memory: a field touches the floats its declaration counts (``isa.Field.size``),
else its whole region; scratch is an instruction's own, and regions of constants count for no one.
"""

from dataclasses import dataclass

import numpy as np

from . import isa
from .isa import BROADCAST, RECORD, SOURCE

_INSTRUCTIONS = {i.opcode: i for i in isa.INSTRUCTIONS}
_RECURRENT = (isa.OPCODE.GRU, isa.OPCODE.LSTM, isa.OPCODE.RNN)


@dataclass(frozen=True)
class Stage:
    start: int                      # position in the code of its first record
    states: list[tuple[int, int]]   # (offset, floats) of the parts of the state its records touch


def stages(code, region_of, table_of, arena_size: int, constants, x, y, states) -> list[Stage]:
    """The stages of a step's records ``code``: ``region_of(offset)`` is the (start, end) of the
    region holding an arena offset, ``table_of(offset)`` the index table there; ``constants``,
    ``states``, the input ``x`` and the output ``y`` are (offset, floats). Every state float is in
    the part of the first stage that touches it (the first stage if none does): ``run`` checks a
    stage's part after the stage's step, when it holds the value the whole step leaves there."""
    positions = [position for position, _ in isa.records(code, 0, len(code))]
    touches = [_touches(code, p, region_of, table_of) for p in positions]
    read_only = np.zeros(arena_size, bool)
    for offset, size in constants:
        read_only[offset:offset + size] = True
    cuts = [k for k, p in enumerate(positions) if code[p + RECORD.OPCODE] in _RECURRENT
            and _separates(touches, k, arena_size, read_only, x, y)]
    starts = [0, *cuts]  # records: the first stage is empty when the first record is cut off
    owner = np.full(arena_size, len(starts), np.int32)  # the first stage that touches each float; len(starts): none
    for k, touched in enumerate(touches):
        stage = np.searchsorted(starts, k, side="right") - 1
        for _, floats in touched:
            owner[floats] = np.minimum(owner[floats], stage)
    owner[owner == len(starts)] = 0
    parts = [[] for _ in starts]
    for offset, size in states:
        ends = [*(np.flatnonzero(np.diff(owner[offset:offset + size])) + 1).tolist(), size]
        for lo, hi in zip([0, *ends], ends):
            parts[int(owner[offset + lo])].append((offset + lo, hi - lo))
    return [Stage(positions[k] if positions else 0, part) for k, part in zip(starts, parts)]


def _touches(code, p, region_of, table_of) -> list[tuple[str, slice | np.ndarray]]:
    """(field, the arena floats it names: a slice, or an index table's offsets) of the record at p."""
    instruction = _INSTRUCTIONS[int(code[p + RECORD.OPCODE])]
    values = instruction.decode(code[p + RECORD.FIELDS:p + int(code[p + RECORD.LENGTH])])
    touched = []
    for f in instruction.fields:
        value = values[f.name]
        if f.type is isa.ARENA:
            touched.append((f.name, slice(value, value + f.size(values)) if f.size else slice(*region_of(value))))
        elif f.type is isa.TABLE:
            touched.append((f.name, table_of(value)))
        elif isinstance(f.type, isa.Operand) and f.type.layout is BROADCAST and value[BROADCAST.SOURCE] == SOURCE.ARENA:
            touched.append((f.name, slice(value[BROADCAST.OFFSET], value[BROADCAST.OFFSET] + value[BROADCAST.PERIOD])))
    return touched


def _separates(touches, k, arena_size, read_only, x, y) -> bool:
    """Whether a cut may go before record k, a recurrent layer (see the module's docstring)."""
    before, after = np.zeros(arena_size, bool), np.zeros(arena_size, bool)
    before[x[0]:x[0] + x[1]] = True
    after[y[0]:y[0] + y[1]] = True
    layer_input = None
    for j, touched in enumerate(touches):
        for field, floats in touched:
            if j == k and field == "x":
                layer_input = floats
            else:
                (before if j < k else after)[floats] = True
    after &= ~read_only
    return not (before & after).any() and not after[layer_input].any()
