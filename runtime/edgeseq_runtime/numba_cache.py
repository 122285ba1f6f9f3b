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

numba holds a cached function as fresh as its own source file, but a kernel is made of others too:
the constants of ``isa`` frozen into it, and the functions it calls through an address
(``kernels.linking``) with the arguments of the day. An upgrade or a checkout that changed those
and not the kernel's file would load its old code (old offsets, a call with old arguments, an
abort where a symbol has gone): ``stamp_with_runtime_sources`` makes every source of the runtime
part of each of its functions' stamps, so any change compiles them all again.

numba's cache index is a pickle, loaded when a kernel is first called: a cache folder that
another user could write would run that user's code. So a folder is used only if it is a real
directory owned by this user and writable by no one else.
"""

import hashlib
import os
import stat
import sys
import tempfile
from pathlib import Path

RUNTIME = Path(__file__).parent
KERNELS = RUNTIME / "kernels"


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


def stamp_with_runtime_sources() -> None:
    """Give the runtime's functions, for numba's cache, the source stamp of all the runtime's
    sources (see above); other functions keep numba's own. Before any kernel is defined."""
    from numba.core import caching

    implementation = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name)
             for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
    _WholeRuntime.stamp = _sources_digest()
    ours = [type(f"Runtime{base.__name__.lstrip('_')}", (_WholeRuntime, base), {"__module__": __name__})
            for base in bases]
    implementation._locator_classes = ours + [locator for locator in implementation._locator_classes
                                              if not issubclass(locator, _WholeRuntime)]


class _WholeRuntime:
    """A numba cache locator's part: a function of this package is as fresh as all its sources."""

    stamp = ""

    def get_source_stamp(self):
        return self.stamp

    @classmethod
    def from_function(cls, py_func, py_file):
        if not py_func.__module__.startswith(f"{__package__}."):
            return None
        return super().from_function(py_func, py_file)


def _sources_digest() -> str:
    """A hash of every source file of the runtime, and of where each lies in it."""
    digest = hashlib.sha256()
    for path in sorted(RUNTIME.rglob("*.py")):
        digest.update(path.relative_to(RUNTIME).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


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
    from .kernels.interpreter import ADDRESSED, ENTRY_POINTS, run_plan
    from .kernels.matvec import LINKED

    wanted = (*ENTRY_POINTS, *ADDRESSED, *LINKED) if every_kernel else (run_plan,)
    try:
        return all(kernel._cache._cache_file._load_index() for kernel in wanted)
    except Exception:  # a numba whose internals differ: claim nothing
        return False
