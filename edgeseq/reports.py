"""Rich tables of the toolchain's reports, for the commands that print them.

Every string that comes from a file (paths, node names, metadata) is escaped: square brackets
in it are text, not rich markup.
"""

import math

from rich.markup import escape
from rich.table import Table


def verification_table(report) -> Table:
    """The largest differences between every two implementations (a ``VerificationReport``)."""
    units = "outputs in normalised units" if report.normalised_units else "outputs"
    table = Table(title=f"{escape(report.model)}: {report.steps} random steps, batch {report.batch}, "
                        f"state carried",
                  caption="\n".join([f"tolerance {report.tolerance:g} (absolute; for state values beyond 1, "
                                     f"relative); {units}; max rel is relative to the first's largest |output|",
                                     *map(escape, report.notes)]))
    for column in ("pair", "max abs", "max rel", "final state max abs"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    table.add_column("")
    for d in report.differences:
        if not d.judged:
            verdict = "[dim]not judged[/dim]"
        else:
            verdict = "[green]ok[/green]" if d.worst <= report.tolerance else "[bold red]FAIL[/bold red]"
        table.add_row(f"{d.first} vs {d.second}", f"{d.max_abs:.2e}", f"{d.max_rel:.2e}",
                      f"{d.state_max_abs:.2e}", verdict)
    return table


def print_checked(console, call):
    """Run ``call`` (an export or a verify) and print its verification table, also when the
    check fails (then re-raise, so that the command exits 1). Returns the call's report."""
    from edgeseq_export.errors import VerificationFailed

    try:
        report = call()
    except VerificationFailed as e:
        console.print(verification_table(e.report))
        raise
    verification = getattr(report, "verification", report)
    if verification is not None:
        console.print(verification_table(verification))
    return report


def inspection_tables(inspection) -> list[Table]:
    """Summary, layers, state layout and metadata of an ``Inspection``."""
    summary = Table(title=escape(inspection.path), show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("file size", f"{inspection.file_size:,} bytes")
    summary.add_row("parameters", f"{inspection.parameters:,} (layer weights and biases, as PyTorch counts them)")
    summary.add_row("other constants", f"{inspection.constants:,} floats (normalisation, quantization scales, ...)")
    summary.add_row("opset", str(inspection.opset))
    if inspection.delay is not None:
        summary.add_row("delay", f"{inspection.delay} steps (the stream's output t + {inspection.delay} is the "
                                 f"full-sequence forward's output t; its first {inspection.delay} are zeros)")
    summary.add_row("producer", escape(inspection.producer) or "-")
    for label, values in (("inputs", inspection.inputs), ("outputs", inspection.outputs)):
        summary.add_row(label, "\n".join(escape(f"{v.name}: {v.dtype} {v.shape}") for v in values))

    layers = Table(title="layers")
    for column in ("node", "op", "detail", "weights", "parameters"):
        layers.add_column(column, justify="right" if column == "parameters" else "left")
    for layer in inspection.layers:
        layers.add_row(escape(layer.node), layer.op, escape(layer.detail), layer.weights, f"{layer.parameters:,}")

    states = Table(title="recurrent state (one stream)",
                   caption=f"edgeseq cannot stream it: {escape(inspection.not_streamable)}"
                   if inspection.not_streamable else None)
    for column in ("input", "shape", "floats", "next value from"):
        states.add_column(column)
    for state in inspection.states:
        states.add_row(escape(state.name), str(list(state.shape)), str(math.prod(state.shape)),
                       escape(state.next_name or "-"))

    metadata = Table(title="metadata")
    metadata.add_column("key")
    metadata.add_column("value", overflow="fold")
    for key, value in inspection.metadata.items():
        metadata.add_row(escape(key), escape(value))
    return [summary, layers, states, metadata]

