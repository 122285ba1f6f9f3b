"""The Ray engine: the same buckets as the local engine, spread over a Ray cluster's workers.

One long-lived actor per CPU of the cluster loads the model and warms numba's kernels once (a
task per bucket would load and compile again in every worker). The work is a shuffle in two
rounds of actor calls:

1. *split*: each piece of DATA (a Parquet row group; a CSV file) is read by one call and cut
   into one table per bucket, which stay in Ray's object store (spilled to disk past its size);
2. *replay*: each bucket's tables, from every piece, go to one call, which replays its streams
   and writes its rows of OUT as ``part-NNNNN.parquet`` in a work folder (atomically), and its
   streams' final states to the staging folder.

The driver then writes the parts, in bucket order, into OUT. The actors are created with
``max_restarts`` and ``max_task_retries``: when a worker process dies mid-run, Ray starts the
actor again and repeats the calls it had not finished. A repeated call writes the same part
and the same states as the lost one would have (it reads its start states from DIR, which no
call writes: final states go to the staging folder), and the driver takes one result per
bucket, so nothing is lost or counted twice.

The work folder, DATA and ``--states`` DIR must be paths that every node of the cluster sees
(a shared file system); on one machine they are.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
from edgeseq_runtime import EdgeseqError
from edgeseq_runtime.atomic import atomic_writer

from .data import Fleet, bucket_count, gather_bucket, read_piece, split_batch
from .local import BucketResult, Replayer, StatePaths

RESTARTS = 3  # times Ray starts a dead worker's actor again before the run fails


def ray_module():
    """Ray, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise EdgeseqError('--engine ray needs Ray: pip install "edgeseq[ray]"') from None
    return ray


class ReplayWorker:
    """One worker's replayer, kept for the whole run (made a Ray actor by ``replay_on_ray``)."""

    def __init__(self, model, load_options, fleet: Fleet, on_error: str, states: StatePaths):
        self._fleet = fleet
        self._replayer = Replayer(model, load_options, fleet, on_error, states, threads=1)
        self._replayer.warm()

    def split(self, piece, buckets: int):
        """The piece's rows, one table per bucket (a lone table for one bucket)."""
        parts = [[] for _ in range(buckets)]
        schema = None
        for batch in read_piece(self._fleet, piece):
            schema = batch.schema
            for b, part in enumerate(split_batch(self._fleet, batch, buckets)):
                if part.num_rows:
                    parts[b].append(part)
        tables = [pa.Table.from_batches(p, schema) if schema else pa.table({}) for p in parts]
        return tables if buckets > 1 else tables[0]

    def replay(self, part_path: str, *tables) -> BucketResult:
        """A bucket's streams; its rows of OUT written to ``part_path`` (not returned)."""
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return BucketResult(None)
        result = self._replayer.replay(gather_bucket(self._fleet, tables))
        with atomic_writer(part_path) as f:
            pq.write_table(result.table, f)
        result.table = None
        return result


def replay_on_ray(fleet: Fleet, model, load_options, on_error: str, states: StatePaths, work_in: str | None,
                  address: str | None, sink, progress=None) -> list[BucketResult]:
    """Every bucket of ``fleet`` on the Ray cluster at ``address`` (or RAY_ADDRESS; else a local
    one started for this run), OUT's rows to ``sink`` part by part; the parts go to a temporary
    folder in ``work_in`` ($TMPDIR when None)."""
    ray = ray_module()
    work = tempfile.mkdtemp(prefix=".edgeseq-replay-parts-", dir=work_in)
    try:
        return _replay_on_ray(ray, fleet, model, load_options, on_error, states, work, address, sink, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _replay_on_ray(ray, fleet, model, load_options, on_error, states, work, address, sink, progress):
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    actor = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(ReplayWorker)
    workers = []
    try:
        count = max(1, int(ray.available_resources().get("CPU", 1)))
        buckets = bucket_count(fleet.rows, at_least=4 * count)
        workers = [actor.remote(model, load_options, fleet, on_error, states) for _ in range(count)]
        splits = [workers[i % count].split.options(num_returns=buckets).remote(piece, buckets)
                  for i, piece in enumerate(fleet.pieces)]
        by_bucket = [[s[b] for s in splits] if buckets > 1 else splits for b in range(buckets)]
        parts = [os.path.join(work, f"part-{b:05d}.parquet") for b in range(buckets)]
        pending = {workers[b % count].replay.remote(parts[b], *by_bucket[b]): b for b in range(buckets)}
        results: dict[int, BucketResult] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            b = pending.pop(done[0])
            results[b] = _result(ray, done[0])
            if progress:
                progress(results[b].streams, int(pq.read_metadata(parts[b]).num_rows) if results[b].streams else 0)
        for b in range(buckets):
            if results[b].streams:
                for batch in pq.ParquetFile(parts[b]).iter_batches():
                    sink(pa.Table.from_batches([batch]))
        return [results[b] for b in range(buckets)]
    finally:
        for worker in workers:
            ray.kill(worker)
        if started:
            ray.shutdown()


def _result(ray, ref) -> BucketResult:
    """A call's result; a user's mistake found on a worker as the same one-line error."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, EdgeseqError):
            raise EdgeseqError(str(e.cause)) from None
        raise
