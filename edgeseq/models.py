"""edgeseq's PyTorch model family and its checkpoints (imports torch).

    from edgeseq.models import SequenceModel, save_checkpoint, load_checkpoint
    model = SequenceModel(cell="gru", input_size=1, hidden_size=32, outputs=1, normalise=True)
    model.set_normalisation(input_mean=[m], input_std=[s], output_mean=[m], output_std=[s])
    ...train: y, state = model(x) with x (batch, time, input_size)...
    save_checkpoint(model, "model.pt", metrics={"val_rmse": 0.12})   # then: edgeseq export model.pt

The code lives in ``edgeseq_export.pytorch.models``: the exporter rebuilds these models from their
checkpoints, and the toolchain package must not depend on this one.
"""

from edgeseq_export.pytorch.models import (
    TASKS,
    Checkpoint,
    ModelConfig,
    SequenceModel,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["TASKS", "Checkpoint", "ModelConfig", "SequenceModel", "load_checkpoint", "save_checkpoint"]
