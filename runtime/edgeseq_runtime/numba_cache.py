"""Where numba keeps the compiled kernels, so that a read-only install still imports.

The kernels are compiled with ``cache=True``. numba writes the cache beside the sources, else
in ``$XDG_CACHE_HOME/numba`` (``~/.cache/numba``); when neither is writable (a read-only
root file system run by a service user without a home, as on many devices) it raises at
import. ``choose`` runs before any kernel is defined and, only in that case, points
``NUMBA_CACHE_DIR`` at the first usable of ``$XDG_CACHE_HOME/edgeseq/numba`` (or
``~/.cache/edgeseq/numba``) and ``<temp dir>/edgeseq-numba-<uid>``. A ``NUMBA_CACHE_DIR`` the
user set is never overridden.

``kernels_cached`` tells whether the compiled kernels are in that cache already: a command
line says so when the first load will compile them (seconds, once per install).

numba's cache index is a pickle, loaded when a kernel is first called: a cache folder that
another user could write would run that user's code. So a folder is used only if it is a real
directory owned by this user and writable by no one else.
"""

import os
import stat
import sys
import tempfile
from pathlib import Path

KERNELS = Path(__file__).parent / "kernels"


def choose() -> None:
    """Set ``NUMBA_CACHE_DIR`` when numba would find no writable cache folder of its own."""
    user_cache = _user_cache()
    if os.environ.get("NUMBA_CACHE_DIR") or _writable(KERNELS / "__pycache__") \
            or (user_cache and _writable(user_cache / "numba")):
        return
    candidates = [user_cache / "edgeseq" / "numba"] if user_cache else []
    for folder in candidates + [Path(tempfile.gettempdir()) / f"edgeseq-numba-{os.getuid()}"]:
        if _private_folder(folder):
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
            if "numba" in sys.modules:  # imported before us: it read its settings already
                sys.modules["numba"].core.config.reload_config()
            return


def _user_cache() -> Path | None:
    """numba's own parent of its user-wide cache; None without a home."""
    folder = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return None if folder.startswith("~") else Path(folder)


def _writable(folder: Path) -> bool:
    """Whether numba could create ``folder`` (or write in it)."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def _private_folder(folder: Path) -> bool:
    """Make ``folder`` if needed; whether it is a directory of ours that only we can write."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o022 and os.access(folder, os.W_OK))


def kernels_cached(every_kernel: bool = False) -> bool:
    """Whether numba's on-disk cache holds the runtime's compiled interpreter for these sources:
    a process has started here before, so a first load compiles at most the kernels of kinds of
    instruction no model used before (each once; see kernels.linking). With ``every_kernel``,
    whether it holds both entry points and every kernel too (as ``python -m edgeseq_runtime.compile`` leaves it), so
    that no load compiles anything. numba has no public question for this: its cache index is
    read as numba itself does, and any failure answers "not cached"."""
    from .kernels.interpreter import ENTRY_POINTS, KERNELS, TABLES, project_inputs, run_plan, run_stages
    from .kernels.matvec import LINKED

    functions = [f for table in TABLES for f in table.functions.values()]
    wanted = ((run_plan, *ENTRY_POINTS, *functions, *KERNELS.values(), project_inputs, run_stages, *LINKED)
              if every_kernel else (run_plan,))
    try:
        return all(kernel._cache._cache_file._load_index() for kernel in wanted)
    except Exception:  # a numba whose internals differ: claim nothing
        return False
