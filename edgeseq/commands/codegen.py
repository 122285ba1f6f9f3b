"""``edgeseq codegen``: an ONNX model as self-contained C99 for firmware."""

import click

from .options import loading_options


@click.command("codegen", short_help="Generate C99 (no malloc) for a microcontroller.")
# Plain paths: click's own checks would print a multi-line usage error; generate() reports
# a missing model or an unusable folder in one line.
@click.argument("model", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The folder to write NAME.h, NAME.c and the C runtime into (created if needed).")
@click.option("--name", help="Prefix of the C identifiers and name of the files "
                             "(default: made from MODEL's file name).")
@loading_options
def command(model, output, name, load_options):
    """Generate C99 code for MODEL (fp32 or int8 ONNX): NAME_reset, NAME_step, no malloc."""
    from edgeseq_export.backends.codegen import generate

    generated = generate(model, output, name, load_options)
    click.echo(f"wrote {', '.join(str(f) for f in generated.files)}")
    click.echo(f"{generated.name}: {generated.input_size} inputs, {generated.output_size} outputs per "
               f"step; RAM {generated.ram_bytes:,} bytes per stream, flash {generated.flash_bytes:,} "
               f"bytes of model data (see {generated.name}.h)")
