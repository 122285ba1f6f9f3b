"""``edgeseq replay --engine ray``: on a local two-CPU Ray cluster, the same numbers, rows and
state files as the local engine, errors found on a worker as the same one line, and a worker
killed mid-run costing nothing."""

import os
import signal
import tempfile
import threading
import time

import pyarrow.parquet as pq
import pytest
from support.cli_results import assert_one_line_error, run
from support.onnx_builders import build_model
from support.ray_cluster import ray_cluster  # noqa: F401 (a fixture)
from support.replay_fleets import assert_each_stream_is_its_own_run, fleet

import edgeseq
import edgeseq.fleet.data

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]  # a Ray run takes seconds to start


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("replay_ray"), "GRU", input_size=3, hidden_size=12, head="matmul",
                       output_size=2, linear_before_reset=1)


def sorted_rows(table):
    return table.sort_by([("device", "ascending"), ("t", "ascending")])


def test_ray_gives_the_local_numbers_and_states(tmp_path, gru):
    table, streams = fleet([20] * 40 + list(range(1, 25)), seed=10)
    pq.write_table(table, tmp_path / "fleet.parquet", row_group_size=300)
    out = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", engine="ray",
                         states=tmp_path / "ray")
    assert_each_stream_is_its_own_run(gru.path, out, streams)
    local = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", states=tmp_path / "local")
    assert sorted_rows(out).equals(sorted_rows(local))
    names = sorted(os.listdir(tmp_path / "local"))
    assert sorted(os.listdir(tmp_path / "ray")) == names
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_ray_command_resumes_and_refuses_a_foreign_state_file_in_one_line(tmp_path, gru):
    table, streams = fleet([9, 4, 12], seed=11)
    pq.write_table(table, tmp_path / "fleet.parquet")
    states = tmp_path / "states"
    first = run("replay", gru.path, tmp_path / "fleet.parquet", "-o", tmp_path / "out.parquet", "--key", "device",
                "--order", "t", "--engine", "ray", "--states", states)
    assert first.exit_code == 0, first.output
    assert_each_stream_is_its_own_run(gru.path, pq.read_table(tmp_path / "out.parquet"), streams)
    (states / "2.state").write_bytes((states / "0.state").read_bytes()[:-1] + b"!")  # corrupted on the way
    again = run("replay", gru.path, tmp_path / "fleet.parquet", "-o", tmp_path / "again.parquet", "--key", "device",
                "--order", "t", "--engine", "ray", "--states", states, "--resume")
    assert_one_line_error(again, "2.state", "checksum mismatch")
    assert not (tmp_path / "again.parquet").exists()
    assert sorted(os.listdir(tmp_path)) == ["fleet.parquet", "out.parquet", "states"]


def _worker_pids():
    """The run's actor processes: Ray titles them ``ray::ReplayWorker...``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::ReplayWorker"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_a_worker_killed_mid_run_loses_and_repeats_nothing(tmp_path, gru, monkeypatch):
    monkeypatch.setattr(edgeseq.fleet.data, "ROWS_PER_BUCKET", 2000)  # ~60 buckets: the kill lands mid-run
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run's parts go: watched below
    table, streams = fleet([200] * 500 + list(range(1, 200, 2)), seed=12)
    pq.write_table(table, tmp_path / "fleet.parquet", row_group_size=5000)
    done = {}

    def replay():
        done["out"] = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", engine="ray",
                                     states=tmp_path / "states")

    driver = threading.Thread(target=replay)
    driver.start()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".edgeseq-replay-parts-*/part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    victims = _worker_pids()
    assert victims and driver.is_alive()  # buckets replayed, and more to come
    os.kill(victims[0], signal.SIGKILL)
    driver.join(timeout=300)
    assert "out" in done
    out = done["out"]
    assert out.num_rows == table.num_rows
    assert_each_stream_is_its_own_run(gru.path, out, streams)
    model = edgeseq.load(gru.path)
    for key, x in streams.items():
        assert model.load_state(tmp_path / "states" / f"{key}.state") == len(x) and model.steps == len(x)
