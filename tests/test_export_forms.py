"""Every form MODEL.pt may take, and every file edgeseq must refuse, with the reason.

Accepted: with ``trust_code``, a TorchScript archive (scripted, which records its settings, or
traced, which records them in its ATen calls) and a pickled ``nn.Module`` (``trust_pickle``, the flag's first name);
an ``nn.Module`` handed to ``edgeseq.export`` directly (state_dicts and edgeseq checkpoints have
their own test modules). Refused: a pickle without the flag (and its code does not run), damaged
files, dicts that are not models, and a module whose forward computes more than its layers show.
Hostile files (TorchScript whose code writes files, bombs, devices) are tests/test_hostile_export.py's.
"""

import io
import os

import numpy as np
import pytest
import torch
from edgeseq_export.errors import SourceError, VerificationFailed
from support.export_cases import HiddenActivation, UserSpec, assert_streams_like, build, random_inputs

import edgeseq

# Making TorchScript archives is deprecated by PyTorch, and tracing warns: users still have them.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

SPEC = UserSpec("LSTM", num_layers=2, batch_first=True, vocab_size=9, head=(6, "tanh", 9))


def test_scripted_torchscript_archive_records_its_settings(tmp_path):
    model = build(SPEC)
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", trust_code=True)
    assert report.form == "TorchScript archive" and report.architecture.batch_first
    assert_streams_like(report.path, model, random_inputs(SPEC), batch_first=True)


TRACED = [SPEC, UserSpec("LSTM", num_layers=2, batch_first=True, head=(2,)), UserSpec("GRU", batch_first=True),
          UserSpec("RNN", nonlinearity="relu")]


@pytest.mark.parametrize("spec", TRACED, ids=[spec.name for spec in TRACED])
def test_traced_torchscript_archive_records_its_settings_in_its_aten_calls(tmp_path, spec):
    """Tracing keeps no batch_first or nonlinearity attribute: they are read from the trace's
    aten::lstm / gru / rnn_relu call, with no option given."""
    model = build(spec)
    example = random_inputs(spec)[:2]
    torch.jit.save(torch.jit.trace(model, torch.from_numpy(example.swapaxes(0, 1) if spec.batch_first else example)),
                   tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", trust_code=True)
    assert report.form == "TorchScript archive" and report.architecture.batch_first == spec.batch_first
    assert report.architecture.recurrent[0].nonlinearity == spec.nonlinearity
    assert any("own forward" in note for note in report.verification.notes)  # the trace was the reference
    assert_streams_like(report.path, model, random_inputs(spec), batch_first=spec.batch_first)


def test_an_option_that_contradicts_the_file_is_refused(tmp_path):
    torch.jit.save(torch.jit.script(build(SPEC)), tmp_path / "model.pt")
    with pytest.raises(SourceError, match="--batch-first False contradicts module 'rnn'"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", batch_first=False, trust_code=True)


def test_pickled_module_with_trust_pickle(tmp_path):
    spec = UserSpec("RNN", nonlinearity="relu", num_layers=2)
    model = build(spec)
    torch.save(model, tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", trust_pickle=True)
    assert report.form == "pickled module"
    assert_streams_like(report.path, model, random_inputs(spec), batch_first=False)


def test_pickled_module_is_refused_without_trust_pickle(tmp_path):
    torch.save(build(SPEC), tmp_path / "model.pt")
    with pytest.raises(SourceError) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    message = str(error.value)
    assert "export_cases.UserModel" in message
    assert "loading a pickle runs code" in message and "--trust-pickle" in message
    assert not (tmp_path / "model.onnx").exists()


class Hostile:
    """Unpickling this creates the file ``path``: the code a hostile pickle would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_hostile_pickle_does_not_run_without_trust_pickle(tmp_path):
    witness = tmp_path / "pwned"
    torch.save({"rnn.weight_ih_l0": Hostile(witness)}, tmp_path / "model.pt")
    with pytest.raises(SourceError, match="loading a pickle runs code"):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    assert not witness.exists()
    # The file is hostile indeed: trusting it runs its code (then it is no model).
    with pytest.raises(SourceError):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", trust_pickle=True)
    assert witness.exists()


def test_module_passed_directly(tmp_path):
    spec = UserSpec("GRU", second_cell="RNN", batch_first=True)
    model = build(spec).train()
    report = edgeseq.export(model, tmp_path / "model.onnx", batch_first=True)
    assert report.form == "module" and report.source == "UserModel object"
    assert model.training, "export must leave the user's module in the mode it was in"
    assert_streams_like(report.path, model.eval(), random_inputs(spec), batch_first=True)


def test_forward_that_layers_do_not_show_fails_verification_and_writes_nothing(tmp_path):
    model = HiddenActivation(UserSpec("GRU")).eval()
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous model")
    with pytest.raises(VerificationFailed) as error:
        edgeseq.export(model, target)
    assert "PyTorch and" in str(error.value)
    assert not error.value.report.ok and any("own forward" in note for note in error.value.report.notes)
    assert target.read_bytes() == b"previous model"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"], "no temporary file may be left behind"


def _state_dict_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(build(UserSpec()).state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "truncated_torchscript"])
def test_damaged_files_are_refused_in_one_line(tmp_path, damage):
    if damage == "truncated_torchscript":
        torch.jit.save(torch.jit.script(build(UserSpec())), tmp_path / "whole.pt")
        data = (tmp_path / "whole.pt").read_bytes()[:-300]
    else:
        data = {"truncated": _state_dict_bytes()[:-300], "empty": b"",
                "garbage": np.random.default_rng(0).bytes(500)}[damage]
    (tmp_path / "model.pt").write_bytes(data)
    with pytest.raises(SourceError) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", trust_code=True)
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'model.pt'}: ") and "\n" not in message
    assert "damaged" in message


@pytest.mark.parametrize("content, reason", [
    ({"model_state_dict": {"w": torch.zeros(2)}, "epoch": 3}, "neither a state_dict nor an edgeseq checkpoint"),
    (torch.zeros(3), "holds a Tensor, not a model"),
], ids=["training_dict", "tensor"])
def test_files_that_hold_no_model_are_refused(tmp_path, content, reason):
    torch.save(content, tmp_path / "model.pt")
    with pytest.raises(SourceError, match=reason):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")


def test_missing_file_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        edgeseq.export(tmp_path / "absent.pt", tmp_path / "model.onnx")
    assert error.value.filename == str(tmp_path / "absent.pt")
