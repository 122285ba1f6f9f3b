"""``edgeseq inspect MODEL.onnx``: layers, parameter counts, state layout, metadata, file size."""

import click
from rich.console import Console


@click.command("inspect", short_help="Show a model's layers, parameters and state layout.")
@click.argument("model", type=click.Path(dir_okay=False))
def command(model):
    """Print what MODEL.onnx holds and how edgeseq's runtime would stream it.

    Exits non-zero when the runtime cannot stream the model, after printing what it holds."""
    from edgeseq_export.onnx_model.inspection import inspect_model
    from edgeseq_runtime import ModelError

    from ..reports import inspection_tables

    inspection = inspect_model(model)
    console = Console()
    for table in inspection_tables(inspection):
        console.print(table)
    if inspection.not_streamable:
        raise ModelError(inspection.not_streamable)
