"""Stream a PyTorch GRU forecaster one step at a time with edgeseq's runtime.

Exports a GRU + Linear model to ONNX with its state as graph inputs and outputs, loads it
with ``edgeseq.load`` and streams a sine wave through it, checking every step against PyTorch.
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import edgeseq


class Forecaster(torch.nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.gru = torch.nn.GRU(1, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x, h0):
        y, h = self.gru(x, h0)
        return self.head(y), h


def main():
    torch.manual_seed(0)
    model = Forecaster().eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "forecaster.onnx"
        example = (torch.zeros(1, 1, 1), torch.zeros(1, 1, 32))
        with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example, path, dynamo=False, input_names=["x", "h0"],
                              output_names=["y", "h"], dynamic_axes={"x": {0: "seq"}, "y": {0: "seq"}})
        stream = edgeseq.load(path)
        print(stream)
        signal = np.sin(np.linspace(0, 6 * np.pi, 200, dtype=np.float32))[:, None]
        with torch.inference_mode():
            expected = model(torch.from_numpy(signal)[:, None, :], example[1])[0][:, 0, :].numpy()
        worst = 0.0
        for t, x in enumerate(signal):
            y = stream.step(x)
            worst = max(worst, float(np.abs(y - expected[t]).max()))
        print(f"streamed {len(signal)} steps; largest difference from PyTorch: {worst:.2e}")
        assert worst < 1e-5


if __name__ == "__main__":
    main()
