"""DequantizeLinear on weight initializers: the "DQ" half of a QDQ-quantized model.

Symmetric int8 weights (zero point 0) stay int8 as a ``QuantizedWeight``; asymmetric or uint8
ones are expanded to float32 at load time (exact, only larger in memory). Quantized
activations (a DequantizeLinear on a run-time tensor) are not supported.
"""

import numpy as np

from ..graph import attribute
from ..quantized import QuantizedWeight
from ..tensor import Tensor

QUANTIZED_TYPES = (np.int8, np.uint8)


def lower_dequantize(ctx, node, inputs):
    x, scale, zero_point = (list(inputs) + [None, None])[:3]
    if any(isinstance(v, Tensor) for v in (x, scale, zero_point)):
        ctx.fail(node, "quantized activations are not supported: only weight initializers may be dequantized")
    x = np.asarray(x)
    scale = np.asarray(scale)
    if x.dtype not in QUANTIZED_TYPES:
        ctx.fail(node, f"quantized weights have dtype {x.dtype}; expected int8 or uint8")
    if scale.dtype.kind != "f":
        ctx.fail(node, f"scale has dtype {scale.dtype}; expected a float type")
    bad = scale[~(np.isfinite(scale) & (scale > 0))]
    if bad.size:
        ctx.fail(node, f"scale must be positive and finite; found {bad.ravel()[0]!r}")
    if zero_point is not None and np.asarray(zero_point).dtype != x.dtype:
        ctx.fail(node, f"zero point has dtype {np.asarray(zero_point).dtype}; expected {x.dtype} like the weights")
    if attribute(node, "block_size", 0):
        ctx.fail(node, "blocked quantization (block_size) is not supported; use per-channel or per-tensor scales")
    axis = attribute(node, "axis", 1)
    if scale.size > 1:
        if scale.ndim != 1 or x.ndim == 0 or not -x.ndim <= axis < x.ndim or scale.size != x.shape[axis]:
            ctx.fail(node, f"{scale.size} scales do not match axis {axis} of weights shaped {list(x.shape)}")
    symmetric = zero_point is None or not np.asarray(zero_point).any()
    if x.dtype == np.int8 and symmetric:
        return [QuantizedWeight(x, scale.astype(np.float32).ravel(), axis % max(x.ndim, 1))]
    feeds = {name: np.asarray(v) for name, v in zip(node.input, (x, scale, zero_point)) if name}
    return ctx.evaluate(node, feeds)


HANDLERS = {"DequantizeLinear": lower_dequantize}
