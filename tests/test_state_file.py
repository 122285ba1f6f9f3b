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


def test_a_state_outlives_a_new_layout_of_the_plan(tmp_path, silero):
    """A state file names the model, its load options and batch, not the plan: a runtime that lays
    the plan out anew (here the lean plan codegen runs, one conv position a pass, in other arena
    places) takes the state the other saved, and continues the stream."""
    path = silero["silero_vad_v6"]
    options = edgeseq_runtime.LoadOptions(input_shape=(576,))
    fast = edgeseq_runtime.load(path, input_shape=(576,))
    lean = edgeseq_runtime.StreamingModel(edgeseq_runtime.lower_model(path, 1, options, lean=True), 1, str(path))
    assert lean._code.tobytes() != fast._code.tobytes()  # two layouts of one computation
    chunks = np.random.default_rng(0).uniform(-0.3, 0.3, (8, 576)).astype(np.float32)
    expected = fast.run(chunks)
    fast.reset()
    fast.run(chunks[:5])
    fast.save_state(tmp_path / "vad.state")
    assert lean.load_state(tmp_path / "vad.state") == 5
    np.testing.assert_allclose(lean.run(chunks[5:]), expected[5:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change", ["batch", "context", "weights"])
def test_the_fingerprint_tells_batch_options_and_weights_apart(tmp_path, lstm, change):
    other = {"batch": lambda: edgeseq_runtime.load(lstm.path, batch=2),
             "context": lambda: edgeseq_runtime.load(lstm.path, context=1),
             "weights": lambda: edgeseq_runtime.load(build_model(tmp_path, "LSTM", input_size=3, hidden_size=6,
                                                                 num_layers=2, stacked_state=True, head="matmul",
                                                                 filename="other.onnx", seed=5).path)}[change]()
    assert edgeseq_runtime.load(lstm.path).fingerprint == edgeseq_runtime.load(lstm.path).fingerprint
    assert other.fingerprint != edgeseq_runtime.load(lstm.path).fingerprint


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


# -- the journal: a state kept after every step with one write and one fdatasync --------------

def _journaled(tmp_path, lstm, X, commits: int):
    """A stream that journals its state after each of its first ``commits`` steps."""
    m = edgeseq_runtime.load(lstm.path)
    journal = m.journal(tmp_path / "j.state")
    for t in range(commits):
        m.step(X[t])
        m.commit_state(journal)
    journal.close()
    return tmp_path / "j.state"


def test_a_journal_loads_its_last_commit_and_continues_as_one_run(tmp_path, lstm):
    X = lstm.random_steps(np.random.default_rng(4), 30)
    whole = edgeseq_runtime.load(lstm.path).run(X)
    path = _journaled(tmp_path, lstm, X, 13)
    resumed = edgeseq_runtime.load(lstm.path)
    assert resumed.load_state(path) == 13 and resumed.steps == 13
    np.testing.assert_array_equal(resumed.run(X[13:]), whole[13:])


def test_a_commit_is_one_write_and_one_fdatasync_in_place(tmp_path, lstm, monkeypatch):
    m = edgeseq_runtime.load(lstm.path)
    journal = m.journal(tmp_path / "j.state")
    size, inode = os.path.getsize(tmp_path / "j.state"), os.stat(tmp_path / "j.state").st_ino
    calls = []
    for name in ("fdatasync", "fsync", "replace", "rename", "pwrite"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    for x in lstm.random_steps(np.random.default_rng(5), 4):
        m.step(x)
        m.commit_state(journal)
    journal.close()
    assert calls == ["pwrite", "fdatasync"] * 4
    assert os.path.getsize(tmp_path / "j.state") == size and os.stat(tmp_path / "j.state").st_ino == inode


def test_a_commit_torn_by_a_crash_leaves_the_commit_before_it(tmp_path, lstm):
    """A crash inside a slot's write leaves part of it new, part old: that slot's checksum
    fails, and the other slot holds the state one step earlier."""
    X = lstm.random_steps(np.random.default_rng(6), 20)
    whole = edgeseq_runtime.load(lstm.path).run(X)
    path = _journaled(tmp_path, lstm, X, 8)
    data = bytearray(path.read_bytes())
    slot = len(data) // 2
    newest = 1  # the open wrote both slots; commits then went to slot 0, 1, 0, ...: the 8th to slot 1
    for cut in (slot // 3, slot - 16):  # torn in the header, torn in the digest
        torn = bytearray(data)
        start = newest * slot + cut
        torn[start:start + 16] = bytes(16)
        path.write_bytes(bytes(torn))
        resumed = edgeseq_runtime.load(lstm.path)
        assert resumed.load_state(path) == 7
        np.testing.assert_array_equal(resumed.run(X[7:]), whole[7:])


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:len(b) // 2 + 7], "journal of"),
    (lambda b: b[:40] + bytes(8) + b[48:len(b) // 2 + 40] + bytes(8) + b[len(b) // 2 + 48:], "both slots"),
])
def test_a_journal_damaged_beyond_one_slot_is_refused_and_nothing_changes(tmp_path, lstm, damage, message):
    X = lstm.random_steps(np.random.default_rng(7), 5)
    path = _journaled(tmp_path, lstm, X, 5)
    path.write_bytes(damage(path.read_bytes()))
    m = edgeseq_runtime.load(lstm.path)
    m.run(X[:2])
    before = m.get_state()
    with pytest.raises(StateFileError, match=message) as error:
        m.load_state(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    assert m.steps == 2
    for name, value in m.get_state().items():
        np.testing.assert_array_equal(value, before[name])
