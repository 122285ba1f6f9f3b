"""The ``edgeseq`` command line.

Every user mistake ends as one line on stderr naming the file and the reason, and a non-zero
exit status; tracebacks are for bugs only.
"""

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeseq")
def main():
    """Put LSTM, GRU and RNN models on edge devices: export, quantize, stream, generate C."""


if __name__ == "__main__":
    main()
