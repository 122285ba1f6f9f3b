"""Soak: a million steps of a GRU and an LSTM, against a float64 reference on the same inputs.

    python benchmarks/soak.py [--steps 1000000] [--chunk 1000] [--step-calls 10]

A device streams for months: memory must not grow, outputs must stay finite, and float32
rounding must not pile up. For each cell (16 inputs, 64 hidden, weights uniform in
±1/sqrt(hidden) as PyTorch initialises them, so the state is contractive) the runtime streams
random inputs in chunks: the first ``--step-calls`` steps of every chunk through ``step``, the
rest through ``run``. The float64 numpy reference of tests/support/reference_rnn.py runs each chunk
from the state it carried out of the previous one. Prints, per cell: the process's resident
memory after the first chunk and at the end, whether every output was finite, the largest
difference between runtime and reference (outputs at every step, states at every chunk's end),
how drift and memory evolve over the run, and the time taken. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import edgeseq_runtime  # noqa: E402
import reference_rnn  # noqa: E402
from support.onnx_builders import NUM_GATES, build_model  # noqa: E402

CELLS = ["GRU", "LSTM"]
INPUT_SIZE, HIDDEN_SIZE = 16, 64
PERIODS = 10  # the drift is reported for each tenth of the run


class ReferenceStream:
    """The float64 reference of a model's one recurrent node, run chunk by chunk with its
    state carried from each chunk into the next (as initial_h / initial_c)."""

    def __init__(self, model: onnx.ModelProto):
        (self.node,) = [n for n in model.graph.node if n.op_type in NUM_GATES]
        self.values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.state_names = [name for name in self.node.input[5:7] if name]  # the graph's state inputs
        for name in self.state_names:
            self.values[name] = np.zeros((1, 1, HIDDEN_SIZE))

    def run(self, xs: np.ndarray) -> np.ndarray:
        """xs (T, input_size) -> the hidden state after each step, (T, hidden_size) float64."""
        self.values[self.node.input[0]] = xs[:, None, :]  # [seq, batch, input]
        out = reference_rnn.run_node(self.node, self.values)
        for name, final in zip(self.state_names, self.node.output[1:]):
            self.values[name] = out[final]
        return out[self.node.output[0]][:, 0, 0, :]

    def state(self) -> dict[str, np.ndarray]:
        return {name: self.values[name] for name in self.state_names}


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
    built = build_model(folder, cell, input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE,
                        scale=1.0 / np.sqrt(HIDDEN_SIZE), filename=f"{cell.lower()}.onnx")
    model = edgeseq_runtime.load(built.path)
    model.step(np.zeros(INPUT_SIZE, np.float32))  # load the compiled kernels before timing
    model.reset()
    reference = ReferenceStream(built.model)
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
        expected = reference.run(xs.astype(np.float64))
        report.reference_seconds += time.perf_counter() - start

        report.all_finite &= bool(np.isfinite(ys).all())
        drift = float(np.abs(ys - expected).max())
        state = model.get_state()
        state_drift = max(float(np.abs(state[name] - value).max()) for name, value in reference.state().items())
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

    print(f"# Soak: {args.steps:,} steps per cell, input {INPUT_SIZE}, hidden {HIDDEN_SIZE}, batch 1\n")
    print(f"- chunks of {args.chunk} steps: {args.step_calls} through step(out=), the rest through run(out=)")
    print("- reference: tests/support/reference_rnn.py in float64, state carried across chunks; "
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
