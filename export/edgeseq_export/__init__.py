"""edgeseq's host toolchain: PyTorch -> ONNX, quantization, C code generation, verification.

Imports torch, onnx and onnxruntime; a device never installs it.
"""

__version__ = "0.1.0"
