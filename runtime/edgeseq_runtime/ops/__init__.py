"""Op handlers: each lowers one ONNX op (with run-time inputs) into views or kernel calls.

A handler is ``handler(lowering, node, inputs) -> outputs``: ``inputs`` hold numpy arrays for
constants, ``Tensor`` for run-time values and None for absent optional inputs.
"""

from . import (
               conv,
               dense,
               dequantize,
               elementwise,
               integers,
               matmul,
               movement,
               pointwise,
               pool,
               recurrent,
               reduce,
               resize,
)

HANDLERS = {**recurrent.HANDLERS, **dense.HANDLERS, **elementwise.HANDLERS, **movement.HANDLERS,
            **dequantize.HANDLERS, **conv.HANDLERS, **pointwise.HANDLERS, **reduce.HANDLERS,
            **matmul.HANDLERS, **integers.HANDLERS, **pool.HANDLERS, **resize.HANDLERS}
HANDLERS.update({op: integers.truncating(HANDLERS[op]) for op in integers.FRACTIONAL})
# Ops lowered by their handler even when every input is constant (the rest are folded).
CONSTANT_HANDLERS = frozenset({*recurrent.HANDLERS, *dequantize.HANDLERS})
