"""``edgeseq stream``: one CSV row in on stdin, one output row out on stdout, state kept.

With ``--state-file F`` the state is restored at start and saved every ``--every`` rows and at
exit, SIGTERM and Ctrl-C included. F is kept as a journal (see ``edgeseq_runtime.state_file``):
a save overwrites one of two slots in place with one ``fdatasync``, so saving after every row
costs a fraction of an atomic rewrite; F is any state file at start, a replay's included. The file records the **rows consumed** (every
line read, blank and ``--on-error skip``-ped ones included) and the **steps taken**; on resume
the command says both on stderr::

    edgeseq: resuming from F: 120 rows consumed, 118 steps taken; feed rows from row 121

Resuming is feeding the input again from that row: each row is then stepped exactly once and
each output line written exactly once, over all the runs. A row counts as consumed only once its
output line is written, and a SIGTERM or Ctrl-C is acted on only between rows: while stdout is
blocked (a reader that does not read), the process stops without taking the next step. An
output line longer than 4096 bytes (PIPE_BUF) cannot be written in one piece; the stop then
waits until the reader has taken it.

``--every N`` trades exactness for speed: a kill -9 (or a reader that goes away) loses the rows
consumed since the last save, up to N-1, which are then fed and written again.

A process holds an exclusive lock on ``F.lock`` (beside the file a symlink ``F`` points to)
while it runs: a second stream on the same state file is refused instead of overwriting the
first one's saves.
"""

import collections
import fcntl
import os
import select
import signal
import sys

import click
import numpy as np
from edgeseq_runtime import EdgeseqError
from edgeseq_runtime.csv_fields import split_line

from ..paths import output_file
from .options import loading_options

PIPE_BUF = select.PIPE_BUF  # a write of at most this many bytes to a pipe is never split
READ_CHUNK = 1 << 16
MAX_ROW_BYTES = 1 << 20  # a CSV row of ~50,000 numbers, far past any model's input: a longer line is no row


@click.command("stream", short_help="Step a model over CSV rows from stdin, state kept.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--state-file", type=click.Path(dir_okay=False), callback=output_file,
              help="Restore from and persist the state to this file.")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Persist the state every N rows (and at exit).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="On a malformed or non-finite row: stop, or report it and go on.")
@loading_options
def command(model, state_file, every, on_error, load_options):
    """Stream MODEL over CSV rows read from stdin, writing one output row per step."""
    import edgeseq_runtime

    from ..compiling import announce

    announce()  # before load: loading compiles the kernels the model uses on a new install
    stream = edgeseq_runtime.load(model, **load_options.fields())
    if state_file:
        _hold_lock(state_file)
    rows = 0  # consumed: read and, for a row that took a step, its output line written
    if state_file and os.path.lexists(state_file):
        rows = stream.load_state(state_file)
        click.echo(f"edgeseq: resuming from {state_file}: {rows} rows consumed, {stream.steps} steps taken; "
                   f"feed rows from row {rows + 1}", err=True)
    journal = stream.journal(state_file, rows=rows) if state_file else None
    pipes = _Pipes()
    saved, written = rows, True
    try:
        for line in pipes.lines():
            if line.strip():
                try:
                    x = _parse(line, stream)
                    if not pipes.wait_writable():
                        break
                    y = stream.step(x)
                except ValueError as e:
                    click.echo(f"edgeseq: error: <stdin> row {rows + 1}: {e}", err=True)
                    if on_error == "stop":
                        sys.exit(1)
                else:
                    written = False
                    pipes.write((",".join(f"{v:.9g}" for v in y.ravel()) + "\n").encode())
                    written = True
            rows += 1
            if journal and rows - saved >= every:
                stream.commit_state(journal, rows=rows)
                saved = rows
    finally:
        if journal:
            if written and rows != saved:  # not after a step whose line was lost
                stream.commit_state(journal, rows=rows)
            journal.close()


class _Pipes:
    """stdin's lines and stdout's writes, with SIGTERM and SIGINT acted on only between them.

    A signal sets ``stop`` and wakes the ``poll`` that waits for stdin or stdout; nothing is
    interrupted halfway (an exception raised from a handler could land between a step and its
    output line, or between a write and its count).
    """

    def __init__(self):
        self.stop = False
        self._wake, wake_write = os.pipe()
        for fd in (self._wake, wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_write)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        self._pollers = {fd: self._poller(fd, event) for fd, event in ((0, select.POLLIN), (1, select.POLLOUT))}
        self._lines = collections.deque()  # whole lines read and not yet taken
        self._pending = b""                # the start of the next line

    def _poller(self, fd: int, event: int):
        poller = select.poll()
        poller.register(fd, event)
        poller.register(self._wake, select.POLLIN)
        return poller

    def _request_stop(self, *_):
        self.stop = True

    def _wait(self, fd: int, event: int, stoppable: bool = True) -> bool:
        """Wait until ``fd`` is ready for ``event``; False when a stop came first (if ``stoppable``)."""
        while not (stoppable and self.stop):
            ready = {ready_fd for ready_fd, _ in self._pollers[fd].poll()}
            if self._wake in ready:
                os.read(self._wake, 512)
            if fd in ready and not (stoppable and self.stop):
                return True
        return False

    def lines(self):
        """stdin's lines as text, until its end or a stop. A chunk read is split into its lines
        once (not re-sliced per line); a line still unfinished past MAX_ROW_BYTES is refused
        before it takes more memory."""
        while True:
            while self._lines:
                yield self._lines.popleft().decode(errors="replace")
                if self.stop:
                    return
            chunk = os.read(0, READ_CHUNK) if self._wait(0, select.POLLIN) else None
            if not chunk:  # the end of stdin, or a stop
                if self._pending and chunk is not None:
                    yield self._pending.decode(errors="replace")
                return
            *complete, self._pending = (self._pending + chunk).split(b"\n")
            if len(self._pending) > MAX_ROW_BYTES:
                raise EdgeseqError(f"<stdin>: a line of more than {MAX_ROW_BYTES:,} bytes is not a row")
            self._lines.extend(complete)

    def wait_writable(self) -> bool:
        """Wait until stdout takes a line without blocking (on a pipe: PIPE_BUF bytes free);
        False when a stop came first."""
        return self._wait(1, select.POLLOUT)

    def write(self, data: bytes) -> None:
        """All of ``data`` to stdout, in pieces that a pipe never splits; a line once begun is
        finished, a stop or not."""
        while data:
            data = data[os.write(1, data[:PIPE_BUF]):]
            if data:
                self._wait(1, select.POLLOUT, stoppable=False)


def _hold_lock(state_file: str) -> None:
    """Lock ``<state file>.lock`` for the life of the process (the kernel drops the lock when
    it exits, killed or not); refuse when another process holds it."""
    target = os.path.realpath(state_file)
    if os.path.exists(target) and not os.path.isfile(target):  # no lock file beside /dev/zero
        raise EdgeseqError(f"{state_file}: not a regular file")
    lock_path = target + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EdgeseqError(f"{state_file}: in use by another edgeseq stream (it holds {lock_path})") from None


def _parse(line: str, stream) -> np.ndarray:
    """The numbers of one CSV row, as the model's step takes them."""
    fields = split_line(line)  # the rules of every CSV edgeseq reads: , ; or tab, a BOM dropped
    try:
        values = [int(f) for f in fields] if stream.is_token_model else [float(f) for f in fields]
    except ValueError:
        raise ValueError(f"not a row of {'integers' if stream.is_token_model else 'numbers'}: {line.strip()!r}") from None
    if len(values) != stream.input_size:
        raise ValueError(f"expected {stream.input_size} values, got {len(values)}")
    return np.asarray(values, np.int64 if stream.is_token_model else np.float32)
