"""Replay a fleet's recorded streams, each from its own state: ``edgeseq.replay`` and the
command ``edgeseq replay``.

DATA holds the rows of many streams in any order; each key is one stream, stepped in order from
the model's initial state (or from its state file, resuming). The work is cut into buckets of
streams (``fleet.data``: the memory bound), replayed as batched lanes and threads
(``fleet.local``) on this machine or over a Ray cluster's workers (``fleet.ray_engine``).

Nothing is half-written: OUT is written to a temporary file renamed over it at the end, and
the streams' final states go to a staging folder inside DIR whose files are moved over the old
ones only once OUT is in place. A failure leaves OUT and DIR as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from edgeseq_runtime import EdgeseqError, LoadOptions
from edgeseq_runtime.atomic import atomic_writer

from .data import open_fleet
from .local import (
    MAX_REPORTED,
    Replayer,
    StatePaths,
    replay_locally,
    threads_available,
)

ENGINES = ("local", "ray")
FLUSHES = 32  # state files fsynced at once before they are moved into DIR
POLICIES = ("stop", "skip")


@dataclass
class ReplaySummary:
    """What a replay did: for the command's last line."""

    streams: int = 0
    rows: int = 0
    steps: int = 0
    skipped: list[str] = field(default_factory=list)  # the first skipped rows, one line each
    skipped_count: int = 0


def replay(model, data, *, key, order=None, columns=None, states=None, resume=False, engine="local",
           address=None, on_error="stop", load_options: LoadOptions | None = None) -> pa.Table:
    """Each stream of ``data`` (one per distinct ``key`` value, rows in ``order``) through
    ``model`` from its initial state: a table of one row per input row (key, order, outputs
    ``y`` or ``y0, y1, ...``), the numbers of ``edgeseq.load(model).run(rows of that key)``.

    ``states``: a folder for each stream's final state (``<key>.state``, ``save_state``'s
    format); ``resume``: start each stream from its file there (a stream without one from the
    initial state). ``engine="ray"``: on the Ray cluster at ``address`` (or RAY_ADDRESS; none: a
    local one for the call). ``on_error="skip"``: a row with NaN or Inf (or one the model
    refuses) is skipped, its outputs null, instead of failing the call.
    """
    fleet, options = _checked(model, data, key, order, columns, states, resume, engine, on_error, load_options)
    tables = []
    with _staged_states(states, resume) as paths:
        _run(fleet, model, options, paths, engine, address, on_error, tables.append, None, None)
    return pa.concat_tables(tables)


def replay_to_file(output, model, data, *, key, order=None, columns=None, states=None, resume=False,
                   engine="local", address=None, on_error="stop", load_options=None, progress=None) -> ReplaySummary:
    """``replay`` into the Parquet file ``output``, written row group by row group (never whole
    in memory) and atomically, before the final states are moved into ``states``.
    ``progress(streams, rows)`` is called as work completes."""
    fleet, options = _checked(model, data, key, order, columns, states, resume, engine, on_error, load_options)
    beside = os.path.dirname(os.path.abspath(os.fspath(output)))  # Ray's parts: where the workers see OUT
    with _staged_states(states, resume) as paths, atomic_writer(output) as f:
        sink = _ParquetSink(f)
        try:
            summary = _run(fleet, model, options, paths, engine, address, on_error, sink.write, beside, progress)
        finally:
            sink.close()
    return summary


class _ParquetSink:
    """OUT's rows appended to one Parquet file, a row group at a time."""

    def __init__(self, file):
        self._file, self._writer = file, None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _checked(model, data, key, order, columns, states, resume, engine, on_error, load_options):
    """The fleet and load options, every argument checked before any work starts."""
    if engine not in ENGINES:
        raise EdgeseqError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if on_error not in POLICIES:
        raise EdgeseqError(f"on_error {on_error!r}: one of {', '.join(POLICIES)}")
    if resume and states is None:
        raise EdgeseqError("resume needs the folder of the state files (--states DIR)")
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    return open_fleet(data, key, order, columns), load_options or LoadOptions()


def _run(fleet, model, options, paths, engine, address, on_error, sink, work, progress) -> ReplaySummary:
    replayer = Replayer(model, options, fleet, on_error, paths,
                        threads=threads_available() if engine == "local" else 1)  # for ray: checks model and DATA
    try:
        if engine == "local":
            results = replay_locally(fleet, replayer, sink, progress)
        else:
            from .ray_engine import replay_on_ray

            results = replay_on_ray(fleet, model, options, on_error, paths, work, address, sink, progress)
    finally:
        replayer.close()
    summary = ReplaySummary(rows=fleet.rows)
    for result in results:
        summary.streams += result.streams
        summary.steps += result.steps
        summary.skipped_count += result.skipped_count
        summary.skipped.extend(result.skipped[:max(0, MAX_REPORTED - len(summary.skipped))])
    return summary


@contextlib.contextmanager
def _staged_states(states, resume):
    """StatePaths whose final states go to a staging folder inside ``states``, moved into it
    when the block succeeds and removed when it fails."""
    if states is None:
        yield StatePaths()
        return
    states = os.fspath(states)
    try:
        os.makedirs(states, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".replay-", dir=states)
    except OSError as e:
        raise EdgeseqError(f"{states}: cannot write state files there ({e.strerror or e})") from None
    try:
        yield StatePaths(states if resume else None, staging)
        staged = [entry.name for entry in os.scandir(staging)]
        with ThreadPoolExecutor(FLUSHES) as pool:  # the disk takes many flushes at once
            list(pool.map(_fsync, [os.path.join(staging, name) for name in staged]))
        for name in staged:
            os.replace(os.path.join(staging, name), os.path.join(states, name))
        _fsync(states)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
