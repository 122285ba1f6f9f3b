"""edgeseq's on-device runtime: stream ONNX LSTM / GRU / RNN models one time step at a time.

    import edgeseq_runtime as edgeseq
    m = edgeseq.load("model.onnx")
    y = m.step(x)

Depends on numpy, numba and onnx only: never on torch or onnxruntime.
"""

import os

from .errors import ModelError
from .graph import read_model
from .lowering import lower
from .model import StreamingModel

__version__ = "0.1.0"
__all__ = ["ModelError", "StreamingModel", "load", "__version__"]


def load(path, batch: int = 1) -> StreamingModel:
    """Load an ONNX model for ``batch`` parallel streams, ready to ``step``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int; got {batch!r}")
    path = os.fspath(path)
    model = read_model(path)
    return StreamingModel(lower(model, path, batch), batch, path)
