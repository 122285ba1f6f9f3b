"""Soak: a million steps of a GRU and an LSTM, against a float64 reference on the same inputs.

    python benchmarks/soak.py [--steps 1000000] [--chunk 1000] [--step-calls 10]

A device streams for months: memory must not grow, outputs must stay finite, and float32
rounding must not pile up. For each cell a ``torch.nn.GRU`` / ``LSTM`` (16 inputs, 64 hidden,
PyTorch's own initialisation under seed 0: weights uniform in ±1/sqrt(hidden), so the state is
contractive; no head, the hidden state is the output) is exported by edgeseq's exporter
(``step_models``), and the runtime streams random inputs in chunks: the first ``--step-calls``
steps of every chunk through ``step``, the rest through ``run``. The reference is the same
PyTorch module in float64 (``.double()``), which runs each chunk from the state it carried out
of the previous one. Prints, per cell: the process's resident memory after the first chunk
and at the end, whether every output was finite, the largest difference between runtime and
reference (outputs at every step, states at every chunk's end), how drift and memory evolve
over the run, and the time taken. Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import edgeseq_runtime
import numpy as np
import torch
from step_models import StepShape, build, export

CELLS = ["GRU", "LSTM"]
INPUT_SIZE, HIDDEN_SIZE = 16, 64
PERIODS = 10  # the drift is reported for each tenth of the run


class ReferenceStream:
    """The exported PyTorch module in float64, run chunk by chunk with its state carried from
    each chunk into the next."""

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model).double()
        self.carried = None  # PyTorch's state: h, or (h, c) for an LSTM

    def run(self, xs: np.ndarray) -> np.ndarray:
        """xs (T, input_size) -> the hidden state after each step, (T, hidden_size) float64."""
        with torch.inference_mode():
            ys, self.carried = self.model(torch.from_numpy(xs.astype(np.float64)[:, None, :]), self.carried)
        return ys[:, 0, :].numpy()

    def state(self) -> list[np.ndarray]:
        """The carried state in PyTorch's order (h, c), the order of the step graph's state inputs."""
        carried = self.carried if isinstance(self.carried, tuple) else (self.carried,)
        return [t.numpy() for t in carried]


@dataclass
class Soak:
    cell: str
    steps: int = 0
    runtime_seconds: float = 0.0
    reference_seconds: float = 0.0
    all_finite: bool = True
    max_output_drift: float = 0.0
    max_state_drift: float = 0.0
    drift_by_period: list[float] = field(default_factory=lambda: [0.0] * PERIODS)
    rss_by_period: list[int] = field(default_factory=lambda: [0] * PERIODS)  # at each tenth's end
    rss_after_first_chunk: int = 0
    rss_at_end: int = 0


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def soak(cell: str, folder: str, steps: int, chunk: int, step_calls: int) -> Soak:
    module = build(StepShape(cell, INPUT_SIZE, HIDDEN_SIZE, output_size=None))
    model = edgeseq_runtime.load(export(module, Path(folder) / f"{cell.lower()}.onnx"))
    model.step(np.zeros(INPUT_SIZE, np.float32))  # load the compiled kernels before timing
    model.reset()
    reference = ReferenceStream(module)
    rng = np.random.default_rng(0)
    report = Soak(cell)
    chunk_out = np.empty((chunk, HIDDEN_SIZE), np.float32)
    while report.steps < steps:
        n = min(chunk, steps - report.steps)
        xs = rng.uniform(-1.0, 1.0, size=(n, INPUT_SIZE)).astype(np.float32)
        ys = chunk_out[:n]
        start = time.perf_counter()
        calls = min(step_calls, n)
        for t in range(calls):
            model.step(xs[t], out=ys[t])
        model.run(xs[calls:], out=ys[calls:])
        report.runtime_seconds += time.perf_counter() - start

        start = time.perf_counter()
        expected = reference.run(xs)
        report.reference_seconds += time.perf_counter() - start

        report.all_finite &= bool(np.isfinite(ys).all())
        drift = float(np.abs(ys - expected).max())
        state = model.get_state().values()  # h0[, c0]: the graph's state inputs, in PyTorch's order
        state_drift = max(float(np.abs(ours - theirs).max()) for ours, theirs in zip(state, reference.state()))
        period = report.steps * PERIODS // steps
        report.drift_by_period[period] = max(report.drift_by_period[period], drift)
        report.max_output_drift = max(report.max_output_drift, drift)
        report.max_state_drift = max(report.max_state_drift, state_drift)
        report.steps += n
        report.rss_by_period[period] = resident_bytes()
        if not report.rss_after_first_chunk:
            report.rss_after_first_chunk = report.rss_by_period[period]
    report.rss_at_end = resident_bytes()
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="time steps per cell (default 1,000,000)")
    parser.add_argument("--chunk", type=int, default=1000, help="steps per run() call and reference call")
    parser.add_argument("--step-calls", type=int, default=10, help="steps of each chunk taken through step()")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the reference shares a machine with the runtime it judges

    print(f"# Soak: {args.steps:,} steps per cell, input {INPUT_SIZE}, hidden {HIDDEN_SIZE}, batch 1\n")
    print(f"- chunks of {args.chunk} steps: {args.step_calls} through step(out=), the rest through run(out=)")
    print("- reference: the exported PyTorch module in float64, state carried across chunks; "
          "drift = max |float32 - float64|\n")
    print("| cell | steps | all finite | max output drift | max state drift | RSS after 1st chunk MiB "
          "| RSS at end MiB | growth KiB | runtime s | µs/step | reference s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    reports = []
    with tempfile.TemporaryDirectory() as folder:
        for cell in CELLS:
            r = soak(cell, folder, args.steps, args.chunk, args.step_calls)
            reports.append(r)
            print(f"| {cell} | {r.steps:,} | {'yes' if r.all_finite else 'NO'} | {r.max_output_drift:.2e} "
                  f"| {r.max_state_drift:.2e} | {r.rss_after_first_chunk / 2**20:.1f} | {r.rss_at_end / 2**20:.1f} "
                  f"| {(r.rss_at_end - r.rss_after_first_chunk) / 1024:+.0f} | {r.runtime_seconds:.1f} "
                  f"| {r.runtime_seconds / r.steps * 1e6:.2f} | {r.reference_seconds:.1f} |", flush=True)
    print("\nLargest output drift, and resident memory (MiB) at the end, of each tenth of the run:\n")
    print("| cell | figure | " + " | ".join(f"{k + 1}/{PERIODS}" for k in range(PERIODS)) + " |")
    print("| --- | --- |" + " ---: |" * PERIODS)
    for r in reports:
        print(f"| {r.cell} | drift | " + " | ".join(f"{d:.1e}" for d in r.drift_by_period) + " |")
        print(f"| {r.cell} | RSS | " + " | ".join(f"{m / 2**20:.2f}" for m in r.rss_by_period) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS of the process: {peak:.1f} MiB")


if __name__ == "__main__":
    main()
