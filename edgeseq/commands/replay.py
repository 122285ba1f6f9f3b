"""``edgeseq replay``: a fleet's recorded streams, each through its own state, into one Parquet file.

The work is ``edgeseq.fleet.replay``'s; this module parses the options, shows progress on a
terminal and reports skipped rows and totals on stderr.
"""

import threading

import click

from ..paths import output_file
from .options import loading_options


def _column_list(ctx, param, value):
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"'{value}' is not a list of column names separated by commas")
    return names


@click.command("replay", short_help="Replay many recorded streams, each from its own state, into Parquet.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="The Parquet file to write: one row per input row (key, order, outputs).")
@click.option("--key", required=True, help="The column whose values name the streams.")
@click.option("--order", help="The column that orders each stream's rows [default: file order].")
@click.option("--columns", metavar="A,B,...", callback=_column_list,
              help="The input features [default: every numeric column but key and order].")
@click.option("--states", type=click.Path(file_okay=False), metavar="DIR",
              help="Write each stream's final state to DIR/<key>.state (created if missing).")
@click.option("--resume", is_flag=True,
              help="Start each stream from its state file in --states DIR (a stream without one: from the "
                   "initial state).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="This machine's cores, or a Ray cluster.")
@click.option("--address", help="The Ray cluster to use [default: RAY_ADDRESS, else one started for the run].")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="On a row with NaN or Inf (or one the model refuses): stop, or report it and skip it.")
@loading_options
def command(model, data, output, key, order, columns, states, resume, engine, address, on_error, load_options):
    """Replay every stream of DATA (Parquet or CSV, rows in any order) through MODEL."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ..compiling import announce
    from ..fleet.replay import replay_to_file

    if resume and not states:
        raise click.UsageError("--resume needs --states DIR")
    if address and engine != "ray":
        raise click.UsageError("--address is for --engine ray")
    announce()
    console = Console(stderr=True)
    bar = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                   TextColumn("{task.fields[streams]:,} streams"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                   console=console, disable=not console.is_terminal, transient=True)
    with bar:
        task = bar.add_task("replay", total=None, streams=0, rate="")
        done = {"streams": 0}
        lock = threading.Lock()  # the local engine's threads report as they finish

        def progress(streams, rows):
            with lock:
                done["streams"] += streams
                bar.update(task, advance=rows, streams=done["streams"])
                speed = bar.tasks[0].speed
                bar.update(task, rate=f"{speed:,.0f} steps/s" if speed else "")

        summary = replay_to_file(output, model, data, key=key, order=order, columns=columns, states=states,
                                 resume=resume, engine=engine, address=address, on_error=on_error,
                                 load_options=load_options, progress=progress)
    for line in summary.skipped:
        click.echo(f"edgeseq: skipped {line}", err=True)
    if summary.skipped_count > len(summary.skipped):
        click.echo(f"edgeseq: skipped {summary.skipped_count - len(summary.skipped):,} more rows", err=True)
    click.echo(f"edgeseq: replayed {summary.streams:,} streams, {summary.steps:,} steps into {output}"
               + (f"; final states in {states}" if states else ""), err=True)
