"""Opening a .pt file without running code from it.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only. Two forms hold
code, which runs as they load: a whole pickled ``nn.Module`` names classes that unpickling
imports and calls, and a TorchScript archive is a program that ``torch.jit.load`` compiles and
runs (its modules' ``__setstate__``; the export's check then runs its ``forward``), and
TorchScript can write files (``torch.from_file(..., shared=True)``). PyTorch documents both
loaders as unsafe for untrusted input, so either form is refused unless the caller trusts the
file's code (``--trust-code``).

Whatever the form, the file is hostile until checked: it must be a regular file (a FIFO or a
device is refused before a byte is read: reading one never ends) of at most MAX_FILE_BYTES, and
a zip archive (what ``torch.save`` and ``torch.jit.save`` write) must declare members that unpack
to at most MAX_UNPACKED_BYTES together and whose bytes match their CRC-32 (torch checks neither:
a zip bomb would be inflated, and a flipped bit in a tensor would load as a wrong weight). Every
failure is a ``SourceError`` naming the file and the reason.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
import zlib

import torch
from edgeseq_runtime.untrusted_file import UnreadableFile, open_regular

from ..errors import SourceError

# A model file edgeseq reads whole. 1 GiB of float32 is 268M weights: a 4-layer LSTM of hidden
# size 4096, far beyond a model that streams on a device; a file beyond it is refused rather
# than read into memory.
MAX_FILE_BYTES = 1 << 30
# What a zip's members may unpack to, together: torch allocates each member's declared size,
# so a few KB of deflated zeros (a zip bomb) would take gigabytes. Stored tensors unpack to
# their own size, so a genuine file is never refused by this and MAX_FILE_BYTES together.
MAX_UNPACKED_BYTES = 1 << 30
_READ_BLOCK = 1 << 20
_DOS_DIRECTORY = 0x10  # the attribute bit that torch's zip reader (miniz) takes for "a directory"
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
               NotImplementedError, zlib.error)
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+)")

TRUST_ADVICE = ("pass --trust-code (or --trust-pickle) if you trust where the file came from, or save "
                "the model's state_dict instead")


def read(path: str | os.PathLike, trust_code: bool = False):
    """What ``path`` holds: a TorchScript module, or whatever ``torch.save`` was given.

    ``trust_code`` allows the forms that run code from the file as they load.
    """
    path = os.fspath(path)
    with open_model_file(path) as file:
        names = checked_members(file, path)
        file.seek(0)
        if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
            return _read_torchscript(file, path, trust_code)
        return _read_pickle(file, path, trust_code)


def open_model_file(path: str):
    """``path`` open for reading, once the open file is known to be a regular file of at most
    MAX_FILE_BYTES (see ``edgeseq_runtime.untrusted_file``). A missing file is an OSError naming it."""
    try:
        return open_regular(path, MAX_FILE_BYTES, "a model file may have")
    except UnreadableFile as e:
        raise SourceError(f"{path}: {e}") from None


def checked_members(file, path: str) -> list[str]:
    """The member names of the zip archive ``file`` (none if it is no zip: an older torch.save),
    once their declared sizes are within MAX_UNPACKED_BYTES and every member is a file whose
    bytes match its CRC-32 (read in bounded blocks)."""
    try:
        if not zipfile.is_zipfile(file):
            return []
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
            unpacked = sum(member.file_size for member in members)
            if unpacked > MAX_UNPACKED_BYTES:
                raise SourceError(f"{path}: its members unpack to {unpacked:,} bytes, more than the "
                                  f"{MAX_UNPACKED_BYTES:,} a model file may hold")
            for member in members:
                if member.is_dir() or member.external_attr & _DOS_DIRECTORY:
                    raise SourceError(f"{path}: a damaged PyTorch archive (member {member.filename!r} is "
                                      f"marked a directory, which torch would read as no bytes)")
                with archive.open(member) as data:
                    while data.read(_READ_BLOCK):
                        pass
            return [member.filename for member in members]
    except _ZIP_ERRORS as e:
        raise SourceError(f"{path}: a damaged PyTorch archive ({short_reason(e)})") from None


def _read_torchscript(file, path: str, trust_code: bool):
    if not trust_code:
        raise SourceError(f"{path}: a TorchScript archive; loading one runs the code it holds, so "
                          f"edgeseq refuses it: {TRUST_ADVICE}")
    try:
        with warnings.catch_warnings():  # its deprecation notice is not the user's business
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(file, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError with C++ context for damaged archives
        raise SourceError(f"{path}: a damaged TorchScript archive ({short_reason(e)})") from None


def _read_pickle(file, path: str, trust_code: bool):
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _UNSAFE_GLOBAL.search(str(e))
        if unsafe is None:
            raise SourceError(f"{path}: not a PyTorch file, or a damaged one ({short_reason(e)})") from None
        if not trust_code:
            raise SourceError(f"{path}: holds a pickled Python object ({unsafe.group(1)}); loading a pickle "
                              f"runs code from the file, so edgeseq refuses it: {TRUST_ADVICE}") from None
    except Exception as e:  # truncated archives (RuntimeError, or OSError: the file opened fine), empty files
        raise SourceError(f"{path}: not a PyTorch file, or a damaged one ({short_reason(e)})") from None
    try:
        file.seek(0)
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as e:  # e.g. the pickled class cannot be imported here
        raise SourceError(f"{path}: the trusted pickle cannot be loaded ({short_reason(e)}); the classes it "
                          f"names must be importable") from None


def short_reason(error: BaseException) -> str:
    """The useful part of torch's multi-paragraph load errors: one short sentence."""
    text = str(error).split("Exception raised from")[0]  # the C++ backtrace torch appends
    found = _UNPICKLER_REASON.search(text)
    first = (found.group(1) if found else text).strip().splitlines()
    return first[0].split(". ")[0].rstrip(".") if first and first[0] else type(error).__name__
