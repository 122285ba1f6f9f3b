"""edgeseq: put LSTM, GRU and RNN models on edge devices.

The on-device API is the runtime's, re-exported here::

    import edgeseq
    m = edgeseq.load("model.onnx")
    y = m.step(x)

Host-side tools (export, quantization, code generation) import torch and onnxruntime, so they
are loaded only when used.
"""

from edgeseq_runtime import EdgeseqError, ModelError, StreamingModel, load

__version__ = "0.1.0"
__all__ = ["EdgeseqError", "ModelError", "StreamingModel", "load", "__version__"]
