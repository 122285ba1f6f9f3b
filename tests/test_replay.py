"""``edgeseq replay`` and ``edgeseq.replay`` with the local engine: every stream's outputs bit for
bit those of ``edgeseq.load(MODEL).run(its rows)``, state files that continue a stream exactly,
and every kind of bad input refused in one line with nothing written."""

import fcntl
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.cli_results import assert_one_line_error, run
from support.onnx_builders import build_model
from support.replay_fleets import (
    assert_each_stream_is_its_own_run,
    fleet,
    outputs_by_key,
)

import edgeseq
import edgeseq.fleet.data


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("replay"), "GRU", input_size=3, hidden_size=12, head="matmul",
                       output_size=2, linear_before_reset=1)


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("replay"), "LSTM", input_size=3, hidden_size=9, num_layers=2,
                       head="matmul", output_size=1)


def test_every_stream_is_exactly_its_own_run(tmp_path, gru):
    lengths = [20] * 70 + [7] * 5 + list(range(1, 30))  # lanes of 64 and 6, lanes of 5, lone streams
    table, streams = fleet(lengths)
    pq.write_table(table, tmp_path / "fleet.parquet", row_group_size=500)
    out = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t")
    assert out.num_rows == table.num_rows and out.column_names == ["device", "t", "y0", "y1"]
    assert out.schema.field("y0").type == pa.float32()
    assert_each_stream_is_its_own_run(gru.path, out, streams)


def test_outputs_match_an_independent_reference(tmp_path, gru):
    table, streams = fleet([15, 15, 9])
    pq.write_table(table, tmp_path / "fleet.parquet")
    got = outputs_by_key(edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t"))
    for key, x in streams.items():
        np.testing.assert_allclose(got[key], gru.reference_numpy(x), atol=1e-5)


def test_many_buckets_give_the_same_numbers(tmp_path, lstm, monkeypatch):
    monkeypatch.setattr(edgeseq.fleet.data, "ROWS_PER_BUCKET", 64)  # ~15 buckets, split through files
    table, streams = fleet([30] * 20 + list(range(1, 40)), seed=1)
    pq.write_table(table, tmp_path / "fleet.parquet", row_group_size=100)
    out = edgeseq.replay(lstm.path, tmp_path / "fleet.parquet", key="device", order="t")
    assert out.num_rows == table.num_rows
    assert_each_stream_is_its_own_run(lstm.path, out, streams, outputs=("y",))


def test_csv_without_order_steps_each_stream_in_file_order(tmp_path, gru):
    rng = np.random.default_rng(2)
    device = rng.choice(["north", "south", "east"], 60)
    x = rng.uniform(-1, 1, (60, 3)).astype(np.float32)
    pacsv.write_csv(pa.table({"f0": x[:, 0], "device": device, "f1": x[:, 1], "f2": x[:, 2]}),
                    tmp_path / "fleet.csv")
    out = edgeseq.replay(gru.path, tmp_path / "fleet.csv", key="device")
    assert out.column_names == ["device", "y0", "y1"]
    read = pacsv.read_csv(tmp_path / "fleet.csv")  # the numbers as the CSV holds them
    features = np.stack([read[f"f{i}"].to_numpy() for i in range(3)], axis=1)
    assert_each_stream_is_its_own_run(gru.path, out, {k: features[device == k] for k in set(device)})


def test_categorical_keys_are_streams_like_any_other(tmp_path, gru):
    table, streams = fleet([5, 8, 3], keys=["pump-a", "pump-b", "valve"], seed=8)
    table = table.set_column(0, "device", table["device"].dictionary_encode())  # pandas' categoricals
    pq.write_table(table, tmp_path / "fleet.parquet")
    out = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t")
    assert_each_stream_is_its_own_run(gru.path, out, streams)


def test_columns_choose_and_order_the_inputs(tmp_path, gru):
    table, streams = fleet([12, 5], features=3)
    table = table.append_column("battery", pa.array(np.ones(table.num_rows)))  # numeric, not an input
    table = table.rename_columns(["device", "t", "c", "a", "b", "battery"])
    pq.write_table(table, tmp_path / "fleet.parquet")
    out = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", columns=["c", "a", "b"])
    assert_each_stream_is_its_own_run(gru.path, out, streams)
    reordered = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", columns="a,b,c")
    assert_each_stream_is_its_own_run(gru.path, reordered, {k: x[:, [1, 2, 0]] for k, x in streams.items()})


def test_states_and_resume_continue_one_long_run(tmp_path, gru):
    lengths = [30] * 10 + [11, 17, 4]
    table, streams = fleet(lengths, seed=3)
    first = table.filter(pa.compute.less(table["t"], 110))  # the first ten rows of each stream: day one
    second = table.filter(pa.compute.greater_equal(table["t"], 110))
    pq.write_table(first, tmp_path / "day1.parquet")
    pq.write_table(second, tmp_path / "day2.parquet")
    states = tmp_path / "states"
    edgeseq.replay(gru.path, tmp_path / "day1.parquet", key="device", order="t", states=states)
    assert sorted(os.listdir(states)) == sorted(f"{k}.state" for k in streams)  # no staging folder left
    device = edgeseq.load(gru.path)
    assert device.load_state(states / "12.state") == 4 and device.steps == 4
    for key, rows in ((12, 4), (0, 10)):  # a stream stepped alone, one stepped as a lane
        device.reset()
        device.run(streams[key][:rows])
        device.save_state(tmp_path / "saved.state")  # what a device writes after the same steps
        assert (states / f"{key}.state").read_bytes() == (tmp_path / "saved.state").read_bytes()
    day2 = edgeseq.replay(gru.path, tmp_path / "day2.parquet", key="device", order="t", states=states, resume=True)
    got = outputs_by_key(day2)
    model = edgeseq.load(gru.path)
    for key, x in streams.items():
        model.reset()
        whole = model.run(x)
        if len(x) > 10:
            np.testing.assert_array_equal(got[key], whole[10:], err_msg=f"key {key}")
        assert device.load_state(states / f"{key}.state") == len(x) and device.steps == len(x)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(device.get_state().values(), model.get_state().values()))


KILLED_WHILE_MOVING = """
import os, signal, sys
import edgeseq
moves, replace = [], os.replace
def replace_then_die(src, dst):
    moves.append(src)
    if len(moves) == 3:  # the commit rename, one state moved in: the next move never happens
        os.kill(os.getpid(), signal.SIGKILL)
    replace(src, dst)
os.replace = replace_then_die
model, data, states = sys.argv[1:]
edgeseq.replay(model, data, key="device", order="t", states=states)
"""


def test_a_replay_killed_while_moving_states_is_finished_by_the_next(tmp_path, gru):
    table, streams = fleet([12, 12, 12, 5], seed=4)
    first = table.filter(pa.compute.less(table["t"], 106))
    pq.write_table(first, tmp_path / "day1.parquet")
    pq.write_table(table.filter(pa.compute.greater_equal(table["t"], 106)), tmp_path / "day2.parquet")
    states = tmp_path / "states"
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_MOVING, str(gru.path), str(tmp_path / "day1.parquet"),
                             str(states)], check=False, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert len([name for name in os.listdir(states) if name.endswith(".state")]) == 1  # cut short mid-move
    day2 = edgeseq.replay(gru.path, tmp_path / "day2.parquet", key="device", order="t", states=states, resume=True)
    assert sorted(os.listdir(states)) == sorted(f"{k}.state" for k in streams)  # the move finished, folder gone
    got, model = outputs_by_key(day2), edgeseq.load(gru.path)
    device = edgeseq.load(gru.path)
    for key, x in streams.items():  # each stream continues as one long run: no state lost or stale
        model.reset()
        whole = model.run(x)
        if len(x) > 6:
            np.testing.assert_array_equal(got[key], whole[6:], err_msg=f"key {key}")
        assert device.load_state(states / f"{key}.state") == len(x)


def test_an_uncommitted_staging_folder_of_a_dead_replay_is_removed(tmp_path, gru):
    table, _ = fleet([5, 5], seed=5)
    pq.write_table(table, tmp_path / "fleet.parquet")
    states = tmp_path / "states"
    (states / ".replay-k1ll3d").mkdir(parents=True)
    (states / ".replay-k1ll3d" / "0.state").write_bytes(b"half written")
    edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", states=states)
    assert sorted(os.listdir(states)) == ["0.state", "1.state"]
    assert edgeseq.load(gru.path).load_state(states / "0.state") == 5


def test_a_second_replay_into_a_folder_in_use_is_one_line(tmp_path, gru, data):
    states = tmp_path / "states"
    states.mkdir()
    descriptor = os.open(states, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # what a replay writing there holds
    try:
        result, out = replay_command(gru.path, data, "--key", "device", "--order", "t", "--states", states)
    finally:
        os.close(descriptor)
    assert_one_line_error(result, str(states), "another replay")
    assert not out.exists() and os.listdir(states) == []


def test_edgeseq_stream_continues_from_a_replayed_state(tmp_path, gru):
    table, streams = fleet([12, 12], seed=13)
    pq.write_table(table, tmp_path / "fleet.parquet")
    edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", states=tmp_path / "states")
    rest = np.random.default_rng(14).uniform(-1, 1, (5, 3)).astype(np.float32)
    rows = "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rest)
    device = subprocess.run([sys.executable, "-m", "edgeseq.cli", "stream", str(gru.path), "--state-file",
                             str(tmp_path / "states" / "1.state")], input=rows, capture_output=True, text=True,
                            timeout=120)
    assert device.returncode == 0, device.stderr
    assert "12 rows consumed, 12 steps taken" in device.stderr
    whole = edgeseq.load(gru.path).run(np.concatenate([streams[1], rest]))
    np.testing.assert_array_equal(np.loadtxt(device.stdout.splitlines(), delimiter=",", dtype=np.float32), whole[12:])


def test_resumed_lanes_start_from_their_own_states(tmp_path, lstm):
    table, streams = fleet([8] * 6, seed=4)
    pq.write_table(table, tmp_path / "day.parquet")
    states = tmp_path / "states"
    edgeseq.replay(lstm.path, tmp_path / "day.parquet", key="device", order="t", states=states)
    again = edgeseq.replay(lstm.path, tmp_path / "day.parquet", key="device", order="t", states=states, resume=True)
    model = edgeseq.load(lstm.path)
    for key, y in outputs_by_key(again, ("y",)).items():
        model.reset()
        np.testing.assert_array_equal(y, model.run(np.concatenate([streams[key]] * 2))[8:], err_msg=f"key {key}")


def test_unsafe_keys_are_percent_encoded_inside_the_folder(tmp_path, gru):
    keys = ["../escape", "a/b", ".hidden", "dev 1", "ünï", "%41", "A", "plain-key_1.x"]
    table, streams = fleet([3] * len(keys), keys=keys)
    pq.write_table(table, tmp_path / "fleet.parquet")
    states = tmp_path / "states"
    out = edgeseq.replay(gru.path, tmp_path / "fleet.parquet", key="device", order="t", states=states)
    assert_each_stream_is_its_own_run(gru.path, out, streams)
    names = sorted(os.listdir(states))
    assert names == sorted(["%2E%2E%2Fescape.state", "a%2Fb.state", "%2Ehidden.state",
                            "dev%201.state", "%C3%BCn%C3%AF.state", "%2541.state", "A.state",
                            "plain-key_1.x.state"])
    assert set(os.listdir(tmp_path)) == {"fleet.parquet", "states"}  # nothing written outside DIR


def test_command_writes_parquet_and_says_what_it_did(tmp_path, gru):
    table, streams = fleet([6, 9], seed=5)
    pq.write_table(table, tmp_path / "fleet.parquet")
    result = run("replay", gru.path, tmp_path / "fleet.parquet", "-o", tmp_path / "out.parquet",
                 "--key", "device", "--order", "t", "--states", tmp_path / "states")
    assert result.exit_code == 0, result.output
    assert "replayed 2 streams, 15 steps" in result.stderr
    assert_each_stream_is_its_own_run(gru.path, pq.read_table(tmp_path / "out.parquet"), streams)
    assert sorted(os.listdir(tmp_path)) == ["fleet.parquet", "out.parquet", "states"]


# -- bad input: one line naming the file and the reason, nothing written ---------------------------


@pytest.fixture
def data(tmp_path):
    table, _ = fleet([5, 7], seed=6)
    table = table.append_column("site", pa.array(["x"] * table.num_rows))
    pq.write_table(table, tmp_path / "fleet.parquet")
    return tmp_path / "fleet.parquet"


def replay_command(model, data, *options):
    out = data.parent / "out.parquet"
    return run("replay", model, data, "-o", out, *options), out


@pytest.mark.parametrize("options,fragments", [
    (["--key", "serial"], ["fleet.parquet", "no key column 'serial'"]),
    (["--key", "device", "--order", "time"], ["fleet.parquet", "no order column 'time'"]),
    (["--key", "device", "--columns", "f0,f1,site"], ["fleet.parquet", "'site' is string, not numeric"]),
    (["--key", "device", "--columns", "f0,f1"], ["fleet.parquet", "2 input column(s)", "takes 3 values"]),
], ids=["key", "order", "not-numeric", "too-few"])
def test_bad_columns_are_one_line(gru, data, options, fragments):
    result, out = replay_command(gru.path, data, *options)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_resume_without_states_is_a_usage_error(gru, data):
    result, out = replay_command(gru.path, data, "--key", "device", "--resume")
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].endswith("replay: --resume needs --states DIR"), \
        result.output
    assert not out.exists()


def test_no_rows_is_one_line(tmp_path, gru):
    table, _ = fleet([1])
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    result, out = replay_command(gru.path, tmp_path / "empty.parquet", "--key", "device")
    assert_one_line_error(result, "empty.parquet", "no rows")
    assert not out.exists()


def test_empty_key_is_one_line(tmp_path, gru):
    table, _ = fleet([4, 4])
    table = table.set_column(0, "device", pa.array([1, 2, None, 1, 2, 1, 2, 1], pa.int64()))
    pq.write_table(table, tmp_path / "fleet.parquet")
    result, out = replay_command(gru.path, tmp_path / "fleet.parquet", "--key", "device", "--order", "t")
    assert_one_line_error(result, "fleet.parquet", "row 3:", "key column 'device' is empty")
    assert not out.exists()


def nan_fleet(tmp_path):
    table, streams = fleet([6, 8], seed=7)
    f1 = table["f1"].to_numpy().copy()
    row = int(np.flatnonzero((table["device"].to_numpy() == 1) & (table["t"].to_numpy() == 103))[0])
    f1[row] = np.nan
    pq.write_table(table.set_column(3, "f1", pa.array(f1)), tmp_path / "fleet.parquet")
    return tmp_path / "fleet.parquet", streams, row + 1


def test_nan_row_stops_naming_row_and_key_and_writes_nothing(tmp_path, gru):
    data, _, row = nan_fleet(tmp_path)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"yesterday's output")
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / "0.state").write_bytes(b"yesterday's state")
    result, _ = replay_command(gru.path, data, "--key", "device", "--order", "t", "--states", tmp_path / "states")
    assert_one_line_error(result, "fleet.parquet", f"row {row} (key 1)", "f1 is nan, not a finite number")
    assert out.read_bytes() == b"yesterday's output"
    assert os.listdir(tmp_path / "states") == ["0.state"]
    assert (tmp_path / "states" / "0.state").read_bytes() == b"yesterday's state"
    assert sorted(os.listdir(tmp_path)) == ["fleet.parquet", "out.parquet", "states"]  # no temporary left


def test_nan_row_skipped_reports_it_and_steps_the_rest(tmp_path, gru):
    data, streams, row = nan_fleet(tmp_path)
    result, out = replay_command(gru.path, data, "--key", "device", "--order", "t", "--on-error", "skip",
                                 "--states", tmp_path / "states")
    assert result.exit_code == 0, result.output
    assert f"edgeseq: skipped {data}: row {row} (key 1): f1 is nan" in result.stderr
    got = outputs_by_key(pq.read_table(out))
    model = edgeseq.load(gru.path)
    np.testing.assert_array_equal(got[0], model.run(streams[0]))
    model.reset()
    kept = np.delete(streams[1], 3, axis=0)
    expected = model.run(kept)
    assert np.isnan(got[1][3]).all()  # the skipped row's outputs are null
    np.testing.assert_array_equal(np.delete(got[1], 3, axis=0), expected)
    assert model.load_state(tmp_path / "states" / "1.state") == 8 and model.steps == 7  # rows consumed, steps


def test_state_file_of_another_model_is_one_line(tmp_path, gru, data):
    other = build_model(tmp_path, "GRU", input_size=3, hidden_size=12, head="matmul", output_size=2,
                        linear_before_reset=1, seed=9, filename="other.onnx")
    states = tmp_path / "states"
    states.mkdir()
    edgeseq.load(other.path).save_state(states / "1.state")
    before = (states / "1.state").read_bytes()
    result, out = replay_command(gru.path, data, "--key", "device", "--order", "t", "--states", states, "--resume")
    assert_one_line_error(result, "1.state", "saved by another model")
    assert not out.exists()
    assert os.listdir(states) == ["1.state"] and (states / "1.state").read_bytes() == before
