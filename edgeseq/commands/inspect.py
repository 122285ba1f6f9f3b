"""``edgeseq inspect MODEL.onnx``: layers, parameter counts, state layout, metadata, file size."""

import click
from rich.console import Console

from .options import loading_options


@click.command("inspect", short_help="Show a model's layers, parameters and state layout.")
@click.argument("model", type=click.Path(dir_okay=False))
@loading_options
def command(model, load_options):
    """Print what MODEL.onnx holds and how edgeseq's runtime would stream it.

    Exits non-zero when the runtime cannot stream the model, after printing what it holds."""
    from edgeseq_export.onnx_model.inspection import inspect_model
    from edgeseq_runtime import ModelError

    from ..reports import inspection_tables

    inspection = inspect_model(model, load_options)
    console = Console()
    for table in inspection_tables(inspection):
        console.print(table)
    if inspection.not_streamable:
        raise ModelError(inspection.not_streamable)
