"""``edgeseq train DATA.csv --cell lstm -o MODEL.pt``: a one-step-ahead forecaster from a CSV column."""

from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..paths import output_file


@click.command("train", short_help="Train an LSTM, GRU or RNN forecaster on a CSV column.")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True,
              help="The recurrent cell.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="The checkpoint to write.")
@click.option("--column", help="The column to forecast [default: the last numeric column].")
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
              help="Season length for the seasonal-naive baseline [default: detected].")
def command(data, cell, output, column, window, hidden, layers, dropout, epochs, lr, seed, season):
    """Train a CELL forecaster on a column of DATA.csv (chronological train / validation / test
    split, early stopping), print its test RMSE and MAE next to a seasonal-naive baseline, and
    write an edgeseq checkpoint that `edgeseq export` takes as is."""
    from edgeseq_export.forecasting.series import read_series
    from edgeseq_export.forecasting.training import TrainOptions, train_forecaster
    from edgeseq_export.pytorch.models import save_checkpoint

    series = read_series(data, column)
    options = TrainOptions(cell=cell, hidden=hidden, layers=layers, window=window, epochs=epochs, lr=lr,
                           seed=seed, dropout=dropout, season=season)
    with training_progress() as for_model:
        result = train_forecaster(series, options, on_epoch=for_model(f"{cell} on {series.name}"), interruptible=True)
    save_checkpoint(result.model, output, metrics=result.metrics,
                    training={"data": data, "column": series.name, **vars(options)})
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
    """Test RMSE and MAE of each model next to the seasonal-naive baseline, in data units."""
    table = Table(title=f"one-step-ahead forecasts of {column}, test span")
    for name in ("model", "test RMSE", "test MAE", "parameters", "epochs"):
        table.add_column(name, justify="left" if name == "model" else "right")
    naive = next(iter(metrics_by_model.values()))
    for name, m in metrics_by_model.items():
        table.add_row(name, f"{m['test_rmse']:.4g}", f"{m['test_mae']:.4g}", f"{m['parameters']:,}", str(m["epochs"]))
    table.add_row(f"seasonal naive (season {naive['season']})", f"{naive['naive_rmse']:.4g}",
                  f"{naive['naive_mae']:.4g}", "", "")
    Console().print(table)
