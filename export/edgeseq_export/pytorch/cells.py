"""An LSTM with a projection (``proj_size``), written out as one time step of ordinary ops.

ONNX's LSTM operator has no projection (PyTorch's ``h = W_hr (o * tanh(c))``), and neither
exporter handles one: the TorchScript exporter refuses it, and the dynamo exporter (torch 2.13)
writes a native LSTM whose weight shapes ONNX Runtime rejects. So such an LSTM is exported as
one step of MatMul/Add/Sigmoid/Tanh/Mul, whose state is a graph input paired with a graph
output that the caller feeds back each step; edgeseq's runtime does that by itself.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ProjectedLSTMStep(nn.Module):
    """One time step of ``lstm`` (an ``nn.LSTM`` with ``proj_size``), called like it.

    Shares ``lstm``'s parameters; takes exactly one time step, so the graph it exports is a cell.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x, state):
        h0, c0 = state
        time_axis = 1 if self.lstm.batch_first else 0
        inputs = x.squeeze(time_axis)
        hs, cs = [], []
        for layer in range(self.lstm.num_layers):
            w = self._weights(layer)
            gates = (F.linear(inputs, w["weight_ih"], w["bias_ih"])
                     + F.linear(h0[layer], w["weight_hh"], w["bias_hh"]))
            i, f, g, o = gates.split(self.lstm.hidden_size, dim=-1)  # PyTorch's order: i, f, g, o
            c = torch.sigmoid(f) * c0[layer] + torch.sigmoid(i) * torch.tanh(g)
            h = F.linear(torch.sigmoid(o) * torch.tanh(c), w["weight_hr"])
            hs.append(h)
            cs.append(c)
            inputs = h
        return inputs.unsqueeze(time_axis), (torch.stack(hs), torch.stack(cs))

    def _weights(self, layer: int) -> dict:
        """Layer ``layer``'s weights by name; the biases are None when the LSTM has none."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return {name: getattr(self.lstm, f"{name}_l{layer}", None) for name in names}
