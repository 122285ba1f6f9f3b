"""Replay a fleet's recorded streams, each from its own state: ``edgeseq.replay`` and the
command ``edgeseq replay``.

DATA holds the rows of many streams in any order; each key is one stream, stepped in order from
the model's initial state (or from its state file, resuming). The work is cut into buckets of
streams (``fleet.data``: the memory bound), replayed as batched lanes and threads
(``fleet.local``) on this machine or over a Ray cluster's workers (``fleet.ray_engine``).

Nothing is half-written: OUT is written to a temporary file renamed over it at the end, and
the streams' final states go to a staging folder inside DIR whose files are moved over the old
ones only once OUT is in place. A failure before that leaves OUT and DIR as they were. Moving
many files is not one atomic act, so it is a journal's roll forward: the staging folder is
renamed to ``<name>.done`` (the commit point) before its files move, and the next replay into
DIR first finishes the move of a committed folder a killed run left and removes an uncommitted
one. One replay writes DIR at a time (a lock on the folder).
"""

from __future__ import annotations

import contextlib
import fcntl
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
STAGING = ".replay-"  # the prefix of a staging folder inside DIR (tempfile's names hold no dot)
COMMITTED = ".done"  # the suffix a staging folder takes once its states are complete and durable
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
    when the block succeeds and removed when it fails before its commit point."""
    if states is None:
        yield StatePaths()
        return
    states = os.fspath(states)
    try:
        os.makedirs(states, exist_ok=True)
        lock = _locked(states)
    except OSError as e:
        raise EdgeseqError(f"{states}: cannot write state files there ({e.strerror or e})") from None
    try:
        try:
            _finish_earlier_moves(states)
            staging = tempfile.mkdtemp(prefix=STAGING, dir=states)
        except OSError as e:
            raise EdgeseqError(f"{e.filename or states}: cannot tidy the state folder ({e.strerror or e})") from None
        committed = False
        try:
            yield StatePaths(states if resume else None, staging)
            with ThreadPoolExecutor(FLUSHES) as pool:  # the disk takes many flushes at once
                list(pool.map(_fsync, [entry.path for entry in os.scandir(staging)]))
            os.replace(staging, staging + COMMITTED)
            _fsync(states)
            committed = True
            try:
                _move_into(staging + COMMITTED, states)
            except OSError as e:
                raise EdgeseqError(f"{states}: moving the final states in stopped ({e.strerror or e}); "
                                   f"the next replay into this folder finishes the move") from None
        finally:
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(lock)


def _locked(states: str) -> int:
    """A descriptor of ``states`` holding its exclusive lock (released when it is closed)."""
    descriptor = os.open(states, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise EdgeseqError(f"{states}: another replay is writing its state files (the folder is locked)") from None
    return descriptor


def _finish_earlier_moves(states: str) -> None:
    """What a killed replay left in ``states``: a committed staging folder's states moved in (the
    run had finished), an uncommitted one removed (it had not)."""
    for entry in os.scandir(states):
        if entry.name.startswith(STAGING) and entry.is_dir(follow_symlinks=False):
            if entry.name.endswith(COMMITTED):
                _move_into(entry.path, states)
            else:
                shutil.rmtree(entry.path)


def _move_into(folder: str, states: str) -> None:
    """Every file of the committed staging ``folder`` over its namesake in ``states``, then the
    empty folder removed."""
    for entry in os.scandir(folder):
        os.replace(entry.path, os.path.join(states, entry.name))
    _fsync(states)
    os.rmdir(folder)


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
