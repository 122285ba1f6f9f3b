"""Hostile MODEL.pt files: ``export`` (and every command that reads a .pt) runs no code from the
file unless told to trust it.

A TorchScript archive is a program: ``torch.jit.load`` runs its modules' ``__setstate__``, the
export's check runs its ``forward``, and TorchScript can create and write files
(``torch.from_file(..., shared=True)``). The archive made here writes a marker file from both.
"""

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import edgeseq
from edgeseq.cli import main
from edgeseq_export.errors import SourceError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")


class Identity(nn.Module):
    """Looks like a harmless ``nn.Identity``; loading it, or running it, creates ``marker``."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.marker = state[0]
        # used, so that TorchScript cannot drop the call that creates the file
        self.training = state[1] and torch.from_file(self.marker, shared=True, size=1,
                                                     dtype=torch.uint8).numel() == 1

    def forward(self, x):
        return x * torch.from_file(self.marker + ".forward", shared=True, size=1, dtype=torch.uint8).numel()


class GruWithMarker(nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.rnn = nn.GRU(3, 4)
        self.gate = Identity(marker)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.gate(self.rnn(x)[0]))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeseq: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def hostile_archive(tmp_path):
    """(the archive, the marker its code creates)."""
    marker = tmp_path / "marker"
    torch.jit.save(torch.jit.script(GruWithMarker(str(marker))), tmp_path / "hostile.pt")
    return tmp_path / "hostile.pt", marker


@pytest.fixture
def exported(tmp_path):
    """An ONNX model of the same shape as the hostile archive, exported from a plain state_dict."""
    torch.manual_seed(0)
    plain = nn.ModuleDict({"rnn": nn.GRU(3, 4), "head": nn.Linear(4, 2)})
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    return edgeseq.export(tmp_path / "plain.pt", tmp_path / "plain.onnx", steps=20).path


def test_torchscript_archive_is_refused_without_trust_code(hostile_archive, tmp_path):
    archive, marker = hostile_archive
    with pytest.raises(SourceError) as error:
        edgeseq.export(archive, tmp_path / "out.onnx")
    message = str(error.value)
    assert message.startswith(f"{archive}: a TorchScript archive") and "\n" not in message
    assert "runs the code it holds" in message and "--trust-code" in message
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("command", ["export", "verify", "bench"])
def test_every_command_that_reads_a_pt_refuses_torchscript(command, hostile_archive, exported, tmp_path):
    archive, marker = hostile_archive
    out = tmp_path / "out.onnx"
    arguments = {"export": ["export", archive, "-o", out],
                 "verify": ["verify", exported, "--reference", archive],
                 "bench": ["bench", exported, "--reference", archive, "--no-cold-start", "--calls", 100]}[command]
    assert_one_line_error(run(*arguments), str(archive), "TorchScript archive", "--trust-code")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("flag", ["--trust-code", "--trust-pickle"])
def test_trusted_torchscript_runs_its_code_and_exports(flag, hostile_archive, tmp_path):
    """The archive is hostile indeed: trusting it runs its code (then it exports as a GRU model)."""
    archive, marker = hostile_archive
    result = run("export", archive, "-o", tmp_path / "out.onnx", "--steps", 20, flag)
    assert result.exit_code == 0, result.output
    assert marker.exists() and (tmp_path / "marker.forward").exists()
    assert (tmp_path / "out.onnx").exists()


def test_python_api_takes_both_names_of_the_trust_flag(hostile_archive, tmp_path):
    archive, _ = hostile_archive
    for keyword in ("trust_code", "trust_pickle"):
        report = edgeseq.export(archive, tmp_path / f"{keyword}.onnx", steps=20, **{keyword: True})
        assert report.form == "TorchScript archive"
