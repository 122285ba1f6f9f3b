"""The one reader of data files: CSV (or .npy) rows, one time step per row.

``train``, ``evaluate``, ``quantize --calibration`` and ``stream`` all read through it, so a file
that one of them takes, every one takes the same way:

* the delimiter is sniffed among ``,`` ``;`` and tab (``csv.Sniffer``); a UTF-8 BOM is dropped;
* a header line is detected (its fields are not numbers where the next line's are) or stated
  (``header=True`` / ``False``); the ``Table`` says which, and the commands print it;
* ``columns`` names the columns to read (header names, or ``1``, ``2``, ... by position);
  without, every numeric column is read;
* the first column that is not numeric (a date or timestamp label) is passed through as
  ``labels``, and as ``dates()`` when numpy parses it as one;
* a missing value (a blank field, ``NA``, ``NaN``, ``null``) is an error naming its line, or
  with ``missing="drop"`` its row is dropped, or with ``missing="interpolate"`` it is filled
  linearly between its neighbours (at either end: the nearest value). Text that is no number,
  and an infinite value, are errors whatever the policy.

Files come through ``untrusted_file`` (a regular file, bounded in size) and every failure is one
``DataError`` line naming the file (and the line, where there is one).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

import numpy as np
from edgeseq_runtime import EdgeseqError
from edgeseq_runtime.csv_fields import is_missing, parse_number, sniff_delimiter
from edgeseq_runtime.untrusted_file import UnreadableFile, open_regular, read_regular

MAX_DATA_BYTES = 1 << 30  # a data file of 1 GiB holds ~100M values, far more than training or calibration needs
MISSING_POLICIES = ("error", "drop", "interpolate")
SNIFF_BYTES = 64 << 10  # the delimiter is sniffed on the first lines; a row is far shorter


class DataError(EdgeseqError):
    """A data file that cannot be read as rows of numbers: one line naming the file and why."""


@dataclass(frozen=True)
class Table:
    """Columns of numbers read from a CSV, with what the reader decided about the file."""

    path: str
    columns: list[str]             # the names of the columns read (positions "1", "2", ... without a header)
    values: np.ndarray             # float64 (rows, columns), in file order
    lines: np.ndarray              # the file's line number of each row (1-based)
    header: list[str] | None       # the header line's fields, or None when the file has none
    delimiter: str
    labels: list[str] | None       # the first non-numeric column's text per row (dates, say)
    label_name: str | None
    filled: int = 0                # missing values interpolated
    dropped: int = 0               # rows dropped for a missing value

    def dates(self) -> np.ndarray | None:
        """The labels as numpy datetimes, or None when they are not dates numpy reads."""
        if not self.labels:
            return None
        try:
            return np.array(self.labels, dtype="datetime64")
        except ValueError:
            return None

    def describe(self) -> str:
        """What was read, in one line, for a command to print: the header decision included."""
        header = f"header {self.delimiter.join(self.header)!r}" if self.header else "no header line"
        delimiter = {"\t": "tab", ",": "comma", ";": "semicolon"}[self.delimiter]
        notes = [f"{count} missing value(s) {what}" for count, what in
                 ((self.filled, "interpolated"), (self.dropped, "dropped (their rows)")) if count]
        return (f"{self.path}: {len(self.values)} rows of {', '.join(self.columns)} ({header}, {delimiter}-"
                f"separated{'; ' + '; '.join(notes) if notes else ''})")


def read_table(path, columns: list[str] | None = None, *, header: bool | None = None,
               missing: str = "error") -> Table:
    """The ``columns`` of the CSV at ``path`` (default: every numeric one); see the module's rules."""
    path = os.fspath(path)
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r}: expected one of {', '.join(MISSING_POLICIES)}")
    try:
        data = read_regular(path, MAX_DATA_BYTES, "a data file may have")
    except UnreadableFile as e:
        raise DataError(f"{path}: {e}") from None
    return parse_table(data, path, columns, header=header, missing=missing)


def parse_table(data: bytes, path: str, columns: list[str] | None = None, *, header: bool | None = None,
                missing: str = "error") -> Table:
    """``read_table`` on bytes already read; ``path`` names them in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV file (not UTF-8 at byte {e.start})") from None
    delimiter = sniff_delimiter(text[:SNIFF_BYTES])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        rows = [(reader.line_num, [field.strip() for field in row]) for row in reader if any(f.strip() for f in row)]
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: {e}") from None
    if not rows:
        raise DataError(f"{path}: no rows (not even a header line)")
    if header is None:
        header = _looks_like_header(rows)
    names = rows[0][1] if header else None
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: a header line and no rows")
    width = max(len(fields) for _, fields in body)
    indices = _pick(path, names, width, body, columns)
    picked = [names[i] if names else str(i + 1) for i in indices]
    values, lines = _numbers(path, body, indices, picked)
    label_index = next((i for i in range(width) if i not in indices and not _numeric_column(body, i)), None)
    labels = [fields[label_index] if label_index < len(fields) else "" for _, fields in body] \
        if label_index is not None else None
    label_name = (names[label_index] if names and label_index < len(names) else str(label_index + 1)) \
        if label_index is not None else None
    values, lines, labels, filled, dropped = _fill(path, values, lines, labels, picked, missing)
    return Table(path, picked, values, lines, names, delimiter, labels, label_name, filled, dropped)


def is_number(text: str) -> bool:
    """Whether a CSV field holds a number."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def _looks_like_header(rows) -> bool:
    """A header is a first line with a field that is not a number where the second line's is
    (or, on a file of one line, any field that is not a number)."""
    first = rows[0][1]
    if len(rows) == 1:
        return not all(is_number(f) for f in first)
    second = rows[1][1]
    return any(not is_number(a) and is_number(b) for a, b in zip(first, second))


def _numeric_column(body, index: int) -> bool:
    """Whether column ``index`` holds numbers: most of its filled fields among the first rows
    (a stray word in a column of numbers is then an error naming its line, not a label)."""
    seen = [is_number(fields[index]) for _, fields in body[:100]
            if index < len(fields) and not is_missing(fields[index])]
    return bool(seen) and sum(seen) * 2 >= len(seen)


def _pick(path, names, width, body, columns) -> list[int]:
    """The column indices to read: ``columns`` by name (or 1-based position), else every numeric one."""
    if columns is None:
        indices = [i for i in range(width) if _numeric_column(body, i)]
        if not indices:
            raise DataError(f"{path}: no numeric column")
        return indices
    indices = []
    for column in columns:
        if names and column in names:
            indices.append(names.index(column))
        elif column.isdigit() and 1 <= int(column) <= width:
            indices.append(int(column) - 1)
        else:
            have = ", ".join(names) if names else f"no header; columns 1-{width} by position"
            raise DataError(f"{path}: no column {column!r} (columns: {have})")
    return indices


def _numbers(path, body, indices, picked) -> tuple[np.ndarray, np.ndarray]:
    """float64 (rows, columns) with NaN where a value is missing; text or infinities are errors."""
    values = np.empty((len(body), len(indices)))
    for row, (line, fields) in enumerate(body):
        for column, index in enumerate(indices):
            field = fields[index] if index < len(fields) else ""
            try:
                number = parse_number(field)
            except ValueError:
                raise DataError(f"{path}: line {line}, column {picked[column]!r}: {field!r} is not a finite "
                                f"number") from None
            if number is not None and not math.isfinite(number):
                raise DataError(f"{path}: line {line}, column {picked[column]!r}: {field!r} is not a finite number")
            values[row, column] = math.nan if number is None else number
    return values, np.array([line for line, _ in body])


def _fill(path, values, lines, labels, picked, missing):
    """Apply the missing-value policy; returns (values, lines, labels, filled, dropped)."""
    gaps = np.isnan(values)
    if not gaps.any():
        return values, lines, labels, 0, 0
    if missing == "error":
        row, column = np.argwhere(gaps)[0]
        raise DataError(f"{path}: line {lines[row]}, column {picked[column]!r}: a missing value (pass "
                        f"--missing drop or --missing interpolate to accept it)")
    if missing == "drop":
        kept = ~gaps.any(axis=1)
        if not kept.any():
            raise DataError(f"{path}: every row has a missing value")
        labels = [label for label, keep in zip(labels, kept) if keep] if labels is not None else None
        return values[kept], lines[kept], labels, 0, int((~kept).sum())
    filled = values.copy()
    steps = np.arange(len(values))
    for column in range(values.shape[1]):
        known = ~gaps[:, column]
        if not known.any():
            raise DataError(f"{path}: column {picked[column]!r} has no value to interpolate from")
        filled[~known, column] = np.interp(steps[~known], steps[known], values[known, column])
    return filled, lines, labels, int(gaps.sum()), 0


def read_rows(path, width: int, columns: list[str] | None = None, *, missing: str = "error") -> np.ndarray:
    """float32 (rows, width) from a .npy array or a CSV file (``read_table``'s rules).

    Without ``columns``, the numeric columns must be exactly ``width`` wide, and a wider file
    asks for ``--column``.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            with open_regular(path, MAX_DATA_BYTES, "a data file may have") as f:
                rows = _read_npy(f, path)
        except UnreadableFile as e:
            raise DataError(f"{path}: {e}") from None
    else:
        rows = read_table(path, columns, missing=missing).values
        if rows.shape[1] > width and columns is None:
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
