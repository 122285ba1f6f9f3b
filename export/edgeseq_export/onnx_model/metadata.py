"""The ``metadata_props`` that make an exported model describe itself, and reading them back.

Every key starts with ``edgeseq.``. Plain strings are for people (Netron lists them):
``version``, ``exporter``, ``source_file``, ``source_form``, ``source_sha256``, ``cells``.
JSON values serve people and tools alike: ``input``, ``output`` and ``states`` (names, shapes,
dtype), ``delay`` (a model with a convolutional front end: the steps by which its stream lags
the full-sequence forward, whose output t is the stream's output t + delay; the stream's first
``delay`` outputs are zeros), ``task``, ``normalisation`` (present when the model carries one; it is applied inside
the graph, the values are recorded for reference), ``read_options`` (how MODEL.pt was read),
``input_columns`` (the CSV columns an edgeseq checkpoint was trained on: ``quantize
--calibration`` reads the same ones) and the whole ``architecture``, from which ``verify``
drives the graph.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import onnx

from .. import __version__
from ..errors import SourceError
from ..pytorch.architecture import INPUT_NAME, OUTPUT_NAME, Architecture

PREFIX = "edgeseq."


def properties(source, exporter: str) -> dict[str, str]:
    """The metadata of ``source`` (a ``sources.Source``) exported with ``exporter``."""
    architecture = source.network.architecture
    layout = ["batch", "time"] if architecture.batch_first else ["time", "batch"]
    values = {
        "version": __version__,
        "exporter": exporter,
        "source_file": os.path.basename(source.label),
        "source_form": source.form,
        "cells": ",".join(layer.cell for layer in architecture.recurrent),
        "input": {"name": INPUT_NAME, **({"shape": layout, "dtype": "int64", "vocab_size": architecture.vocab_size}
                                         if architecture.vocab_size else
                                         {"shape": [*layout, architecture.input_size], "dtype": "float32"})},
        "output": {"name": OUTPUT_NAME, "shape": [*layout, architecture.output_size], "dtype": "float32"},
        "states": [{"input": s.name, "output": s.next_name, "shape": list(s.dims)} for s in architecture.states],
        "task": source.task,
        "architecture": architecture.to_dict(),
    }
    if architecture.front:
        values["delay"] = architecture.delay
    if source.sha256:
        values["source_sha256"] = source.sha256
    normalisation = source.network.normalisation()
    if normalisation:
        values["normalisation"] = {"applied_in_graph": True, **normalisation}
    if source.options.given():
        values["read_options"] = source.options.given()
    if source.columns:
        values["input_columns"] = source.columns
    return {PREFIX + key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()}


def attach(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Set ``props`` in ``model.metadata_props``, replacing entries of the same keys."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


@dataclass(frozen=True)
class Description:
    """What an exported model's edgeseq metadata says, parsed."""

    architecture: Architecture
    task: dict
    normalisation: dict         # input_mean, input_std, output_mean, output_std, as present
    read_options: dict
    source_sha256: str | None


def describe(model: onnx.ModelProto, where: str) -> Description:
    """Parse ``model``'s edgeseq metadata; SourceError when it has none or it is damaged."""
    props = {p.key: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}
    if PREFIX + "architecture" not in props:
        raise SourceError(f"{where}: has no edgeseq metadata ({PREFIX}architecture); only models "
                          f"written by edgeseq export describe their inputs and state")
    try:
        def parsed(key, default):
            return json.loads(props[PREFIX + key]) if PREFIX + key in props else default
        normalisation = parsed("normalisation", {})
        normalisation.pop("applied_in_graph", None)
        return Description(Architecture.from_dict(parsed("architecture", None)), parsed("task", {}),
                           normalisation, parsed("read_options", {}), props.get(PREFIX + "source_sha256"))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise SourceError(f"{where}: damaged edgeseq metadata ({type(e).__name__}: {e})") from None


def read_structure(path: str, label: str) -> onnx.ModelProto:
    """The ONNX file at ``path`` without its external weights (enough to describe it);
    SourceError when it is not ONNX."""
    try:
        return onnx.load(path, load_external_data=False)
    except OSError:
        raise
    except Exception as e:  # protobuf's DecodeError and friends
        raise SourceError(f"{label}: not a readable ONNX model ({type(e).__name__})") from None
