"""What durability costs `edgeseq stream`: rows per second without a state file and with one.

    python benchmarks/durable_stream.py [--rows 4032]

A GRU 1/32 with a Linear head (``step_models``, the product's exporter) streams ``--rows`` CSV
rows through ``edgeseq stream`` in a subprocess, in one pipe, three ways: no state file; a state
file saved after every row (``--every 1``, the default: a SIGKILL loses no acknowledged row), kept
as a journal, one ``pwrite`` and one ``fdatasync`` per row; and, for comparison, the in-process
cost per row of the journal's commit against an atomic rewrite (``save_state``: temporary file,
fsync, rename, folder fsync), which every row paid before the journal. The numbers depend on
the disk under the temporary folder (``--folder`` to choose it). Asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
from step_models import StepShape, build, export


def cli_rows_per_second(model: Path, rows: str, count: int, state_file: Path | None) -> float:
    command = [sys.executable, "-m", "edgeseq.cli", "stream", str(model)]
    if state_file:
        command += ["--state-file", str(state_file)]
    start = time.perf_counter()
    subprocess.run(command, input=rows, text=True, check=True, capture_output=True)
    return count / (time.perf_counter() - start)


def seconds_per_save(model: Path, folder: Path, saves: int) -> tuple[float, float]:
    """(journal commit, atomic save_state) seconds per save, after one step each."""
    stream = edgeseq_runtime.load(model)
    x = np.zeros(stream.input_size, np.float32)
    journal = stream.journal(folder / "journal.state")
    start = time.perf_counter()
    for _ in range(saves):
        stream.step(x)
        stream.commit_state(journal)
    journal_seconds = (time.perf_counter() - start) / saves
    journal.close()
    start = time.perf_counter()
    for _ in range(saves):
        stream.step(x)
        stream.save_state(folder / "atomic.state")
    return journal_seconds, (time.perf_counter() - start) / saves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4032)
    parser.add_argument("--folder", type=Path, default=None, help="where the state files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        folder = Path(folder)
        model = export(build(StepShape("GRU", 1, 32)), folder / "gru.onnx")
        rows = "".join(f"{v:.6f}\n" for v in np.sin(np.arange(args.rows) / 9.0))
        # The first run compiles the kernels (or reads numba's cache): not timed.
        cli_rows_per_second(model, rows[:20], 2, None)
        plain = cli_rows_per_second(model, rows, args.rows, None)
        durable = cli_rows_per_second(model, rows, args.rows, folder / "stream.state")
        journal, atomic = seconds_per_save(model, folder, min(args.rows, 500))
    print(f"edgeseq stream, {args.rows} rows of a GRU 1/32:")
    print(f"  no state file:                {plain:10,.0f} rows/s")
    print(f"  --state-file, saved every row: {durable:10,.0f} rows/s ({durable / plain:.2f}x)")
    print("one save after a step, in process:")
    print(f"  journal commit (pwrite + fdatasync):       {journal * 1e6:8.1f} µs")
    print(f"  atomic save_state (write, fsync, rename):  {atomic * 1e6:8.1f} µs ({atomic / journal:.1f}x)")


if __name__ == "__main__":
    main()
