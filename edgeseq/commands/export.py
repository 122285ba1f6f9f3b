"""``edgeseq export MODEL.pt -o MODEL.onnx``: a trained PyTorch model to a checked streaming ONNX model."""

import click
from rich.console import Console

from ..paths import output_file
from .options import checking_options, reading_options


@click.command("export", short_help="Export MODEL.pt to a checked ONNX model.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="The ONNX file to write.")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx.export's exporter (see edgeseq_export.onnx_model.step_graph for why TorchScript).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the written model against PyTorch and ONNX Runtime.")
@click.option("--quantize", "quantize_mode", type=click.Choice(["int8", "fp16"]),
              help="Then store the weights as int8 (QDQ, per-channel) or fp16, and report the error.")
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="With --quantize: CSV or .npy of input rows to measure the error on.")
@reading_options
@checking_options
def command(model, output, quantize_mode, calibration, **options):
    """Export MODEL.pt (an edgeseq checkpoint, a state_dict or, with --trust-code, a TorchScript
    archive or a pickled nn.Module) to a streaming ONNX model, and check that PyTorch, ONNX
    Runtime and edgeseq agree on it. Nothing is written when they do not."""
    from edgeseq_export.api import export

    from ..compiling import announce
    from ..reports import print_checked

    if options["verify"] or quantize_mode:
        announce()
    console = Console()
    report = print_checked(console, lambda: export(model, output, **options))
    checked = "" if report.verification is not None else ", not verified"
    console.print(f"wrote {report.path} ({report.file_size:,} bytes) from {report.source} "
                  f"({report.form}) in {report.seconds:.1f} s{checked}", markup=False, highlight=False,
                  soft_wrap=True)
    if quantize_mode:
        from edgeseq_export.backends.quantize import quantize

        from .quantize import print_report

        print_report(quantize(output, output, quantize_mode, calibration=calibration))
