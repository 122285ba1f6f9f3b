"""The line a command prints before its first load compiles the runtime's kernels.

numba compiles the kernels a model uses when it is loaded, once per install (seconds here, a
minute or more on a small board), and caches them; until then a load looks like a hang. Commands that
load a model call ``announce`` first.
"""

import click
import edgeseq_runtime

_announced = False


def announce() -> bool:
    """Say on stderr, once per process, that the kernels are about to compile; whether they are."""
    global _announced
    if edgeseq_runtime.kernels_cached():
        return False
    if not _announced:
        click.echo("edgeseq: compiling the runtime's kernels, once for this install (seconds, longer on a small board; "
                   "'python -m edgeseq_runtime.compile' does it ahead of time); later runs start at once", err=True)
        _announced = True
    return True
