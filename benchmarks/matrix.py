"""The benchmark matrix: edgeseq against ONNX Runtime and PyTorch on this machine, in one run.

    python benchmarks/matrix.py [--quick] [--out benchmarks/results.md]
    python benchmarks/matrix.py --cell LSTM:1/32/1:1 [--cell GRU:16/64/1:1 ...]   # rows only, printed

LSTM, GRU and RNN x (input/hidden/layers) 1/32/1, 16/64/1, 40/128/2, 64/256/1 x batch 1, 16,
256 x fp32, int8. Per configuration: the median time of one ``step`` from Python for edgeseq,
ONNX Runtime (``InferenceSession.run`` with the state fed back) and PyTorch eager (fp32; PyTorch
has no int8 recurrent layers), one thread each, the engines taking turns; and edgeseq's ``run``
throughput. Then how ``step`` and ``run`` scale with two threads, each on its own ``clone()``
(``threads.py``), and the issue's targets as ratios measured in this same run. Asserts nothing.

The models are plain ``torch.nn`` recurrent layers with a Linear head to one output, exported
and quantized by edgeseq itself (``step_models``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
import onnxruntime
import torch
from edgeseq_export.backends.bench import (
    OnnxRuntimeStepper,
    cold_start_seconds,
    onnxruntime_sequence_rate,
    seconds_of,
    step_latencies,
)
from step_models import CELLS, StepShape, build, export, quantized, torch_stepper
from threads import gil_kept, steps_per_second

SIZES = ((1, 32, 1), (16, 64, 1), (40, 128, 2), (64, 256, 1))
THREAD_SIZES, THREAD_BATCHES = ((16, 64, 1), (64, 256, 1)), (1, 16)  # the thread-scaling table's cells
BATCHES = (1, 16, 256)
OUTPUT_SIZE = 1
MACS_16_64 = {"GRU": 3 * 64 * (16 + 64) + 64, "LSTM": 4 * 64 * (16 + 64) + 64}  # per stream-step, head included


def measure(shape: StepShape, folder: Path, batch: int, calls: int) -> dict:
    model = build(shape)
    fp32, int8 = folder / f"{shape.name}.onnx", folder / f"{shape.name}.int8.onnx"
    if not fp32.exists():  # one export and quantization per shape, shared by its batches
        quantized(export(model, fp32), int8)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, shape.input_size) if batch > 1 else (shape.input_size,)).astype(np.float32)
    streams, steppers = {}, {}
    for precision, path in (("fp32", fp32), ("int8", int8)):
        streams[precision] = edgeseq_runtime.load(path, batch=batch)
        steppers[precision, "edgeseq"] = streams[precision].step
        steppers[precision, "onnxruntime"] = OnnxRuntimeStepper(path, batch)
    steppers["fp32", "torch"] = torch_stepper(model, batch)
    with torch.inference_mode():  # every engine and precision in turns, so that ratios compare like with like
        latency = step_latencies({key: getattr(s, "step", s) for key, s in steppers.items()}, x,
                                 calls=calls, warmup=max(20, calls // 5))
    result = {precision: {} for precision in streams}
    for (precision, engine), value in latency.items():
        result[precision][engine] = value.median_us
    steps = max(40, 10_000 // batch)
    xs = rng.standard_normal((steps, *x.shape)).astype(np.float32)
    for precision, stream in streams.items():
        stream.run(xs[:10])
        result[precision]["run_steps_per_s"] = max(steps / seconds_of(stream.run, xs) for _ in range(3))
        result[precision]["ort_run_steps_per_s"] = max(
            onnxruntime_sequence_rate(steppers[precision, "onnxruntime"], xs) for _ in range(3))
    return result


def stream_share(cell: str, folder: Path, calls: int) -> float:
    """The cost of one stream-step with batch=256, as a fraction of a batch-1 step (16/64/1 fp32),
    the two measured in turns."""
    path = export(build(StepShape(cell, 16, 64, 1, OUTPUT_SIZE)), folder / f"{cell}_share.onnx")
    rng = np.random.default_rng(2)
    one, many = edgeseq_runtime.load(path), edgeseq_runtime.load(path, batch=256)
    x1, x256 = rng.standard_normal(16).astype(np.float32), rng.standard_normal((256, 16)).astype(np.float32)
    latency = step_latencies({"1": lambda _: one.step(x1), "256": lambda _: many.step(x256)}, None,
                             calls=calls, warmup=max(20, calls // 5), run_length=20)
    return latency["256"].median_us / 256 / latency["1"].median_us


def thread_scaling(shape: StepShape, folder: Path, batch: int, seconds: float) -> dict[str, float]:
    """Stream-steps per second of two threads over one thread's, each thread with its own
    ``clone()``, for ``run`` (long enough to take about ``seconds``) and for ``step`` (a tenth as
    many calls)."""
    model = edgeseq_runtime.load(folder / f"{shape.name}.onnx", batch=batch)
    xs = np.random.default_rng(3).standard_normal((100, batch, shape.input_size) if batch > 1
                                                  else (100, shape.input_size)).astype(np.float32)
    model.clone().run(xs)
    steps = max(200, int(seconds / (seconds_of(model.clone().run, xs) / 100)))
    xs = np.resize(xs, (steps, *xs.shape[1:]))
    scaling = {"gil": "kept" if gil_kept(model) else "released"}
    for calls, n in (("run", steps), ("step", steps // 10)):
        one = max(steps_per_second(model, 1, xs[:n], calls) for _ in range(3))
        two = max(steps_per_second(model, 2, xs[:n], calls) for _ in range(3))
        scaling[calls] = two / one
    return scaling


def linear_growth(folder: Path) -> tuple[float, float, float]:
    """(seconds for 10,000 steps (the best of three), for 1,000,000 steps, their ratio) of a GRU
    16/64 ``run``."""
    stream = edgeseq_runtime.load(export(build(StepShape("GRU", 16, 64, 1, OUTPUT_SIZE)), folder / "growth.onnx"))
    xs = np.random.default_rng(1).standard_normal((1_000_000, 16)).astype(np.float32)
    out = np.empty((1_000_000, OUTPUT_SIZE), np.float32)
    stream.run(xs[:1000], out=out[:1000])
    short = min(seconds_of(stream.run, xs[:10_000], out[:10_000]) for _ in range(3))
    long = seconds_of(stream.run, xs, out)
    return short, long, long / short


def row(cell: str, size: tuple, batch: int, r: dict) -> str:
    """The table's row of one configuration's figures (``measure``'s result)."""
    f, q = r["fp32"], r["int8"]
    return (f"| {cell} | {'/'.join(map(str, size))} | {batch} | {f['edgeseq']:.2f} | "
            f"{f['onnxruntime']:.2f} | {f['torch']:.2f} | {q['edgeseq']:.2f} | {q['onnxruntime']:.2f} | "
            f"{f['onnxruntime'] / f['edgeseq']:.1f}x | {f['torch'] / f['edgeseq']:.1f}x | "
            f"{q['edgeseq'] / f['edgeseq']:.2f} | {f['edgeseq'] / batch:.3f} | "
            f"{f['run_steps_per_s'] * batch:,.0f} | {f['ort_run_steps_per_s'] * batch:,.0f} | "
            f"{f['run_steps_per_s'] / f['ort_run_steps_per_s']:.2f}x |")


def parse_cell(text: str) -> tuple[str, tuple[int, int, int], int]:
    """``LSTM:1/32/1:1`` -> ("LSTM", (1, 32, 1), 1): a cell, its input/hidden/layers, a batch."""
    try:
        cell, size, batch = text.split(":")
        sizes = tuple(int(v) for v in size.split("/"))
        if cell not in CELLS or len(sizes) != 3:
            raise ValueError
        return cell, sizes, int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not CELL:in/hidden/layers:batch with CELL one of "
                                         f"{', '.join(CELLS)} (e.g. LSTM:1/32/1:1)") from None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per figure")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    parser.add_argument("--cell", type=parse_cell, action="append", default=[],
                        help="measure only this row (repeatable), print it and write nothing: "
                             "CELL:in/hidden/layers:batch, e.g. LSTM:1/32/1:1")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.cell:
        with tempfile.TemporaryDirectory() as directory:
            for cell, size, batch in args.cell:
                calls = (200 if args.quick else 1000) // (1 if batch < 256 else 10)
                r = measure(StepShape(cell, *size, OUTPUT_SIZE), Path(directory), batch, calls)
                print(row(cell, size, batch, r), flush=True)
        return
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = ["# Benchmark results", "",
             f"`python benchmarks/matrix.py{' --quick' if args.quick else ''}` on {cpu}, {os.cpu_count()} cores "
             f"(shared), {platform.platform()}; Python {platform.python_version()}, numpy {np.__version__}, "
             f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, edgeseq {edgeseq_runtime.__version__}. "
             "One thread per engine; medians of single `step` calls from Python, in µs; ORT = ONNX Runtime "
             "with the state fed back. Figures from a shared machine move between runs: read the ratios.", "",
             "| cell | in/hidden/layers | batch | edgeseq fp32 | ORT fp32 | torch fp32 | edgeseq int8 | ORT int8 "
             "| ORT/edgeseq | torch/edgeseq | int8/fp32 | µs per stream-step | run steps/s | ORT run steps/s "
             "| run vs ORT |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    figures = {}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        for cell in CELLS:
            for size in SIZES:
                for batch in BATCHES:
                    calls = (200 if args.quick else 1000) // (1 if batch < 256 else 10)
                    r = measure(StepShape(cell, *size, OUTPUT_SIZE), folder, batch, calls)
                    figures[cell, size, batch] = r
                    lines.append(row(cell, size, batch, r))
                    print(lines[-1], flush=True)
        threads = {(cell, size, batch): thread_scaling(StepShape(cell, *size, OUTPUT_SIZE), folder, batch,
                                                       0.05 if args.quick else 0.2)
                   for cell in CELLS for size in THREAD_SIZES for batch in THREAD_BATCHES}
        short, long, ratio = linear_growth(folder)
        shares = {cell: stream_share(cell, folder, 2000 if args.quick else 10_000) for cell in ("GRU", "LSTM")}
    numba_import = min(_seconds([sys.executable, "-c", "import numba"]) for _ in range(3))
    lines += ["", "## Threads", "",
              "Two threads, each stepping its own `clone()` of the fp32 model, against one: stream-steps per "
              "second of both over one thread's (2.00x: each core as fast as alone). GIL: whether a `step` "
              "call of that model releases it (a call under `RELEASE_GIL_WEIGHTS` keeps it, see "
              "`StreamingModel`); `run` over many steps releases it.", "",
              "| cell | in/hidden/layers | batch | step GIL | step, 2 threads | run, 2 threads |",
              "| --- | --- | ---: | --- | ---: | ---: |"]
    for (cell, size, batch), t in threads.items():
        lines.append(f"| {cell} | {'/'.join(map(str, size))} | {batch} | {t['gil']} | {t['step']:.2f}x | {t['run']:.2f}x |")
    lines += ["", "## Targets", ""]
    for cell in ("GRU", "LSTM"):
        f = figures[cell, (16, 64, 1), 1]["fp32"]
        inside = 1e6 / f["run_steps_per_s"]
        lines.append(f"- {cell} 16/64/1 `step`, batch 1: {f['onnxruntime'] / f['edgeseq']:.1f}x faster than ONNX "
                     f"Runtime (target 10x), {f['torch'] / f['edgeseq']:.1f}x faster than PyTorch (target 20x). "
                     f"Of its {f['edgeseq']:.2f} µs, a step inside `run` takes {inside:.2f} µs; the rest is the "
                     f"call from Python.")
        macs = MACS_16_64[cell]
        lines.append(f"- {cell} 16/64/1 with batch=256: a stream-step costs {100 * shares[cell]:.0f}% of a batch-1 "
                     f"step (the two measured in turns; target <= 10%, which for its {macs:,} multiply-adds "
                     f"would take {macs / (0.1 * f['edgeseq']) / 1000:.0f} GMAC/s).")
        lines.append(f"- {cell} 16/64/1 `run` over 10,000 steps: {f['run_steps_per_s']:,.0f} steps/s, "
                     f"{f['run_steps_per_s'] / f['ort_run_steps_per_s']:.2f}x ONNX Runtime's whole-sequence "
                     f"{cell} ({f['ort_run_steps_per_s']:,.0f} steps/s; target >= 1x).")
        for size, target in (((16, 64, 1), 1.2), ((64, 256, 1), 1.0)):
            r = figures[cell, size, 1]
            lines.append(f"- {cell} {'/'.join(map(str, size))} int8 `step`: {r['int8']['edgeseq'] / r['fp32']['edgeseq']:.2f}x "
                         f"the fp32 time (target <= {target}x).")
    released = [t for t in threads.values() if t["gil"] == "released"]
    lines.append(f"- Two threads on their own clones: `run` {min(t['run'] for t in threads.values()):.2f}-"
                 f"{max(t['run'] for t in threads.values()):.2f}x one thread's stream-steps, `step` "
                 f"{min(t['step'] for t in released):.2f}-{max(t['step'] for t in released):.2f}x where the "
                 f"call releases the GIL (target >= 1.8x; see Threads).")
    lines.append(f"- `run` of a GRU 16/64/1: 10,000 steps {short:.3f} s, 1,000,000 steps {long:.2f} s: "
                 f"{ratio:.0f}x (target 100x +-15%).")
    with tempfile.TemporaryDirectory() as directory:
        path = export(build(StepShape("GRU", 16, 64, 1, OUTPUT_SIZE)), Path(directory) / "cold.onnx")
        warm = min(cold_start_seconds(path, cold_cache=False) for _ in range(3))
    lines.append(f"- Cold start, warm cache: {warm:.2f} s from a fresh process to the first output (its exit "
                 f"not counted), {warm / numba_import:.1f}x the whole of `python -c \"import numba\"` "
                 f"({numba_import:.2f} s) (target <= 2.5x).")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[lines.index("## Threads"):]))


def _seconds(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
