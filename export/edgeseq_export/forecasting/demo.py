"""The seed document's case study, measured: RNN, LSTM and GRU forecasters on real series,
trained, exported, quantized, streamed and timed, next to a seasonal-naive baseline.

``run_study`` does the work for one series and returns one row per model; ``edgeseq demo``
displays progress and the table.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import load

from ..api import export
from ..backends.bench import OnnxRuntimeStepper, step_latencies
from ..backends.quantize import quantize
from ..pytorch.models import save_checkpoint
from .plots import plot_forecasts
from .scores import horizon_scores
from .series import Series
from .training import TrainOptions, TrainResult, train_forecaster

CELLS = ("rnn", "lstm", "gru")


@dataclass
class StudyRow:
    dataset: str
    model: str
    test_rmse: float
    test_mase: float
    design: str | None = None
    train_seconds: float | None = None
    parameters: int | None = None
    fp32_bytes: int | None = None
    int8_bytes: int | None = None
    int8_rmse: float | None = None
    int8_mase: float | None = None
    edgeseq_us: float | None = None
    onnxruntime_us: float | None = None
    onnx_path: str | None = None
    test_predictions: np.ndarray | None = None


def run_study(series: Series, out_dir: str, epochs: int, calls: int, progress=None, **options) -> list[StudyRow]:
    """Train, export, quantize and time one forecaster per cell on ``series``; the last row is
    the seasonal-naive baseline. ``progress(cell)``, when given, returns what reports on that
    cell's work: called after every epoch (as ``train_forecaster``'s ``on_epoch``), and its
    ``phase(text)`` told each step after training. ``options`` are more ``TrainOptions`` fields
    (``season``, say)."""
    os.makedirs(out_dir, exist_ok=True)
    calibration = os.path.join(out_dir, "series.npy")
    np.save(calibration, series.inputs.astype(np.float32))
    rows, baseline = [], None
    for cell in CELLS:
        report = progress(cell) if progress else None
        started = time.perf_counter()
        result = train_forecaster(series, TrainOptions(cell=cell, epochs=epochs, **options), on_epoch=report)
        result.metrics["train_seconds"] = time.perf_counter() - started
        rows.append(_deploy(series, result, cell, out_dir, calibration, calls,
                            report.phase if report else lambda text: None))
        baseline = result.metrics
    rows.append(StudyRow(series.name, f"seasonal naive ({baseline['season']})", baseline["naive_rmse"],
                         baseline["naive_mase"]))
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
    metrics = result.metrics
    inputs = series.inputs[:-1].astype(np.float32)
    int8 = horizon_scores(load(stem + ".int8.onnx").run(inputs).astype(np.float64)[:, :1], series.values,
                          metrics["test_start"], len(series.values), metrics["season"], metrics["validation_start"])[0]
    stream = load(stem + ".onnx")
    x = inputs[0]
    phase("timing steps against ONNX Runtime")
    latency = step_latencies({"edgeseq": stream.step, "onnxruntime": OnnxRuntimeStepper(stem + ".onnx").step},
                             x, calls=calls, warmup=min(calls, 500))
    phase(f"done: test RMSE {result.metrics['test_rmse']:.4g}, {latency['edgeseq'].median_us:.1f} µs a step")
    return StudyRow(series.name, cell.upper(), metrics["test_rmse"], metrics["test_mase"], metrics["design"],
                    metrics["train_seconds"], metrics["parameters"], os.path.getsize(stem + ".onnx"),
                    os.path.getsize(stem + ".int8.onnx"), int8["rmse"], int8["mase"], latency["edgeseq"].median_us,
                    latency["onnxruntime"].median_us, stem + ".onnx", result.test_predictions)


def plot(series: Series, rows: list[StudyRow], path: str, unit: str | None = None) -> bool:
    """The networks' forecasts and the seasonal-naive baseline against the actual test span, as
    a PNG (``plots.plot_forecasts``); False when matplotlib is absent."""
    models = [r for r in rows if r.test_predictions is not None]
    baseline = rows[-1]
    start = len(series.values) - len(models[0].test_predictions)
    season = int(baseline.model.rpartition("(")[2].rstrip(")"))
    lines = {f"{r.model} (RMSE {r.test_rmse:.4g})": r.test_predictions for r in models}
    return plot_forecasts(path, series, start, lines, season, f"{series.name}: one-step-ahead forecasts, test span",
                          unit)
