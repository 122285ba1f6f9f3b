"""``edgeseq inspect MODEL.onnx``: layers, parameter counts, state layout, metadata, file size."""

import click
from rich.console import Console


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
def command(model):
    """Print what MODEL.onnx holds and how edgeseq's runtime would stream it."""
    from edgeseq_export.inspection import inspect_model

    from ..reports import inspection_tables

    console = Console()
    for table in inspection_tables(inspect_model(model)):
        console.print(table)
