"""Opening a .pt file without running code from it.

``torch.load(weights_only=True)`` unpickles tensors and plain containers only. Two forms hold
code, which runs as they load: a whole pickled ``nn.Module`` names classes that unpickling
imports and calls, and a TorchScript archive is a program that ``torch.jit.load`` compiles and
runs (its modules' ``__setstate__``; the export's check then runs its ``forward``), and
TorchScript can write files (``torch.from_file(..., shared=True)``). PyTorch documents both
loaders as unsafe for untrusted input, so either form is refused unless the caller trusts the
file's code (``--trust-code``). Every failure is a ``SourceError`` naming the file and the
reason.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile

import torch

from .errors import SourceError

_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+)")


TRUST_ADVICE = ("pass --trust-code (or --trust-pickle) if you trust where the file came from, or save "
                "the model's state_dict instead")


def read(path: str | os.PathLike, trust_code: bool = False):
    """What ``path`` holds: a TorchScript module, or whatever ``torch.save`` was given.

    ``trust_code`` allows the forms that run code from the file as they load.
    """
    path = os.fspath(path)
    with open(path, "rb"):  # a missing or unreadable file is an OSError naming it
        pass
    if is_torchscript(path):
        if not trust_code:
            raise SourceError(f"{path}: a TorchScript archive; loading one runs the code it holds, so "
                              f"edgeseq refuses it: {TRUST_ADVICE}")
        try:
            with warnings.catch_warnings():  # its deprecation notice is not the user's business
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(path, map_location="cpu")
        except Exception as e:  # torch raises RuntimeError with C++ context for damaged archives
            raise SourceError(f"{path}: a damaged TorchScript archive ({short_reason(e)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # e.g. the pickled class cannot be imported here
        raise SourceError(f"{path}: the trusted pickle cannot be loaded ({short_reason(e)}); the classes it "
                          f"names must be importable") from None


def is_torchscript(path: str) -> bool:
    """True for a ``torch.jit.save`` archive: a zip holding compiled code and constants."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:  # e.g. a damaged directory
        raise SourceError(f"{path}: a damaged PyTorch archive ({short_reason(e)})") from None


def short_reason(error: BaseException) -> str:
    """The useful part of torch's multi-paragraph load errors: one short sentence."""
    text = str(error)
    found = _UNPICKLER_REASON.search(text)
    first = (found.group(1) if found else text).strip().splitlines()
    return first[0].split(". ")[0].rstrip(".") if first and first[0] else type(error).__name__
