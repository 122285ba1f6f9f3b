"""edgeseq's own PyTorch models, and checkpoints that reload without their code.

A ``SequenceModel`` is a batch-first ``RecurrentNetwork`` made for a task:

* ``regression`` (forecasting too): ``outputs`` values per step;
* ``classification``: logits over ``outputs`` classes per step;
* ``tokens``: logits over the vocabulary per step (next-token models).

Any of them may take token ids through an embedding (``vocab_size > 0``). With
``normalise=True`` it carries the data's mean and standard deviation (``set_normalisation``)
and applies them inside ``forward``: float inputs are normalised, regression outputs are put back
in the data's units. The exported ONNX graph therefore applies them too, and so does every
runtime; the metadata records the values for people and tools.

A checkpoint is a plain dict written by ``torch.save`` that ``torch.load(weights_only=True)``
reads back, so loading it runs no code::

    {"format": "edgeseq.checkpoint", "version": 1, "edgeseq_version": "0.1.0",
     "config": {ModelConfig fields}, "state_dict": {...},   # normalisation buffers included
     "metrics": {...}, "training": {...}}                   # whatever the trainer records

``edgeseq export`` takes it as is.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from dataclasses import dataclass, field

import torch
from edgeseq_runtime.atomic import write_atomic

from .. import __version__
from ..errors import SourceError
from . import torch_files
from .architecture import (
    Activation,
    Architecture,
    BatchNorm,
    Conv,
    Linear,
    Recurrent,
    Seasonal,
    front_layer_from_dict,
)
from .network import RecurrentNetwork

TASKS = ("regression", "classification", "tokens")
CHECKPOINT_FORMAT = "edgeseq.checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """The settings of a ``SequenceModel``; stored in its checkpoint."""

    cell: str = "lstm"          # "lstm", "gru" or "rnn"
    input_size: int = 1         # features per step; for token models the embedding width
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0        # between stacked layers and before the head, while training
    task: str = "regression"    # one of TASKS
    outputs: int = 0            # regression: values per step (default 1); classification:
                                # classes; tokens: vocab_size (the default)
    vocab_size: int = 0         # > 0: the input is token ids in [0, vocab_size)
    normalise: bool = False     # carry the data's mean/std and apply them in forward
    season: int = 0             # > 0: a forecaster with seasonal ends (``architecture.Seasonal``) of
    level_input: bool = True    # this season, taking input_size values, forecasting outputs steps,
    seasons: int = 1            # its baseline the mean of this many seasons
    front: tuple = ()           # a conv front end over the input_size features: ``architecture.Conv``,
                                # ``BatchNorm`` and ``Activation`` items (or their dict forms), in order

    def __post_init__(self):
        object.__setattr__(self, "front", tuple(front_layer_from_dict(layer) if isinstance(layer, dict) else layer
                                                for layer in self.front))
        if not all(isinstance(layer, (Conv, BatchNorm, Activation)) for layer in self.front):
            raise ValueError(f"front: Conv, BatchNorm and Activation items only; got {list(self.front)}")
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.task == "tokens" and not self.vocab_size:
            raise ValueError("a tokens model needs vocab_size > 0")
        if not self.outputs:
            default = {"regression": 1, "tokens": self.vocab_size}.get(self.task)
            if default is None:
                raise ValueError("a classification model needs outputs = its number of classes")
            object.__setattr__(self, "outputs", default)
        if self.task == "tokens" and self.outputs != self.vocab_size:
            raise ValueError(f"a tokens model has one output per token ({self.vocab_size}), not {self.outputs}")
        if self.task == "classification" and self.outputs < 2:
            raise ValueError(f"classification needs at least 2 classes; got {self.outputs}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout}: expected 0 <= dropout < 1")
        if self.normalise and self.vocab_size and self.task != "regression":
            raise ValueError("normalise: a token model's input is ids and its outputs are logits, "
                             "there is nothing to normalise")
        self.architecture()  # sizes, cell and the rest are checked there

    def architecture(self) -> Architecture:
        seasonal = Seasonal(self.season, self.input_size, self.outputs, self.level_input, self.seasons) if self.season \
            else None
        convs = [layer for layer in self.front if isinstance(layer, Conv)]
        features = seasonal.features if seasonal else convs[-1].out_channels if convs else self.input_size
        recurrent = Recurrent(self.cell, features, self.hidden_size, self.num_layers,
                              dropout=self.dropout if self.num_layers > 1 else 0.0)
        architecture = Architecture((recurrent,), (Linear(self.hidden_size, self.outputs),),
                                    vocab_size=self.vocab_size, batch_first=True, dropout=self.dropout,
                                    input_normalisation=self.normalise and not self.vocab_size,
                                    output_normalisation=self.normalise and self.task == "regression",
                                    seasonal=seasonal, front=self.front)
        if architecture.input_size != self.input_size and not self.vocab_size:
            raise ValueError(f"the front end takes {architecture.input_size} features, input_size is {self.input_size}")
        return architecture

    def task_description(self) -> dict:
        """The task as the exported model's metadata records it."""
        count = {"regression": "outputs", "classification": "classes", "tokens": "vocab_size"}[self.task]
        return {"kind": self.task, count: self.outputs}


class SequenceModel(RecurrentNetwork):
    """edgeseq's recurrent model: ``SequenceModel(ModelConfig(...))`` or ``SequenceModel(**fields)``.

    ``forward(x, state=None) -> (y, next_state)`` with ``x`` (batch, time, input_size), or
    (batch, time) int64 ids for token models, and ``y`` (batch, time, outputs).
    """

    def __init__(self, config: ModelConfig | None = None, **fields):
        if config is not None and fields:
            raise TypeError("give a ModelConfig or its fields, not both")
        config = config if config is not None else ModelConfig(**fields)
        super().__init__(config.architecture())
        self.config = config


@dataclass
class Checkpoint:
    model: SequenceModel  # in eval mode
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)


def save_checkpoint(model: SequenceModel, path: str | os.PathLike, *, metrics: dict | None = None,
                    training: dict | None = None) -> None:
    """Write ``model``'s checkpoint to ``path`` atomically.

    ``metrics`` and ``training`` are what a trainer wants to keep (scores, settings, data
    source): plain data only (numbers, strings, lists, dicts, tensors), or a ValueError.
    """
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "edgeseq_version": __version__,
            "config": dataclasses.asdict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": dict(metrics or {}), "training": dict(training or {})}
    buffer = io.BytesIO()
    torch.save(data, buffer)
    try:  # refuse now what loading would refuse later
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"metrics and training must hold plain data (numbers, strings, lists, dicts, "
                         f"tensors): {torch_files.short_reason(e)}") from None
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; SourceError for anything else."""
    data = torch_files.read(path)
    if not is_checkpoint(data):
        raise SourceError(f"{os.fspath(path)}: not an edgeseq checkpoint")
    return checkpoint_from_dict(data, os.fspath(path))


def is_checkpoint(data) -> bool:
    return isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT


def checkpoint_from_dict(data: dict, where: str) -> Checkpoint:
    """The model and records of a loaded checkpoint dict; ``where`` names it in errors."""
    if data.get("version") != CHECKPOINT_VERSION:
        raise SourceError(f"{where}: an edgeseq checkpoint of version {data.get('version')!r}; this "
                          f"edgeseq reads version {CHECKPOINT_VERSION}")
    try:
        config, state_dict = ModelConfig(**data["config"]), data["state_dict"]
        check_config_fits(config, state_dict, where)
        model = SequenceModel(config)
        model.load_state_dict(state_dict)
    except SourceError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        reason = torch_files.short_reason(e)
        raise SourceError(f"{where}: a damaged edgeseq checkpoint ({type(e).__name__}: {reason})") from None
    return Checkpoint(model.eval(), dict(data.get("metrics") or {}), dict(data.get("training") or {}))


def check_config_fits(config: ModelConfig, state_dict: dict, where: str) -> None:
    """SourceError unless ``state_dict`` holds exactly the tensors that ``config``'s model has.

    The config's sizes are numbers from the file: checked against the tensors it actually holds
    before a model is built, since one built from ``hidden_size=12000`` alone takes gigabytes
    (and ``num_layers=10**6``, minutes). The model is first built on the meta device (shapes
    only); a model of N layers has at least N tensors, so a config that claims more is refused
    before even that.
    """
    damaged = f"{where}: a damaged edgeseq checkpoint"
    if not isinstance(state_dict, dict):
        raise SourceError(f"{damaged}: its state_dict is a {type(state_dict).__name__}, not a dict")
    tensors = {key: tuple(value.shape) for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    if config.num_layers > len(tensors):
        raise SourceError(f"{damaged}: its config claims {config.num_layers} layers; its state_dict holds "
                          f"{len(tensors)} tensors")
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in SequenceModel(config).state_dict().items()}
    for key in sorted(expected.keys() | state_dict.keys()):
        if expected.get(key) != tensors.get(key):
            claimed = list(expected[key]) if key in expected else "no such tensor"
            held = list(tensors[key]) if key in tensors else "none"
            raise SourceError(f"{damaged}: its config makes '{key}' {claimed}, but the file holds {held}")
