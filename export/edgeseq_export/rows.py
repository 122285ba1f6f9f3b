"""Reading input rows (one time step per row) from a CSV or .npy file."""

import csv
import os

import numpy as np
from edgeseq_runtime import EdgeseqError


class DataError(EdgeseqError):
    """A data file that cannot be read as rows of numbers."""


def read_rows(path, width: int, columns: list[str] | None = None) -> np.ndarray:
    """float32 (rows, width) from a .npy array or a CSV file.

    A CSV may have a header line and leading non-numeric columns (a timestamp label, say). With
    ``columns`` (names in the header), those columns are read, in that order; without, the
    numeric columns must be exactly ``width`` wide, and a wider file asks for ``--column``.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            rows = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path}: not a numeric .npy array ({e})") from None
        rows = rows.reshape(len(rows), -1) if rows.ndim != 2 else rows
    else:
        rows = _read_csv(path, columns)
    if rows.ndim == 2 and rows.shape[1] > width and columns is None and not path.endswith(".npy"):
        raise DataError(f"{path}: {rows.shape[1]} numeric columns for a model of {width} input(s); "
                        f"name the one(s) to read with --column")
    if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
        raise DataError(f"{path}: expected rows of {width} numbers; got shape {list(rows.shape)}")
    if rows.dtype.kind not in "fiu" or not np.isfinite(rows.astype(np.float64)).all():
        raise DataError(f"{path}: values must be finite numbers")
    return rows.astype(np.float32)


def _read_csv(path, columns: list[str] | None) -> np.ndarray:
    with open(path, newline="") as f:
        lines = [row for row in csv.reader(f) if row]
    if not lines:
        raise DataError(f"{path}: no rows")
    has_header = not is_number(lines[0][-1])
    body = lines[1:] if has_header else lines
    if columns is not None:
        header = lines[0] if has_header else []
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} (columns: {', '.join(header) or 'no header'})")
        picked = [header.index(c) for c in columns]
        body = [[row[i] if i < len(row) else "" for i in picked] for row in body]
    labels = 0
    while columns is None and body and labels < len(body[0]) and not is_number(body[0][labels]):
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
