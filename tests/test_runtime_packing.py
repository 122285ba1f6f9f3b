"""A plan's code and weights packed in one array (kernels.packing): each part starts on a cache
line in memory, not only in the array (the one-row tiles load 64 bytes of weights at a time, and
a load across two lines costs two), and holds what it was given."""

import numpy as np
import pytest
from edgeseq_runtime.kernels.packing import pack


@pytest.mark.parametrize("floats", [1, 5, 4096, 70_000])
def test_every_part_starts_on_a_cache_line(floats):
    rng = np.random.default_rng(floats)
    for _ in range(8):  # numpy's allocator promises 16 bytes: one array in four is aligned by chance
        code = rng.integers(-9, 9, 3 + floats % 7).astype(np.int64)
        weights = rng.standard_normal(floats).astype(np.float32)
        qweights = rng.integers(-127, 128, floats + 3).astype(np.int8)
        model, *views = pack(code, weights, qweights)
        for given, packed in zip((code, weights, qweights), views):
            assert packed.ctypes.data % 64 == 0
            assert np.shares_memory(packed, model)
            np.testing.assert_array_equal(packed, given)
