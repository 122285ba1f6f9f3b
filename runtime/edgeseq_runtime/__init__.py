"""edgeseq's on-device runtime: stream ONNX LSTM / GRU / RNN models one time step at a time.

    import edgeseq_runtime as edgeseq
    m = edgeseq.load("model.onnx")
    y = m.step(x)

Depends on numpy, numba and onnx only: never on torch or onnxruntime.
"""

import os

from . import numba_cache

numba_cache.choose()  # before any kernel is defined: a read-only install needs a cache elsewhere

from .errors import EdgeseqError, ModelError  # noqa: E402
from .graph import read_model  # noqa: E402
from .lowering import LoweredModel, lower  # noqa: E402
from .model import StreamingModel  # noqa: E402
from .numba_cache import kernels_cached  # noqa: E402

__version__ = "0.1.0"
__all__ = ["EdgeseqError", "LoweredModel", "ModelError", "StreamingModel", "kernels_cached", "load", "lower_model",
           "__version__"]


def load(path, batch: int = 1) -> StreamingModel:
    """Load an ONNX model for ``batch`` parallel streams, ready to ``step``."""
    return StreamingModel(lower_model(path, batch), batch, os.fspath(path))


def lower_model(path, batch: int = 1) -> LoweredModel:
    """Read and lower an ONNX model into the plan that the runtime (and generated C) executes."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int; got {batch!r}")
    path = os.fspath(path)
    return lower(read_model(path), path, batch)
