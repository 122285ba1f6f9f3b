"""The ``edgeseq`` command line.

Each command lives in its own module under ``edgeseq.commands`` and is imported only when it
runs, so that ``edgeseq --help`` stays fast and commands that need torch load it themselves.
Every user mistake ends as one line on stderr naming the file and the reason, and a non-zero
exit status; tracebacks are for bugs only.
"""

import importlib
import sys
import warnings

import click
from edgeseq_runtime import EdgeseqError

from . import __version__

# command name -> module under edgeseq.commands defining a click command named ``command``
COMMANDS: dict[str, str] = {
    "bench": "bench",
    "codegen": "codegen",
    "demo": "demo",
    "evaluate": "evaluate",
    "export": "export",
    "inspect": "inspect",
    "quantize": "quantize",
    "replay": "replay",
    "stream": "stream",
    "train": "train",
    "verify": "verify",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"edgeseq.commands.{COMMANDS[name]}").command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # bad options of a command: one line, like every error
            click.echo(f"edgeseq: error: {e.ctx.command_path if e.ctx else 'edgeseq'}: {one_line(e)}", err=True)
            sys.exit(e.exit_code)
        except (EdgeseqError, OSError) as e:
            click.echo(f"edgeseq: error: {one_line(e)}", err=True)
            sys.exit(1)


def one_line(error: BaseException) -> str:
    """An error as one line; an OSError names its file."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    text = error.format_message() if isinstance(error, click.ClickException) else str(error)
    return " ".join(text.split()) or type(error).__name__


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeseq")
def main():
    """Put LSTM, GRU and RNN models on edge devices: export, quantize, stream, generate C."""
    if not sys.warnoptions:  # libraries' warnings are noise on a user's terminal, unless asked for (-W)
        warnings.simplefilter("ignore")


if __name__ == "__main__":
    main()
