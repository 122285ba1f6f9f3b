"""A fleet's recorded rows: which columns replay reads, and the rows cut into buckets of streams.

DATA (one Parquet or CSV file) holds the rows of many streams in any order. Replay never holds
it whole: it reads it in *pieces* (a Parquet row group; a CSV file is one piece read batch by
batch), sends each row to the *bucket* of its key (crc32 of the key's text, modulo the bucket
count), and replays one bucket at a time: every row of a stream is in one bucket, and a
bucket holds about ``ROWS_PER_BUCKET`` rows (the streams whose keys hash to it). That is the
memory bound of one process, whatever the size of DATA, except that one stream's rows are
always held together.

Within a bucket, streams are sorted by key and each stream's rows by ``--order`` (file order
when absent, and for equal order values). So OUT holds each stream's rows together, in step
order; which stream comes first depends on how many buckets the work was cut into.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from edgeseq_runtime import EdgeseqError
from edgeseq_runtime.errors import first_line

ROWS_PER_BUCKET = 1 << 20  # ~56 MB of rows with 4 float features, key, order and row number
ROW = "__row"  # the column that carries each row's number in DATA (1-based) through a bucket
PARQUET_MAGIC = b"PAR1"


class DataError(EdgeseqError):
    """DATA cannot be replayed as asked: the message names the file and the reason."""


@dataclass(frozen=True)
class Piece:
    """Rows of DATA that one task reads: Parquet row groups, or a whole CSV file."""

    path: str
    format: str  # "parquet" or "csv"
    row_groups: tuple[int, ...] | None  # None: the whole file
    first_row: int  # DATA's row number of its first row (1-based)


@dataclass(frozen=True)
class Fleet:
    """DATA, the columns replay reads from it, and its pieces."""

    path: str
    format: str
    key: str
    order: str | None
    features: tuple[str, ...]
    rows: int
    pieces: tuple[Piece, ...]
    schema: pa.Schema  # of DATA's columns, as every piece is read

    @property
    def columns(self) -> list[str]:
        return [self.key, *([self.order] if self.order else []), *self.features]


def open_fleet(path, key: str, order: str | None = None, columns=None) -> Fleet:
    """DATA's columns checked (key and order present, features numeric) and its pieces listed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: {'not a file' if os.path.exists(path) else 'no such file'}")
    fmt = _format(path)
    try:
        dataset = ds.dataset(path, format=fmt)
        schema = dataset.schema
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable {fmt} file ({first_line(e)})") from None
    for role, name in (("key", key), ("order", order)):
        if name is not None and name not in schema.names:
            raise DataError(f"{path}: no {role} column {name!r} (columns: {', '.join(schema.names)})")
    if order == key:
        raise DataError(f"{path}: the key column {key!r} cannot also be the order column")
    features = tuple(columns) if columns else tuple(
        f.name for f in schema if f.name not in (key, order) and _numeric(f.type))
    for name in features:
        if name not in schema.names:
            raise DataError(f"{path}: no column {name!r} (columns: {', '.join(schema.names)})")
        if name in (key, order):
            raise DataError(f"{path}: column {name!r} is the key or order column, not an input feature")
        if not _numeric(schema.field(name).type):
            raise DataError(f"{path}: column {name!r} is {schema.field(name).type}, not numeric: it cannot be a "
                            f"model input (choose the inputs with --columns)")
    if not features:
        raise DataError(f"{path}: no numeric column besides the key and order columns to feed the model")
    if len(set(features)) != len(features):
        raise DataError(f"{path}: --columns names a column twice ({', '.join(features)})")
    pieces, rows = _pieces(path, fmt, dataset)
    if rows == 0:
        raise DataError(f"{path}: no rows: there is no stream to replay")
    return Fleet(path, fmt, key, order, features, rows, pieces, schema)


def _format(path: str) -> str:
    """Parquet by its magic bytes, whatever the file is called; anything else is read as CSV."""
    with open(path, "rb") as f:
        return "parquet" if f.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC else "csv"


def _numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype)


def _pieces(path: str, fmt: str, dataset: ds.Dataset) -> tuple[tuple[Piece, ...], int]:
    if fmt == "csv":
        try:
            rows = dataset.count_rows()
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: {first_line(e)}") from None
        return (Piece(path, fmt, None, 1),), rows
    metadata = pq.ParquetFile(path).metadata
    pieces, first = [], 1
    for group in range(metadata.num_row_groups):
        pieces.append(Piece(path, fmt, (group,), first))
        first += metadata.row_group(group).num_rows
    return tuple(pieces), first - 1


def bucket_count(rows: int, at_least: int = 1) -> int:
    """Buckets of about ROWS_PER_BUCKET rows; ``at_least`` of them (one per worker) when there
    are rows enough."""
    return max(math.ceil(rows / ROWS_PER_BUCKET), min(at_least, rows), 1)


def read_piece(fleet: Fleet, piece: Piece):
    """The piece's rows as record batches of the fleet's columns and their row numbers."""
    try:
        if piece.format == "parquet":
            batches = pq.ParquetFile(piece.path).iter_batches(row_groups=piece.row_groups, columns=fleet.columns)
        else:  # read in file order, each column with the type the schema was checked with
            types = {name: fleet.schema.field(name).type for name in fleet.columns}
            batches = pacsv.open_csv(piece.path, convert_options=pacsv.ConvertOptions(
                include_columns=fleet.columns, column_types=types))
        first = piece.first_row
        for batch in batches:
            batch = pa.RecordBatch.from_arrays([_decoded(c) for c in batch.columns], names=batch.schema.names)
            yield batch.append_column(ROW, pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64)))
            first += batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{piece.path}: {first_line(e)}") from None


def _decoded(column: pa.Array) -> pa.Array:
    """A dictionary-encoded column (pandas' categoricals) as its plain values, for sorting."""
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def split_batch(fleet: Fleet, batch: pa.RecordBatch, buckets: int) -> list[pa.RecordBatch]:
    """``batch``'s rows sent to their buckets: one (maybe empty) batch per bucket."""
    keys = batch.column(fleet.key)
    _refuse_nulls(fleet, batch, fleet.key)
    if fleet.order:
        _refuse_nulls(fleet, batch, fleet.order)
    if buckets == 1:
        return [batch]
    bucket = _buckets_of(keys, buckets)
    by_bucket = np.argsort(bucket.astype(np.uint16) if buckets <= 1 << 16 else bucket, kind="stable")  # radix
    bounds = np.searchsorted(bucket[by_bucket], np.arange(buckets + 1))
    taken = batch.take(pa.array(by_bucket))
    return [taken.slice(bounds[b], bounds[b + 1] - bounds[b]) for b in range(buckets)]


def _buckets_of(keys: pa.Array, buckets: int) -> np.ndarray:
    """Each row's bucket, from its key alone: the same in every process and every run."""
    if pa.types.is_integer(keys.type):  # Fibonacci hashing, vectorised
        mixed = keys.to_numpy().astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        return ((mixed >> np.uint64(32)) % np.uint64(buckets)).astype(np.int64)
    encoded = pc.dictionary_encode(keys)  # each distinct key hashed once, not once per row
    bucket_of_key = np.array([zlib.crc32(key_text(k).encode()) % buckets for k in encoded.dictionary.to_pylist()],
                             dtype=np.int64)
    return bucket_of_key[encoded.indices.to_numpy()]


def _refuse_nulls(fleet: Fleet, batch: pa.RecordBatch, name: str) -> None:
    column = batch.column(name)
    if column.null_count:
        row = batch.column(ROW)[pc.index(pc.is_null(column), True).as_py()].as_py()
        role = "key" if name == fleet.key else "order"
        raise DataError(f"{fleet.path}: row {row}: the {role} column {name!r} is empty")


def key_text(key) -> str:
    """A key as text: what names its state file, and what its bucket is hashed from."""
    return key if isinstance(key, str) else str(key)


@dataclass
class Bucket:
    """A bucket's rows, streams together: ``starts[i]:starts[i + 1]`` are stream i's rows in
    step order, and ``keys[i]`` its key."""

    table: pa.Table  # key, order, row number (sorted) for OUT and error messages
    x: np.ndarray  # (rows, features) float32, the model's inputs
    starts: np.ndarray  # (streams + 1,) int64
    keys: list

    @property
    def streams(self) -> int:
        return len(self.keys)

    def row(self, index: int) -> int:
        """DATA's row number of the bucket's row ``index``."""
        return self.table.column(ROW)[index].as_py()


def gather_bucket(fleet: Fleet, parts: list[pa.Table]) -> Bucket:
    """One bucket's rows from every piece, grouped into streams (in the order their keys first
    appear) and each stream's rows in step order. ``parts`` hold rows in DATA's order, so a
    stable sort keeps file order where ``--order`` is absent or ties."""
    table = pa.concat_tables(parts).combine_chunks()
    stream = pc.dictionary_encode(table.column(fleet.key)).chunk(0).indices.to_numpy() if table.num_rows \
        else np.zeros(0, np.int64)
    ordered = _step_order(stream.astype(np.int64), table.column(fleet.order) if fleet.order else None)
    x = np.empty((table.num_rows, len(fleet.features)), np.float32)
    for j, name in enumerate(fleet.features):
        x[:, j] = table.column(name).to_numpy()[ordered]  # nulls read as NaN: a missing value is not finite
    kept = table.select([fleet.key, *([fleet.order] if fleet.order else []), ROW]).take(ordered)
    stream = stream[ordered]
    starts = np.concatenate([[0], np.flatnonzero(stream[1:] != stream[:-1]) + 1, [table.num_rows]])
    starts = starts.astype(np.int64) if table.num_rows else np.zeros(1, np.int64)
    return Bucket(kept, x, starts, kept.column(0).take(starts[:-1]).to_pylist())


def _step_order(stream: np.ndarray, order: pa.ChunkedArray | None) -> np.ndarray:
    """The permutation that groups rows by stream, each stream's rows by ``order``: one stable
    argsort of stream * span + order where integers allow it (half the time of a lexsort)."""
    if order is None:
        return np.argsort(stream, kind="stable")
    if pa.types.is_integer(order.type):
        steps = order.to_numpy().astype(np.int64)
    elif pa.types.is_floating(order.type):
        return np.lexsort([order.to_numpy(), stream])
    else:  # times, strings: their ranks sort as they do
        steps = pc.rank(order.combine_chunks(), sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64)
    if not len(steps):
        return np.zeros(0, np.int64)
    low = int(steps.min())
    span = int(steps.max()) - low + 1
    if (int(stream.max()) + 1) * span >= 1 << 62:
        return np.lexsort([steps, stream])
    return np.argsort(stream * span + (steps - low), kind="stable")
