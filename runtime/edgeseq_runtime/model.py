"""StreamingModel: one or more streams of a loaded model, stepped one time step at a time."""

import math
from functools import cache

import numpy as np
from numba import types

from .isa import HEADER, STATUS, STATUS_SCALE
from .kernels.interpreter import ENTRY_TYPES, execute, execute_holding_gil, kernel_table, project
from .kernels.packing import pack
from .kernels.sequence import projection_floats
from .lowering import LoweredModel
from .state_file import StateJournal, read_state, write_state

_FLOAT32 = np.dtype(np.float32)
_ndarray, _empty = np.ndarray, np.empty
_NO_SCRATCH = np.empty(0, np.float32)
# compiled code is asked for by its argument types written out (interpreter.ENTRY_TYPES, and the
# plan's code here): numba's typeof of an array imports numpy.ma, 6 ms of every start
_CODE = types.Array(types.int64, 1, "C")
PROJECTION_FLOATS = 1 << 14  # run's scratch: input projections made ahead, layer inputs kept for them; 64 KB, in L2
# A call that multiplies fewer weights than this keeps the GIL (see ``StreamingModel``)
RELEASE_GIL_WEIGHTS = 1 << 18


class StreamingModel:
    """A model with its recurrent state kept inside.

    ``step`` and ``run`` allocate nothing but their result (and nothing at all with ``out=``).
    The compiled code and the weights are shared by ``clone()``s; each clone has its own state,
    so one clone per thread or per stream is safe, and clones stepped from several threads run
    at once: the kernels release the GIL, except in a call too short to be worth it (under
    ``RELEASE_GIL_WEIGHTS`` weights multiplied, ~5 µs of work; handing the GIL to a waiting
    thread and taking it back costs more, and two threads would step slower than one). An instance
    belongs to one thread at a time: ``get_state``, ``save_state`` or ``clone`` from another
    thread while it steps raise ``RuntimeError`` rather than return a state half stepped.
    """

    def __init__(self, lowered: LoweredModel, batch: int, path: str):
        self._lowered = lowered
        self._path = path
        self.batch = batch
        plan = lowered.plan
        # code and weights live in one packed array (one argument per step); views name its parts
        self._model, self._code, self._weights, self._qweights = pack(plan.code, plan.weights, plan.qweights)
        self._kernels = kernel_table(self._code)  # compiles (or loads) the kernels this plan runs
        self._weights_per_step = (self._weights.size + self._qweights.size) * batch  # ~ multiply-adds
        self._step_entry = execute if self._weights_per_step >= RELEASE_GIL_WEIGHTS else execute_holding_gil
        self._step_call = _compiled(self._step_entry)
        self._initial = plan.arena
        self._arena = plan.arena.copy()
        self.is_token_model = lowered.vocab > 0
        self.vocab_size = lowered.vocab  # token models: ids in [-vocab_size, vocab_size); else 0
        x_size = math.prod(lowered.input_shape)
        self.input_size = x_size // batch - lowered.context  # the new values a step takes per stream
        self.output_size = math.prod(lowered.output_shape) // batch
        self._x_step = (self.input_size,) if batch == 1 else (batch, self.input_size)
        self._y_step = (self.output_size,) if batch == 1 else (batch, self.output_size)
        self._y_new = self.output_size if batch == 1 else self._y_step  # for np.empty: an int parses faster
        if self.is_token_model:
            self._x_step = (batch,) if batch > 1 else ()
        # the shape step's fast path takes as is; anything else is checked and flattened first
        self._x_plain = None if self.is_token_model else self._x_step
        # the ids a token model's step takes as a plain int at once (none: batch > 1 takes arrays)
        self._int_ids = range(-self.vocab_size, self.vocab_size) if batch == 1 else range(0)
        # step and run take one stream's input as input_size values or in the shape the graph gives it
        self.input_shape = lowered.stream_shape or (self.input_size,)
        self._x_shaped = (*self._x_step[:-1], *self.input_shape) if lowered.stream_shape else None
        self._states = {s.name: s for s in lowered.states}
        self._projection = None  # floats per step of precomputed input projections (0: none); set by run
        self.steps = 0  # time steps taken since load or reset (saved with the state)
        self._stepping = False  # True while step or run is in the kernel: see _snapshot

    # -- stepping --------------------------------------------------------------------------

    def step(self, x, out=None) -> np.ndarray:
        """One time step: x is (input_size,) for batch 1, else (batch, input_size); token
        models take an int (batch 1) or (batch,) ints. Returns (output_size,) or (batch, output_size)."""
        # The common case (float32 of the step's shape, C-contiguous, aligned and writeable: carray;
        # an out of that kind too) is checked inline and goes straight to the compiled code: at a
        # microsecond a step, every call here counts (``_output``'s checks cost 0.07 µs more).
        # Anything else is checked, and copied or refused where it must be. (The stream's
        # constants read from one tuple or a closure made at load measured no faster than these
        # attribute loads, which CPython 3.11 specialises.)
        if x.__class__ is not _ndarray or x.dtype is not _FLOAT32 or x.shape != self._x_plain \
                or not x.flags.carray:
            x = self._step_input(x)
        if out is None:
            y = _empty(self._y_new, _FLOAT32)
        elif out.__class__ is _ndarray and out.dtype is _FLOAT32 and out.shape == self._y_step and out.flags.carray:
            y = out
        else:
            y = self._output(out, self._y_step)
        flat = self.batch == 1  # else the code takes the streams' rows as one vector
        self._stepping = True
        try:
            status = self._step_call(self._model, self._arena, x if flat else x.ravel(), y if flat else y.ravel(), 1,
                                     _NO_SCRATCH, self._kernels)
            if status:
                self._refuse(status, x, 1)
            self.steps += 1
        finally:
            self._stepping = False
        return y

    def run(self, xs, out=None) -> np.ndarray:
        """T time steps at once, state carried: exactly the numbers of T calls of ``step``."""
        xs = np.asarray(xs) if not isinstance(xs, np.ndarray) else xs
        steps = xs.shape[0] if xs.ndim else 0
        xs = self._input(xs, (steps, *self._x_step), "X")
        y = self._output(out, (steps, *self._y_step))
        if steps:
            self._execute(xs, y, steps)
        return y

    def _execute(self, x, y, steps):
        scratch = _NO_SCRATCH
        if self._projection is None:  # on first use: a fresh process that only steps never loads it
            self._projection = int(projection_floats.compile((_CODE,))(self._code))  # no typeof: see _CODE
        if steps > 1 and self._projection:
            scratch = _empty(min(steps, max(PROJECTION_FLOATS // self._projection, 1)) * self._projection, _FLOAT32)
            project(self._kernels, self._code)
        # a call short enough to keep the GIL takes step's entry (which keeps it too: fewer weights still)
        entry = self._step_call if steps * self._weights_per_step < RELEASE_GIL_WEIGHTS else _compiled(execute)
        self._stepping = True
        try:
            status = entry(self._model, self._arena, x if x.ndim == 1 else x.ravel(),
                           y if y.ndim == 1 else y.ravel(), steps, scratch, self._kernels)
            if status:
                self._refuse(status, x, steps)
            self.steps += steps
        finally:
            self._stepping = False

    def _refuse(self, status, x, steps):
        """The ValueError for a call the kernel refused: a bad input value (found before any
        step ran), or a step that went wrong (after which the kernel put the state back)."""
        kind, index = divmod(status, STATUS_SCALE)
        if kind in (STATUS.NOT_FINITE, STATUS.BAD_TOKEN):
            per_step = self.batch * (1 if self.is_token_model else self.input_size)
            where = f"step {index // per_step}, value {index % per_step}" if steps > 1 else f"value {index}"
            bad = x.reshape(-1)[index]
            reason = "is not finite" if kind == STATUS.NOT_FINITE else "is not a token id of this model"
            raise ValueError(f"input {where} ({bad}) {reason}; the state is unchanged")
        unchanged = "the state is unchanged" if steps == 1 else "the state is as it was before the run"
        where = f"step {index}: " if steps > 1 else ""
        if kind == STATUS.BAD_INDEX:
            fault = self._code[HEADER.FAULT]
            bad, rows = self._arena[fault], int(self._arena[fault + 1])
            raise ValueError(f"{where}index {bad} computed from the input is not a row of its "
                             f"embedding table ({rows} rows: integers in [-{rows}, {rows})); {unchanged}")
        assert kind == STATUS.STATE_NOT_FINITE, status
        raise ValueError(f"{where}the input drives the recurrent state to Inf or NaN (past "
                         f"float32's range); the step is refused and {unchanged}")

    def _step_input(self, x) -> np.ndarray:
        """step's x, other than a plain float32 array of its shape, as the compiled code takes it
        (float32, flat).
        A token model's usual x, one id as an int, skips the checks of an array (0.5 µs of a
        1.8 µs step); an int outside the ids (or a bool) is left to them and to the kernel."""
        if x.__class__ is int and x in self._int_ids:
            ids = _empty(1, _FLOAT32)
            ids[0] = x
            return ids
        return self._input(x, self._x_step, "x").ravel()

    def _input(self, x, shape, label) -> np.ndarray:
        """x as a C-contiguous, aligned float32 array of ``shape`` (x itself where it is one).
        Part of every ``run``'s fixed cost: the checks here and in ``_output`` compare with the
        dtype ``_FLOAT32``, not the type ``np.float32`` (which numpy turns into a dtype at each
        comparison, 0.02 µs), and ``step`` and ``run`` flatten with ``ravel`` (a view of these
        C-contiguous arrays, in half the time of ``reshape(-1)``)."""
        if type(x) is not _ndarray or x.dtype != _FLOAT32:
            x = self._coerce(x, label)
        if x.shape != shape:
            if x.size == math.prod(shape) and (self.is_token_model or x.shape[len(shape) - len(self._x_step):] == self._x_shaped):
                x = x.reshape(shape)
            else:
                raise ValueError(f"{label} has shape {x.shape}, expected {shape}")
        flags = x.flags
        if not (flags.c_contiguous and flags.aligned):  # the layout the compiled code takes
            x = x.copy()
        return x

    def _coerce(self, x, label) -> np.ndarray:
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{label} is not a numeric array ({e})") from None
        if self.is_token_model:
            if array.dtype.kind not in "iu":
                raise ValueError(f"{label} has dtype {array.dtype}; this token model takes integer ids")
        elif array.dtype.kind not in "fiu" or array.dtype == np.bool_:
            raise ValueError(f"{label} has dtype {array.dtype}; expected float32 (or another real dtype)")
        return array.astype(np.float32)

    def _output(self, out, shape) -> np.ndarray:
        if out is None:
            return _empty(shape, _FLOAT32)
        if not isinstance(out, _ndarray) or out.dtype != _FLOAT32 or out.shape != shape or not out.flags.carray:
            raise ValueError(f"out must be a writeable, aligned, C-contiguous float32 array of shape {shape}")
        return out

    # -- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state (zeros, or the initial values the model file holds)."""
        self._refuse_while_stepping("reset")
        self._arena[:] = self._initial
        self.steps = 0

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of every piece of recurrent state, keyed by the graph input it feeds."""
        return self._state_views(self._snapshot()[1])

    def _state_views(self, arena: np.ndarray) -> dict[str, np.ndarray]:
        return {name: arena[s.offset:s.offset + s.size].reshape(s.shape) for name, s in self._states.items()}

    def _snapshot(self) -> tuple[int, np.ndarray]:
        """(steps, a copy of the arena) as the stream had them between two steps.

        A model belongs to one thread at a time. Reading it from another thread while that one
        steps would copy a state half stepped (the kernels release the GIL); ``step`` marks the
        kernel's run in ``_stepping`` (two stores), and a copy that a step overlapped raises
        instead. The marks cost ~0.02-0.04 µs a step (1-4% of a small model's); a lock held by
        step measured ~0.2 µs (7-17%), one counter moved before and after the call (a seqlock, the
        step count kept apart) 0.03-0.04 µs more than the marks.
        """
        steps, stepping = self.steps, self._stepping
        arena = self._arena.copy()
        if stepping or self._stepping or self.steps != steps:
            raise RuntimeError("the state was read while another thread was stepping this model: "
                               "a StreamingModel belongs to one thread at a time (take the state "
                               "in the thread that steps it, or give each thread its own clone())")
        return steps, arena

    def _refuse_while_stepping(self, action: str) -> None:
        """Catches a change of the state from another thread while a step runs (one that
        starts during the change is not caught: changes belong to the thread that steps)."""
        if self._stepping:
            raise RuntimeError(f"{action} while another thread is stepping this model: a "
                               f"StreamingModel belongs to one thread at a time")

    def set_state(self, state: dict) -> None:
        """Replace the whole state; checked in full before anything changes."""
        if not isinstance(state, dict) or set(state) != set(self._states):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys {sorted(self._states)}; got {got}")
        checked = {}
        for name, slot in self._states.items():
            value = state[name]
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                raise ValueError(f"state '{name}' must be a float32 array; got {getattr(value, 'dtype', type(value).__name__)}")
            if value.shape != slot.shape:
                raise ValueError(f"state '{name}' has shape {value.shape}, expected {slot.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state '{name}' holds NaN or Inf")
            checked[name] = value
        self._refuse_while_stepping("set_state")
        for name, value in checked.items():
            slot = self._states[name]
            self._arena[slot.offset:slot.offset + slot.size] = value.ravel()

    def save_state(self, path, *, rows: int | None = None) -> None:
        """Write the state and the step count to ``path`` durably and atomically: after a
        crash at any moment the file holds either the previous state or this one. ``rows``:
        the input rows consumed up to this state, for a caller that skips some rows (more rows
        than steps); ``steps`` when not given. A symlink at ``path`` is followed (see
        ``atomic.write_atomic``)."""
        steps, arena = self._snapshot()
        write_state(path, self.fingerprint, steps, _rows(steps, rows), self._state_views(arena))

    def journal(self, path, *, rows: int | None = None) -> StateJournal:
        """Keep the state in ``path`` as a journal (see ``state_file``), starting from the state
        now: ``commit_state`` then makes each new state durable with one write and one
        ``fdatasync`` (no rename), for a caller that saves after every step. ``load_state``
        reads it as any state file."""
        steps, arena = self._snapshot()
        return StateJournal(path, self.fingerprint, steps, _rows(steps, rows), self._state_views(arena))

    def commit_state(self, journal: StateJournal, *, rows: int | None = None) -> None:
        """Make the current state durable in ``journal`` (from ``journal``): after a crash at
        any later moment, ``load_state`` gives this state or a newer one."""
        steps, arena = self._snapshot()
        journal.commit(steps, _rows(steps, rows), self._state_views(arena))

    def load_state(self, path) -> int:
        """Restore a state written by ``save_state`` of this same model (same weights and
        structure) and return the rows consumed that it records. A file of another model, a
        truncated, corrupted or crafted one, or one that is not a regular file raises
        ``StateFileError`` and changes nothing."""
        layout = {name: slot.shape for name, slot in self._states.items()}
        saved = read_state(path, self.fingerprint, layout)
        self.set_state(saved.arrays)
        self.steps = saved.steps
        return saved.rows

    @property
    def nbytes(self) -> int:
        """Memory the loaded model holds: code, float and int8 weights, and this stream's arena
        (each clone adds one arena)."""
        return self._model.nbytes + self._arena.nbytes

    @property
    def fingerprint(self) -> str:
        """sha256 of what defines the computation: the model file's graph and weights, the load
        options, the batch (``lowering.computation_fingerprint``); state files carry it."""
        return self._lowered.fingerprint

    def clone(self) -> "StreamingModel":
        """A new stream of the same model: shares compiled code and weights, copies the state."""
        steps, arena = self._snapshot()
        twin = object.__new__(StreamingModel)
        twin.__dict__.update(self.__dict__)
        twin._arena, twin.steps = arena, steps
        return twin

    def __repr__(self) -> str:
        return (f"StreamingModel('{self._path}', input_size={self.input_size}, "
                f"output_size={self.output_size}, batch={self.batch}, states={sorted(self._states)})")


@cache
def _compiled(entry):
    """The compiled code of the entry point ``entry`` (compiled now, or loaded from the cache),
    called directly: numba's dispatcher types every argument of every call to pick the code
    (0.17 µs of 7 arguments, as long as a small model's kernels take), where ``step`` and ``run``
    pass arrays of the same types every time, checked before the call (``ENTRY_TYPES``)."""
    return entry.compile(ENTRY_TYPES)


def _rows(steps: int, rows: int | None) -> int:
    """The rows consumed up to a state: ``steps`` unless the caller skipped rows."""
    rows = steps if rows is None else rows
    if type(rows) is not int or rows < steps:
        raise ValueError(f"rows must be an int >= steps ({steps}); got {rows!r}")
    return rows
