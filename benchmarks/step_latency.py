"""Per-step latency of edgeseq, onnxruntime and PyTorch eager on the same step models.

    python benchmarks/step_latency.py [--quick] [--exporter torchscript|dynamo]

For GRU and LSTM models (a torch.nn recurrent layer or stack + Linear head, exported by edgeseq's
exporter: ``step_models``) at a few sizes, batch 1, all on one thread of this machine, it
measures one step of:

* edgeseq:      ``StreamingModel.step(x)`` from Python (state carried inside the model);
* onnxruntime:  ``InferenceSession.run`` on the exported step graph, ``h0_next``/``c0_next``
                fed back as ``h0``/``c0`` (intra_op_num_threads=1, inter_op_num_threads=1,
                sequential: ``edgeseq_export.backends.bench.OnnxRuntimeStepper``);
* PyTorch:      the same module called on one step under ``torch.inference_mode()``, state fed
                back, ``torch.set_num_threads(1)``.

Each figure is the median, over many batches of consecutive calls timed with
``time.perf_counter_ns``, of the batch's mean time per call, after a warm-up; the runners take
turns batch by batch. Prints markdown.
Asserts nothing; the ``max abs diff`` column is a sanity check that the three ran the same model.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
import onnxruntime
import torch
from edgeseq_export.backends.bench import OnnxRuntimeStepper
from edgeseq_export.onnx_model.step_graph import EXPORTERS
from step_models import StepShape, build, export, torch_stepper

# (input_size, hidden_size, num_layers)
SIZES = [(16, 64, 1), (40, 128, 2), (1, 32, 1)]
CELLS = ["GRU", "LSTM"]
OUTPUT_SIZE = 3
BATCH = 1

FULL = dict(warmup=2000, batches=200, calls=100)
QUICK = dict(warmup=200, batches=30, calls=30)


def median_step_us(step_fns, warmup: int, batches: int, calls: int) -> dict[str, float]:
    """``{name: µs}``: median over ``batches`` of the mean time of ``calls`` consecutive calls.

    The runners take turns batch by batch, so that a slow spell of the machine hits them all.
    """
    for step in step_fns.values():
        for _ in range(warmup):
            step()
    means = {name: [] for name in step_fns}
    clock = time.perf_counter_ns
    for _ in range(batches):
        for name, step in step_fns.items():
            start = clock()
            for _ in range(calls):
                step()
            means[name].append((clock() - start) / calls)
    return {name: statistics.median(m) / 1000.0 for name, m in means.items()}


def runners(shape: StepShape, model, path: Path, x: np.ndarray):
    """``{name: step()}`` closures over the same input ``x`` (input_size,), each carrying state;
    the caller holds ``torch.inference_mode()``."""
    m = edgeseq_runtime.load(path, batch=BATCH)
    out = np.empty(shape.output_size, np.float32)
    ort_step = OnnxRuntimeStepper(path, BATCH).step
    torch_step, x_torch = torch_stepper(model, BATCH), torch.from_numpy(x).reshape(1, BATCH, -1)
    return {
        "edgeseq": lambda: m.step(x),
        "edgeseq out=": lambda: m.step(x, out=out),
        "onnxruntime": lambda: ort_step(x),
        "torch": lambda: torch_step(x_torch),
    }


def max_diff(step_fns, steps: int = 50) -> float:
    """Stream the same input through fresh models; max |edgeseq - ORT|, |edgeseq - torch|."""
    ys = {name: np.stack([np.asarray(step_fns[name]()).reshape(-1) for _ in range(steps)])
          for name in ("edgeseq", "onnxruntime", "torch")}
    return max(float(np.abs(ys["edgeseq"] - ys[name]).max()) for name in ("onnxruntime", "torch"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter timing runs")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="how the step graph is exported (default: torchscript)")
    args = parser.parse_args(argv)
    timing = QUICK if args.quick else FULL
    torch.set_num_threads(1)

    print("# Per-step latency, batch 1, one thread\n")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"- numpy {np.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__}; exporter: {args.exporter}")
    print(f"- median over {timing['batches']} batches of {timing['calls']} calls, after "
          f"{timing['warmup']} warm-up calls; µs per step\n")
    print("| cell | input | hidden | layers | edgeseq µs | edgeseq out= µs | onnxruntime µs "
          "| torch µs | ORT/edgeseq | torch/edgeseq | max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory:
        for cell in CELLS:
            for input_size, hidden_size, num_layers in SIZES:
                shape = StepShape(cell, input_size, hidden_size, num_layers, OUTPUT_SIZE)
                model = build(shape)
                path = export(model, Path(directory) / f"{shape.name}.onnx", args.exporter)
                x = rng.standard_normal(input_size).astype(np.float32)
                with torch.inference_mode():
                    step_fns = runners(shape, model, path, x)
                    check = max_diff(step_fns)
                    us = median_step_us(step_fns, **timing)
                print(f"| {cell} | {input_size} | {hidden_size} | {num_layers} "
                      f"| {us['edgeseq']:.2f} | {us['edgeseq out=']:.2f} "  # ~1 µs: .1f hides 10%
                      f"| {us['onnxruntime']:.1f} | {us['torch']:.1f} "
                      f"| {us['onnxruntime'] / us['edgeseq']:.1f}x "
                      f"| {us['torch'] / us['edgeseq']:.1f}x | {check:.1e} |", flush=True)


if __name__ == "__main__":
    main()
