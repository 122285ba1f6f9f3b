"""Opening a file edgeseq did not write: a regular file of bounded size, checked before it is read.

Opening a FIFO waits for a writer and ``/dev/zero`` never ends, so the path is opened without
blocking and the open file itself is looked at (what is checked is what is then read): it must
be a regular file no larger than the caller's limit. A missing file is the usual
``FileNotFoundError``; every other refusal is an ``UnreadableFile`` whose message says why, which
each reader turns into its own one-line error (``ModelError``, ``StateFileError``, ...).
"""

import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class UnreadableFile(Exception):
    """Why a path is not read: not a regular file, larger than allowed, or not openable."""


def open_regular(path: str, limit: int, what: str) -> BinaryIO:
    """``path`` open for binary reading, once it is a regular file of at most ``limit`` bytes;
    ``what`` completes the message of a file too large ("... more than the N bytes <what>")."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise UnreadableFile(f"cannot be opened ({e.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
            raise UnreadableFile(f"{kind}, not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"{info.st_size:,} bytes, more than the {limit:,} bytes {what}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str, limit: int, what: str) -> bytes:
    """The bytes of ``path`` as ``open_regular`` admits it; refused too if it grew past
    ``limit`` after it was looked at."""
    with open_regular(path, limit, what) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise UnreadableFile(f"cannot be read ({e.strerror})") from None
    if len(data) > limit:
        raise UnreadableFile(f"more than the {limit:,} bytes {what}")
    return data
