"""``edgeseq evaluate``: a trained forecaster's scores on a CSV against the seasonal-naive baseline.

The model streams the whole series from its initial state, as a device would (an ONNX file by
edgeseq's runtime, a checkpoint by PyTorch), and is scored on the test span of ``train``'s
split, per horizon step, in the data's units. Which columns it reads: those given, else those
the model records (a checkpoint's training columns, an exported file's ``input_columns``), else
the last numeric column. Which season the baseline uses: the one given, else the model's own
(its seasonal ends, or the season its checkpoint was trained with), else the one ``train``
detects on the same data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import EdgeseqError

from .scores import horizon_scores
from .series import Series, read_series, seasonal_period


@dataclass
class Evaluation:
    series: Series
    forecasts: np.ndarray  # (time - 1, horizon): forecasts[t, h - 1] of values[t + h]
    season: int
    validation_start: int
    test_start: int
    scores: list[dict]     # per horizon step: rmse, mae, mase, naive_rmse, naive_mae, naive_mase

    def summary(self) -> dict:
        """The contract's JSON object: horizon 1's scores at the top, every step's under
        ``horizons`` when there are several."""
        def entry(score):
            return {"rmse": score["rmse"], "mae": score["mae"], "mase": score["mase"],
                    "steps": len(self.series.values) - self.test_start,
                    "baseline": {"name": "seasonal naive", "season": self.season, "rmse": score["naive_rmse"],
                                 "mae": score["naive_mae"], "mase": score["naive_mase"]}}
        result = {"column": self.series.name, **entry(self.scores[0])}
        if len(self.scores) > 1:
            result["horizons"] = [{"horizon": s["horizon"], **entry(s)} for s in self.scores]
        return result


def evaluate(model_path, data, *, column: str | None = None, covariates: list[str] | None = None,
             missing: str = "error", header: bool | None = None, season: int | None = None) -> Evaluation:
    """Stream the model at ``model_path`` (.onnx or .pt) over the CSV ``data`` and score it."""
    model_path = os.fspath(model_path)
    run, recorded_columns, own_season = _model(model_path)
    if column is None and recorded_columns:
        column, covariates = recorded_columns[0], covariates if covariates is not None else recorded_columns[1:]
    series = read_series(data, column, covariates, header=header, missing=missing)
    val_start, test_start = series.split()
    season = season or own_season or seasonal_period(series.values[:val_start], longest=max(2, val_start // 3))
    forecasts = run(series.inputs, model_path, series.source)
    horizon = forecasts.shape[1]
    if test_start - season * -(-horizon // season) < horizon:
        raise EdgeseqError(f"{series.source}: {len(series.values)} values are too few for a test span scored "
                           f"against a season of {season} and a horizon of {horizon}")
    scores = horizon_scores(forecasts, series.values, test_start, len(series.values), season, val_start)
    return Evaluation(series, forecasts, season, val_start, test_start, scores)


def _model(path: str):
    """(run(inputs, path, data) -> forecasts, the columns the model records, its season)."""
    if path.endswith(".onnx"):
        return _onnx_model(path)
    from ..pytorch.models import load_checkpoint
    from .training import forecast_series

    checkpoint = load_checkpoint(path)
    spec = checkpoint.model.architecture.seasonal
    columns = checkpoint.training.get("columns") or [checkpoint.training.get("column")]
    season = spec.season if spec else checkpoint.metrics.get("season")

    def run(inputs, model_path, data):
        _check_width(inputs, checkpoint.model.architecture.input_size, model_path, data)
        return forecast_series(checkpoint.model, inputs)

    return run, [c for c in columns if isinstance(c, str)], season


def _onnx_model(path: str):
    import edgeseq_runtime
    import onnx

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    columns = _json(props.get("edgeseq.input_columns")) or []
    seasonal = (_json(props.get("edgeseq.architecture")) or {}).get("seasonal") or {}
    stream = edgeseq_runtime.load(path)

    def run(inputs, model_path, data):
        _check_width(inputs, stream.input_size, model_path, data)
        return stream.run(inputs[:-1].astype(np.float32)).astype(np.float64).reshape(len(inputs) - 1, -1)

    return run, [c for c in columns if isinstance(c, str)], seasonal.get("season")


def _json(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _check_width(inputs: np.ndarray, width: int, model_path: str, data: str) -> None:
    if inputs.shape[1] != width:
        raise EdgeseqError(f"{data}: {inputs.shape[1]} column(s) read for a model of {width} input(s) "
                           f"({os.path.basename(model_path)}): name them with --column and --columns")
