"""``edgeseq bench MODEL.onnx``: how fast and how small, next to ONNX Runtime (and PyTorch)."""

import json

import click
from rich.console import Console
from rich.table import Table

from .options import loading_options, trust_code_option


@click.command("bench", short_help="Time a model against ONNX Runtime (and PyTorch).")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel streams.")
@click.option("--reference", type=click.Path(dir_okay=False),
              help="The MODEL.pt it was exported from, to time PyTorch eager too.")
@click.option("--calls", type=click.IntRange(min=100), default=5000, show_default=True,
              help="Single step calls timed per engine.")
@click.option("--cold-start/--no-cold-start", default=True, show_default=True,
              help="Also time fresh processes to the first output (the cold-cache one compiles everything).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@trust_code_option
@loading_options
def command(model, batch, reference, calls, cold_start, as_json, trust_code, load_options):
    """Per-step latency (median, p99) of step() from Python, run() throughput over 10,000 steps,
    cold start and the loaded model's memory: edgeseq, and the same figures for ONNX Runtime
    (and PyTorch with --reference) measured in the same run, one thread each."""
    from edgeseq_export.backends.bench import measure

    source = None
    if reference is not None:
        from edgeseq_export.api import read_reference
        from edgeseq_export.errors import SourceError
        source, _ = read_reference(model, reference, trust_code=trust_code)
        architecture, model_io = source.network.architecture, _io(model, batch, load_options)
        if (architecture.input_size, architecture.output_size) != model_io:
            raise SourceError(f"{reference}: takes {architecture.input_size} and gives {architecture.output_size} "
                              f"values per step; {model} takes {model_io[0]} and gives {model_io[1]}")
    from ..compiling import announce

    announce()
    report = measure(model, batch=batch, calls=calls, cold_start=cold_start, reference=source,
                     load_options=load_options)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"{model}, batch {batch}, one thread")
    table.add_column("")
    for name in report.engines:
        table.add_column(name, justify="right")
    rows = {
        "step median (µs)": lambda f: f.step and f"{f.step.median_us:.2f}",
        "step p99 (µs)": lambda f: f.step and f"{f.step.p99_us:.2f}",
        "run (steps/s)": lambda f: f.run_steps_per_s and f"{f.run_steps_per_s:,.0f}",
        "cold start, warm cache (s)": lambda f: f.cold_start_s.get("warm cache") and f"{f.cold_start_s['warm cache']:.2f}",
        "cold start, cold cache (s)": lambda f: f.cold_start_s.get("cold cache") and f"{f.cold_start_s['cold cache']:.2f}",
        "model memory (bytes)": lambda f: f.memory_bytes and f"{f.memory_bytes:,}",
    }
    for label, cell in rows.items():
        table.add_row(label, *[cell(f) or "" for f in report.engines.values()])
    console = Console()
    console.print(table)
    for other in report.engines:
        step, run = report.ratio(other, "step"), report.ratio(other, "run")
        if other != "edgeseq" and (step or run):
            console.print(f"edgeseq vs {other}: step {step:.1f}x faster" if step else f"edgeseq vs {other}:",
                          f"run {run:.2f}x the throughput" if run else "")
    for name, figures in report.engines.items():
        if figures.note:
            console.print(f"{name}: {figures.note}")


def _io(model, batch, load_options) -> tuple[int, int]:
    import edgeseq_runtime
    stream = edgeseq_runtime.load(model, batch=batch, **load_options.fields())
    return stream.input_size, stream.output_size
