"""The one exception type a user sees for a model the runtime cannot run."""


class ModelError(ValueError):
    """A model the runtime cannot run.

    The message names the file, and where it applies the node, its op type and the reason,
    so that a user can fix the export rather than read a traceback.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (libraries raise multi-line ones)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
