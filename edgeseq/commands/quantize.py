"""``edgeseq quantize``: int8 or fp16 weights, with a report of what it costs."""

import click
from rich.console import Console
from rich.table import Table

from ..paths import output_file
from .options import loading_options


@click.command("quantize", short_help="Store a model's weights as int8 or fp16; report the error.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="The quantized ONNX file.")
@click.option("--mode", type=click.Choice(["int8", "fp16"]), default="int8", show_default=True,
              help="int8: per-channel weights behind DequantizeLinear; fp16: half-size weights, float32 math.")
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="What to measure the error on: a CSV or .npy of input rows, or a mono PCM WAV cut into "
                   "steps of the step input's size (Silero VAD: 576 samples, or 512 with --context 64) "
                   "[default: random inputs].")
@click.option("--column", "columns", metavar="NAME[,NAME...]",
              callback=lambda ctx, param, value: value.split(",") if value else None,
              help="The CSV columns to read from --calibration [default: those the model was trained on, "
                   "else every numeric column].")
@click.option("--tolerance", type=float,
              help="The largest output error allowed. int8 keeps float (fp16, else float32) the weights whose "
                   "int8 form would exceed it, measured over the calibration (GPTQ fitted on its first half) and, "
                   "for a WAV, louder, quieter, noisier, faster and slower copies of it; exit non-zero when no "
                   "weight can be int8 within it.")
@loading_options
def command(model, output, mode, calibration, columns, tolerance, load_options):
    """Store MODEL's weights as int8 (QDQ, per-channel) or fp16, and report the error."""
    from edgeseq_export.backends.quantize import QuantizationError, quantize

    from ..compiling import announce

    announce()
    report = quantize(model, output, mode=mode, calibration=calibration, tolerance=tolerance, columns=columns,
                      load_options=load_options)
    print_report(report)
    if not report.passed:
        raise QuantizationError(f"{output}: largest output error {report.max_abs_error:.3g} exceeds "
                                f"the tolerance {tolerance:g}; nothing was written")


def print_report(report) -> None:
    """The quantization report as a table on stdout."""
    table = Table(title=f"{report.mode} quantization of {report.source}")
    table.add_column("")
    table.add_column("fp32", justify="right")
    table.add_column(report.mode, justify="right")
    table.add_row("file bytes", f"{report.bytes_before:,}",
                  f"{report.bytes_after:,} ({report.size_ratio:.0%})")
    for name, (before, after) in report.task_metric.items():
        table.add_row(name, f"{before:.4g}", f"{after:.4g}")
    variants = f" and {len(report.variants)} variants of them" if report.variants else ""
    table.add_row(f"output error over {report.steps} steps{variants}", "",
                  f"max {report.max_abs_error:.3g}, mean {report.mean_abs_error:.3g}")
    if report.precisions:
        table.add_row("weight tensors", f"{len(report.precisions)}",
                      ", ".join(f"{report.count(p)} {p}" for p in ("int8", "fp16", "float32") if report.count(p)))
    Console().print(table)
    for precision in ("fp16", "float32"):
        kept = sorted(name for name, stored in report.precisions.items()
                      if stored == precision and name not in report.unreached)
        if kept:
            Console().print(f"kept in {precision} to stay within {report.tolerance:g}: {', '.join(kept)}")
    if report.nearest_because:
        Console().print(f"int8 weights rounded to nearest: {report.nearest_because}")
    elif report.rounding:
        Console().print(f"int8 weights rounded by GPTQ on the calibration steps: {len(report.rounding)}")
    if report.unreached:
        Console().print(f"never run by the calibration (unmeasured): {', '.join(report.unreached)}")
    if report.passed:
        Console().print(f"wrote {report.output} ({len(report.quantized)} weight tensors converted)")
