"""A time series for forecasting: read from a CSV column, split in time, scored.

Forecasting here is one step ahead: at every time step the model sees the current value and
predicts the next one, exactly as it will when streaming on a device.
"""

import csv
import math
import os
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import EdgeseqError

from ..rows import is_number


class SeriesError(EdgeseqError):
    """A CSV that cannot be used as a series: the message names the file and the reason."""


@dataclass(frozen=True)
class Series:
    name: str           # the column
    values: np.ndarray  # float64, in time order
    source: str

    def split(self, validation: float = 0.15, test: float = 0.15) -> tuple[int, int]:
        """(start of validation, start of test): a chronological split, the test span last."""
        n = len(self.values)
        test_start = n - max(1, int(round(n * test)))
        val_start = test_start - max(1, int(round(n * validation)))
        return val_start, test_start


def read_series(path, column: str | None = None) -> Series:
    """The values of ``column`` (default: the last numeric column) of a CSV with a header."""
    path = os.fspath(path)
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except UnicodeDecodeError:
        raise SeriesError(f"{path}: not a text CSV file") from None
    if len(rows) < 2:
        raise SeriesError(f"{path}: needs a header line and at least one row")
    header, body = rows[0], rows[1:]
    if column is None:
        numeric = [i for i in range(len(header)) if is_number(body[0][i] if i < len(body[0]) else "")]
        if not numeric:
            raise SeriesError(f"{path}: no numeric column")
        index = numeric[-1]
    elif column in header:
        index = header.index(column)
    else:
        raise SeriesError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
    values = []
    for line, row in enumerate(body, start=2):
        cell = row[index] if index < len(row) else ""
        if not is_number(cell) or not math.isfinite(float(cell)):
            raise SeriesError(f"{path}: line {line}, column {header[index]!r}: {cell!r} is not a finite number")
        values.append(float(cell))
    return Series(header[index], np.asarray(values, np.float64), path)


def seasonal_period(values: np.ndarray, longest: int) -> int:
    """The lag (2..longest) at which the series best repeats itself: the autocorrelation peak
    (a local maximum, so not merely the near lags of a smooth series) with the highest value.
    The seasonal-naive baseline predicts with it."""
    centred = values - values.mean()
    scale = float(centred @ centred) or 1.0
    top = max(3, min(longest, len(values) // 2))
    acf = np.array([1.0] + [float(centred[lag:] @ centred[:-lag]) / scale for lag in range(1, top + 2)])
    peaks = [lag for lag in range(2, top + 1) if acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1]]
    return max(peaks, key=lambda lag: acf[lag]) if peaks else 1


def seasonal_naive(values: np.ndarray, start: int, season: int) -> np.ndarray:
    """Predictions of values[start:] by the value one season earlier."""
    return values[start - season:len(values) - season]


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, np.float64) - actual)))
