"""``edgeseq train DATA.csv --cell lstm -o MODEL.pt``: a one-step-ahead forecaster from a CSV column."""

import os
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..paths import output_file


def data_options(command):
    """The options by which every command that reads a series reads its CSV (``train``,
    ``evaluate``): the one reader's rules (``edgeseq_export.rows``)."""
    options = [
        click.option("--column", help="The column to forecast [default: the last numeric column]."),
        click.option("--columns", callback=lambda ctx, param, value: value.split(",") if value else None,
                     help="Covariates: more columns the step takes after the target, comma-separated."),
        click.option("--missing", type=click.Choice(["error", "drop", "interpolate"]), default="error",
                     show_default=True, help="A missing value (blank, NA, NaN): an error naming its line, its row "
                                             "dropped, or filled linearly between its neighbours."),
        click.option("--header/--no-header", default=None,
                     help="Whether the first line names the columns [default: detected, and said]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("train", short_help="Train an LSTM, GRU or RNN forecaster on a CSV column.")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True,
              help="The recurrent cell.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="The checkpoint to write.")
@data_options
@click.option("--horizon", type=click.IntRange(min=1), default=1, show_default=True,
              help="Forecasts per step: the target 1..H steps ahead (the step emits H values).")
@click.option("--design", type=click.Choice(["auto", "plain", "seasonal", "seasonal+level", "3 seasons"]),
              default="auto", show_default=True,
              help="What the model keeps around the network; auto: the seasonal designs, the best on validation.")
@click.option("--ensemble", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train this many seeds of the chosen design; their mean (one network) is kept if it "
                   "validates better.")
@click.option("--window", type=click.IntRange(min=2), help="Training window in steps [default: from the season].")
@click.option("--hidden", type=click.IntRange(min=1), default=32, show_default=True, help="Units per recurrent layer.")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout between stacked layers while training.")
@click.option("--epochs", type=click.IntRange(min=1), default=80, show_default=True,
              help="Most epochs; training stops earlier when validation stops improving (Ctrl-C too).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Adam's learning rate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights and batch order: same seed, same model.")
@click.option("--season", type=click.IntRange(min=1),
              help="Season length of the seasonal designs and the seasonal-naive baseline [default: detected].")
def command(data, cell, output, column, columns, missing, header, horizon, design, ensemble, window, hidden, layers,
            dropout, epochs, lr, seed, season):
    """Train a CELL forecaster on a column of DATA.csv (chronological train / validation / test
    split, early stopping), print its test RMSE, MAE and MASE next to a seasonal-naive baseline,
    and write an edgeseq checkpoint that `edgeseq export` takes as is. The step takes the
    target, then the --columns covariates, in the data's units, and gives the forecasts in them."""
    from edgeseq_export.forecasting.training import train_file

    with training_progress() as for_model:
        series, result = train_file(data, output, column=column, covariates=columns, missing=missing, header=header,
                                    on_epoch=for_model(f"{cell} on {os.path.basename(data)}"),
                                    interruptible=True, cell=cell, hidden=hidden, layers=layers, window=window,
                                    epochs=epochs, lr=lr, seed=seed, dropout=dropout, season=season, horizon=horizon,
                                    design=design, ensemble=ensemble)
    Console().print(series.read)
    print_scores(series.name, {cell: result.metrics})
    if result.metrics["interrupted"]:
        Console().print(f"interrupted after {result.metrics['epochs']} epochs: kept the best epoch so far")
    Console().print(f"wrote {output}")


class ModelProgress:
    """One model's line in a progress display: called after every epoch (the ``on_epoch``
    callback of ``train_forecaster``), and told each later phase of work on the model."""

    def __init__(self, progress: Progress, label: str):
        self._progress = progress
        self._task = progress.add_task(label, total=None, status="")

    def __call__(self, epoch, epochs, loss, val_rmse, early_stop):
        status = f"epoch {epoch}/{epochs}  loss {loss:.4f}  val RMSE {val_rmse:.4g}"
        if early_stop:  # a full bar: stopping early is success, not a run cut short
            epochs, status = epoch, f"{status}  (stopped early: no better validation RMSE)"
        self._progress.update(self._task, completed=epoch, total=epochs, status=status)

    def phase(self, text: str) -> None:
        task = self._progress.tasks[self._task]
        self._progress.update(self._task, total=task.completed or 1, completed=task.completed or 1, status=text)


@contextmanager
def training_progress():
    """A rich progress display; yields ``for_model(label)``, which adds a line for one model
    and returns its ``ModelProgress``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                  TimeElapsedColumn()) as progress:
        yield lambda label: ModelProgress(progress, label)


def print_scores(column: str, metrics_by_model: dict) -> None:
    """Test RMSE, MAE and MASE of each model (per horizon step h) next to the seasonal-naive
    baseline, in the data's units, and the design validation chose."""
    details = "; ".join(f"{name}: {m['design']} design, {m['parameters']:,} parameters, {m['epochs']} epochs"
                        for name, m in metrics_by_model.items())
    table = Table(title=f"forecasts of {column}, test span", caption=details)
    for name in ("model", "h", "test RMSE", "test MAE", "MASE"):
        table.add_column(name, justify="left" if name == "model" else "right")
    naive = next(iter(metrics_by_model.values()))
    for name, m in metrics_by_model.items():
        for h in m["horizons"]:
            table.add_row(name, str(h["horizon"]), f"{h['rmse']:.4g}", f"{h['mae']:.4g}", f"{h['mase']:.3f}")
    for h in naive["horizons"]:
        table.add_row(f"seasonal naive ({naive['season']})", str(h["horizon"]), f"{h['naive_rmse']:.4g}",
                      f"{h['naive_mae']:.4g}", f"{h['naive_mase']:.3f}")
    Console().print(table)
