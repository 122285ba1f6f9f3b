"""Output paths checked when a command starts, so that no work is lost to a typo in ``-o``."""

import os

import click


def output_file(ctx, param, value):
    """click callback for an option naming a file to write: its folder must exist and be
    writable, and the path must not be a folder. Checked before the command does any work."""
    if value is None:
        return value
    path = os.fspath(value)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise click.BadParameter(f"{path} is a folder, not a file")
    if not os.path.isdir(folder):
        raise click.BadParameter(f"{path}: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{path}: the folder {folder} is not writable")
    return value
