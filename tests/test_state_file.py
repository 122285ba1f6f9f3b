"""save_state / load_state: durable, checked, and refusing anything that is not this model's."""

import os
import stat

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime.state_file import StateFileError
from support.onnx_builders import build_model


@pytest.fixture
def lstm(tmp_path):
    return build_model(tmp_path, "LSTM", input_size=3, hidden_size=6, num_layers=2, stacked_state=True,
                       head="matmul", filename="lstm.onnx")


def test_round_trip_restores_state_and_step_count_and_continues_identically(tmp_path, lstm):
    X = lstm.random_steps(np.random.default_rng(0), 40)
    whole = edgeseq_runtime.load(lstm.path).run(X)
    first = edgeseq_runtime.load(lstm.path)
    first.run(X[:25])
    first.save_state(tmp_path / "s.state")
    resumed = edgeseq_runtime.load(lstm.path)  # a fresh process would do the same
    resumed.load_state(tmp_path / "s.state")
    assert resumed.steps == 25
    np.testing.assert_array_equal(resumed.run(X[25:]), whole[25:])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_state_of_another_model_is_refused_and_nothing_changes(tmp_path, lstm):
    other = build_model(tmp_path, "LSTM", input_size=3, hidden_size=6, num_layers=2, stacked_state=True,
                        head="matmul", filename="other.onnx", seed=5)  # same shapes, other weights
    saver = edgeseq_runtime.load(other.path)
    saver.run(other.random_steps(np.random.default_rng(1), 5))
    saver.save_state(tmp_path / "other.state")
    m = edgeseq_runtime.load(lstm.path)
    m.run(lstm.random_steps(np.random.default_rng(2), 7))
    before, steps = m.get_state(), m.steps
    with pytest.raises(StateFileError, match="other.state.*another model"):
        m.load_state(tmp_path / "other.state")
    assert m.steps == steps
    for name, value in m.get_state().items():
        np.testing.assert_array_equal(value, before[name])


def _saved(tmp_path, lstm) -> bytes:
    m = edgeseq_runtime.load(lstm.path)
    m.run(lstm.random_steps(np.random.default_rng(3), 9))
    m.save_state(tmp_path / "good.state")
    return (tmp_path / "good.state").read_bytes()


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "checksum|not an edgeseq"),
    (lambda b: b[:10], "not an edgeseq"),
    (lambda b: b[:60] + bytes([b[60] ^ 0x01]) + b[61:], "checksum"),
    (lambda b: b"garbage" * 20, "not an edgeseq"),
    (lambda b: b"", "not an edgeseq"),
], ids=["truncated", "header_only", "flipped_bit", "foreign", "empty"])
def test_damaged_state_files_are_refused(tmp_path, lstm, damage, message):
    path = tmp_path / "bad.state"
    path.write_bytes(damage(_saved(tmp_path, lstm)))
    m = edgeseq_runtime.load(lstm.path)
    before = m.get_state()
    with pytest.raises(StateFileError, match=message):
        m.load_state(path)
    assert m.steps == 0
    for name, value in m.get_state().items():
        np.testing.assert_array_equal(value, before[name])


def test_missing_state_file_and_other_batch_are_refused(tmp_path, lstm):
    m = edgeseq_runtime.load(lstm.path)
    with pytest.raises(StateFileError, match="no such state file"):
        m.load_state(tmp_path / "absent.state")
    _saved(tmp_path, lstm)
    wide = edgeseq_runtime.load(lstm.path, batch=2)
    with pytest.raises(StateFileError):
        wide.load_state(tmp_path / "good.state")


def test_save_leaves_the_process_umask_alone_and_lets_the_kernel_apply_it(tmp_path, lstm, monkeypatch):
    """Another thread creating a file while a save runs must get the process's umask, so a
    save never sets it, even for a moment."""
    previous = os.umask(0o027)
    try:
        def umask_changed(mask):
            raise AssertionError(f"os.umask({mask:#o}) called while saving")
        monkeypatch.setattr(os, "umask", umask_changed)
        edgeseq_runtime.load(lstm.path).save_state(tmp_path / "s.state")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "s.state").st_mode) == 0o640


def test_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path, lstm):
    m = edgeseq_runtime.load(lstm.path)
    m.save_state(tmp_path / "s.state")
    os.chmod(tmp_path / "s.state", 0o600)  # a user who made the state private
    m.run(lstm.random_steps(np.random.default_rng(4), 3))
    m.save_state(tmp_path / "s.state")
    assert stat.S_IMODE(os.stat(tmp_path / "s.state").st_mode) == 0o600
