"""The line a command prints before its first step compiles the runtime's kernels.

numba compiles them once per install (about a minute on a small machine) and caches them; until
then a first step looks like a hang. Commands that step a model call ``announce`` first.
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
        click.echo("edgeseq: compiling the runtime's kernels, once for this install (about a minute; "
                   "'python -m edgeseq_runtime.compile' does it ahead of time); later runs start at once", err=True)
        _announced = True
    return True
