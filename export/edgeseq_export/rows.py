"""Reading input rows (one time step per row) from a CSV or .npy file."""

import csv
import io
import os

import numpy as np
from edgeseq_runtime import EdgeseqError
from edgeseq_runtime.untrusted_file import UnreadableFile, open_regular

MAX_DATA_BYTES = 1 << 30  # a calibration file of 1 GiB holds ~100M values, far more than a calibration needs


class DataError(EdgeseqError):
    """A data file that cannot be read as rows of numbers."""


def read_rows(path, width: int, columns: list[str] | None = None) -> np.ndarray:
    """float32 (rows, width) from a .npy array or a CSV file.

    A CSV may have a header line and leading non-numeric columns (a timestamp label, say). With
    ``columns`` (names in the header), those columns are read, in that order; without, the
    numeric columns must be exactly ``width`` wide, and a wider file asks for ``--column``.
    """
    path = os.fspath(path)
    try:
        with open_regular(path, MAX_DATA_BYTES, "a data file may have") as f:
            rows = _read_npy(f, path) if path.endswith(".npy") else _read_csv(f, path, columns)
    except UnreadableFile as e:
        raise DataError(f"{path}: {e}") from None
    if rows.ndim == 2 and rows.shape[1] > width and columns is None and not path.endswith(".npy"):
        raise DataError(f"{path}: {rows.shape[1]} numeric columns for a model of {width} input(s); "
                        f"name the one(s) to read with --column")
    if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
        raise DataError(f"{path}: expected rows of {width} numbers; got shape {list(rows.shape)}")
    if rows.dtype.kind not in "fiu" or not np.isfinite(rows.astype(np.float64)).all():
        raise DataError(f"{path}: values must be finite numbers")
    return rows.astype(np.float32)


def _read_npy(f, path) -> np.ndarray:
    try:
        rows = np.load(f, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a numeric .npy array ({e})") from None
    return rows.reshape(len(rows), -1) if rows.ndim != 2 else rows


def _read_csv(f, path, columns: list[str] | None) -> np.ndarray:
    try:
        lines = [row for row in csv.reader(io.TextIOWrapper(f, newline="")) if row]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
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
