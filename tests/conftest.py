"""Test-session setup shared by every test module."""

import hashlib
import os
import pathlib

import edgeseq_runtime
import pytest

KERNELS = pathlib.Path(edgeseq_runtime.__file__).parent / "kernels"
ISA = KERNELS.parent / "isa.py"  # its constants are compiled into the kernels


def pytest_configure(config):
    """Drop numba's on-disk cache when any kernel source or the instruction set changed.

    numba keys a cached function on its own file only, so editing a helper kernel (say the
    matvec), or an offset in isa.py, would leave stale machine code in use. Done once, by the
    controlling process (not by pytest-xdist workers), before anything compiles.
    """
    if hasattr(config, "workerinput") or not os.access(KERNELS, os.W_OK):
        return
    digest = hashlib.sha256()
    for source in [*sorted(KERNELS.glob("*.py")), ISA]:
        digest.update(source.read_bytes())
    stamp = KERNELS / "__pycache__" / "kernels.sha256"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    for cached in KERNELS.glob("__pycache__/*.nb[ic]"):
        cached.unlink(missing_ok=True)
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(digest.hexdigest())


@pytest.fixture(scope="session")
def silero():
    """The Silero VAD files (``support.silero_files``: fetched once into the test cache)."""
    from support import silero_files

    try:
        return silero_files.fetch()
    except silero_files.Unavailable as e:
        pytest.skip(f"the Silero files cannot be had here: {e}")


@pytest.fixture(scope="session")
def recording(tmp_path_factory):
    """Sentences spoken by espeak-ng between silences, in noise (``support.audio``)."""
    from support import audio

    if missing := audio.tools_missing():
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install espeak-ng sox)")
    return audio.speech_recording(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """The run's C builds, shared by the tests that compile generated code (``support.codegen_builds``)."""
    from support.codegen_builds import Builds

    return Builds(tmp_path_factory)
