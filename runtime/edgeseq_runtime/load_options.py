"""What a caller tells the loader about a graph that its names and shapes leave open.

Models edgeseq did not export carry extra inputs (Silero VAD's sample rate ``sr``), state under
any name (``state`` -> ``stateN``) and symbolic input dims (``input[B, T]``). ``LoadOptions``
holds the answers, checked once, so that every place that loads a model (the runtime, the CLI,
verification, quantization, code generation, benchmarks) passes one object along.
"""

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LoadOptions:
    """``constants``: {graph input: value} fixed at load and folded into the plan.
    ``state``: {state input: graph output carrying its next value}, where names do not tell.
    ``input_shape``: the step input's shape for one stream, where the graph leaves dims symbolic.
    ``context``: the last ``context`` values of each step's input, kept as state and put in
    front of the next step's new values (the caller feeds only the new ones)."""
    constants: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    context: int = 0

    def __post_init__(self):
        constants = {} if self.constants is None else self.constants
        state = {} if self.state is None else self.state
        if not isinstance(constants, dict) or not all(isinstance(k, str) for k in constants):
            raise ValueError(f"constants must be a dict {{input name: value}}; got {constants!r}")
        checked = {}
        for name, value in constants.items():
            try:
                array = np.asarray(value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"constants['{name}'] is not a number or an array of numbers ({e})") from None
            if array.dtype.kind not in "biuf" or (array.size and not np.isfinite(array.astype(np.float64)).all()):
                raise ValueError(f"constants['{name}'] must hold finite numbers; got {value!r}")
            if array.size > 1 << 16:
                raise ValueError(f"constants['{name}'] holds {array.size} values; a fixed input takes at most 65536")
            checked[name] = array
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in state.items()):
            raise ValueError(f"state must be a dict {{state input name: output name}}; got {state!r}")
        if len(set(state.values())) != len(state):
            raise ValueError(f"state pairs two inputs with the same output: {state!r}")
        shape = self.input_shape
        if shape is not None:
            if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
                shape = (shape,)
            try:
                shape = tuple(shape)
            except TypeError:
                raise ValueError(f"input_shape must be a tuple of positive ints; got {self.input_shape!r}") from None
            if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                                    for d in shape):
                raise ValueError(f"input_shape must be a tuple of positive ints; got {self.input_shape!r}")
            shape = tuple(int(d) for d in shape)
            if math.prod(shape) > 1 << 24:
                raise ValueError(f"input_shape {list(shape)} is too large for a streaming model")
        context = self.context
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
            raise ValueError(f"context must be an int >= 0 (input values kept from the previous step); got {context!r}")
        object.__setattr__(self, "constants", checked)
        object.__setattr__(self, "state", dict(state))
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "context", int(context))

    def fields(self) -> dict:
        """The options as plain Python values (JSON-ready): ``load(path, **options.fields())``."""
        return {"constants": {name: value.tolist() for name, value in self.constants.items()},
                "state": dict(self.state), "input_shape": self.input_shape and list(self.input_shape),
                "context": self.context}
