"""State files as an attacker would make them: each loads exactly, or raises StateFileError
naming the file and leaves the model's state untouched. Nothing else: no hang, no unbounded
read, no other exception.

The files are built here from the format the ``state_file`` docstring documents (prefix, JSON
header, float32 payload, sha256), independently of the writer under test, so a crafted file
can carry a valid checksum and reach the header checks.
"""

import fcntl
import hashlib
import json
import os
import stat
import struct
import threading

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime.state_file import StateFileError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.onnx_builders import build_model

MAGIC = b"EDGESEQ\x00"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
SECONDS = 10  # far more than any refusal takes; a regression that blocks fails instead of hanging


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    built = build_model(tmp_path_factory.mktemp("hostile"), "LSTM", input_size=3, hidden_size=4,
                        num_layers=2, stacked_state=True, head="matmul")
    return edgeseq_runtime.load(built.path), built


@pytest.fixture
def model(lstm):
    """The model at a known state that is neither the initial one nor any file's."""
    m, built = lstm
    m.reset()
    m.run(built.random_steps(np.random.default_rng(11), 7))
    return m


def sign(header, payload: bytes, version: int = 2) -> bytes:
    """A state file of the documented layout with a valid checksum; ``header`` a dict or raw bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = MAGIC + struct.pack("<II", version, len(raw)) + raw + payload
    return body + hashlib.sha256(body).digest()


def valid_parts(m, steps=5, rows=9):
    """A header and payload this model accepts, with a state of its own (not the model's)."""
    states = m.get_state()
    arrays = {name: np.linspace(-0.5, 0.5, a.size, dtype=np.float32).reshape(a.shape) for name, a in states.items()}
    header = {"fingerprint": m.fingerprint, "steps": steps, "rows": rows,
              "states": [[name, list(a.shape)] for name, a in arrays.items()]}
    return header, b"".join(a.astype("<f4").tobytes() for a in arrays.values()), arrays


def refused_unchanged(m, path, match=None):
    """Load ``path``: it must raise one line of StateFileError naming it, state untouched."""
    before, steps = m.get_state(), m.steps
    with pytest.raises(StateFileError) as error:
        within(lambda: m.load_state(path))
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    if match:
        assert match in message
    assert m.steps == steps
    for name, value in m.get_state().items():
        np.testing.assert_array_equal(value, before[name])
    return message


def within(call, seconds=SECONDS):
    """``call()``'s result or exception, or a failure if it has not returned in ``seconds``."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- files that are not regular files ------------------------------------------------------

def test_a_fifo_is_refused_without_waiting_for_a_writer(model, tmp_path):
    os.mkfifo(tmp_path / "s.state")
    refused_unchanged(model, tmp_path / "s.state", "a FIFO")


def test_a_link_to_dev_zero_is_refused_before_reading(model, tmp_path):
    (tmp_path / "s.state").symlink_to("/dev/zero")
    refused_unchanged(model, tmp_path / "s.state", "character device")


def test_a_directory_is_refused(model, tmp_path):
    (tmp_path / "s.state").mkdir()
    refused_unchanged(model, tmp_path / "s.state", "a directory")


def test_a_file_larger_than_this_models_state_is_refused_before_reading(model, tmp_path):
    header, payload, _ = valid_parts(model)
    (tmp_path / "s.state").write_bytes(sign(header, payload + bytes(1 << 20)))
    refused_unchanged(model, tmp_path / "s.state", "bytes a state file of this model can hold")


# -- links and leftovers on save -----------------------------------------------------------

def test_save_through_a_symlink_writes_its_target_and_keeps_the_link(model, tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "real.state"
    target.write_bytes(b"old")
    link = tmp_path / "s.state"
    link.symlink_to(target)
    model.save_state(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    fresh = model.clone()
    fresh.reset()
    fresh.load_state(target)
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(fresh.get_state()[name], value)
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_save_onto_a_fifo_is_refused_and_leaves_it_a_fifo(model, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "s.state").symlink_to(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        model.save_state(tmp_path / "s.state")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_removes_stale_temporaries_of_killed_saves_and_only_those(model, tmp_path):
    hour_ago = os.path.getmtime(tmp_path) - 3600
    stale = [tmp_path / ".s.state.0a1b2c3d.tmp", tmp_path / ".s.state.k_9xq2mz.tmp"]  # this and mkstemp's names
    kept = [tmp_path / ".s.state.0a1b2c3d.tmp.bak", tmp_path / ".other.state.0a1b2c3d.tmp",
            tmp_path / ".s.state.mine.tmp", tmp_path / ".s.state.fffffffe.tmp"]  # the last: a live save
    for path in stale + kept:
        path.write_bytes(b"partial")
        os.utime(path, (hour_ago, hour_ago))
    fresh = tmp_path / ".s.state.00000001.tmp"  # a save that has just started
    fresh.write_bytes(b"")
    with open(kept[-1], "rb") as live:
        fcntl.flock(live, fcntl.LOCK_EX)
        model.save_state(tmp_path / "s.state")
    assert [p.exists() for p in stale] == [False, False]
    assert all(p.exists() for p in kept + [fresh])


# -- crafted headers with a valid checksum -------------------------------------------------

def _deep(depth):
    return b'{"fingerprint": "' + b"0" * 64 + b'", "steps": ' + b"[" * depth + b"]" * depth + b', "rows": 1, "states": []}'


CRAFTED = {
    "negative_steps": lambda h: {**h, "steps": -1},
    "fractional_steps": lambda h: {**h, "steps": 2.5},
    "steps_1e400": lambda h: json.dumps(h).replace('"steps": 5', '"steps": 1e400').encode(),
    "steps_nan": lambda h: json.dumps(h).replace('"steps": 5', '"steps": NaN').encode(),
    "steps_true": lambda h: {**h, "steps": True},
    "steps_string": lambda h: {**h, "steps": "5"},
    "steps_2_64": lambda h: {**h, "steps": 2**64, "rows": 2**64},
    "steps_5000_digits": lambda h: json.dumps(h).replace('"steps": 5', '"steps": ' + "9" * 5000).encode(),
    "rows_below_steps": lambda h: {**h, "rows": 4},
    "rows_float": lambda h: {**h, "rows": 9.0},
    "nested_5000": lambda h: _deep(5000),
    "nested_in_states": lambda h: json.dumps({**h, "states": "X"}).replace('"X"', "[" * 900 + "]" * 900).encode(),
    "fingerprint_int": lambda h: {**h, "fingerprint": 7},
    "fingerprint_short": lambda h: {**h, "fingerprint": h["fingerprint"][:12]},
    "fingerprint_upper": lambda h: {**h, "fingerprint": h["fingerprint"].upper()},
    "duplicate_state": lambda h: {**h, "states": h["states"] + h["states"][:1]},
    "duplicate_key": lambda h: json.dumps(h).replace('"rows": 9', '"rows": 9, "rows": 9').encode(),
    "name_not_str": lambda h: {**h, "states": [[1, s] for _, s in h["states"]]},
    "dim_bool": lambda h: {**h, "states": [[n, [True] * len(s)] for n, s in h["states"]]},
    "dim_float": lambda h: {**h, "states": [[n, [float(d) for d in s]] for n, s in h["states"]]},
    "dim_negative": lambda h: {**h, "states": [[n, [-d for d in s]] for n, s in h["states"]]},
    "shapes_swapped": lambda h: {**h, "states": [[n, s[::-1]] for n, s in h["states"]]},
    "rank_1000": lambda h: {**h, "states": [[n, [1] * 1000] for n, _ in h["states"]]},
    "states_dict": lambda h: {**h, "states": dict(h["states"])},
    "extra_field": lambda h: {**h, "owner": "x"},
    "missing_rows": lambda h: {k: v for k, v in h.items() if k != "rows"},
    "header_list": lambda h: [h],
    "not_utf8": lambda h: b"\xff\xfe" + json.dumps(h).encode(),
    "utf16": lambda h: json.dumps(h).encode("utf-16"),
    "name_with_newline": lambda h: {**h, "states": [["a\nb", s] for _, s in h["states"]]},
}


@pytest.mark.parametrize("craft", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_headers_with_a_valid_checksum_are_refused(model, tmp_path, craft):
    header, payload, _ = valid_parts(model)
    (tmp_path / "s.state").write_bytes(sign(craft(header), payload))
    refused_unchanged(model, tmp_path / "s.state", "s.state: ")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_payload_is_refused(model, tmp_path, value):
    header, payload, arrays = valid_parts(model)
    first = next(iter(arrays))
    arrays[first].flat[1] = value
    (tmp_path / "s.state").write_bytes(sign(header, b"".join(a.astype("<f4").tobytes() for a in arrays.values())))
    refused_unchanged(model, tmp_path / "s.state", "NaN or Inf")


def test_header_length_past_the_end_and_unknown_versions_are_refused(model, tmp_path):
    header, payload, _ = valid_parts(model)
    good = sign(header, payload)
    past_end = good[:12] + struct.pack("<I", 2**32 - 1) + good[16:-32]
    (tmp_path / "s.state").write_bytes(past_end + hashlib.sha256(past_end).digest())
    refused_unchanged(model, tmp_path / "s.state", "past the end")
    (tmp_path / "s.state").write_bytes(sign(header, payload, version=4))
    refused_unchanged(model, tmp_path / "s.state", "version 4")


def test_a_version_1_file_loads_with_rows_equal_to_steps(model, tmp_path):
    header, payload, arrays = valid_parts(model, steps=12)
    del header["rows"]
    (tmp_path / "s.state").write_bytes(sign(header, payload, version=1))
    assert model.load_state(tmp_path / "s.state") == 12
    assert model.steps == 12
    for name, value in arrays.items():
        np.testing.assert_array_equal(model.get_state()[name], value)


# -- fuzzing: accepted exactly as written, or refused with nothing changed -----------------

def check_load(m, path, data: bytes):
    """Load ``data``: either exactly what it says (the test's own reading of the layout), or a
    StateFileError that names the file and changes nothing."""
    path.write_bytes(data)
    before, steps = m.get_state(), m.steps
    try:
        rows = m.load_state(path)
    except StateFileError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        assert m.steps == steps
        for name, value in m.get_state().items():
            np.testing.assert_array_equal(value, before[name])
        return
    (header_size,) = struct.unpack_from("<I", data, 12)
    header = json.loads(data[16:16 + header_size])
    payload = np.frombuffer(data[16 + header_size:-32], "<f4")
    assert (m.steps, rows) == (header["steps"], header.get("rows", header["steps"]))
    start = 0
    for name, shape in header["states"]:
        size = int(np.prod(shape))
        np.testing.assert_array_equal(m.get_state()[name], payload[start:start + size].reshape(shape))
        start += size


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(lstm, tmp_path_factory, data):
    m, _ = lstm
    check_load(m, tmp_path_factory.mktemp("fuzz") / "s.state", data)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 40), version=st.sampled_from([1, 2]))
def test_fuzz_byte_mutations_resigned(lstm, tmp_path_factory, edits, cut, version):
    """A valid file's body with bytes changed and a tail cut, then signed again."""
    m, _ = lstm
    header, payload, _ = valid_parts(m)
    if version == 1:
        del header["rows"]
    body = bytearray(sign(header, payload, version)[:-32])
    for offset, value in edits:
        body[offset % len(body)] = value
    body = bytes(body[:len(body) - cut])
    check_load(m, tmp_path_factory.mktemp("fuzz") / "s.state", body + hashlib.sha256(body).digest())


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=12)


@FUZZ
@given(field=st.sampled_from(["fingerprint", "steps", "rows", "states", "extra"]), value=JSON_VALUES,
       state_index=st.integers(0, 1), part=st.sampled_from(["name", "shape", "entry", "none"]))
def test_fuzz_header_fields_resigned(lstm, tmp_path_factory, field, value, state_index, part):
    """A valid file with one header field, or one part of a state entry, replaced by any JSON value."""
    m, _ = lstm
    header, payload, _ = valid_parts(m)
    if field == "states" and part != "none":
        entry = header["states"][state_index % len(header["states"])]
        if part == "entry":
            header["states"][state_index % len(header["states"])] = value
        else:
            entry[0 if part == "name" else 1] = value
    else:
        header[field] = value
    raw = json.dumps(header, allow_nan=True).encode()
    check_load(m, tmp_path_factory.mktemp("fuzz") / "s.state", sign(raw, payload))
