"""``edgeseq stream``: one CSV row in on stdin, one output row out on stdout, state kept.

With ``--state-file`` the state is restored at start and saved (atomically) every ``--every``
steps and at exit, SIGTERM and Ctrl-C included. The file records how many steps the state
has taken: after a crash, the process resumes from that step, and the rows after it are
the ones to feed again (their outputs are recomputed exactly). ``--every N`` trades that for
speed: a kill -9 can lose up to N-1 saved steps, which then have to be replayed.
"""

import os
import signal
import sys

import click
import numpy as np


@click.command("stream")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--state-file", type=click.Path(dir_okay=False), help="Restore from and persist the state to this file.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Persist the state every N steps (and at exit).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="On a malformed or non-finite row: stop, or report it and go on.")
def command(model, state_file, every, on_error):
    """Stream MODEL over CSV rows read from stdin, writing one output row per step."""
    import edgeseq_runtime

    stream = edgeseq_runtime.load(model)
    if state_file and os.path.exists(state_file):
        stream.load_state(state_file)
        click.echo(f"edgeseq: resuming from {state_file} after {stream.steps} steps", err=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds through the final save
    saved = stream.steps
    try:
        number = 0
        while line := sys.stdin.readline():
            number += 1
            if not line.strip():
                continue
            try:
                y = stream.step(_parse(line, stream))
            except ValueError as e:
                click.echo(f"edgeseq: error: <stdin> row {number}: {e}", err=True)
                if on_error == "stop":
                    sys.exit(1)
                continue
            sys.stdout.write(",".join(f"{v:.9g}" for v in y.ravel()) + "\n")
            sys.stdout.flush()
            if state_file and stream.steps - saved >= every:
                stream.save_state(state_file)
                saved = stream.steps
    except KeyboardInterrupt:
        pass
    finally:
        if state_file and stream.steps != saved:
            stream.save_state(state_file)


def _parse(line: str, stream) -> np.ndarray:
    """The numbers of one CSV row, as the model's step takes them."""
    fields = line.strip().split(",")
    try:
        values = [int(f) for f in fields] if stream.is_token_model else [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"not a row of {'integers' if stream.is_token_model else 'numbers'}: {line.strip()!r}") from None
    if len(values) != stream.input_size:
        raise ValueError(f"expected {stream.input_size} values, got {len(values)}")
    return np.asarray(values, np.int64 if stream.is_token_model else np.float32)
