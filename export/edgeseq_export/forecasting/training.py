"""Training forecasters of edgeseq's model family on a series.

At every step the model sees the current row (the target, then any covariates) and forecasts
the target's next ``horizon`` values. It learns on windows of the training span (truncated
back-propagation through time), is scored on the validation span for early stopping, and
finally on the test span; validation and test forecasts come from one pass over the whole
series with the state carried, exactly as a device would stream it.

Designs (``TrainOptions.design``), each kept only where the validation span says so:

* ``plain``: the rows standardised inside the model (its checkpoint and graph carry mean and
  std), the forecasts put back in the data's units;
* ``seasonal``: the seasonal ends of ``forecasting.seasonal`` (a delay line of one season as
  state, seasonal changes in, residuals over the seasonal-naive forecast out);
* ``seasonal+level``: the same with the target's standardised level as one more input;
* ``3 seasons``: the baseline the mean of the last three seasons (a delay line of three), which
  tames a noisy season.

``auto`` (the default) trains each seasonal design that the training span has room for and
keeps the one with the lowest validation RMSE (the metrics record every candidate's); ``plain``
when the series has no season (or too short a history for a delay line). ``plain`` is not a
candidate beside the seasonal designs: on wineind its validation RMSE beat theirs (2,321 against
2,606 for the GRU) while its test RMSE lost to seasonal naive (3,286 against 2,703, the 3-season
design 2,195): over a short validation span, a network free to leave the baseline wins by
chance as often as not. Either way callers and runtimes deal in the data's units.

``ensemble=K`` trains K seeds of the chosen design and merges them into one network that
forecasts their mean (``forecasting.ensemble``), kept only when its validation RMSE beats the
first seed's. Off by default: on wineind, macrodata and elnino the 3-seed mean validated better in
7 of 9 cells, and its test RMSE improved in 1 of those 7 (wineind GRU, 2,195 -> 2,185) and
worsened in 6 (up to 5.5%).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..pytorch.models import ModelConfig, SequenceModel
from .ensemble import merge
from .scores import horizon_scores
from .series import Series, SeriesError, read_series, seasonal_period

CELLS = ("lstm", "gru", "rnn")
DESIGNS = {"plain": None, "seasonal": (1, False), "seasonal+level": (1, True), "3 seasons": (3, False)}
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
    season: int | None = None      # of the seasonal ends and the baseline; default: detected
    horizon: int = 1               # forecasts per step: the target 1..horizon steps ahead
    design: str = "auto"           # one of DESIGNS, or "auto": each, the best on validation kept
    ensemble: int = 1              # > 1: that many seeds of the chosen design, their mean kept if validation says so


@dataclass
class TrainResult:
    model: SequenceModel           # the best epoch's weights, in eval mode
    metrics: dict                  # test_rmse, test_mae, test_mase, naive_*, horizons, design, ...
    test_predictions: np.ndarray   # one step ahead, in the data's units, aligned with the test span
    history: list[dict] = field(default_factory=list)


def train_forecaster(series: Series, options: TrainOptions = TrainOptions(), on_epoch=None,
                     interruptible: bool = False) -> TrainResult:
    """Train (each design, with ``design="auto"``), early-stop on validation loss, keep the
    design with the best validation RMSE, and score it on the test span.

    ``on_epoch(epoch, epochs, train_loss, validation_rmse, early_stop)`` is called after every
    epoch (a progress display hooks in there); ``early_stop`` says that this epoch is the last,
    since the validation loss has not improved for ``patience`` epochs. Ctrl-C
    (KeyboardInterrupt) after the first epoch stops training early: the best epoch so far is
    scored and returned, with ``metrics["interrupted"]``. Runs on one thread: these models are
    too small to gain from more, and several threads fighting over a small machine's cores are
    many times slower; with denormal floats flushed to zero (PyTorch's default is restored after).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # Denormal floats off: a head started at zero sends tiny gradients back, and x86 computes
    # with denormals many times slower (a GRU epoch on co2 took 0.61 s with them, 0.21 s without)
    torch.set_flush_denormal(True)
    try:
        return _train(series, options, on_epoch, interruptible)
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


@dataclass
class _Fit:
    model: SequenceModel
    validation_rmse: float
    history: list[dict]
    interrupted: bool = False


def _train(series: Series, options: TrainOptions, on_epoch, interruptible: bool) -> TrainResult:
    if options.cell not in CELLS:
        raise ValueError(f"cell {options.cell!r}: expected one of {', '.join(CELLS)}")
    if options.design not in (*DESIGNS, "auto"):
        raise ValueError(f"design {options.design!r}: expected auto or one of {', '.join(DESIGNS)}")
    values = series.values
    val_start, test_start = series.split()
    horizon = options.horizon
    if val_start < MIN_WINDOW + horizon:  # checked first: nothing below is meaningful on fewer values
        raise SeriesError(f"{series.source}: {len(values)} values are too few to train on (the training "
                          f"span holds {val_start}; the shortest window takes {MIN_WINDOW + horizon})")
    season = options.season or seasonal_period(values[:val_start], longest=max(2, val_start // 3))
    window = options.window or max(MIN_WINDOW, min(val_start // 4, max(24, 2 * season), 192))
    designs = (options.design,)
    if options.design == "auto":  # the seasonal designs whose windows fit once their delay line is full
        designs = tuple(d for d in DESIGNS if d != "plain" and val_start >= _delay_line(d, season) + window + horizon
                        and season > 1) or ("plain",)
    if (val_start < _delay_line(designs[0], season) + window + horizon
            or test_start - season * math.ceil(horizon / season) < horizon):
        raise SeriesError(f"{series.source}: {len(values)} values are too few for a window of {window}, "
                          f"a season of {season} and a horizon of {horizon}")
    fits = {}
    for design in designs:
        fits[design] = _fit(series, design, options, season, window, val_start, test_start, on_epoch, interruptible)
        if fits[design].interrupted:
            break
    design = min(fits, key=lambda d: fits[d].validation_rmse)
    chosen = fits[design]
    ensemble = None
    if options.ensemble > 1 and not chosen.interrupted:
        chosen, ensemble = _ensemble(series, design, options, chosen, season, window, val_start, test_start, on_epoch,
                                     interruptible)
    forecasts = forecast_series(chosen.model, series.inputs)
    test = horizon_scores(forecasts, values, test_start, len(values), season, val_start)
    first = test[0]
    metrics = {
        "test_rmse": first["rmse"], "test_mae": first["mae"], "test_mase": first["mase"],
        "naive_rmse": first["naive_rmse"], "naive_mae": first["naive_mae"], "naive_mase": first["naive_mase"],
        "horizons": test, "design": design,
        "validation_rmse": chosen.validation_rmse,
        "candidates": {d: fit.validation_rmse for d, fit in fits.items()},
        "ensemble": ensemble,
        "season": season, "window": window, "horizon": horizon, "epochs": len(chosen.history),
        "parameters": sum(p.numel() for p in chosen.model.parameters()),
        "test_start": test_start, "validation_start": val_start,
        "interrupted": chosen.interrupted or any(fit.interrupted for fit in fits.values()),
    }
    return TrainResult(chosen.model, metrics, forecasts[test_start - 1:, 0], chosen.history)


def _ensemble(series: Series, design: str, options: TrainOptions, single: _Fit, season: int, window: int,
              val_start: int, test_start: int, on_epoch, interruptible: bool) -> tuple[_Fit, dict]:
    """``options.ensemble`` seeds of ``design`` (``single`` the first) merged into one model
    (``ensemble.merge``): kept when its validation RMSE beats ``single``'s; what was measured."""
    members = [single]
    for offset in range(1, options.ensemble):
        seeded = dataclasses.replace(options, seed=options.seed + offset)
        members.append(_fit(series, design, seeded, season, window, val_start, test_start, on_epoch, interruptible))
        if members[-1].interrupted:
            break
    merged = merge([member.model for member in members])
    forecasts = forecast_series(merged, series.inputs[:test_start])
    val_rmse = horizon_scores(forecasts[:, :1], series.values, val_start, test_start, season, val_start)[0]["rmse"]
    kept = val_rmse < single.validation_rmse
    record = {"seeds": len(members), "validation_rmse": val_rmse, "kept": kept,
              "members_validation_rmse": [member.validation_rmse for member in members]}
    fit = _Fit(merged, val_rmse, single.history, any(m.interrupted for m in members)) if kept else single
    return fit, record


def build_model(series: Series, design: str, options: TrainOptions, season: int, train_end: int) -> SequenceModel:
    """A fresh model of ``design`` whose scales come from ``series``'s training span."""
    inputs, values = series.inputs[:train_end], series.values[:train_end]
    seasons, level = DESIGNS[design] or (0, False)
    model = SequenceModel(ModelConfig(cell=options.cell, input_size=inputs.shape[1], hidden_size=options.hidden,
                                      num_layers=options.layers, dropout=options.dropout,
                                      outputs=options.horizon, normalise=not seasons,
                                      season=season if seasons else 0, level_input=level, seasons=max(1, seasons)))
    mean, std = inputs.mean(axis=0), _positive(inputs.std(axis=0))
    if seasons:
        span = seasons * season
        baseline = np.mean([values[span - j * season:len(values) - j * season] for j in range(1, seasons + 1)], axis=0)
        departures = values[span:] - baseline
        model.seasonal.set_scales(float(_positive(departures.std())), float(mean[0]), float(std[0]), mean[1:], std[1:])
        with torch.no_grad():  # the head starts at zero: the forecast starts as the baseline
            for parameter in model.head.parameters():
                parameter.zero_()
    else:
        model.set_normalisation(mean, std, np.full(options.horizon, mean[0]), np.full(options.horizon, std[0]))
    return model


def _fit(series: Series, design: str, options: TrainOptions, season: int, window: int, val_start: int,
         test_start: int, on_epoch, interruptible: bool) -> _Fit:
    """One design trained with early stopping on the validation span's RMSE (one step ahead)."""
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    model = build_model(series, design, options, season, val_start)
    unit = float(model.seasonal.scale) if model.seasonal is not None else float(model.output_std[0])
    windows = _windows(series, window, options.horizon, _delay_line(design, season), val_start)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    best, best_loss, stale, history = copy.deepcopy(model.state_dict()), math.inf, 0, []
    interrupted = False
    try:
        for epoch in range(1, options.epochs + 1):
            total = _epoch(model, optimizer, windows, options.batch_size, unit, generator)
            forecasts = forecast_series(model, series.inputs[:test_start])
            val_rmse = horizon_scores(forecasts[:, :1], series.values, val_start, test_start, season,
                                      val_start)[0]["rmse"]
            history.append({"epoch": epoch, "design": design, "train_loss": total, "validation_rmse": val_rmse})
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
    return _Fit(model, best_loss, history, interrupted)


def _epoch(model, optimizer, windows, batch_size: int, unit: float, generator) -> float:
    """One pass over the training windows in a random order; the mean training loss."""
    inputs, lags, targets = windows
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        state = None
        if lags is not None:  # the delay line starts full of the season before the window
            state = (*model.initial_state(len(batch))[:-1], lags[batch].unsqueeze(0))
        predicted, _ = model(inputs[batch], state)
        loss = torch.mean(((predicted - targets[batch]) / unit) ** 2)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(inputs)


def forecast_series(model: SequenceModel, inputs: np.ndarray) -> np.ndarray:
    """forecasts[t, h - 1] = the model's forecast of the target h steps after row t, streaming
    rows 0..t from the initial state: (len(inputs) - 1, horizon) float64 (``inputs`` (time,
    columns), or (time,) for the target alone)."""
    model.eval()
    rows = np.asarray(inputs, np.float32)
    rows = rows.reshape(len(rows), -1)[:-1]
    with torch.inference_mode():
        return model(torch.from_numpy(rows).unsqueeze(0))[0][0].double().numpy()


def one_step_predictions(model: SequenceModel, inputs: np.ndarray) -> np.ndarray:
    """predictions[t] = the model's forecast of the target at t + 1, streaming rows 0..t."""
    return forecast_series(model, inputs)[:, 0]


def _delay_line(design: str, season: int) -> int:
    """How many values a design's delay line holds (0: none)."""
    return (DESIGNS[design] or (0,))[0] * season


def _windows(series: Series, window: int, horizon: int, delay_line: int, end: int):
    """(inputs (count, window, columns), lags (count, delay_line) or None, targets (count,
    window, horizon)) for windows of the span before ``end`` starting every window/16 steps,
    once there is history to fill the delay line."""
    rows, values = series.inputs[:end], series.values[:end]
    stride = max(1, window // 16)
    starts = range(delay_line, end - window - horizon + 1, stride)
    x = np.stack([rows[s:s + window] for s in starts])
    y = np.stack([np.stack([values[s + 1 + h:s + window + 1 + h] for h in range(horizon)], axis=-1) for s in starts])
    lags = (torch.tensor(np.stack([values[s - delay_line:s] for s in starts]), dtype=torch.float32)
            if delay_line else None)
    return torch.tensor(x, dtype=torch.float32), lags, torch.tensor(y, dtype=torch.float32)


def _positive(spread):
    """A standard deviation to divide by: 1 where the data do not vary."""
    spread = np.asarray(spread, np.float64)
    return np.where(spread > 0, spread, 1.0)


def train_file(data, output=None, *, column: str | None = None, covariates: list[str] | None = None,
               missing: str = "error", header: bool | None = None, on_epoch=None, interruptible: bool = False,
               **options) -> tuple[Series, TrainResult]:
    """``edgeseq train`` and ``edgeseq.train``: read ``column`` (and the ``covariates``) of the
    CSV ``data`` through the one reader, train (``options`` are ``TrainOptions`` fields), and
    write the checkpoint to ``output`` when given; the series read and the result."""
    from ..pytorch.models import save_checkpoint

    series = read_series(data, column, covariates, header=header, missing=missing)
    train_options = TrainOptions(**options)
    result = train_forecaster(series, train_options, on_epoch=on_epoch, interruptible=interruptible)
    if output is not None:
        save_checkpoint(result.model, output, metrics=result.metrics,
                        training={"data": str(data), "column": series.name, "columns": series.columns,
                                  "missing": missing, **vars(train_options)})
    return series, result
