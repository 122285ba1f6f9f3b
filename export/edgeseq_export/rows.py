"""Reading input rows (one time step per row) from a CSV or .npy file."""

import csv
import os

import numpy as np
from edgeseq_runtime import EdgeseqError


class DataError(EdgeseqError):
    """A data file that cannot be read as rows of numbers."""


def read_rows(path, width: int) -> np.ndarray:
    """float32 (rows, width) from a .npy array or a CSV file.

    A CSV may have a header line and leading non-numeric columns (a timestamp label, say);
    the remaining columns must be numeric and exactly ``width`` wide.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            rows = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path}: not a numeric .npy array ({e})") from None
        rows = rows.reshape(len(rows), -1) if rows.ndim != 2 else rows
    else:
        rows = _read_csv(path)
    if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
        raise DataError(f"{path}: expected rows of {width} numbers; got shape {list(rows.shape)}")
    if rows.dtype.kind not in "fiu" or not np.isfinite(rows.astype(np.float64)).all():
        raise DataError(f"{path}: values must be finite numbers")
    return rows.astype(np.float32)


def _read_csv(path) -> np.ndarray:
    with open(path, newline="") as f:
        lines = [row for row in csv.reader(f) if row]
    if not lines:
        raise DataError(f"{path}: no rows")
    body = lines[1:] if not is_number(lines[0][-1]) else lines
    labels = 0
    while body and labels < len(body[0]) and not is_number(body[0][labels]):
        labels += 1
    values = []
    for number, row in enumerate(body, start=len(lines) - len(body) + 1):
        try:
            values.append([float(v) for v in row[labels:]])
        except ValueError:
            raise DataError(f"{path}: line {number} is not numeric: {','.join(row)}") from None
    if len({len(v) for v in values}) > 1:
        raise DataError(f"{path}: rows have different numbers of columns")
    return np.asarray(values, np.float64)


def is_number(text: str) -> bool:
    """Whether a CSV field holds a number."""
    try:
        float(text)
        return True
    except ValueError:
        return False
