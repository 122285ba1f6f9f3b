"""The durable state file: what ``save_state`` writes and ``load_state`` reads back.

Layout (little-endian)::

    b"EDGESEQ\\x00" | u32 version | u32 header length | JSON header | float32 payload | sha256

The header is a UTF-8 JSON object with exactly these fields:

- ``fingerprint``: the sha256 of the model that saved it, 64 lowercase hex digits;
- ``steps``: the time steps the state has taken, an int in [0, 2**63);
- ``rows`` (version 2): the input rows consumed up to this state, an int in [steps, 2**63).
  A caller that skips rows (``edgeseq stream``'s blank and refused rows) consumes more rows
  than it takes steps, and resumes from the row count. Version 1 files have no ``rows``:
  they read as rows == steps;
- ``states``: ``[name, shape]`` for each state array, in payload order.

The payload holds the arrays in that order; the sha256 covers everything before it. A file
is written atomically (see ``atomic``), so a crash leaves the old state or the new one.

A **journal** (version 3, what ``edgeseq stream --state-file`` keeps) is two such records of
one fixed size, back to back: the header is padded with spaces to the longest it can be, so a
commit overwrites one slot in place (``StateJournal``), in turn, with one ``fdatasync`` and no
rename, as databases commit. A write torn by a crash breaks only its own slot's checksum; the
reader takes the valid slot with the most rows. ``load_state`` reads journals and single
records alike.

A state file may come from anywhere, so reading it trusts nothing: it must be a regular file
(a FIFO, a device or a directory is refused before any read), no larger than the layout the
model expects allows (the read never goes past that bound), and every header field is checked
in type and range. Every failure is one ``StateFileError`` line naming the file, and changes
nothing.
"""

import hashlib
import json
import math
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from .atomic import write_atomic
from .errors import EdgeseqError, first_line
from .untrusted_file import UnreadableFile, read_regular

MAGIC = b"EDGESEQ\x00"
VERSION = 2
JOURNAL = 3  # a record in one of a journal's two slots
FIELDS = {1: {"fingerprint", "steps", "states"}, 2: {"fingerprint", "steps", "rows", "states"},
          JOURNAL: {"fingerprint", "steps", "rows", "states"}}
_PREFIX = struct.Struct("<8sII")
_DIGEST = 32
MAX_COUNT = 2**63 - 1  # steps and rows: what an int64 counter holds
HEADER_SLACK = 1024  # bytes a header may have beyond the one this runtime writes (another writer's spacing)
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class StateFileError(EdgeseqError):
    """A state file that cannot be loaded into this model: the message says why."""


@dataclass(frozen=True)
class SavedState:
    """What a state file holds, checked against the model that reads it."""

    steps: int
    rows: int
    arrays: dict[str, np.ndarray]


def write_state(path, fingerprint: str, steps: int, rows: int, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, encode_state(fingerprint, steps, rows, arrays))


def encode_state(fingerprint: str, steps: int, rows: int, arrays: dict[str, np.ndarray]) -> bytes:
    """A state file's bytes, for a writer that makes many files durable at once (replay's
    staging folder) rather than each with its own fsyncs."""
    return _record(VERSION, fingerprint, steps, rows, arrays)


def _record(version: int, fingerprint: str, steps: int, rows: int, arrays: dict[str, np.ndarray],
            header_size: int | None = None) -> bytes:
    """One record; ``header_size`` pads the header with spaces (JSON whitespace) to that length."""
    header = _header(fingerprint, steps, rows, {name: a.shape for name, a in arrays.items()})
    header = header.ljust(header_size or len(header))
    body = _PREFIX.pack(MAGIC, version, len(header)) + header + b"".join(
        np.ascontiguousarray(a, "<f4").tobytes() for a in arrays.values())
    return body + hashlib.sha256(body).digest()


class StateJournal:
    """A state file kept up to date after every step at the cost of one write and one
    ``fdatasync``: two fixed-size slots written in turn (see the module's docstring).

    Opening writes a fresh journal holding ``arrays`` in both slots, atomically: whatever
    ``path`` held before (a single record, an older journal) is replaced only once the new file
    is whole. A symlink at ``path`` is followed; the file it points to is then written in place.
    """

    def __init__(self, path, fingerprint: str, steps: int, rows: int, arrays: dict[str, np.ndarray]):
        self.path = os.fspath(path)
        self._fingerprint = fingerprint
        layout = {name: a.shape for name, a in arrays.items()}
        self._header_size = len(_header(fingerprint, MAX_COUNT, MAX_COUNT, layout))
        first = _record(JOURNAL, fingerprint, steps, rows, arrays, self._header_size)
        self._slot_size, self._next = len(first), 0
        write_atomic(self.path, first + first)
        self._fd = os.open(os.path.realpath(self.path), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)

    def commit(self, steps: int, rows: int, arrays: dict[str, np.ndarray]) -> None:
        """Make this state durable: when this returns, a crash at any later moment leaves it
        (or a newer one) in the file."""
        record = _record(JOURNAL, self._fingerprint, steps, rows, arrays, self._header_size)
        if len(record) != self._slot_size:
            raise ValueError(f"{self.path}: a state of another layout cannot go into this journal")
        os.pwrite(self._fd, record, self._next * self._slot_size)
        _sync_data(self._fd)
        self._next = 1 - self._next

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def _sync_data(fd: int) -> None:
    """The file's data on the disk; its size and blocks were made durable when it was created."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def read_state(path, fingerprint: str, layout: dict[str, tuple]) -> SavedState:
    """The state saved in ``path`` (a single record or a journal), checked against this model's
    fingerprint and layout."""
    path = os.fspath(path)
    payload_size = 4 * sum(math.prod(shape) for shape in layout.values())
    header_bound = len(_header(fingerprint, MAX_COUNT, MAX_COUNT, layout)) + HEADER_SLACK
    record_bound = _PREFIX.size + header_bound + payload_size + _DIGEST
    try:
        data = read_regular(path, 2 * record_bound, "a state file of this model can hold")
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such state file") from None
    except UnreadableFile as e:
        raise StateFileError(f"{path}: {e}") from None
    if len(data) < _PREFIX.size + _DIGEST or data[:len(MAGIC)] != MAGIC:
        raise StateFileError(f"{path}: not an edgeseq state file")
    _, version, header_size = _PREFIX.unpack_from(data)
    if version != JOURNAL:
        return _parse_record(path, data, fingerprint, layout, payload_size)
    slot_size = _PREFIX.size + header_size + payload_size + _DIGEST
    if len(data) != 2 * slot_size:
        raise StateFileError(f"{path}: a state journal of {len(data)} bytes; this model's takes {2 * slot_size} "
                             f"(the file is truncated or of another model)")
    saved = []
    for slot in (data[:slot_size], data[slot_size:]):
        try:
            saved.append(_parse_record(path, slot, fingerprint, layout, payload_size))
        except _TornRecord:
            pass
    if not saved:
        raise StateFileError(f"{path}: checksum mismatch in both slots of the journal (the file is corrupted)")
    return max(saved, key=lambda s: (s.rows, s.steps))


class _TornRecord(StateFileError):
    """A record whose checksum fails: in a journal, the slot a crash interrupted."""


def _parse_record(path: str, data: bytes, fingerprint: str, layout: dict[str, tuple],
                  payload_size: int) -> SavedState:
    if data[:len(MAGIC)] != MAGIC:
        raise _TornRecord(f"{path}: not an edgeseq state file")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise _TornRecord(f"{path}: checksum mismatch (the file is truncated or corrupted)")
    _, version, header_size = _PREFIX.unpack_from(body)
    if version not in FIELDS:
        raise StateFileError(f"{path}: state file version {version}; this runtime reads versions "
                             f"{', '.join(map(str, FIELDS))}")
    if _PREFIX.size + header_size > len(body):
        raise StateFileError(f"{path}: malformed header (length {header_size} goes past the end of the file)")
    if _PREFIX.size + header_size + payload_size != len(body):
        raise StateFileError(f"{path}: {len(body) - _PREFIX.size - header_size} payload bytes; "
                             f"this model's state takes {payload_size}")
    header = _parse_header(path, body[_PREFIX.size:_PREFIX.size + header_size], version)
    if header["fingerprint"] != fingerprint:
        raise StateFileError(f"{path}: saved by another model (fingerprint {header['fingerprint'][:12]}, "
                             f"this model {fingerprint[:12]})")
    if header["states"] != layout:
        raise StateFileError(f"{path}: state layout {_short(header['states'], 200)} does not match this model's {layout}")
    payload = np.frombuffer(body, "<f4", offset=_PREFIX.size + header_size)
    arrays, start = {}, 0
    for name, shape in header["states"].items():
        size = math.prod(shape)
        arrays[name] = payload[start:start + size].reshape(shape).astype(np.float32)
        if not np.isfinite(arrays[name]).all():
            raise StateFileError(f"{path}: state {name!r} holds NaN or Inf")
        start += size
    return SavedState(header["steps"], header["rows"], arrays)


def _header(fingerprint: str, steps: int, rows: int, layout: dict[str, tuple]) -> bytes:
    return json.dumps({"fingerprint": fingerprint, "steps": steps, "rows": rows,
                       "states": [[name, list(shape)] for name, shape in layout.items()]}).encode()


def _parse_header(path: str, raw: bytes, version: int) -> dict:
    """The header's fields, each checked in type and range; ``states`` as ``{name: shape}``."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_without_duplicate_keys,
                            parse_constant=_refuse_constant)
    except RecursionError:
        raise StateFileError(f"{path}: malformed header (nested too deeply)") from None
    except ValueError as e:  # also bad UTF-8, duplicate keys, NaN, ints past Python's digit limit
        raise StateFileError(f"{path}: malformed header ({first_line(e)})") from None
    if not isinstance(header, dict) or set(header) != FIELDS[version]:
        got = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise StateFileError(f"{path}: malformed header (fields {got}; version {version} has "
                             f"{sorted(FIELDS[version])})")
    fingerprint = header["fingerprint"]
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise StateFileError(f"{path}: malformed header (fingerprint is not 64 hex digits)")
    steps = _count(path, header, "steps", 0)
    rows = _count(path, header, "rows", steps) if "rows" in header else steps
    return {"fingerprint": fingerprint, "steps": steps, "rows": rows, "states": _states(path, header["states"])}


def _count(path: str, header: dict, field: str, least: int) -> int:
    value = header[field]
    if type(value) is not int or not least <= value <= MAX_COUNT:  # noqa: E721 (bool is not a count)
        raise StateFileError(f"{path}: malformed header ({field} {value!r} is not an int in "
                             f"[{least}, 2**63))")
    return value


def _states(path: str, entries) -> dict[str, tuple]:
    """``[[name, shape], ...]`` as ``{name: shape}``: names unique strings, shapes lists of
    non-negative ints."""
    if not isinstance(entries, list):
        raise StateFileError(f"{path}: malformed header (states is not a list)")
    states = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], list)
                and all(type(d) is int and d >= 0 for d in entry[1])):  # noqa: E721
            raise StateFileError(f"{path}: malformed header (state entry {_short(entry)} is not "
                                 f"[name, [non-negative ints]])")
        name, shape = entry
        if name in states:
            raise StateFileError(f"{path}: malformed header (state {name!r} appears twice)")
        states[name] = tuple(shape)
    return states


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _without_duplicate_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate field in {sorted(keys)}")
    return dict(pairs)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a state file holds")
