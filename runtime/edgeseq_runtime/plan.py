"""A plan: what loading a model produces and what every step runs.

The plan is four flat arrays: ``code`` (int64: header, instructions, index tables, see
``isa``), ``weights`` (float32: every float constant, packed and aligned),
``qweights`` (int8: quantized weight matrices) and the arena's initial image (float32: model
input, recurrent state and its copy for taking back a refused step, intermediate tensors and
scratch, each at a fixed offset; regions never live at once share memory, see ``arena_plan``).
A step allocates nothing: it runs ``code`` over the weights and an arena.
"""

from dataclasses import dataclass

import numpy as np

from . import isa
from .arena_plan import Region, arena_slots, live_intervals, place
from .isa import HEADER, HEADER_SIZE, LANES, MATRIX_KIND, PANEL, RECORD, SLOTS
from .quantized import QuantizedWeight
from .stages import stages

ALIGN = 16  # floats: 64 bytes, one cache line, so vector loads of each block start aligned
MAX_ELEMENTS = 1 << 24  # per array: 64 MB of float32, beyond any model an edge device streams


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Plan:
    code: np.ndarray        # int64
    weights: np.ndarray     # float32
    qweights: np.ndarray    # int8
    arena: np.ndarray       # float32, the initial arena (copied per stream)


class PlanBuilder:
    """Collects arena regions, constants, instructions and index tables, then packs them."""

    def __init__(self):
        self._arena_size = 0
        self._arena_init: list[tuple[int, np.ndarray]] = []
        self._regions: list[Region] = []
        self._region_starts: list[int] = []
        self._region_ends: list[int] = []  # one past the last float asked for
        self._placed = None  # after build: allocation-order address -> arena address
        self.layout: list[tuple[int, int, bool, int, int]] = []  # after build, see _place
        self._weights: list[tuple[int, np.ndarray]] = []
        self._weights_size = 0
        self._qweights: list[tuple[int, np.ndarray]] = []
        self._qweights_size = 0
        self._code: list[int] = []
        self._tables: list[np.ndarray] = []
        self._tables_size = 0
        self._table_at: dict[int, int] = {}  # offset -> index in _tables (of the one non-empty table there)
        self._arena_tables: list[int] = []  # indices in _tables of the tables of arena addresses

    def alloc(self, n: int, init: np.ndarray | None = None) -> int:
        """Reserve n floats of arena and return their offset. A region with ``init`` holds it
        from load on and is never shared; any other is zeros at load but may share memory with
        regions not live at the same time (see ``arena_plan``): the first instruction that
        names it must write all of it that the step reads. Offsets are in allocation order
        until ``build`` places the regions (``placed``)."""
        offset = self._arena_size
        self._arena_size = _aligned(offset + max(int(n), 1))
        self._check_size(self._arena_size, "arena")
        self._regions.append(Region(offset, self._arena_size - offset, init is not None, init is not None))
        self._region_starts.append(offset)
        self._region_ends.append(offset + max(int(n), 1))
        if init is not None:
            self._arena_init.append((offset, np.asarray(init, np.float32).ravel()))
        return offset

    def one_region(self, offset: int, n: int) -> bool:
        """Whether the n floats from ``offset`` lie in one region (a view of them is one tensor)."""
        k = np.searchsorted(self._region_starts, offset, side="right") - 1
        return k >= 0 and offset + n <= self._region_ends[k]

    def placed(self, offsets):
        """Where ``build`` put arena offsets (int or array) of allocation order."""
        return self._placed(offsets)

    def constant(self, values) -> int:
        """Store values (any shape, flattened row-major) as float32 weights; return the offset."""
        values = np.ascontiguousarray(values, dtype=np.float32).ravel()
        offset = self._weights_size
        self._weights.append((offset, values))
        self._weights_size = _aligned(offset + max(values.size, 1))
        self._check_size(self._weights_size, "weights")
        return offset

    def constant_int8(self, values) -> int:
        """Store int8 values (flattened row-major) as quantized weights; return the offset."""
        values = np.ascontiguousarray(values, dtype=np.int8).ravel()
        offset = self._qweights_size
        self._qweights.append((offset, values))
        self._qweights_size = _aligned(offset + max(values.size, 1))
        self._check_size(self._qweights_size, "int8 weights")
        return offset

    def matrix(self, value, out_axis: int, factor: float = 1.0, panels: bool = False) -> list[int]:
        """Store a 2-D weight matrix for the matvec kernels and return its ``isa.MATRIX`` operand
        (kind, offset, scale offset). ``out_axis`` is the axis of ``value`` that indexes
        the outputs; ``factor`` scales every value (Gemm's alpha). A ``QuantizedWeight`` with
        one scale per output stays int8; anything else is stored as float32. Matrices with
        fewer than LANES outputs are stored output-major (see kernels.matvec). With ``panels``
        (a caller whose products take whole strips of PANEL outputs, in the Python runtime's plans),
        a float32 matrix whose outputs fill whole strips is stored FLOAT32_PANELS, packed once here
        rather than per call; and an int8 one of fewer than LANES inputs or outputs as its float32
        value (DequantizeLinear's numbers), a few KB at most: its per-output scale would add a
        multiply-add to each output's K < 8 (a product of 1 input for 256 streams took 1.6x the
        time of its float32 value), and a dot product of int8 weights vectorises only from 64
        inputs (a head of 32 inputs took 1.6x). Lean plans keep them int8."""
        by_output = value.shape[out_axis] < LANES
        # input-major is (n_in, n_out): the transpose when the outputs are axis 0
        transpose = (out_axis == 0) != by_output
        if isinstance(value, QuantizedWeight) and not (panels and min(value.shape) < LANES):
            scales = value.scales_along(out_axis)
            if scales is not None:
                q = value.q.T if transpose else value.q
                return [MATRIX_KIND.INT8_BY_OUTPUT if by_output else MATRIX_KIND.INT8, self.constant_int8(q),
                        self.constant(scales * np.float32(factor))]
        m = np.asarray(value, np.float32) * np.float32(factor)
        m = m.T if transpose else m
        if panels and not by_output and m.shape[1] % PANEL == 0:
            strips = m.reshape(m.shape[0], m.shape[1] // PANEL, PANEL).transpose(1, 0, 2)
            return [MATRIX_KIND.FLOAT32_PANELS, self.constant(strips), -1]
        return [MATRIX_KIND.FLOAT32_BY_OUTPUT if by_output else MATRIX_KIND.FLOAT32, self.constant(m), -1]

    def table(self, indices) -> int:
        """Store an index table of arena addresses (a copy reads ``a[table[i]]``, unchecked at run
        time); return its offset relative to the table base."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        region = np.searchsorted(self._region_starts, indices, side="right") - 1
        ends = np.asarray(self._region_ends, np.int64)[np.maximum(region, 0)]
        outside = indices[(region < 0) | (indices >= ends)]
        if outside.size:
            raise ValueError(f"an index table reaches arena element {int(outside[0])}, outside "
                             f"every region of the arena's {self._arena_size} elements")
        self._arena_tables.append(len(self._tables))
        return self._store_table(indices)

    def _store_table(self, values) -> int:
        indices = np.asarray(values, dtype=np.int64).ravel()
        offset = self._tables_size
        self._table_at[offset] = len(self._tables)
        self._tables.append(indices)
        self._tables_size += indices.size
        self._check_size(self._tables_size, "index tables")
        return offset

    def emit(self, layout, reserve=None, **fields) -> None:
        """Append an instruction, its fields by name (``emit(isa.COPY, y=..., n=..., table=...)``);
        its scratch, if it has any, is reserved from the declared need (see isa) by ``reserve``
        (floats -> arena offset; default a region of its own: records that run one after another
        may pass one that hands them the same region)."""
        instruction = isa.instruction(layout)
        slots = instruction.encode(fields, reserve=reserve or self.alloc)
        record = [0] * RECORD.FIELDS + slots
        record[RECORD.OPCODE], record[RECORD.LENGTH] = instruction.opcode, len(record)
        self._code.extend(record)

    def build(self, x_offset: int, x_size: int, y_offset: int, y_size: int, vocab: int,
              states=()) -> Plan:
        """The plan; ``states`` are the regions (with ``offset`` and ``size``) that carry
        recurrent state from one step to the next, which a refused step puts back (see
        kernels.rollback): their copy takes a region of the arena as large as they are."""
        sizes = [int(s.size) for s in states]
        saved, fault = self.alloc(sum(sizes)), self.alloc(2)
        # read or written outside the instructions: by the caller (the input before the step, the
        # output after it), the next step (state), the rollback of a refused one (the copy, fault)
        kept = [saved, fault, *(int(s.offset) for s in states)]
        cuts = self._stages(x_offset, x_size, y_offset, y_size, states)
        self._place(from_start=[x_offset, *kept], to_end=[y_offset, *kept])
        regions = np.stack([self.placed(np.array([int(s.offset) for s in states], np.int64)),
                            np.array(sizes, np.int64)], axis=1)  # isa.STATE_ENTRY: offset, size
        header = [0] * HEADER_SIZE
        header[HEADER.STATES] = self._store_table(np.ravel(regions))
        header[HEADER.N_STATES] = len(sizes)
        header[HEADER.SAVED] = int(self.placed(saved))
        header[HEADER.FAULT] = int(self.placed(fault))
        header[HEADER.X_OFFSET] = int(self.placed(x_offset))
        header[HEADER.X_SIZE] = x_size
        header[HEADER.Y_OFFSET] = int(self.placed(y_offset))
        header[HEADER.Y_SIZE] = y_size
        header[HEADER.VOCAB] = vocab
        header[HEADER.START] = HEADER_SIZE
        header[HEADER.END] = HEADER_SIZE + len(self._code)
        header[HEADER.TABLES] = header[HEADER.END]
        pieces = [(int(self.placed(offset)), size) for stage in cuts for offset, size in stage.states]
        first = self._store_table(np.ravel(pieces))  # isa.STATE_ENTRY, stage by stage
        entries = []  # isa.STAGE: start, states, n_states
        for stage in cuts:
            entries += [HEADER_SIZE + stage.start, first, len(stage.states)]
            first += len(stage.states) * SLOTS.STATE_ENTRY
        header[HEADER.STAGES] = self._store_table(entries)
        header[HEADER.N_STAGES] = len(cuts)
        parts = [np.asarray(header + self._code, np.int64), *self._tables]
        code = np.concatenate(parts)
        self._check_size(code.size, "code")
        weights = np.zeros(max(self._weights_size, 1), np.float32)
        for offset, values in self._weights:
            weights[offset:offset + values.size] = values
        qweights = np.zeros(max(self._qweights_size, 1), np.int8)
        for offset, values in self._qweights:
            qweights[offset:offset + values.size] = values
        arena = np.zeros(max(self._arena_size, 1), np.float32)
        for offset, values in self._arena_init:
            offset = int(self.placed(offset))
            arena[offset:offset + values.size] = values
        return Plan(code, weights, qweights, arena)

    def _stages(self, x_offset, x_size, y_offset, y_size, states):
        """The step's stages (see stages), asked before placing, while no two regions share memory."""
        state_offsets = np.array([int(s.offset) for s in states], np.int64)
        constants = [(r.start, r.size) for r in self._regions
                     if r.pinned and not ((r.start <= state_offsets) & (state_offsets < r.start + r.size)).any()]

        def region_of(offset):
            k = np.searchsorted(self._region_starts, offset, side="right") - 1
            return self._region_starts[k], self._region_ends[k]
        return stages(self._code, region_of, lambda offset: self._tables[self._table_at[offset]], self._arena_size,
                      constants, (x_offset, x_size), (y_offset, y_size), [(int(s.offset), int(s.size)) for s in states])

    def _place(self, from_start, to_end) -> None:
        """Place every region (``arena_plan``), those holding ``from_start`` addresses live from the
        step's start and those holding ``to_end`` ones to its end, and rewrite the arena addresses
        of the code and the index tables to their places."""
        starts = np.asarray(self._region_starts, np.int64)
        first, last = (set((np.searchsorted(starts, kept, side="right") - 1).tolist()) for kept in (from_start, to_end))
        regions = [Region(r.start, r.size, r.from_start or k in first, r.to_end or k in last)
                   for k, r in enumerate(self._regions)]
        code = np.asarray(self._code, np.int64)
        tables = self._tables
        slots = list(arena_slots(code, 0, code.size))
        steps = 1 + max((index for index, _, _ in slots), default=-1)
        references = [(index, tables[self._table_at[int(code[position])]] if is_table else code[position:position + 1])
                      for index, position, is_table in slots]
        intervals = live_intervals(regions, references, steps)
        offsets, self._arena_size = place(regions, intervals)
        # (offset, floats, pinned, first and last instruction naming it) of each region placed
        self.layout = [(o, r.size, r.pinned, *live) for o, r, live in zip(offsets, regions, intervals) if live]
        shift = np.asarray(offsets, np.int64) - starts

        def moved(addresses):
            return addresses + shift[np.searchsorted(starts, addresses, side="right") - 1]
        self._placed = moved
        for index, position, is_table in slots:
            if not is_table:
                code[position] = moved(code[position])
        for k in self._arena_tables:
            tables[k] = moved(tables[k])
        self._code = code.tolist()

    @staticmethod
    def _check_size(n: int, what: str) -> None:
        if n > MAX_ELEMENTS:
            raise OverflowError(f"the model's {what} would need {n} elements, more than {MAX_ELEMENTS}")
