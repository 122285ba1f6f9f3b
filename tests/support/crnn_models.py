"""Small CRNNs as users write them: a front end of nn.Conv1d / nn.BatchNorm1d / activations over
(batch, channels, time), between transposes in forward, then an LSTM or GRU and a Linear head.

``expected_delay`` is the stream's lag computed here from the convs' own attributes, apart from
the exporter's code: a conv of kernel k, dilation d and padding p before the sequence (its own,
and an nn.ZeroPad1d's before it) gives the output of full-sequence position j once input
j + (k - 1) * d - p has arrived.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


class CRNN(nn.Module):
    """x (batch, time, features), or (time, batch, features) when not batch_first -> y laid out alike."""

    def __init__(self, front: list[nn.Module], cell: str = "GRU", hidden: int = 6, outputs: int = 3,
                 batch_first: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.front = nn.Sequential(*front)
        channels = [m.out_channels for m in front if isinstance(m, nn.Conv1d)][-1]
        self.rnn = getattr(nn, cell)(channels, hidden, batch_first=batch_first)
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        if self.batch_first:
            features = self.front(x.transpose(1, 2)).transpose(1, 2)
        else:
            features = self.front(x.permute(1, 2, 0)).permute(2, 0, 1)
        y, _ = self.rnn(features)
        return self.head(y)


def crnn(*front: nn.Module, seed: int = 0, **options) -> CRNN:
    """A CRNN in eval mode with random weights and BatchNorm statistics far from the identity
    (so that folding them is tested), seeded (the front end's modules, made before the call, are
    initialised again after the seed)."""
    torch.manual_seed(seed)
    model = CRNN(list(front), **options)
    with torch.no_grad():
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if isinstance(module, nn.BatchNorm1d) and module.track_running_stats:
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.3, 3)
                if module.affine:
                    module.weight.uniform_(0.5, 2)
                    module.bias.uniform_(-1, 1)
    return model.eval()


def input_channels(model: CRNN) -> int:
    return next(m.in_channels for m in model.front if isinstance(m, nn.Conv1d))


def expected_delay(model: CRNN) -> int:
    delay, padded = 0, 0
    for module in model.front:
        if isinstance(module, nn.ConstantPad1d):  # ZeroPad1d too: frames before the conv that follows
            padded = module.padding[0]
        elif isinstance(module, nn.Conv1d):
            reach = (module.kernel_size[0] - 1) * module.dilation[0]
            before = padded + (reach // 2 if module.padding == "same" else module.padding[0])
            delay, padded = delay + reach - before, 0
    return delay


def random_sequence(model: CRNN, steps: int, seed: int = 1) -> np.ndarray:
    """(steps, features) float32, standard normal."""
    return np.random.default_rng(seed).standard_normal((steps, input_channels(model))).astype(np.float32)


def full_sequence(model: CRNN, x: np.ndarray) -> np.ndarray:
    """PyTorch's forward over the whole of x (steps, features), in float64: (outputs, classes)."""
    model64 = copy.deepcopy(model).double().eval()
    tensor = torch.from_numpy(x.astype(np.float64))
    with torch.no_grad():
        y = model64(tensor[None] if model.batch_first else tensor[:, None])
    return (y[0] if model.batch_first else y[:, 0]).numpy()
