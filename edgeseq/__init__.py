"""edgeseq: put LSTM, GRU and RNN models on edge devices.

The on-device API is the runtime's, re-exported here::

    import edgeseq
    m = edgeseq.load("model.onnx")
    y = m.step(x)

Host-side tools (export, quantization, code generation) import torch and onnxruntime, so they
are loaded only when used.
"""

from edgeseq_runtime import EdgeseqError, LoadOptions, ModelError, StreamingModel, load

__version__ = "0.1.0"
__all__ = ["EdgeseqError", "LoadOptions", "ModelError", "StreamingModel", "evaluate", "export", "load", "quantize",
           "replay", "train", "verify", "__version__"]


def export(model_or_path, path, **options):
    """Export MODEL.pt (or an ``nn.Module``) to a streaming ONNX model that PyTorch, ONNX Runtime
    and edgeseq are checked to agree on; returns the report with the differences.

    The options are ``edgeseq_export.api.export``'s. Needs edgeseq-export (and so torch).
    """
    from edgeseq_export.api import export as export_model

    return export_model(model_or_path, path, **options)


def verify(path, reference=None, **options):
    """Run ``export``'s check on an exported model again, against ``reference`` if given; a
    model edgeseq did not export is checked against ONNX Runtime (``load_options=LoadOptions(...)``
    says how to load it).

    The options are ``edgeseq_export.api.verify``'s. Needs edgeseq-export.
    """
    from edgeseq_export.api import verify as verify_model

    return verify_model(path, reference, **options)


def quantize(path, output, mode="int8", **options):
    """Store the ONNX model's weights as int8 (QDQ, per-channel) or fp16 in ``output``; returns
    the report (file sizes, output errors against the original).

    The options are ``edgeseq_export.backends.quantize.quantize``'s. Needs edgeseq-export.
    """
    from edgeseq_export.backends.quantize import quantize as quantize_model

    return quantize_model(path, output, mode, **options)


def replay(model, data, *, key, order=None, columns=None, states=None, resume=False, engine="local", address=None,
           **options):
    """Replay every stream of ``data`` (Parquet or CSV; one stream per ``key`` value) through
    ``model`` from its own state: a ``pyarrow.Table`` of one output row per input row, the numbers
    of ``load(model).run(rows of that key)``.

    The arguments and ``options`` (``on_error``, ``load_options``) are ``edgeseq.fleet.replay.replay``'s.
    Needs pyarrow (and Ray for ``engine="ray"``).
    """
    from .fleet.replay import replay as replay_fleet

    return replay_fleet(model, data, key=key, order=order, columns=columns, states=states, resume=resume,
                        engine=engine, address=address, **options)


def train(data, output=None, **options):
    """Train a forecaster on a CSV (what ``edgeseq train`` runs) and write its checkpoint to
    ``output`` when given; returns the result: ``.model`` (PyTorch, eval mode) and ``.metrics``
    (test RMSE, MAE and MASE beside seasonal naive's, per horizon step under ``horizons``, the
    design validation chose).

    The options say how the CSV is read (``column``, ``covariates``, ``missing``, ``header``)
    and how to train (``edgeseq_export.forecasting.training.TrainOptions``'s fields: ``cell``,
    ``horizon``, ``design``, ``season``, ``epochs``, ``seed``, ...). Needs edgeseq-export.
    """
    from edgeseq_export.forecasting.training import train_file

    return train_file(data, output, **options)[1]


def evaluate(model, data, **options) -> dict:
    """Score MODEL.onnx or MODEL.pt on a CSV against the seasonal-naive baseline (what
    ``edgeseq evaluate --json`` prints); the options are ``column``, ``covariates``, ``missing``,
    ``header`` and ``season``. Needs edgeseq-export.
    """
    from edgeseq_export.forecasting.evaluation import evaluate as evaluate_model

    return evaluate_model(model, data, **options).summary()
