"""``edgeseq verify MODEL.onnx [--reference MODEL.pt]``: the export's check, run again later."""

import click
from rich.console import Console

from .options import checking_options, loading_options, reading_options


@click.command("verify", short_help="Check ONNX Runtime, edgeseq (and PyTorch) agree on a model.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--reference", type=click.Path(dir_okay=False),
              help="The PyTorch model to compare with (any form export reads); without it, ONNX "
                   "Runtime and edgeseq are compared with each other.")
@reading_options
@checking_options
@loading_options
def command(model, reference, load_options, **options):
    """Stream a random sequence through MODEL.onnx with ONNX Runtime and edgeseq (and PyTorch,
    given --reference) and print the largest differences; exit 1 when they exceed the tolerance.
    Options for reading the reference default to those MODEL.onnx was exported with."""
    from edgeseq_export.api import verify

    from ..compiling import announce
    from ..reports import print_checked

    announce()
    print_checked(Console(), lambda: verify(model, reference, load_options=load_options, **options))
