"""Where each arena region lives: regions that are never live at once share memory.

The lowering gives every tensor and every instruction's scratch a region of its own; most are
written by one instruction and read by the next few, then never again in the step. A region's
live interval runs from the first to the last instruction of the step that names it (an arena
or scratch field, a broadcast operand read from the arena, an address in an index table:
found from the instruction set's declaration, ``isa``). A region read after the step (the
output) is live until its end; one holding a value when the step starts (the input), from its
start; state and its copy, constants and zero cells are both (``Region.pinned``). Regions are
then placed greedily, largest first, each at the lowest offset where it meets no region live at
the same time (as TFLM's greedy memory planner does).

Sharing is exact because every region that is not pinned is written in full by the first
instruction that names it before anything reads it (tests/test_arena_reuse.py checks this by
filling the shared memory with NaN before every step).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import isa
from .isa import BROADCAST, RECORD, SOURCE


@dataclass(frozen=True)
class Region:
    start: int           # offset in allocation order, where regions never overlap
    size: int            # floats reserved (aligned)
    from_start: bool     # holds a value when the step starts
    to_end: bool         # holds a value read after the step

    @property
    def pinned(self) -> bool:
        """Live for the whole step (and from one step to the next): never shares its memory."""
        return self.from_start and self.to_end


def arena_slots(code, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """(instruction index, code position, whether it is a table) for every slot of the
    records in ``code[start:end]`` that holds an arena address or the offset of an index
    table of arena addresses."""
    by_opcode = {i.opcode: i for i in isa.INSTRUCTIONS}
    for index, (p, opcode) in enumerate(isa.records(code, start, end)):
        position = p + RECORD.FIELDS
        for f in by_opcode[opcode].fields:
            if f.type is isa.ARENA or f.type is isa.SCRATCH:
                yield index, position, False
            elif f.type is isa.TABLE:
                yield index, position, True
            elif isinstance(f.type, isa.Operand) and f.type.layout is BROADCAST \
                    and code[position + BROADCAST.SOURCE] == SOURCE.ARENA:
                yield index, position + BROADCAST.OFFSET, False
            position += f.type.width


def live_intervals(regions: list[Region], references: list[tuple[int, np.ndarray]],
                   steps: int) -> list[tuple[int, int] | None]:
    """[first, last] instruction that names each region, -1 for the step's start and ``steps``
    for its end (pinned: [-1, steps]); None for a region that is neither named nor live at
    either end. ``references``: (instruction index, the arena addresses it names)."""
    starts = np.array([r.start for r in regions], np.int64)
    first = np.full(len(regions), steps + 1, np.int64)
    last = np.full(len(regions), -2, np.int64)
    for index, addresses in references:
        held = np.searchsorted(starts, addresses, side="right") - 1  # repeats write the same value
        first[held] = np.minimum(first[held], index)
        last[held] = np.maximum(last[held], index)
    intervals = []
    for r, f, l in zip(regions, first.tolist(), last.tolist()):
        named = l >= 0
        if r.from_start or r.to_end:  # the caller or the next step finds it there even if no instruction names it
            f = -1 if r.from_start else min(f, steps)
            l = steps if r.to_end else max(l, -1)
        intervals.append((f, l) if named or r.from_start or r.to_end else None)
    return intervals


def place(regions: list[Region], intervals) -> tuple[list[int], int]:
    """An offset for each region and the arena size: pinned regions first in allocation order,
    then the others largest first, each at the lowest offset clear of every region placed so
    far whose interval meets its own. Regions no instruction names take no memory (offset 0)."""
    order = sorted((k for k, live in enumerate(intervals) if live is not None),
                   key=lambda k: (not regions[k].pinned, 0 if regions[k].pinned else -regions[k].size, k))
    offsets = [0] * len(regions)
    placed = np.zeros((len(order), 4), np.int64)  # offset, end, first, last of each region placed
    total = 0
    for n, k in enumerate(order):
        first, last = intervals[k]
        size = regions[k].size
        met = placed[:n][(placed[:n, 2] <= last) & (first <= placed[:n, 3])]
        offset = 0
        if met.size:
            met = met[np.argsort(met[:, 0], kind="stable")]
            reach = np.maximum.accumulate(met[:, 1])
            before = np.concatenate([[0], reach[:-1]])  # the lowest free offset before each region met
            fits = before + size <= met[:, 0]
            offset = int(before[np.argmax(fits)] if fits.any() else reach[-1])
        offsets[k] = offset
        placed[n] = offset, offset + size, first, last
        total = max(total, offset + size)
    return offsets, total
