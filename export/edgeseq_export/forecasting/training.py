"""Training one-step-ahead forecasters of edgeseq's model family on a series.

The model sees the current value and predicts the next at every step. It learns on windows of
the training span (truncated back-propagation through time), is scored on the validation span
for early stopping, and finally on the test span; validation and test predictions come from
one pass over the whole series with the state carried, exactly as a device would stream it.
Values are normalised inside the model (its checkpoint and ONNX graph carry mean and std), so
callers and runtimes deal in the data's own units.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..pytorch.models import ModelConfig, SequenceModel
from .series import Series, SeriesError, mae, rmse, seasonal_naive, seasonal_period

CELLS = ("lstm", "gru", "rnn")
MIN_WINDOW = 8  # steps: a shorter training window teaches a recurrent network next to nothing


@dataclass(frozen=True)
class TrainOptions:
    cell: str = "lstm"
    hidden: int = 32
    layers: int = 1
    window: int | None = None      # training window; default from the season and the data size
    epochs: int = 80
    lr: float = 0.01
    batch_size: int = 32
    dropout: float = 0.0
    patience: int = 15             # epochs without a better validation loss before stopping
    seed: int = 0
    season: int | None = None      # for the seasonal-naive baseline; default: detected


@dataclass
class TrainResult:
    model: SequenceModel           # the best epoch's weights, in eval mode
    metrics: dict                  # test_rmse, test_mae, naive_rmse, naive_mae, ...
    test_predictions: np.ndarray   # in the data's units, aligned with the test span
    history: list[dict] = field(default_factory=list)


def train_forecaster(series: Series, options: TrainOptions = TrainOptions(), on_epoch=None,
                     interruptible: bool = False) -> TrainResult:
    """Train, early-stop on validation loss, and score on the test span.

    ``on_epoch(epoch, epochs, train_loss, validation_rmse, early_stop)`` is called after every
    epoch (a progress display hooks in there); ``early_stop`` says that this epoch is the last,
    since the validation loss has not improved for ``patience`` epochs. Ctrl-C (KeyboardInterrupt) after the first epoch stops
    training early: the best epoch so far is scored and returned, with ``metrics["interrupted"]``. Runs on one thread: these models are too small to gain
    from more, and several threads fighting over a small machine's cores are many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(series, options, on_epoch, interruptible)
    finally:
        torch.set_num_threads(threads)


def _train(series: Series, options: TrainOptions, on_epoch, interruptible: bool) -> TrainResult:
    if options.cell not in CELLS:
        raise ValueError(f"cell {options.cell!r}: expected one of {', '.join(CELLS)}")
    values = series.values
    val_start, test_start = series.split()
    if val_start < MIN_WINDOW + 1:  # checked first: nothing below is meaningful on fewer values
        raise SeriesError(f"{series.source}: {len(values)} values are too few to train on (the training "
                          f"span holds {val_start}; the shortest window takes {MIN_WINDOW + 1})")
    season = options.season or seasonal_period(values[:val_start], longest=max(2, val_start // 3))
    window = options.window or max(MIN_WINDOW, min(val_start // 4, max(24, 2 * season), 192))
    if val_start < window + 1 or test_start - season < 0:
        raise SeriesError(f"{series.source}: {len(values)} values are too few for a window of {window} "
                          f"and a season of {season}")
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    model = SequenceModel(ModelConfig(cell=options.cell, input_size=1, hidden_size=options.hidden,
                                      num_layers=options.layers, dropout=options.dropout, normalise=True))
    train = values[:val_start]
    mean, std = float(train.mean()), float(train.std()) or 1.0
    model.set_normalisation(torch.tensor([mean]), torch.tensor([std]), torch.tensor([mean]), torch.tensor([std]))
    inputs, targets = _windows(train, window)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    best, best_loss, stale, history = copy.deepcopy(model.state_dict()), math.inf, 0, []
    interrupted = False
    try:
        for epoch in range(1, options.epochs + 1):
            total = _epoch(model, optimizer, inputs, targets, options.batch_size, std, generator)
            predictions = one_step_predictions(model, values)
            val_rmse = rmse(predictions[val_start - 1:test_start - 1], values[val_start:test_start])
            history.append({"epoch": epoch, "train_loss": total, "validation_rmse": val_rmse})
            if val_rmse < best_loss:
                best, best_loss, stale = copy.deepcopy(model.state_dict()), val_rmse, 0
            else:
                stale += 1
            early_stop = stale >= options.patience
            if on_epoch is not None:
                on_epoch(epoch, options.epochs, total, val_rmse, early_stop)
            if early_stop:
                break
    except KeyboardInterrupt:  # Ctrl-C stops training early: the best epoch so far is kept
        if not interruptible or not history:
            raise
        interrupted = True
    model.load_state_dict(best)
    model.eval()
    predictions = one_step_predictions(model, values)[test_start - 1:]
    actual = values[test_start:]
    naive = seasonal_naive(values, test_start, season)
    metrics = {
        "test_rmse": rmse(predictions, actual), "test_mae": mae(predictions, actual),
        "naive_rmse": rmse(naive, actual), "naive_mae": mae(naive, actual),
        "validation_rmse": best_loss, "season": season, "window": window, "epochs": len(history),
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_start": test_start, "validation_start": val_start, "interrupted": interrupted,
    }
    return TrainResult(model, metrics, predictions, history)


def _epoch(model, optimizer, inputs, targets, batch_size: int, std: float, generator) -> float:
    """One pass over the training windows in a random order; the mean training loss."""
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        predicted, _ = model(inputs[batch])
        loss = torch.mean(((predicted - targets[batch]) / std) ** 2)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(inputs)


def one_step_predictions(model: SequenceModel, values: np.ndarray) -> np.ndarray:
    """predictions[t] = the model's forecast of values[t + 1], streaming values[0..t]."""
    model.eval()
    with torch.inference_mode():
        x = torch.tensor(values[:-1], dtype=torch.float32).reshape(1, -1, 1)
        return model(x)[0].reshape(-1).double().numpy()


def _windows(values: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, next values) for windows starting every window/16 steps: (count, window, 1) each."""
    stride = max(1, window // 16)
    starts = range(0, len(values) - window, stride)
    x = np.stack([values[s:s + window] for s in starts])
    y = np.stack([values[s + 1:s + window + 1] for s in starts])
    return (torch.tensor(x, dtype=torch.float32).unsqueeze(-1),
            torch.tensor(y, dtype=torch.float32).unsqueeze(-1))
