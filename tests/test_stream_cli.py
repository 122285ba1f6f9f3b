"""``edgeseq stream``: row in, row out through a pipe, and exact resumption after kill -9."""

import fcntl
import os
import re
import signal
import subprocess
import sys
import termios
import time

import edgeseq_runtime
import numpy as np
import pytest
from support.onnx_builders import build_model

STREAM = [sys.executable, "-m", "edgeseq.cli", "stream"]


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("stream"), "GRU", input_size=3, hidden_size=12,
                       head="matmul", output_size=2, linear_before_reset=1)


def _rows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def _line(row) -> str:
    return ",".join(f"{v:.9g}" for v in row) + "\n"


def _numbers(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in text.splitlines()], np.float32)


def resume_point(message: str) -> tuple[int, int]:
    """(rows consumed, steps taken) from the resume line, checked to name the row to feed next."""
    found = re.search(r"(\d+) rows consumed, (\d+) steps taken; feed rows from row (\d+)", message)
    assert found, message
    rows, steps, next_row = map(int, found.groups())
    assert next_row == rows + 1
    return rows, steps


class Streamer:
    """An ``edgeseq stream`` process driven one row at a time."""

    def __init__(self, model, *options):
        self.process = subprocess.Popen([*STREAM, str(model), *options], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def resumed_rows(self) -> int:
        """The rows the state file says were consumed (the resume feeds the rows after them)."""
        return resume_point(self.process.stderr.readline())[0]

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


def test_a_line_too_long_to_be_a_row_is_refused_after_the_rows_before_it(gru, tmp_path):
    """2 MiB without a newline: one line on stderr, exit 1, the rows before it answered and
    saved; the process never holds more than a row's bound of it."""
    rows = _rows(3)
    state = tmp_path / "s.state"
    data = "".join(_line(r) for r in rows) + "1," * (1 << 20)
    result = subprocess.run([*STREAM, str(gru.path), "--state-file", str(state)], input=data,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "<stdin>: a line of more than" in result.stderr
    np.testing.assert_array_equal(_numbers(result.stdout), edgeseq_runtime.load(gru.path).run(rows))
    resumed = edgeseq_runtime.load(gru.path)
    assert resumed.load_state(state) == 3


@pytest.mark.slow  # a fresh process per kill
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
        done = streamer.resumed_rows() if state.exists() else 0
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


F_SETPIPE_SZ = 1031  # Linux fcntl: a pipe's capacity


def _pipe_stalled(pipe, seconds=60) -> int:
    """Wait until ``pipe`` (stdout of a stream nobody reads) is full and stays so: the stream is
    then blocked writing. Returns the bytes in it."""
    deadline, last = time.monotonic() + seconds, -1
    while time.monotonic() < deadline:
        pending = np.zeros(1, np.int32)
        fcntl.ioctl(pipe, termios.FIONREAD, pending)
        if pending[0] == last and last > 0:
            return last
        last = int(pending[0])
        time.sleep(0.3)
    raise AssertionError("the stream never blocked on its output")


def test_sigterm_while_stdout_is_blocked_then_resume_loses_and_repeats_no_line(gru, tmp_path):
    """The reader stalls, the stream gets SIGTERM, then the reader takes what the pipe holds and
    goes away (a service stopped with its consumer)."""
    rows = _rows(1000, seed=4)  # far more output than the pipe holds
    (tmp_path / "rows.csv").write_text("".join(_line(r) for r in rows))
    state = tmp_path / "s.state"
    with open(tmp_path / "rows.csv") as rows_in:
        blocked = subprocess.Popen([*STREAM, str(gru.path), "--state-file", str(state)], stdin=rows_in,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fcntl.fcntl(blocked.stdout, F_SETPIPE_SZ, 8192)  # two pages: full after ~150 lines
    held = _pipe_stalled(blocked.stdout)
    blocked.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    first = os.read(blocked.stdout.fileno(), held + 4096)
    blocked.stdout.close()
    assert blocked.wait(timeout=60) == 0, blocked.stderr.read()
    m = edgeseq_runtime.load(gru.path)
    consumed = m.load_state(state)
    assert 100 < consumed < len(rows)

    with open(tmp_path / "rest.csv", "w") as rest:
        rest.write("".join(_line(r) for r in rows[consumed:]))
    with open(tmp_path / "rest.csv") as rest:
        resumed = subprocess.run([*STREAM, str(gru.path), "--state-file", str(state)], stdin=rest,
                                 capture_output=True, text=True, timeout=120)
    assert resume_point(resumed.stderr) == (consumed, consumed)
    together = _numbers(first.decode() + resumed.stdout)
    np.testing.assert_array_equal(together, edgeseq_runtime.load(gru.path).run(rows))


def test_resume_after_blank_and_skipped_rows_feeds_each_row_once(gru, tmp_path):
    good = _rows(12, seed=5)
    lines = [_line(r) for r in good]
    lines[2:2] = ["\n", "1,nan,2\n"]  # a blank row and a refused one before the cut
    lines[7:7] = ["x,y,z\n", "\n"]
    cut = 9
    state = tmp_path / "s.state"
    command = [*STREAM, str(gru.path), "--state-file", str(state), "--on-error", "skip"]
    first = subprocess.run(command, input="".join(lines[:cut]), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "row 4" in first.stderr and "row 8" in first.stderr
    second = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    rows, steps = resume_point(second.stderr.readline())
    assert (rows, steps) == (cut, cut - 4)
    rest, _ = second.communicate("".join(lines[rows:]), timeout=120)  # feed rows from row rows + 1
    np.testing.assert_array_equal(_numbers(first.stdout + rest), edgeseq_runtime.load(gru.path).run(good))


def test_a_second_stream_on_the_same_state_file_is_refused(gru, tmp_path):
    state = tmp_path / "s.state"
    (tmp_path / "link.state").symlink_to(state)
    owner = Streamer(gru.path, "--state-file", str(state))
    owner.step(_rows(1)[0])
    for path in (state, tmp_path / "link.state"):
        second = subprocess.run([*STREAM, str(gru.path), "--state-file", str(path)], input=_line(_rows(1)[0]),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and second.stdout == ""
        assert second.stderr.count("\n") == 1 and "in use by another edgeseq stream" in second.stderr
    assert owner.close()[2] == 0
    m = edgeseq_runtime.load(gru.path)
    assert m.load_state(state) == 1 and m.steps == 1


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_a_state_file_that_is_not_a_regular_file_is_refused_in_one_line(gru, tmp_path, kind):
    state = tmp_path / "s.state"
    if kind == "fifo":
        os.mkfifo(state)
    else:
        state.symlink_to("/dev/zero")
    result = subprocess.run([*STREAM, str(gru.path), "--state-file", str(state)], input=_line(_rows(1)[0]),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"{state}: not a regular file" in result.stderr
    assert not os.path.exists("/dev/zero.lock")
