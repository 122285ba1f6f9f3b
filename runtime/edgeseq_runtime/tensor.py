"""The values a lowering produces besides constants: run-time tensors and state slots."""

from dataclasses import dataclass

import math
import numpy as np


@dataclass(frozen=True)
class Tensor:
    """A run-time tensor: ``shape`` stored row-major at ``offset`` in the arena."""
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def addresses(self) -> np.ndarray:
        """The arena address of every element, shaped like the tensor."""
        return self.offset + np.arange(self.size, dtype=np.int64).reshape(self.shape)


@dataclass
class StateSlot:
    """A piece of recurrent state: a named arena region, updated in place by its node."""
    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)
