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
FIELDS = {1: {"fingerprint", "steps", "states"}, 2: {"fingerprint", "steps", "rows", "states"}}
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
    header = _header(fingerprint, steps, rows, {name: a.shape for name, a in arrays.items()})
    body = _PREFIX.pack(MAGIC, VERSION, len(header)) + header + b"".join(
        np.ascontiguousarray(a, "<f4").tobytes() for a in arrays.values())
    write_atomic(path, body + hashlib.sha256(body).digest())


def read_state(path, fingerprint: str, layout: dict[str, tuple]) -> SavedState:
    """The state saved in ``path``, checked against this model's fingerprint and layout."""
    path = os.fspath(path)
    payload_size = 4 * sum(math.prod(shape) for shape in layout.values())
    header_bound = len(_header(fingerprint, MAX_COUNT, MAX_COUNT, layout)) + HEADER_SLACK
    try:
        data = read_regular(path, _PREFIX.size + header_bound + payload_size + _DIGEST,
                            "a state file of this model can hold")
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such state file") from None
    except UnreadableFile as e:
        raise StateFileError(f"{path}: {e}") from None
    if len(data) < _PREFIX.size + _DIGEST or data[:len(MAGIC)] != MAGIC:
        raise StateFileError(f"{path}: not an edgeseq state file")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(f"{path}: checksum mismatch (the file is truncated or corrupted)")
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
