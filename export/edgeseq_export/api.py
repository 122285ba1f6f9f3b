"""The toolchain's entry points, behind ``edgeseq.export`` / ``edgeseq.verify`` and the CLI.

``export`` reads MODEL.pt (or takes an ``nn.Module``), builds the step graph with its metadata,
checks a temporary copy of it, and only then writes it (atomically): a model that fails its
check is never written. ``verify`` runs the same check later.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from dataclasses import dataclass

import onnx
from edgeseq_runtime.atomic import write_atomic

from .errors import ExportError
from .onnx_model import metadata
from .onnx_model.step_graph import export_step_graph
from .onnx_model.verification import DEFAULT_STEPS, DEFAULT_TOLERANCE, VerificationReport, describe_file
from .onnx_model.verification import verify as compare
from .pytorch.architecture import Architecture
from .pytorch.layers import ReadOptions
from .pytorch.sources import read_source


@dataclass
class ExportReport:
    path: str
    source: str                  # the file read, or a description of the module
    form: str                    # how it was read: "state_dict", "edgeseq checkpoint", ...
    exporter: str
    architecture: Architecture
    file_size: int               # bytes
    seconds: float               # reading, exporting and verifying
    verification: VerificationReport | None  # None with verify=False


def export(model_or_path, path, *, exporter: str = "torchscript", verify: bool = True,
           steps: int = DEFAULT_STEPS, batch: int = 1, tolerance: float = DEFAULT_TOLERANCE,
           seed: int = 0, batch_first: bool | None = None, nonlinearity: str | None = None,
           activation: str | None = None, linear_order=None, trust_code: bool = False,
           trust_pickle: bool = False, front_end: str | None = None) -> ExportReport:
    """Export MODEL.pt or an ``nn.Module`` to a streaming ONNX file at ``path``, checked.

    ``batch_first``, ``nonlinearity``, ``activation`` and ``linear_order`` say what a plain
    state_dict cannot (see ``layers.ReadOptions``); ``trust_code`` (or its first name,
    ``trust_pickle``) allows a TorchScript archive or a pickled module, whose code runs as it loads.
    Raises ``SourceError`` when the model cannot be read, ``ExportError`` when the exporter
    fails, ``VerificationFailed`` (its ``report`` holds the differences) when PyTorch, ONNX
    Runtime and edgeseq disagree by more than ``tolerance``: then nothing is written.
    """
    start = time.perf_counter()
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # say so now, not after exporting and verifying
        raise FileNotFoundError(errno.ENOENT, "no such directory", folder)
    options = ReadOptions(batch_first, nonlinearity, activation,
                          tuple(linear_order) if linear_order is not None else None,
                          trust_code=trust_code or trust_pickle, front_end=front_end)
    source = read_source(model_or_path, options)
    model = export_step_graph(source.network, exporter, source.label)
    metadata.attach(model, metadata.properties(source, exporter))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise ExportError(f"{source.label}: the exported graph fails onnx.checker ({e})") from e
    data, report = model.SerializeToString(), None
    if verify:  # check a copy first: a model that fails its check is never written
        with tempfile.TemporaryDirectory() as staging:
            staged = os.path.join(staging, os.path.basename(path))
            with open(staged, "wb") as f:
                f.write(data)
            report = compare(staged, source, label=os.fspath(path), steps=steps, batch=batch,
                             tolerance=tolerance, seed=seed).check()
    write_atomic(path, data)
    return ExportReport(os.fspath(path), source.label, source.form, exporter, source.network.architecture,
                        os.path.getsize(path), time.perf_counter() - start, report)


def read_reference(path, reference, *, trust_code: bool = False, **given) -> tuple:
    """(the ``Source`` read from ``reference``, notes): MODEL.pt (or an ``nn.Module``) read with
    the options the model at ``path`` was exported with (its metadata), those ``given`` (not
    None) taking precedence; a note when it is not the file the model was exported from."""
    recorded = describe_file(os.fspath(path), os.fspath(path))
    options = {**recorded.read_options, **{k: v for k, v in given.items() if v is not None}}
    if options.get("linear_order") is not None:
        options["linear_order"] = tuple(options["linear_order"])
    source = read_source(reference, ReadOptions(**options, trust_code=trust_code))
    notes = []
    if source.sha256 and recorded.source_sha256 and source.sha256 != recorded.source_sha256:
        notes.append(f"{source.label} is not the file the model was exported from (sha256 differs)")
    return source, notes


def verify(path, reference=None, *, steps: int = DEFAULT_STEPS, batch: int = 1,
           tolerance: float = DEFAULT_TOLERANCE, seed: int = 0, batch_first: bool | None = None,
           nonlinearity: str | None = None, activation: str | None = None, linear_order=None,
           trust_code: bool = False, trust_pickle: bool = False, load_options=None,
           front_end: str | None = None) -> VerificationReport:
    """Check an exported model: ONNX Runtime against edgeseq, and PyTorch when ``reference``
    (MODEL.pt or an ``nn.Module``) is given. The options for reading the reference default to
    those the model was exported with (its metadata); ``trust_code`` (or ``trust_pickle``) as in
    ``export``; ``load_options`` (an ``edgeseq_runtime.LoadOptions``) as edgeseq loads the model. Raises ``VerificationFailed`` when they disagree by more than ``tolerance``."""
    source, notes = None, []
    if reference is not None:
        source, notes = read_reference(path, reference, trust_code=trust_code or trust_pickle,
                                       batch_first=batch_first, nonlinearity=nonlinearity, activation=activation,
                                       linear_order=linear_order, front_end=front_end)
    report = compare(path, source, steps=steps, batch=batch, tolerance=tolerance, seed=seed,
                     load_options=load_options)
    report.notes[:0] = notes
    return report.check()
