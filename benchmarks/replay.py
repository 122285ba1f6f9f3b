"""Replaying a fleet: stream-steps per second of ``edgeseq replay`` against per-key loops.

    python benchmarks/replay.py [--streams 10000] [--steps 500] [--sample 1000]

A synthetic fleet of STREAMS streams x STEPS steps of a GRU 4/32 (exported by edgeseq's
exporter, ``step_models``), its rows shuffled into one Parquet file. Timed, each as stream-steps
(rows) per second:

- ``local``: ``edgeseq replay`` with the local engine, Parquet in to Parquet out;
- ``ray``: the same on a local Ray cluster of 2 CPUs (its start-up timed apart);
- ``loop load+run``: a Python loop over the keys, ``edgeseq.load(MODEL).run(rows)`` each, the
  rows already grouped in memory (what a user writes first);
- ``loop run``: the same loop with one model loaded once, ``reset()`` then ``run`` per key;
- ``loop run + I/O``: that loop over the whole fleet as a script does it end to end: Parquet
  read, rows sorted by key and order (pyarrow), the loop, Parquet written;
- ``onnxruntime``: one ``InferenceSession.run`` per key over the whole sequence (its own loop).

The loops run over the first SAMPLE keys (their rate does not depend on how many). Asserts
nothing; the issue's goal is local >= 5x the per-key loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from edgeseq_export.backends.bench import OnnxRuntimeStepper
from step_models import StepShape, build, export

from edgeseq.fleet.replay import replay_to_file

SHAPE = StepShape("GRU", 4, 32)


def write_fleet(path: Path, streams: int, steps: int, seed: int = 0) -> dict[int, np.ndarray]:
    """The fleet's rows, shuffled, to ``path``; the first streams' rows by key, for the loops."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((streams * steps, SHAPE.input_size)).astype(np.float32)
    device = np.repeat(np.arange(streams), steps)
    t = np.tile(np.arange(steps), streams)
    shuffle = rng.permutation(len(device))
    pq.write_table(pa.table({"device": device[shuffle], "t": t[shuffle],
                             **{f"f{i}": x[shuffle, i] for i in range(SHAPE.input_size)}}), path)
    return {k: x[k * steps:(k + 1) * steps] for k in range(streams)}


def rate(rows: int, call) -> float:
    start = time.perf_counter()
    call()
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--sample", type=int, default=1000, help="keys the per-key loops run over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = export(build(SHAPE), folder / f"{SHAPE.name}.onnx")
        by_key = write_fleet(folder / "fleet.parquet", args.streams, args.steps)
        rows = args.streams * args.steps
        sample = {k: by_key[k] for k in range(min(args.sample, args.streams))}
        sample_rows = sum(len(x) for x in sample.values())
        edgeseq_runtime.load(model).run(sample[0])  # kernels compiled or loaded from cache before timing
        rates = {}
        replay = dict(model=model, data=folder / "fleet.parquet", key="device", order="t")
        rates["local"] = rate(rows, lambda: replay_to_file(folder / "local.parquet", **replay))

        def load_and_run():
            for x in sample.values():
                edgeseq_runtime.load(model).run(x)

        one = edgeseq_runtime.load(model)

        def reset_and_run():
            for x in sample.values():
                one.reset()
                one.run(x)

        stepper = OnnxRuntimeStepper(model)
        assert stepper.time_axis == 0

        def onnxruntime_sequences():
            for x in sample.values():
                feeds = {**stepper.initial, stepper.input_name: x.reshape(len(x), *stepper.input_shape[1:])}
                stepper.session.run(stepper.wanted[:1], feeds)

        def script():
            table = pq.read_table(folder / "fleet.parquet").sort_by([("device", "ascending"), ("t", "ascending")])
            x = np.stack([table[f"f{i}"].to_numpy() for i in range(SHAPE.input_size)], axis=1).astype(np.float32)
            keys = table["device"].to_numpy()
            starts = [0, *np.flatnonzero(keys[1:] != keys[:-1]) + 1, len(keys)]
            y = np.empty(len(keys), np.float32)
            for start, end in zip(starts[:-1], starts[1:]):
                one.reset()
                y[start:end] = one.run(x[start:end])[:, 0]
            pq.write_table(table.select(["device", "t"]).append_column("y", pa.array(y)), folder / "script.parquet")

        rates["loop load+run"] = rate(sample_rows, load_and_run)
        rates["loop run"] = rate(sample_rows, reset_and_run)
        rates["onnxruntime"] = rate(sample_rows, onnxruntime_sequences)
        rates["loop run + I/O"] = rate(rows, script)
        try:
            import ray
        except ImportError:
            ray = None
        if ray:
            start = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            print(f"ray start-up: {time.perf_counter() - start:.1f} s (not counted)")
            rates["ray"] = rate(rows, lambda: replay_to_file(folder / "ray.parquet", engine="ray", **replay))
            ray.shutdown()
            local, remote = (pq.read_table(folder / name).sort_by([("device", "ascending"), ("t", "ascending")])
                             for name in ("local.parquet", "ray.parquet"))
            assert local.equals(remote), "the engines disagree"
    print(f"fleet: {args.streams:,} streams x {args.steps} steps of {SHAPE.name} (loops over {len(sample):,} keys)")
    print(f"{'engine':<16}{'stream-steps/s':>16}{'x loop load+run':>17}{'x loop run':>12}")
    for name, value in rates.items():
        print(f"{name:<16}{value:>16,.0f}{value / rates['loop load+run']:>17.1f}{value / rates['loop run']:>12.2f}")


if __name__ == "__main__":
    main()
