"""Atomic file writes: a crash at any moment leaves the old file or the new one, never a mix.

The data goes to a temporary file beside the target, is fsynced and renamed over it, and the
folder is fsynced so that the rename itself survives a power cut. Beyond that:

- A symlink at the path is followed, as ``open(path, "w")`` would: the file it points to is
  replaced and the link keeps pointing at fresh data. A path that is (or links to) anything but
  a regular file, such as a FIFO or a device, is refused rather than replaced.
- Nothing process-wide changes: the temporary file is created with mode 0o666 and the kernel
  applies the umask (what ``open`` does, default ACLs included); no other thread sees a moment
  of umask 0. An existing target keeps its permission bits.
- A write killed midway leaves a ``.<name>.<8 characters>.tmp`` file. Each write removes those
  of its own target that no writer holds: a writer keeps an ``flock`` on its temporary file
  until the rename, and a file younger than ``STALE_AFTER`` is left alone (its writer may not
  have locked it yet).
"""

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import time

STALE_AFTER = 60.0  # seconds since a temporary file last changed before it counts as a killed write's
_TEMPORARY_TAIL = re.compile(r"[a-z0-9_]{8}\.tmp")  # after ".<name>.": ours (hex) and tempfile.mkstemp's


def write_atomic(path, data: bytes) -> None:
    """Replace the file at ``path`` (or the one its symlink points to) with ``data``."""
    with atomic_writer(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_writer(path):
    """A binary file whose contents replace the file at ``path`` when the block ends, for data
    written in pieces (a Parquet writer's row groups); an exception in the block leaves ``path``
    as it was and removes the temporary file."""
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    _refuse_non_regular(target)
    _remove_stale_temporaries(folder, name)
    fd, temporary = _create_temporary(folder, name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: marks the file as a live write
        with os.fdopen(fd, "wb") as f:
            _keep_permissions(f.fileno(), target)
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _refuse_non_regular(target: str) -> None:
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file; refusing to replace it", target)


def _create_temporary(folder: str, name: str) -> tuple[int, str]:
    """A new ``.<name>.<8 hex>.tmp`` beside the target, open for writing. Not
    ``tempfile.mkstemp``: it creates 0o600 files, and widening that needs the umask, which
    Python can only read by changing it."""
    while True:
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), temporary
        except FileExistsError:
            continue


def _keep_permissions(fd: int, target: str) -> None:
    try:
        os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
    except FileNotFoundError:
        pass


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Remove the temporary files of earlier writes of ``name`` that were killed midway."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)
                   and _TEMPORARY_TAIL.fullmatch(e.name[len(prefix):])]
    except OSError:
        return
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > STALE_AFTER:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live write holds it
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)
