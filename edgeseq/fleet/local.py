"""Replaying a bucket of streams in one process, and the local engine that replays every bucket.

Streams of equal length step together as the lanes of one model loaded with ``batch=B``: one
``run`` call steps B streams, each weight read once for all of them (a GRU 4/32 takes ~8
million stream-steps a second on one core at B >= 16, against ~4 million one stream at a time).
The kernels compute each lane with the same operations in the same order as a stream alone, so
the numbers are bit for bit those of ``load(MODEL).run(rows)``; tests/test_replay.py checks it.
The other streams (lengths that no other stream shares, rows skipped under ``--on-error skip``)
run one by one. Either kind of work item goes to a pool of threads, one per core (the kernels
release the GIL); each thread steps its own ``clone()`` of the loaded models.

Each stream starts from the model's initial state, or from ``DIR/<key>.state`` when resuming,
and its final state is saved, in the runtime's state file format for a model loaded with
``batch=1`` (what a device loads), to a staging folder that the caller moves into DIR once the
whole replay has succeeded.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import edgeseq_runtime
import numpy as np
import pyarrow as pa
from edgeseq_runtime import EdgeseqError, LoadOptions, StreamingModel
from edgeseq_runtime.state_file import encode_state

from .data import (
    Bucket,
    DataError,
    Fleet,
    bucket_count,
    gather_bucket,
    read_piece,
    split_batch,
)

MAX_LANES = 64  # streams in one batched run: past 16 a GRU 4/32's cost per stream-step stops falling
MAX_REPORTED = 20  # skipped rows reported one by one; past that, counted
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_NAME_BYTES = 255 - len(".state")  # a file name's limit on common file systems


class ReplayError(EdgeseqError):
    """A stream that cannot be replayed as asked: the message names the file, key and row."""


def state_file_name(key) -> str:
    """``<key>.state``, the key percent-encoded unless it is a safe file name (letters, digits,
    ``._-``, not starting with a dot): distinct keys never share a file, and no key names a
    path outside DIR."""
    text = key if isinstance(key, str) else str(key)
    name = text if SAFE_NAME.fullmatch(text) else urllib.parse.quote(text, safe="").replace(".", "%2E")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ReplayError(f"key {_short(text)} is too long to name a state file ({len(name.encode())} bytes "
                          f"encoded; at most {MAX_NAME_BYTES})")
    return name + ".state"


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class StatePaths:
    """Where streams start (``resume_from``: DIR, or None for the initial state) and where their
    final states go (``save_to``: a staging folder, or None)."""

    resume_from: str | None = None
    save_to: str | None = None


@dataclass
class BucketResult:
    """What replaying one bucket gave: OUT's rows, and counts for the summary."""

    table: pa.Table | None
    streams: int = 0
    steps: int = 0
    skipped: list[str] = field(default_factory=list)  # the first MAX_REPORTED skipped rows, one line each
    skipped_count: int = 0


class Replayer:
    """One process's means of replaying buckets: the loaded model, its batched twins for
    lanes, and a pool of threads."""

    def __init__(self, model, load_options: LoadOptions, fleet: Fleet, on_error: str, states: StatePaths,
                 threads: int):
        self._path = os.fspath(model)
        self._fields = load_options.fields()
        self._fleet, self._on_error, self._states = fleet, on_error, states
        self._models = {1: edgeseq_runtime.load(self._path, **self._fields)}
        single = self._models[1]
        if single.is_token_model:
            raise EdgeseqError(f"{self._path}: a token model (it takes integer ids); replay feeds numeric "
                               f"feature columns to models with float inputs")
        if single.input_size != len(fleet.features):
            raise DataError(f"{fleet.path}: {len(fleet.features)} input column(s) ({', '.join(fleet.features)}) but "
                            f"{self._path} takes {single.input_size} values a step (choose them with --columns)")
        self.outputs = ["y"] if single.output_size == 1 else [f"y{i}" for i in range(single.output_size)]
        clash = set(self.outputs) & {fleet.key, fleet.order}
        if clash:
            raise DataError(f"{fleet.path}: the key or order column is named {clash.pop()!r}, which OUT uses for "
                            f"the model's outputs; rename it")
        self._lane_axes = self._find_lane_axes()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()

    def _find_lane_axes(self) -> dict[str, int] | None:
        """Each state's stream axis in a batched model (where batch=1 has 1 and batch=2 has 2,
        all else equal); None when some state has none, and streams then run one by one."""
        try:
            pair = edgeseq_runtime.load(self._path, batch=2, **self._fields)
        except (EdgeseqError, ValueError):
            return None
        one, two = self._models[1].get_state(), pair.get_state()
        axes = {}
        for name, state in one.items():
            differ = [a for a, (d1, d2) in enumerate(zip(state.shape, two[name].shape)) if d1 != d2]
            if state.ndim != two[name].ndim or len(differ) != 1 or (state.shape[differ[0]], two[name].shape[differ[0]]) != (1, 2):
                return None
            axes[name] = differ[0]
        self._models[2] = pair
        return axes

    def _model(self, batch: int) -> StreamingModel:
        """This thread's own stream of the model loaded for ``batch`` lanes."""
        mine = self._local.__dict__.setdefault("models", {})
        if batch not in mine:
            with self._lock:
                if batch not in self._models:
                    self._models[batch] = edgeseq_runtime.load(self._path, batch=batch, **self._fields)
                mine[batch] = self._models[batch].clone()
        return mine[batch]

    def warm(self) -> None:
        """Compile (or load from numba's cache) the kernels before the first bucket's work."""
        self._model(1).run(np.zeros((2, self._models[1].input_size), np.float32))

    # -- one bucket ----------------------------------------------------------------------------

    def replay(self, bucket: Bucket, progress=None) -> BucketResult:
        """Every stream of ``bucket`` from its start state: OUT's rows, final states staged."""
        result = BucketResult(None)
        if bucket.streams == 0:
            return result
        finite = np.isfinite(bucket.x).all(axis=1)
        if not finite.all():
            self._skip_not_finite(bucket, finite, result)
        y = np.zeros((bucket.x.shape[0], len(self.outputs)), np.float32)
        kept = finite.copy()
        work = self._plan(bucket, finite)
        run = lambda item: self._replay_item(bucket, item, y, kept, result, progress)
        for _ in (self._pool.map(run, work) if self._pool else map(run, work)):
            pass
        result.streams = bucket.streams
        result.table = self._table(bucket, y, kept)
        return result

    def _skip_not_finite(self, bucket: Bucket, finite: np.ndarray, result: BucketResult) -> None:
        """Rows with NaN or Inf: ``stop`` names the first (in OUT's order); ``skip`` reports them."""
        bad = np.flatnonzero(~finite)
        if self._on_error == "stop":
            raise ReplayError(self._bad_row(bucket, bad[0]))
        result.skipped_count += len(bad)
        result.skipped.extend(self._bad_row(bucket, i) for i in bad[:MAX_REPORTED])

    def _bad_row(self, bucket: Bucket, index: int) -> str:
        values = bucket.x[index]
        column = int(np.flatnonzero(~np.isfinite(values))[0])
        return self._where(bucket, index) + (f"{self._fleet.features[column]} is {values[column]}, not a finite "
                                             f"number")

    def _where(self, bucket: Bucket, index: int) -> str:
        stream = int(np.searchsorted(bucket.starts, index, side="right") - 1)
        return f"{self._fleet.path}: row {bucket.row(index)} (key {bucket.keys[stream]!r}): "

    def _plan(self, bucket: Bucket, finite: np.ndarray) -> list[tuple[int, ...]]:
        """Work items: tuples of streams that step together as lanes (equal length, every row
        finite), and single streams."""
        starts = bucket.starts
        whole = np.add.reduceat(finite, starts[:-1]) == np.diff(starts)  # streams without a skipped row
        lengths = np.diff(starts)
        items: list[tuple[int, ...]] = [(int(s),) for s in np.flatnonzero(~whole)]
        if self._lane_axes is None:
            return items + [(int(s),) for s in np.flatnonzero(whole)]
        candidates = np.flatnonzero(whole)
        for length in np.unique(lengths[candidates]):
            group = candidates[lengths[candidates] == length]
            items.extend(tuple(int(s) for s in group[i:i + MAX_LANES]) for i in range(0, len(group), MAX_LANES))
        return items

    def _replay_item(self, bucket, streams, y, kept, result, progress) -> None:
        if len(streams) == 1 or not self._replay_lanes(bucket, streams, y):
            for stream in streams:
                self._replay_one(bucket, stream, y, kept, result)
        steps = sum(int(kept[bucket.starts[s]:bucket.starts[s + 1]].sum()) for s in streams)
        with self._lock:
            result.steps += steps
        if progress:
            progress(len(streams), int(sum(bucket.starts[s + 1] - bucket.starts[s] for s in streams)))

    def _replay_lanes(self, bucket: Bucket, streams, y) -> bool:
        """Equal-length streams as the lanes of one batched run; False (nothing changed) when the
        model refused a step, for the streams to be replayed one by one and the row named."""
        lanes = self._model(len(streams))
        single = self._model(1)
        length = int(bucket.starts[streams[0] + 1] - bucket.starts[streams[0]])
        begun = [self._start(single, bucket.keys[s]) for s in streams]
        if self._states.resume_from:
            lanes.set_state({name: np.concatenate([state[name] for state, _, _ in begun], axis=axis)
                             for name, axis in self._lane_axes.items()})
        else:
            lanes.reset()
        xs = np.stack([bucket.x[bucket.starts[s]:bucket.starts[s] + length] for s in streams], axis=1)
        try:
            ys = lanes.run(xs)
        except ValueError:
            return False
        for lane, stream in enumerate(streams):
            y[bucket.starts[stream]:bucket.starts[stream] + length] = ys[:, lane]
        if self._states.save_to:
            final = lanes.get_state()
            for lane, (stream, (_, steps, rows)) in enumerate(zip(streams, begun)):
                state = {name: np.take(final[name], [lane], axis=axis) for name, axis in self._lane_axes.items()}
                self._save(bucket.keys[stream], steps + length, rows + length, state)
        return True

    def _replay_one(self, bucket: Bucket, stream: int, y, kept, result) -> None:
        model = self._model(1)
        start, end = int(bucket.starts[stream]), int(bucket.starts[stream + 1])
        key = bucket.keys[stream]
        _, _, rows = self._start(model, key)
        rows_kept = np.flatnonzero(kept[start:end]) + start
        try:
            y[rows_kept] = model.run(bucket.x[rows_kept])
        except ValueError:  # the model refused a step (state past float32's range, say): find its row
            self._start(model, key)
            for index in rows_kept:
                try:
                    y[index] = model.step(bucket.x[index])
                except ValueError as e:
                    if self._on_error == "stop":
                        raise ReplayError(self._where(bucket, index) + str(e)) from None
                    kept[index] = False
                    with self._lock:
                        result.skipped_count += 1
                        if len(result.skipped) < MAX_REPORTED:
                            result.skipped.append(self._where(bucket, index) + str(e))
        if self._states.save_to:
            self._save(key, model.steps, rows + end - start, model.get_state())

    def _start(self, model: StreamingModel, key) -> tuple[dict, int, int]:
        """Put ``model`` in the stream's start state; (that state, its steps, its rows consumed)."""
        path = self._states.resume_from and os.path.join(self._states.resume_from, state_file_name(key))
        if path and os.path.lexists(path):
            rows = model.load_state(path)
        else:
            model.reset()
            rows = 0
        return (model.get_state() if self._states.resume_from else None), model.steps, rows

    def _save(self, key, steps: int, rows: int, state: dict) -> None:
        """The stream's final state as a state file of the model loaded with batch=1 (what a
        device loads), in the staging folder; made durable with the others when they are moved
        into DIR (an fsync per file here cost 4 ms a stream)."""
        data = encode_state(self._models[1].fingerprint, steps, rows, state)
        with open(os.path.join(self._states.save_to, state_file_name(key)), "wb") as f:
            f.write(data)

    def _table(self, bucket: Bucket, y: np.ndarray, kept: np.ndarray) -> pa.Table:
        """OUT's rows: key, order (if any), then the outputs, null where a row was skipped."""
        mask = None if kept.all() else ~kept
        columns = [bucket.table.column(i) for i in range(bucket.table.num_columns - 1)]  # all but the row number
        names = bucket.table.column_names[:-1] + self.outputs
        columns += [pa.array(y[:, j], pa.float32(), mask=mask) for j in range(len(self.outputs))]
        return pa.table(columns, names=names)


def threads_available() -> int:
    return len(os.sched_getaffinity(0))


def replay_locally(fleet: Fleet, replayer: Replayer, sink, progress=None) -> list[BucketResult]:
    """Every bucket of ``fleet`` through ``replayer``, OUT's rows to ``sink`` bucket by bucket.
    With more than one bucket, DATA is first split into per-bucket files in a temporary folder
    ($TMPDIR), so that one bucket's rows at a time are in memory."""
    buckets = bucket_count(fleet.rows)
    results = []
    if buckets == 1:
        batches = [split_batch(fleet, batch, 1)[0] for piece in fleet.pieces for batch in read_piece(fleet, piece)]
        results.append(_replay_bucket(fleet, replayer, [pa.Table.from_batches(batches)], sink, progress))
        return results
    with tempfile.TemporaryDirectory(prefix="edgeseq-replay-") as spill:
        paths = [os.path.join(spill, f"bucket-{b:05d}.arrow") for b in range(buckets)]
        writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}  # Arrow IPC: written and read back as is
        try:
            for piece in fleet.pieces:
                for batch in read_piece(fleet, piece):
                    for b, part in enumerate(split_batch(fleet, batch, buckets)):
                        if part.num_rows:
                            if b not in writers:
                                writers[b] = pa.ipc.new_file(paths[b], part.schema)
                            writers[b].write_batch(part)
        finally:
            for writer in writers.values():
                writer.close()
        for b in sorted(writers):
            with pa.memory_map(paths[b]) as spilled:
                part = pa.ipc.open_file(spilled).read_all()
                results.append(_replay_bucket(fleet, replayer, [part], sink, progress))
            os.unlink(paths[b])
    return results


def _replay_bucket(fleet, replayer, parts, sink, progress) -> BucketResult:
    result = replayer.replay(gather_bucket(fleet, parts), progress)
    if result.table is not None:
        sink(result.table)
        result.table = None
    return result
