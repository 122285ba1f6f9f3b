"""Hostile MODEL.pt files: ``export`` (and every command that reads a .pt) runs no code from the
file unless told to trust it, and reads it in bounded time and memory.

A TorchScript archive is a program: ``torch.jit.load`` runs its modules' ``__setstate__``, the
export's check runs its ``forward``, and TorchScript can create and write files
(``torch.from_file(..., shared=True)``). The archive made here writes a marker file from both.
"""

import io
import os
import re
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from edgeseq_export.errors import SourceError
from edgeseq_export.pytorch import torch_files
from edgeseq_export.pytorch.models import SequenceModel, save_checkpoint
from support.cli_results import assert_one_line_error, run
from torch import nn

import edgeseq

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


# Bounded reads: a .pt is read only from a regular file of bounded size, a zip only when its
# members' declared sizes are bounded and their bytes match their CRCs, a checkpoint's model is
# built only when its config fits the tensors the file holds.

def assert_refused(path, *fragments, out=None):
    """``edgeseq export path`` fails at once with one line naming the file, and writes nothing."""
    out = out or path.parent / "out.onnx"
    with pytest.raises(SourceError) as error:
        edgeseq.export(path, out)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()


def cli_export_in_a_child(path, out, timeout=120) -> subprocess.CompletedProcess:
    """``edgeseq export`` in its own process: a hang fails the test instead of blocking it."""
    return subprocess.run([sys.executable, "-m", "edgeseq.cli", "export", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=timeout)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    result = cli_export_in_a_child(fifo, tmp_path / "out.onnx")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"edgeseq: error: {fifo}: a FIFO, not a regular file")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("kind", ["device", "link_to_device", "directory"])
def test_devices_and_directories_are_refused(kind, tmp_path):
    path = {"device": Path("/dev/zero"), "link_to_device": tmp_path / "model.pt",
            "directory": tmp_path / "folder.pt"}[kind]
    if kind == "link_to_device":
        path.symlink_to("/dev/zero")
    if kind == "directory":
        path.mkdir()
    assert_refused(path, "not a regular file", out=tmp_path / "out.onnx")


def test_a_file_beyond_the_size_bound_is_refused_unread(tmp_path):
    huge = tmp_path / "model.pt"
    with open(huge, "wb") as f:
        f.truncate(torch_files.MAX_FILE_BYTES + 1)  # sparse: takes no disk
    assert_refused(huge, f"more than the {torch_files.MAX_FILE_BYTES:,}")


def small_state_dict_file(directory) -> Path:
    torch.manual_seed(0)
    plain = nn.ModuleDict({"rnn": nn.GRU(1, 2), "head": nn.Linear(2, 1)})
    torch.save(plain.state_dict(), directory / "model.pt")
    return directory / "model.pt"


def zeros_deflated(size: int) -> tuple[bytes, int]:
    """(raw deflate of ``size`` zero bytes, their CRC-32), made from one compressed MiB repeated:
    a full flush ends each copy on a byte boundary with no reference to what came before."""
    block = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // block):
        crc = zlib.crc32(bytes(block), crc)
    return chunk * (size // block) + zlib.compressobj(9, zlib.DEFLATED, -15).flush(), crc


def zip_bytes(members) -> bytes:
    """A zip archive of ``(name, method, crc, unpacked size, data as stored)`` members, written by
    hand: zipfile cannot store deflate that it did not make."""
    body, directory = b"", b""
    for name, method, crc, size, data in members:
        encoded = name.encode()
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
        directory += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                      + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, len(body)) + encoded)
        body += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + data
    end = struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + b"PK\x05\x06" + end


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A state_dict whose first tensor is 1.6 MB of deflate that inflates to 1.5 GiB (declared honestly)."""
    size = torch_files.MAX_UNPACKED_BYTES // 2 * 3
    bomb, crc = zeros_deflated(size)
    with zipfile.ZipFile(small_state_dict_file(tmp_path)) as original:
        members = [(m.filename, zipfile.ZIP_STORED, m.CRC, m.file_size, original.read(m))
                   for m in original.infolist()]
    members = [(name, zipfile.ZIP_DEFLATED, crc, size, bomb) if name.endswith("/data/0") else (name, *rest)
               for name, *rest in members]
    (tmp_path / "bomb.pt").write_bytes(zip_bytes(members))
    assert_refused(tmp_path / "bomb.pt", "unpack to", f"more than the {torch_files.MAX_UNPACKED_BYTES:,}")


def tensor_bit_offsets(data: bytes) -> list[int]:
    """The offsets of the bytes of every tensor member (``.../data/N``) of a torch.save archive."""
    offsets = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if re.search(r"/data/\d+$", member.filename):
                name_length, extra_length = struct.unpack_from("<HH", data, member.header_offset + 26)
                start = member.header_offset + 30 + name_length + extra_length
                offsets.extend(range(start, start + member.compress_size))
    return offsets


def test_every_bit_flip_in_a_tensor_is_refused(tmp_path):
    """7 of 8 single-bit flips of a .pt used to load as a model with a wrong weight: torch does
    not check the zip's CRCs. Every bit of every tensor is flipped in turn."""
    original = small_state_dict_file(tmp_path).read_bytes()
    offsets = tensor_bit_offsets(original)
    assert len(offsets) == 4 * sum(p.numel() for p in torch.load(tmp_path / "model.pt").values())
    flipped, refused = tmp_path / "flipped.pt", 0
    for offset in offsets:
        for bit in range(8):
            damaged = bytearray(original)
            damaged[offset] ^= 1 << bit
            flipped.write_bytes(damaged)
            with pytest.raises(SourceError, match="damaged PyTorch archive .*Bad CRC-32"):
                torch_files.read(flipped)
            refused += 1
    assert refused == 8 * len(offsets) == 1056


def test_a_flip_elsewhere_is_refused_or_changes_no_weight(tmp_path):
    """One bit of each byte outside the tensors: refused, or read with every weight as saved."""
    path = small_state_dict_file(tmp_path)
    original, weights = path.read_bytes(), torch.load(path)
    tensors, flipped = set(tensor_bit_offsets(original)), tmp_path / "flipped.pt"
    outcomes = {"refused": 0, "same weights": 0}
    for offset in sorted(set(range(len(original))) - tensors):
        damaged = bytearray(original)
        damaged[offset] ^= 1 << (offset % 8)
        flipped.write_bytes(damaged)
        try:
            read = torch_files.read(flipped)
        except SourceError:
            outcomes["refused"] += 1
            continue
        assert read.keys() == weights.keys() and all(torch.equal(read[k], weights[k]) for k in weights), offset
        outcomes["same weights"] += 1
    assert outcomes["refused"] > 0, outcomes


@pytest.mark.parametrize("change, reason", [
    (dict(hidden_size=12000), "its config makes 'head.0.weight' [1, 12000], but the file holds [1, 6]"),
    (dict(num_layers=10**6), "its config claims 1000000 layers; its state_dict holds 6 tensors"),
    (dict(input_size=10**9), "'recurrent.0.weight_ih_l0' [24, 1000000000]"),
    (dict(hidden_size=10**30), "a damaged edgeseq checkpoint"),
], ids=["hidden_12000", "layers_1e6", "input_1e9", "hidden_1e30"])
def test_a_checkpoint_config_is_checked_against_its_tensors_before_building(change, reason, tmp_path):
    save_checkpoint(SequenceModel(cell="lstm", input_size=2, hidden_size=6), tmp_path / "honest.pt")
    data = torch.load(tmp_path / "honest.pt")
    torch.save(dict(data, config={**data["config"], **change}), tmp_path / "model.pt")
    started = time.perf_counter()
    assert_refused(tmp_path / "model.pt", reason)
    assert time.perf_counter() - started < 10, "built before it checked"


def test_a_state_dict_naming_a_millionth_layer_is_refused_before_building(tmp_path):
    plain = nn.GRU(1, 2).state_dict()
    plain["weight_ih_l999999"] = plain["weight_ih_l0"]
    torch.save({f"rnn.{k}": v for k, v in plain.items()}, tmp_path / "model.pt")
    assert_refused(tmp_path / "model.pt", "names layer 999999 but holds 5 weights")
