"""The seed document's case study, measured: RNN, LSTM and GRU forecasters on real series,
trained, exported, quantized, streamed and timed, next to a seasonal-naive baseline.

``run_study`` does the work for one series and returns one row per model; ``edgeseq demo``
displays progress and the table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import load

from ..api import export
from ..backends.bench import OnnxRuntimeStepper, step_latencies
from ..backends.quantize import quantize
from ..pytorch.models import save_checkpoint
from .series import Series, rmse
from .training import TrainOptions, TrainResult, train_forecaster

CELLS = ("rnn", "lstm", "gru")


@dataclass
class StudyRow:
    dataset: str
    model: str
    test_rmse: float
    parameters: int | None = None
    fp32_bytes: int | None = None
    int8_bytes: int | None = None
    int8_rmse: float | None = None
    edgeseq_us: float | None = None
    onnxruntime_us: float | None = None
    onnx_path: str | None = None
    test_predictions: np.ndarray | None = None


def run_study(series: Series, out_dir: str, epochs: int, calls: int, progress=None) -> list[StudyRow]:
    """Train, export, quantize and time one forecaster per cell on ``series``; the last row is
    the seasonal-naive baseline. ``progress(cell)``, when given, returns what reports on that
    cell's work: called after every epoch (as ``train_forecaster``'s ``on_epoch``), and its
    ``phase(text)`` told each step after training."""
    os.makedirs(out_dir, exist_ok=True)
    calibration = os.path.join(out_dir, "series.npy")
    np.save(calibration, series.values.astype(np.float32).reshape(-1, 1))
    rows, baseline = [], None
    for cell in CELLS:
        report = progress(cell) if progress else None
        result = train_forecaster(series, TrainOptions(cell=cell, epochs=epochs), on_epoch=report)
        rows.append(_deploy(series, result, cell, out_dir, calibration, calls,
                            report.phase if report else lambda text: None))
        baseline = result.metrics
    rows.append(StudyRow(series.name, f"naive ({baseline['season']})", baseline["naive_rmse"]))
    return rows


def _deploy(series: Series, result: TrainResult, cell: str, out_dir: str, calibration: str, calls: int,
            phase) -> StudyRow:
    """Checkpoint, ONNX (checked), int8 ONNX, and both streamed over the whole series."""
    stem = os.path.join(out_dir, cell)
    save_checkpoint(result.model, stem + ".pt", metrics=result.metrics, training={"data": series.source})
    phase("exporting and checking against PyTorch and ONNX Runtime")
    export(stem + ".pt", stem + ".onnx", steps=50)
    phase("quantizing to int8")
    quantize(stem + ".onnx", stem + ".int8.onnx", "int8", calibration=calibration)
    test_start = result.metrics["test_start"]
    actual, inputs = series.values[test_start:], series.values[:-1].astype(np.float32).reshape(-1, 1)
    int8 = load(stem + ".int8.onnx").run(inputs)[test_start - 1:, 0]
    stream = load(stem + ".onnx")
    x = inputs[0]
    phase("timing steps against ONNX Runtime")
    latency = step_latencies({"edgeseq": stream.step, "onnxruntime": OnnxRuntimeStepper(stem + ".onnx").step},
                             x, calls=calls, warmup=min(calls, 500))
    phase(f"done: test RMSE {result.metrics['test_rmse']:.4g}, {latency['edgeseq'].median_us:.1f} µs a step")
    return StudyRow(series.name, cell.upper(), result.metrics["test_rmse"], result.metrics["parameters"],
                    os.path.getsize(stem + ".onnx"), os.path.getsize(stem + ".int8.onnx"), rmse(int8, actual),
                    latency["edgeseq"].median_us, latency["onnxruntime"].median_us, stem + ".onnx",
                    result.test_predictions)


def plot(series: Series, rows: list[StudyRow], path: str) -> bool:
    """Forecasts against the actual test span, as a PNG; False when matplotlib is absent."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = [r for r in rows if r.test_predictions is not None]
    start = len(series.values) - len(models[0].test_predictions)
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(range(start, len(series.values)), series.values[start:], color="black", lw=2, label="actual")
    for row in models:
        axes.plot(range(start, len(series.values)), row.test_predictions, lw=1,
                  label=f"{row.model} (RMSE {row.test_rmse:.4g})")
    axes.set_title(f"{series.name}: one-step-ahead forecasts on the test span")
    axes.set_xlabel("step")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
