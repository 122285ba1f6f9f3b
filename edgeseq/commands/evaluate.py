"""``edgeseq evaluate MODEL DATA.csv``: a forecaster's test-span scores against seasonal naive."""

import json
import os

import click
from rich.console import Console
from rich.table import Table

from ..paths import output_file
from .train import data_options


@click.command("evaluate", short_help="Score a forecaster on a CSV against the seasonal-naive baseline.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@data_options
@click.option("--season", type=click.IntRange(min=1),
              help="The baseline's season [default: the model's own, else detected as train does].")
@click.option("--plot", type=click.Path(dir_okay=False), callback=output_file,
              help="Write a PNG of the test span: actual, the forecasts, the baseline (needs matplotlib).")
@click.option("--unit", help="The data's unit, for the plot's y axis (e.g. bottles).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def command(model, data, column, columns, missing, header, season, plot, unit, as_json):
    """Stream MODEL (.onnx through edgeseq's runtime, .pt through PyTorch) over DATA.csv from
    its start, and score its forecasts on the test span of `edgeseq train`'s split against the
    seasonal-naive baseline, per horizon step, in the data's units."""
    from edgeseq_export.forecasting.evaluation import evaluate
    from edgeseq_export.forecasting.plots import plot_forecasts

    result = evaluate(model, data, column=column, covariates=columns, missing=missing, header=header, season=season)
    if plot:
        label = f"{os.path.basename(model)} (RMSE {result.scores[0]['rmse']:.4g})"
        title = f"{result.series.name}: one-step-ahead forecasts, test span"
        lines = {label: result.forecasts[result.test_start - 1:, 0]}
        if not plot_forecasts(plot, result.series, result.test_start, lines, result.season, title, unit):
            raise click.UsageError("--plot needs matplotlib: pip install 'edgeseq[plot]'")
    if as_json:
        click.echo(json.dumps(result.summary()))
        return
    console = Console()
    console.print(result.series.read)
    table = Table(title=f"{model} on {result.series.name}, test span ({len(result.series.values) - result.test_start} "
                        f"steps)")
    for name in ("forecast", "h", "RMSE", "MAE", "MASE"):
        table.add_column(name, justify="left" if name == "forecast" else "right")
    for prefix, label in (("", "model"), ("naive_", f"seasonal naive ({result.season})")):
        for score in result.scores:
            table.add_row(label, str(score["horizon"]), f"{score[prefix + 'rmse']:.4g}", f"{score[prefix + 'mae']:.4g}",
                          f"{score[prefix + 'mase']:.3f}")
    console.print(table)
    if plot:
        console.print(f"plot: {plot}")
