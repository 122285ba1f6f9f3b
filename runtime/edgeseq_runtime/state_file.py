"""The durable state file: what ``save_state`` writes and ``load_state`` reads back.

Layout (little-endian)::

    b"EDGESEQ\\x00" | u32 version | u32 header length | JSON header | float32 payload | sha256

The header names the model's fingerprint, the number of steps taken and each state array's
name and shape; the payload holds the arrays in that order; the sha256 covers everything
before it. A file is written atomically (see ``atomic``), so a crash leaves the old state or
the new one; a torn, truncated or foreign file is refused and changes nothing.
"""

import math
import hashlib
import json
import os
import struct

import numpy as np

from .atomic import write_atomic
from .errors import EdgeseqError

MAGIC = b"EDGESEQ\x00"
VERSION = 1
_PREFIX = struct.Struct("<8sII")
_DIGEST = 32
MAX_HEADER = 1 << 20


class StateFileError(EdgeseqError):
    """A state file that cannot be loaded into this model: the message says why."""


def write_state(path, fingerprint: str, steps: int, arrays: dict[str, np.ndarray]) -> None:
    header = json.dumps({"fingerprint": fingerprint, "steps": int(steps),
                         "states": [[name, list(a.shape)] for name, a in arrays.items()]}).encode()
    body = _PREFIX.pack(MAGIC, VERSION, len(header)) + header + b"".join(
        np.ascontiguousarray(a, "<f4").tobytes() for a in arrays.values())
    write_atomic(path, body + hashlib.sha256(body).digest())


def read_state(path, fingerprint: str, layout: dict[str, tuple]) -> tuple[int, dict[str, np.ndarray]]:
    """(steps, arrays) from ``path``, checked against this model's fingerprint and layout."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such state file") from None
    if len(data) < _PREFIX.size + _DIGEST or data[:len(MAGIC)] != MAGIC:
        raise StateFileError(f"{path}: not an edgeseq state file")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(f"{path}: checksum mismatch (the file is truncated or corrupted)")
    _, version, header_size = _PREFIX.unpack_from(body)
    if version != VERSION:
        raise StateFileError(f"{path}: state file version {version}; this runtime reads version {VERSION}")
    if header_size > MAX_HEADER or _PREFIX.size + header_size > len(body):
        raise StateFileError(f"{path}: malformed header")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_size])
        states = [(str(name), tuple(int(d) for d in shape)) for name, shape in header["states"]]
        steps, saved_fingerprint = int(header["steps"]), str(header["fingerprint"])
    except (ValueError, KeyError, TypeError):
        raise StateFileError(f"{path}: malformed header") from None
    if saved_fingerprint != fingerprint:
        raise StateFileError(f"{path}: saved by another model (fingerprint {saved_fingerprint[:12]}, "
                             f"this model {fingerprint[:12]})")
    if dict(states) != layout:
        raise StateFileError(f"{path}: state layout {dict(states)} does not match this model's {layout}")
    payload = np.frombuffer(body, "<f4", offset=_PREFIX.size + header_size)
    if payload.size != sum(math.prod(shape) for _, shape in states):
        raise StateFileError(f"{path}: payload size does not match its header")
    arrays, start = {}, 0
    for name, shape in states:
        size = math.prod(shape)
        arrays[name] = payload[start:start + size].reshape(shape).astype(np.float32)
        start += size
    return steps, arrays
