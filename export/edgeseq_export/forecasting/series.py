"""A time series for forecasting: read from CSV columns, split in time, scored.

Forecasting here is from each time step on: the model sees the current row (the target and any
covariates) and forecasts the next ``horizon`` values of the target, exactly as it will when
streaming on a device.
"""

import os
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import EdgeseqError

from ..rows import read_table


class SeriesError(EdgeseqError):
    """A CSV that cannot be used as a series: the message names the file and the reason."""


@dataclass(frozen=True)
class Series:
    name: str                           # the target column
    values: np.ndarray                  # float64, in time order
    source: str
    covariates: np.ndarray | None = None  # float64 (time, k): the other columns the model takes
    covariate_names: tuple = ()
    labels: list | None = None          # the file's label column (dates, say), one per value
    label_name: str | None = None
    dates: np.ndarray | None = None     # the labels as datetimes, when they are dates
    read: str = ""                      # the reader's account of the file (header, delimiter, gaps)

    @property
    def columns(self) -> list[str]:
        """The columns one step takes, in order: the target first, then the covariates."""
        return [self.name, *self.covariate_names]

    @property
    def inputs(self) -> np.ndarray:
        """float64 (time, 1 + k): the rows the model steps over."""
        target = self.values.reshape(-1, 1)
        return target if self.covariates is None else np.concatenate([target, self.covariates], axis=1)

    def split(self, validation: float = 0.15, test: float = 0.15) -> tuple[int, int]:
        """(start of validation, start of test): a chronological split, the test span last."""
        n = len(self.values)
        test_start = n - max(1, int(round(n * test)))
        val_start = test_start - max(1, int(round(n * validation)))
        return val_start, test_start


def read_series(path, column: str | None = None, covariates: list[str] | None = None, *,
                header: bool | None = None, missing: str = "error") -> Series:
    """``column`` (default: the last numeric column) of a CSV, with the ``covariates`` columns,
    through the one CSV reader (``rows.read_table``: its rules for delimiters, headers, dates and
    missing values)."""
    path = os.fspath(path)
    covariates = list(covariates or [])
    if column is None:
        everything = read_table(path, header=header, missing=missing)
        column = next(c for c in reversed(everything.columns) if c not in covariates)
    if column in covariates:
        raise SeriesError(f"{path}: column {column!r} is the target; it cannot be a covariate too")
    table = read_table(path, [column, *covariates], header=header, missing=missing)
    values = table.values
    return Series(column, values[:, 0].copy(), path, values[:, 1:].copy() if covariates else None,
                  tuple(covariates), table.labels, table.label_name, table.dates(), table.describe())


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
