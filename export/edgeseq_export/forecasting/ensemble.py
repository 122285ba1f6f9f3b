"""An ensemble of forecasters as one network: the mean of K models' forecasts, exported as is.

K recurrent layers of H units that share their input are one layer of K * H units whose input
weights are stacked and whose recurrent weights are block-diagonal (gate by gate): each block
updates only from its own units, since every gate acts unit by unit. A head whose weights are the
K heads' side by side, divided by K, and whose bias is their mean, then gives the mean of the K
forecasts. So the ensemble is an ordinary ``SequenceModel`` (one LSTM, GRU or RNN node in the
step graph) with the same seasonal ends, and the runtime, the C code and int8 take it as they
take any other. What it costs: K times the units, K^2 times the recurrent weights (mostly zeros).
"""

from __future__ import annotations

import dataclasses

import torch

from ..pytorch.models import SequenceModel

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # PyTorch's gate blocks per weight matrix


def merge(models: list[SequenceModel]) -> SequenceModel:
    """One model whose forecasts are the mean of ``models``' (one recurrent layer each, the
    same config otherwise, the same normalisation or seasonal scales)."""
    first = models[0].config
    if first.num_layers != 1 or any(m.config != first for m in models):
        raise ValueError("an ensemble merges models of one config with one recurrent layer")
    count, hidden, gates = len(models), first.hidden_size, GATES[first.cell]
    merged = SequenceModel(dataclasses.replace(first, hidden_size=count * hidden)).eval()
    weights = {name: [m.state_dict()[name] for m in models] for name in models[0].state_dict()}
    state = {}
    for name, tensors in weights.items():
        if name.startswith("recurrent.0.weight_hh"):
            state[name] = torch.cat([torch.block_diag(*(t[g * hidden:(g + 1) * hidden] for t in tensors))
                                     for g in range(gates)])
        elif name.startswith("recurrent.0."):  # input weights and biases: gate blocks, each stacked
            state[name] = torch.cat([torch.cat([t[g * hidden:(g + 1) * hidden] for t in tensors])
                                     for g in range(gates)])
        elif name.endswith("weight") and name.startswith("head."):
            state[name] = torch.cat(tensors, dim=1) / count
        elif name.startswith("head."):
            state[name] = torch.stack(tensors).mean(dim=0)
        else:  # normalisation and seasonal scales: the data's, alike in every member
            state[name] = tensors[0]
    merged.load_state_dict(state)
    return merged
