"""edgeseq train and edgeseq demo on the shipped series: scores against the seasonal-naive
baseline, bad CSVs, and the demo end to end."""

import re
import subprocess
import sys
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
import torch
from edgeseq_export.forecasting.scores import seasonal_naive_forecasts
from edgeseq_export.forecasting.series import read_series, seasonal_period
from edgeseq_export.forecasting.training import TrainOptions, one_step_predictions, train_forecaster
from edgeseq_export.pytorch.models import load_checkpoint

pytestmark = pytest.mark.slow  # training, and the CLI in fresh processes

DATA = Path(__file__).parents[1] / "edgeseq" / "data"
EDGESEQ = [sys.executable, "-m", "edgeseq.cli"]


@pytest.fixture(scope="module")
def taylor_slice(tmp_path_factory):
    """Three weeks of half-hourly demand: enough for a daily season, quick to train on."""
    lines = (DATA / "taylor.csv").read_text().splitlines()[:1 + 48 * 21]
    path = tmp_path_factory.mktemp("data") / "taylor_3w.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_series_reading_and_seasons():
    wine = read_series(DATA / "wineind.csv")
    assert wine.name == "sales" and len(wine.values) == 176
    assert seasonal_period(wine.values, 60) == 12
    taylor = read_series(DATA / "taylor.csv", column="demand_mw")
    assert seasonal_period(taylor.values[:2500], 800) in (48, 336)
    naive = seasonal_naive_forecasts(wine.values, 150, len(wine.values), 12)
    np.testing.assert_array_equal(naive, wine.values[138:164])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forecaster_beats_the_seasonal_naive_baseline_on_taylor(taylor_slice, cell):
    result = train_forecaster(read_series(taylor_slice), TrainOptions(cell=cell, hidden=16, epochs=25, seed=1))
    metrics = result.metrics
    assert np.isfinite(metrics["test_rmse"]) and metrics["season"] == 48
    assert metrics["test_rmse"] < metrics["naive_rmse"]


def test_train_cli_writes_a_checkpoint_that_exports_and_streams(taylor_slice, tmp_path):
    checkpoint, onnx_path = tmp_path / "gru.pt", tmp_path / "gru.onnx"
    trained = subprocess.run([*EDGESEQ, "train", str(taylor_slice), "--cell", "gru", "-o", str(checkpoint),
                              "--hidden", "8", "--epochs", "3", "--seed", "3"], capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert "test RMSE" in trained.stdout and "seasonal naive" in trained.stdout
    exported = subprocess.run([*EDGESEQ, "export", str(checkpoint), "-o", str(onnx_path)], capture_output=True,
                              text=True)
    assert exported.returncode == 0, exported.stderr
    values = read_series(taylor_slice).values
    model = load_checkpoint(checkpoint).model
    expected = one_step_predictions(model, values)  # PyTorch over the whole sequence
    streamed = edgeseq_runtime.load(onnx_path).run(values[:-1].astype(np.float32).reshape(-1, 1))[:, 0]
    assert np.abs(streamed - expected).max() <= 1e-3 * np.abs(expected).max()  # data units (MW)


def test_training_is_reproducible_with_a_seed(taylor_slice):
    options = TrainOptions(cell="rnn", hidden=8, epochs=2, seed=7)
    first = train_forecaster(read_series(taylor_slice), options)
    second = train_forecaster(read_series(taylor_slice), options)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_ctrl_c_keeps_the_best_epoch_so_far(taylor_slice):
    """A KeyboardInterrupt after epoch 3 ends training there with the best of epochs 1-3,
    the same weights as a run of exactly 3 epochs; without ``interruptible`` it propagates."""
    options = TrainOptions(cell="rnn", hidden=8, epochs=10, seed=5, design="seasonal")  # one design: its epochs

    def interrupt_after_three(epoch, *_):
        if epoch == 3:
            raise KeyboardInterrupt

    interrupted = train_forecaster(read_series(taylor_slice), options, on_epoch=interrupt_after_three,
                                   interruptible=True)
    assert interrupted.metrics["interrupted"] and interrupted.metrics["epochs"] == 3
    three = train_forecaster(read_series(taylor_slice), TrainOptions(cell="rnn", hidden=8, epochs=3, seed=5,
                                                                     design="seasonal"))
    for (name, a), b in zip(interrupted.model.state_dict().items(), three.model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(KeyboardInterrupt):
        train_forecaster(read_series(taylor_slice), options, on_epoch=interrupt_after_three)


def test_an_unwritable_output_is_refused_before_training(taylor_slice, tmp_path):
    for output, message in ((tmp_path / "missing" / "m.pt", "no such folder"), (tmp_path, "directory")):
        result = subprocess.run([*EDGESEQ, "train", str(taylor_slice), "-o", str(output)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and result.stdout == "", result.stdout  # no epoch ran
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


@pytest.mark.parametrize("text,option,message", [
    ("month,sales\n2000-01,1\n", ["--column", "price"], "no column 'price'"),
    ("month,sales\n2000-01,1\n2000-02,abc\n", [], "line 3.*'abc' is not a finite number"),
    ("month,sales\n2000-01,1\n2000-02,2\n2000-03,3\n", [], "too few"),
    ("month,sales\n2000-01,1\n2000-02,2\n", [], "too few"),  # an empty training span: no numpy warnings
    ("", [], "header"),
], ids=["missing_column", "not_numeric", "too_few_rows", "two_rows", "empty"])
def test_bad_csv_is_one_clear_line(tmp_path, text, option, message):
    data = tmp_path / "bad.csv"
    data.write_text(text)
    result = subprocess.run([*EDGESEQ, "train", str(data), "-o", str(tmp_path / "m.pt"), *option],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.csv" in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([*EDGESEQ, "demo", "--quick", "--out", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    for dataset in ("wineind", "taylor"):
        assert f"{dataset}.csv: one-step-ahead forecasts" in result.stdout
        for cell in ("rnn", "lstm", "gru"):
            for suffix in (".pt", ".onnx", ".int8.onnx"):
                assert (out / dataset / f"{cell}{suffix}").is_file()
    assert {p.name for p in (out / "c").iterdir()} >= {"forecaster.c", "forecaster.h", "edgeseq_rt.c", "edgeseq_rt.h"}
