"""int8 weights as a QDQ graph stores them, kept as int8 through lowering.

An ONNX ``DequantizeLinear`` on an int8 initializer with a zero zero-point (symmetric
quantization, per tensor or per channel) lowers to a ``QuantizedWeight``. Layers that can use
int8 directly (LSTM, GRU, RNN, Gemm, MatMul, embeddings) store ``q`` and its scales; any other
consumer sees the dequantized float values (``np.asarray`` works on it), so a QDQ graph always
runs, and runs in int8 wherever it matters for memory.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuantizedWeight:
    """value = q * scale, with ``scale`` per index along ``axis`` (or one scale per tensor)."""
    q: np.ndarray        # int8
    scale: np.ndarray    # float32, 1-D: one per channel, or a single value
    axis: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.q.shape

    def __array__(self, dtype=None, copy=None):
        scale = self.scale
        if scale.size > 1:
            scale = scale.reshape([-1 if i == self.axis else 1 for i in range(self.q.ndim)])
        values = self.q.astype(np.float32) * scale
        return values if dtype is None else values.astype(dtype)

    def scales_along(self, axis: int) -> np.ndarray | None:
        """One scale per index of ``axis``, or None when the tensor is quantized along another
        axis (then only its float value can be used there)."""
        if self.scale.size == 1:
            return np.full(self.q.shape[axis], self.scale.reshape(()), np.float32)
        return self.scale if axis % self.q.ndim == self.axis % self.q.ndim else None

    def direction(self, index: int) -> "QuantizedWeight":
        """value[index], for weights whose leading axis is num_directions."""
        if self.scale.size > 1 and self.axis % self.q.ndim == 0:
            return QuantizedWeight(self.q[index], self.scale[index:index + 1], 0)  # per-direction: one scale left
        return QuantizedWeight(self.q[index], self.scale, self.axis % self.q.ndim - 1)
