"""The exceptions a user sees: each message is one line naming the file and the reason."""


class EdgeseqError(ValueError):
    """A user-facing failure (a bad file, a model that cannot be handled, bad options).

    The command line prints its message as one line and exits non-zero, without a traceback;
    every edgeseq package raises subclasses of it for mistakes a user can fix.
    """


class ModelError(EdgeseqError):
    """A model the runtime cannot run.

    The message names the file, and where it applies the node, its op type and the reason,
    so that a user can fix the export rather than read a traceback.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (libraries raise multi-line ones)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
