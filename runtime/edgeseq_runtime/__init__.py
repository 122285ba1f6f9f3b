"""edgeseq's on-device runtime: stream ONNX LSTM / GRU / RNN models one time step at a time.

    import edgeseq_runtime as edgeseq
    m = edgeseq.load("model.onnx")
    y = m.step(x)

Depends on numpy, numba and onnx only: never on torch or onnxruntime.
"""

import os

from .collector import paused_for_long_lived_objects

with paused_for_long_lived_objects():  # numba, onnx and the kernels: see collector
    from . import numba_cache

    numba_cache.choose()  # before any kernel is defined: a read-only install needs a cache elsewhere
    numba_cache.stamp_with_runtime_sources()  # before any kernel is defined too: see numba_cache

    from .errors import EdgeseqError, ModelError
    from .graph import read_model
    from .load_options import LoadOptions
    from .lowering import LoweredModel, lower
    from .model import StreamingModel
    from .numba_cache import kernels_cached

__version__ = "0.1.0"
__all__ = [
    "EdgeseqError",
    "LoadOptions",
    "LoweredModel",
    "ModelError",
    "StreamingModel",
    "__version__",
    "kernels_cached",
    "load",
    "lower_model",
]


def load(path, batch: int = 1, *, constants=None, state=None, input_shape=None, context: int = 0) -> StreamingModel:
    """Load an ONNX model for ``batch`` parallel streams, ready to ``step``.

    For a graph edgeseq did not export: ``constants`` fixes graph inputs at load time
    ({name: value}, e.g. Silero VAD's ``{"sr": 16000}``), ``state`` pairs state inputs with the
    outputs that carry their next values where names do not tell ({input: output}),
    ``input_shape`` gives one stream's step input shape where the graph leaves dims symbolic, and
    ``context=N`` keeps each stream's last N input values in front of the next step's new ones
    (Silero VAD: 64 samples before each 512)."""
    options = LoadOptions(constants, state, input_shape, context)
    with paused_for_long_lived_objects():  # numba's registries, built by its first cache load
        return StreamingModel(lower_model(path, batch, options), batch, os.fspath(path))


def lower_model(path, batch: int = 1, options: LoadOptions | None = None, *, lean: bool = False,
                **fields) -> LoweredModel:
    """Read and lower an ONNX model into the plan that the runtime (and generated C) executes;
    ``options`` (or its fields by name: constants, state, input_shape, context) as for ``load``.
    ``lean``: the plan with the least arena rather than the fastest (a Conv computes one output
    position at a time), what code generation makes for microcontrollers."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int; got {batch!r}")
    if fields:
        if options is not None:
            raise TypeError("give lower_model either options or its fields, not both")
        options = LoadOptions(**fields)
    path = os.fspath(path)
    return lower(read_model(path), path, batch, options, lean)
