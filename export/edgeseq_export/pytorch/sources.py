"""MODEL.pt, or an ``nn.Module``, read into a ``RecurrentNetwork`` to export and check against.

The forms a file may take (the contract's list): an edgeseq checkpoint; a plain state_dict of
``nn.LSTM`` / ``GRU`` / ``RNN`` layers (optionally after an ``nn.Embedding``, or a front end
of ``nn.Conv1d`` and ``nn.BatchNorm1d``) followed by ``nn.Linear`` layers; a TorchScript
archive or a pickled ``nn.Module``, only when their code is trusted (``torch_files``). Modules
are read through their module tree, state_dicts through their keys and shapes (``layers``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import SourceError
from . import layers, models, torch_files
from .layers import ReadOptions
from .network import RecurrentNetwork

UNKNOWN_TASK = {"kind": "unknown"}


@dataclass
class TorchRun:
    """PyTorch's results on a sequence: outputs (time, batch, outputs) and the final state."""

    y: np.ndarray
    state: dict[str, np.ndarray]
    note: str | None = None  # what ran, when it is not plainly the model that was read


@dataclass
class Source:
    network: RecurrentNetwork   # in eval mode; what is exported
    form: str                   # "edgeseq checkpoint", "state_dict", "TorchScript archive", ...
    label: str                  # the file, or a description of the module
    sha256: str | None = None   # of the file
    task: dict = field(default_factory=lambda: dict(UNKNOWN_TASK))
    options: ReadOptions = ReadOptions()
    module: nn.Module | None = None  # the user's own module, when its forward can be the reference
    columns: list[str] | None = None  # the data columns it takes, when the file records them (edgeseq checkpoints)

    def run(self, x: np.ndarray) -> TorchRun:
        """Run the whole (time, batch, ...) sequence ``x`` in one call, from a zero state. With a
        conv front end, ``y`` has the full-sequence forward's positions (see ``architecture.Conv.delay``).

        The reference for the exported graph: PyTorch's own recurrence rather than the
        step-by-step path that the graph takes. When the user's module is at hand and its
        ``forward(x)`` gives one output per step, those outputs are the reference, so that a
        computation its layers do not show (a function called in forward) shows up as a
        difference.
        """
        architecture = self.network.architecture
        tensor = torch.from_numpy(x)
        if architecture.batch_first:
            tensor = tensor.transpose(0, 1)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "LSTM with projections is not supported with oneDNN"
            y, state = self.network(tensor)
            if architecture.front:
                state = self._streamed_state(tensor)
            own, note = self._own_forward(tensor, tuple(y.shape)) if self.module is not None else (None, None)
        y = (own if own is not None else y).float()
        if architecture.batch_first:
            y = y.transpose(0, 1)
        return TorchRun(y.numpy(), {s.name: t.numpy() for s, t in zip(architecture.recurrent_states, state)}, note)

    def _streamed_state(self, tensor):
        """The recurrent state once a stream has taken every step of ``tensor``. Its recurrent
        layers have then seen the front end's first ``time - delay`` outputs; the full forward
        also computes the outputs that a padded conv's right padding gives, and runs on them."""
        network = self.network
        time_axis = 1 if network.architecture.batch_first else 0
        seen = tensor.shape[time_axis] - network.architecture.delay

        def streamed_front(x):
            return network.front_end(x).narrow(time_axis, 0, seen)

        return network.forward_with(network.recurrent, tensor, None, streamed_front)[1]

    def _own_forward(self, tensor, shape):
        name = layers.module_type(self.module)
        with _evaluating(self.module):
            try:
                out = self.module(tensor)
            except Exception as e:
                return None, (f"PyTorch ran edgeseq's rebuild of {name}: its forward(x) failed "
                              f"({torch_files.short_reason(e)})")
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return None, (f"PyTorch ran edgeseq's rebuild of {name}: its forward(x) gives {got}, "
                          f"not one output per step {list(shape)}")
        return out, (f"PyTorch ran {name}'s own forward(x); a difference from both others means it "
                     f"computes something its layers do not show (e.g. a function called in forward)")


def read_source(model_or_path, options: ReadOptions = ReadOptions()) -> Source:
    """Read MODEL.pt (a path) or an ``nn.Module`` for export; SourceError when it cannot be."""
    if isinstance(model_or_path, nn.Module):
        label = f"{layers.module_type(model_or_path)} object"
        return _from_module(model_or_path, "module", label, None, options)
    path = os.fspath(model_or_path)
    data = torch_files.read(path, options.trust_code)
    digest = _sha256(path)
    if isinstance(data, torch.jit.ScriptModule):
        return _from_module(data, "TorchScript archive", path, digest, options)
    if isinstance(data, nn.Module):
        return _from_module(data, "pickled module", path, digest, options)
    if models.is_checkpoint(data):
        checkpoint = models.checkpoint_from_dict(data, path)
        config = checkpoint.model.config
        columns = checkpoint.training.get("columns") or [checkpoint.training.get("column")]  # target, covariates
        return Source(checkpoint.model, "edgeseq checkpoint", path, digest, config.task_description(), options,
                      columns=list(columns) if all(isinstance(c, str) for c in columns) else None)
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        architecture, weights = layers.assemble(layers.from_state_dict(data, path), options, path)
        return Source(_network(architecture, weights, path), "state_dict", path, digest, options=options)
    raise SourceError(f"{path}: holds {_describe(data)}; edgeseq reads an edgeseq checkpoint, a "
                      f"state_dict, a TorchScript archive or a pickled nn.Module")


def _from_module(module: nn.Module, form: str, label: str, digest: str | None,
                 options: ReadOptions) -> Source:
    if isinstance(module, RecurrentNetwork):  # already one: export a copy, in eval mode
        network = copy.deepcopy(module).eval()
        config = getattr(module, "config", None)
        task = config.task_description() if config is not None else dict(UNKNOWN_TASK)
        return Source(network, form, label, digest, task, options)
    architecture, weights = layers.assemble(layers.from_module(module, label), options, label)
    return Source(_network(architecture, weights, label), form, label, digest, options=options, module=module)


def _network(architecture, weights: dict, where: str) -> RecurrentNetwork:
    network = RecurrentNetwork(architecture)
    try:
        network.load_state_dict(weights)
    except RuntimeError as e:  # the layers' checks should have caught it: name what is wrong
        reason = " ".join(str(e).split())
        raise SourceError(f"{where}: the weights do not fit the layers read ({reason})") from None
    return network.eval()


def _sha256(path: str) -> str:
    """The file's SHA-256: the exported model records it to name its source."""
    digest = hashlib.sha256()
    with torch_files.open_model_file(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _evaluating(module: nn.Module):
    """``module`` in eval mode for the block, then back in the mode the user left it in."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


def _describe(data) -> str:
    if isinstance(data, dict):
        keys = ", ".join(repr(k) for k in list(data)[:5]) + (", ..." if len(data) > 5 else "")
        return (f"a dict that is neither a state_dict nor an edgeseq checkpoint (keys {keys or 'none'}: "
                f"if one entry is the model's state_dict, save that entry alone)")
    return f"a {type(data).__name__}, not a model"
