"""Scoring forecasts against the seasonal-naive baseline, per horizon step.

A forecaster streams the series from its start; at every step t it emits H forecasts,
``forecasts[t, h - 1]`` of ``values[t + h]``. A span of targets ``values[start:end]`` is scored
for each horizon h on the forecasts made h steps before each target. The seasonal-naive
forecast of ``values[j]`` made h steps before is the latest value a whole number of seasons
earlier that was known then: ``values[j - season * ceil(h / season)]``. MASE divides the mean
absolute error by the training span's mean absolute seasonal change (the in-sample seasonal-naive
error, as the M4 competition scores): below 1 beats "same time last season" there.
"""

from __future__ import annotations

import math

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, np.float64) - actual)))


def naive_scale(values: np.ndarray, train_end: int, season: int) -> float:
    """The mean absolute seasonal change over ``values[:train_end]``: MASE's denominator."""
    changes = np.abs(values[season:train_end] - values[:train_end - season])
    return float(changes.mean()) if len(changes) and changes.mean() > 0 else 1.0


def aligned(forecasts: np.ndarray, start: int, end: int, horizon: int) -> np.ndarray:
    """The forecasts of ``values[start:end]`` made ``horizon`` steps before each."""
    return forecasts[start - horizon:end - horizon, horizon - 1]


def seasonal_naive_forecasts(values: np.ndarray, start: int, end: int, season: int, horizon: int = 1) -> np.ndarray:
    """The seasonal-naive forecasts of ``values[start:end]`` made ``horizon`` steps before each."""
    back = season * math.ceil(horizon / season)
    return values[start - back:end - back]


def horizon_scores(forecasts: np.ndarray, values: np.ndarray, start: int, end: int, season: int,
                   train_end: int) -> list[dict]:
    """For each horizon step h (1..forecasts.shape[1]): the model's and the seasonal-naive
    forecasts' RMSE, MAE and MASE on ``values[start:end]``, in the data's units."""
    scale = naive_scale(values, train_end, season)
    actual = values[start:end]
    scores = []
    for h in range(1, forecasts.shape[1] + 1):
        model, naive = aligned(forecasts, start, end, h), seasonal_naive_forecasts(values, start, end, season, h)
        scores.append({"horizon": h, "rmse": rmse(model, actual), "mae": mae(model, actual),
                       "mase": mae(model, actual) / scale, "naive_rmse": rmse(naive, actual),
                       "naive_mae": mae(naive, actual), "naive_mase": mae(naive, actual) / scale})
    return scores
