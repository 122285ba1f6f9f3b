"""``edgeseq stream``: row in, row out through a pipe, and exact resumption after kill -9."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import edgeseq_runtime
from onnx_builders import build_model

STREAM = [sys.executable, "-m", "edgeseq.cli", "stream"]


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("stream"), "GRU", input_size=3, hidden_size=12,
                       head="matmul", output_size=2, linear_before_reset=1)


def _rows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def _line(row) -> str:
    return ",".join(f"{v:.9g}" for v in row) + "\n"


class Streamer:
    """An ``edgeseq stream`` process driven one row at a time."""

    def __init__(self, model, *options):
        self.process = subprocess.Popen([*STREAM, str(model), *options], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def resumed_steps(self) -> int:
        line = self.process.stderr.readline()
        return int(re.search(r"after (\d+) steps", line).group(1))

    def step(self, row) -> str:
        self.process.stdin.write(_line(row))
        self.process.stdin.flush()
        return self.process.stdout.readline()

    def close(self) -> tuple[str, str, int]:
        out, err = self.process.communicate(timeout=120)
        return out, err, self.process.returncode


def test_rows_in_rows_out_match_the_runtime(gru):
    rows = _rows(20)
    streamer = Streamer(gru.path)
    lines = [streamer.step(r) for r in rows]  # each answer arrives before the next row is sent
    out, err, code = streamer.close()
    assert code == 0 and out == "" and err == ""
    expected = edgeseq_runtime.load(gru.path).run(rows)
    got = np.array([[float(v) for v in line.split(",")] for line in lines], np.float32)
    np.testing.assert_array_equal(got, expected)


def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_outputs(gru, tmp_path):
    rows = _rows(1000, seed=1)
    reference = Streamer(gru.path)
    reference.process.stdin.write("".join(_line(r) for r in rows))
    expected, _, code = reference.close()
    assert code == 0
    expected = expected.splitlines(keepends=True)

    state = tmp_path / "stream.state"
    rng = np.random.default_rng(7)
    outputs, kills = [], 0
    while len(outputs) < len(rows):
        streamer = Streamer(gru.path, "--state-file", str(state))
        done = streamer.resumed_steps() if state.exists() else 0
        outputs = outputs[:done]  # rows after the saved step are replayed, their outputs recomputed
        stop_at = len(rows) if kills == 4 else min(len(rows), done + int(rng.integers(1, 300)))
        for row in rows[done:stop_at]:
            outputs.append(streamer.step(row))
        if stop_at == len(rows):
            assert streamer.close()[2] == 0
            break
        os.kill(streamer.process.pid, signal.SIGKILL)
        streamer.process.wait()
        kills += 1
    assert kills == 4
    assert outputs == expected


def test_sigterm_saves_the_state(gru, tmp_path):
    state = tmp_path / "term.state"
    streamer = Streamer(gru.path, "--state-file", str(state), "--every", "1000")
    for row in _rows(5):
        streamer.step(row)
    streamer.process.send_signal(signal.SIGTERM)
    assert streamer.close()[2] == 0
    m = edgeseq_runtime.load(gru.path)
    m.load_state(state)
    assert m.steps == 5


@pytest.mark.parametrize("policy,code,answered", [("stop", 1, 1), ("skip", 0, 2)])
def test_bad_rows_are_reported_with_their_number_and_leave_the_state_alone(gru, policy, code, answered):
    good = _rows(2, seed=3)
    text = _line(good[0]) + "1,nan,2\n" + "1,2\n" + _line(good[1])
    result = subprocess.run([*STREAM, str(gru.path), "--on-error", policy], input=text,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code
    assert "row 2" in result.stderr and "not finite" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == answered
    expected = edgeseq_runtime.load(gru.path).run(good)  # as if the bad rows never came
    got = np.array([[float(v) for v in line.split(",")] for line in lines], np.float32)
    np.testing.assert_array_equal(got, expected[:answered])
    if policy == "skip":
        assert "row 3" in result.stderr and "expected 3 values" in result.stderr
