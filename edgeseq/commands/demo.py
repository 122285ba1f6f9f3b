"""``edgeseq demo``: the whole toolkit on two real series, ending in one table per series."""

import os
from importlib import resources

import click
from rich.console import Console
from rich.table import Table

from .train import training_progress

DATASETS = {"wineind.csv": "bottles", "taylor.csv": "MW"}  # file -> the unit of its values


@click.command("demo", short_help="Train, export, quantize and time forecasters on shipped data.")
@click.option("--out", default="edgeseq-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where to write checkpoints, ONNX files, the C code and the plots.")
@click.option("--quick", is_flag=True, help="A few epochs and short timings: a smoke run.")
def command(out, quick):
    """Train RNN, LSTM and GRU forecasters on monthly wine sales and half-hourly electricity
    demand (shipped with edgeseq), export and quantize them, stream them with edgeseq and ONNX
    Runtime, and compare them with a seasonal-naive baseline (RMSE and MASE). Writes its
    artefacts to --out, with a plot of each series' test span (dates on x, the baseline drawn)."""
    from edgeseq_export.backends.codegen import generate
    from edgeseq_export.forecasting.demo import plot, run_study
    from edgeseq_export.forecasting.series import read_series

    from ..compiling import announce

    console = Console()
    announce()  # the first export's check compiles the runtime's kernels on a new install
    epochs, calls = (3, 200) if quick else (60, 2000)
    tables, best = [], None
    for name in DATASETS:
        with resources.as_file(resources.files("edgeseq") / "data" / name) as data:
            series = read_series(data)
        folder = os.path.join(out, name.removesuffix(".csv"))
        with training_progress() as for_model:
            rows = run_study(series, folder, epochs, calls,
                             progress=lambda cell: for_model(f"{cell.upper()} on {name}"))
        tables.append(_table(name, rows))
        if plot(series, rows, os.path.join(folder, "forecast.png"), DATASETS[name]):
            console.print(f"plot: {os.path.join(folder, 'forecast.png')}")
        models = [r for r in rows if r.onnx_path]
        best = min(models, key=lambda r: r.test_rmse)
    generated = generate(best.onnx_path, os.path.join(out, "c"), name="forecaster")
    for table in tables:
        console.print(table)
    console.print(f"C code for the best {best.dataset} model ({best.model}): {os.path.join(out, 'c')} "
                  f"({generated.flash_bytes:,} bytes of flash data, {generated.ram_bytes:,} bytes of RAM)")


def _table(name, rows) -> Table:
    designs = ", ".join(f"{r.model} {r.design}" for r in rows if r.design)
    table = Table(title=f"{name}: one-step-ahead forecasts, test span",
                  caption=f"RMSE in the data's units, MASE against the training span's seasonal naive; file sizes "
                          f"in bytes; µs per step() from Python, edgeseq vs ONNX Runtime, one thread; designs "
                          f"chosen on validation: {designs}")
    columns = ["model", "RMSE", "MASE", "params", "fp32", "int8", "int8 RMSE", "edgeseq", "ORT"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        table.add_row(r.model, f"{r.test_rmse:.4g}", f"{r.test_mase:.3f}", _maybe(r.parameters, "{:,}"), _maybe(r.fp32_bytes, "{:,}"),
                      _maybe(r.int8_bytes, "{:,}"), _maybe(r.int8_rmse, "{:.4g}"), _maybe(r.edgeseq_us, "{:.1f}"),
                      _maybe(r.onnxruntime_us, "{:.1f}"))
    return table


def _maybe(value, pattern: str) -> str:
    return "" if value is None else pattern.format(value)
