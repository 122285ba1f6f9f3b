"""The toolchain's user-facing errors: one line each, naming the file (or module) and the reason.

Both subclass ``edgeseq_runtime.EdgeseqError``, so the command line prints them without a traceback.
"""

from edgeseq_runtime import EdgeseqError


class SourceError(EdgeseqError):
    """A MODEL.pt (or ``nn.Module``) that edgeseq cannot read or export, and why."""


class ExportError(EdgeseqError):
    """``torch.onnx.export`` failed on a model that was read correctly."""


class VerificationFailed(EdgeseqError):
    """PyTorch, ONNX Runtime and edgeseq disagree by more than the tolerance.

    ``report`` holds the differences, so that a caller can show the whole table.
    """

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report
