"""Op handlers: each lowers one ONNX op (with run-time inputs) into views or kernel calls.

A handler is ``handler(lowering, node, inputs) -> outputs``: ``inputs`` hold numpy arrays for
constants, ``Tensor`` for run-time values and None for absent optional inputs.
"""

from . import dense, elementwise, movement, recurrent

HANDLERS = {**recurrent.HANDLERS, **dense.HANDLERS, **elementwise.HANDLERS, **movement.HANDLERS}
