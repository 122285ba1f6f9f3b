"""Forecasters with seasonal ends: the exported step graph streamed by edgeseq's runtime against
the PyTorch module, the seasonal arithmetic against float64 numpy, training that starts from
and beats the baseline, covariates and horizons, scores per horizon, and ``edgeseq evaluate``."""

import json
import subprocess
import sys
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
import torch
from edgeseq_export.api import export
from edgeseq_export.forecasting.scores import horizon_scores
from edgeseq_export.forecasting.series import Series, read_series
from edgeseq_export.forecasting.training import TrainOptions, forecast_series, train_forecaster
from edgeseq_export.pytorch.models import ModelConfig, SequenceModel, load_checkpoint, save_checkpoint

DATA = Path(__file__).parents[1] / "edgeseq" / "data"
EDGESEQ = [sys.executable, "-m", "edgeseq.cli"]


def _seasonal_model(cell="gru", season=5, seasons=2, horizon=3, covariates=2, level=True, seed=0):
    """Random weights (the head too) and scales of the data below."""
    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(cell=cell, input_size=1 + covariates, hidden_size=6, outputs=horizon,
                                      season=season, seasons=seasons, level_input=level)).eval()
    model.seasonal.set_scales(0.75, 5.0, 2.0, [1.0] * covariates, [0.5] * covariates)
    return model


def _rows(steps=40, covariates=2, seed=1):
    rng = np.random.default_rng(seed)
    target = 5 + 2 * np.sin(np.arange(steps) * 2 * np.pi / 5) + rng.normal(0, 0.3, steps)
    return np.column_stack([target, rng.normal(1, 0.5, (steps, covariates))])


def _numpy_baselines(target: np.ndarray, season: int, seasons: int, horizon: int) -> np.ndarray:
    """float64: the mean of the ``seasons`` values a whole number of seasons before each target,
    known at the forecast's origin t, with the values before the stream taken as zeros."""
    padded = np.concatenate([np.zeros(season * seasons), target])
    start = season * seasons
    out = np.empty((len(target), horizon))
    for t in range(len(target)):
        for h in range(1, horizon + 1):
            back = season * -(-h // season)  # the latest whole number of seasons at or past h
            out[t, h - 1] = np.mean([padded[start + t + h - back - (j - 1) * season] for j in range(1, seasons + 1)])
    return out


def test_seasonal_arithmetic_matches_float64_numpy():
    """The baselines and the network's first input (the departure from the value's own
    baseline, in units of scale) against a float64 numpy reference written from the definition."""
    model = _seasonal_model(season=4, seasons=3, horizon=6)
    rows = _rows(30)
    x = torch.tensor(rows, dtype=torch.float64).unsqueeze(0)
    ends = model.seasonal.double()
    features, baselines, lags = ends.features(x, ends.empty_lags(x))
    expected = _numpy_baselines(rows[:, 0], 4, 3, 6)
    np.testing.assert_allclose(baselines[0].numpy(), expected, rtol=0, atol=1e-12)
    padded = np.concatenate([np.zeros(12), rows[:, 0]])
    own = np.mean([padded[12 - 4 * j:12 - 4 * j + 30] for j in (1, 2, 3)], axis=0)
    np.testing.assert_allclose(features[0, :, 0].numpy(), (rows[:, 0] - own) / 0.75, rtol=0, atol=1e-12)
    np.testing.assert_allclose(features[0, :, 1].numpy(), (rows[:, 0] - 5.0) / 2.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lags[0, 0].numpy(), rows[-12:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("cell,seasons,level", [("gru", 2, True), ("lstm", 1, False), ("rnn", 3, True)])
def test_exported_step_graph_streams_the_pytorch_forecasts(tmp_path, cell, seasons, level):
    """The product's exporter writes the delay line as state; edgeseq's runtime, stepping the
    file one row at a time, gives PyTorch's forecasts within 1e-5 and ends in its state."""
    model = _seasonal_model(cell, seasons=seasons, level=level)
    save_checkpoint(model, tmp_path / "m.pt")
    export(tmp_path / "m.pt", tmp_path / "m.onnx")
    stream = edgeseq_runtime.load(tmp_path / "m.onnx")
    assert (stream.input_size, stream.output_size) == (3, 3)
    rows = _rows(40).astype(np.float32)
    stepped = np.stack([stream.step(row) for row in rows])
    with torch.no_grad():
        expected, state = model(torch.from_numpy(rows).unsqueeze(0))
    np.testing.assert_allclose(stepped, expected[0].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(stream.get_state()["lags"], state[-1].numpy())


def test_a_zero_head_streams_the_seasonal_mean_baseline(tmp_path):
    """With its head at zero (where training starts) the exported model is the baseline: the
    runtime's forecasts equal float64 numpy's seasonal means, horizon by horizon."""
    model = _seasonal_model(season=4, seasons=2, horizon=5, covariates=0)
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.zero_()
    save_checkpoint(model, tmp_path / "m.pt")
    export(tmp_path / "m.pt", tmp_path / "m.onnx")
    rows = _rows(30, covariates=0)
    got = edgeseq_runtime.load(tmp_path / "m.onnx").run(rows.astype(np.float32))
    np.testing.assert_allclose(got, _numpy_baselines(rows[:, 0], 4, 2, 5), rtol=0, atol=1e-5)


def _noisy_seasonal(steps=240, season=6, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return 100 + 0.05 * t + 10 * np.sin(2 * np.pi * t / season) + rng.normal(0, 2, steps)


def test_training_starts_from_the_baseline_and_beats_it():
    """On a noisy seasonal series the chosen design's test RMSE is below seasonal naive's; the
    metrics name the design and every candidate's validation RMSE."""
    series = Series("y", _noisy_seasonal(), "synthetic")
    result = train_forecaster(series, TrainOptions(cell="gru", hidden=8, epochs=4, season=6))
    metrics = result.metrics
    assert metrics["design"] in metrics["candidates"] and set(metrics["candidates"]) >= {"seasonal", "3 seasons"}
    assert metrics["validation_rmse"] == min(metrics["candidates"].values())
    assert metrics["test_rmse"] < metrics["naive_rmse"] and metrics["test_mase"] < metrics["naive_mase"]


def test_horizon_scores_per_step_against_numpy():
    """forecasts[t, h - 1] is of values[t + h]; seasonal naive h steps ahead looks back a whole
    number of seasons; MASE divides by the training span's mean absolute seasonal change."""
    rng = np.random.default_rng(3)
    values = rng.normal(10, 3, 60)
    forecasts = rng.normal(10, 3, (59, 4))
    scores = horizon_scores(forecasts, values, 45, 60, 3, 30)
    scale = np.mean(np.abs(values[3:30] - values[:27]))
    for h, score in enumerate(scores, start=1):
        targets = np.arange(45, 60)
        model = forecasts[targets - h, h - 1]
        naive = values[targets - 3 * int(np.ceil(h / 3))]
        assert score["rmse"] == pytest.approx(np.sqrt(np.mean((model - values[targets]) ** 2)), rel=1e-12)
        assert score["naive_mae"] == pytest.approx(np.mean(np.abs(naive - values[targets])), rel=1e-12)
        assert score["mase"] == pytest.approx(np.mean(np.abs(model - values[targets])) / scale, rel=1e-12)


def test_covariates_and_a_horizon_are_trained_and_recorded(tmp_path):
    """The step takes the target and its covariates, and emits ``horizon`` forecasts; metrics
    score every horizon step."""
    target = _noisy_seasonal(200)
    driver = np.random.default_rng(5).normal(0, 1, 200)
    path = tmp_path / "sales.csv"
    path.write_text("month;price;sales\n" + "".join(f"m{i};{p:.4f};{v:.4f}\n" for i, (p, v) in
                                                   enumerate(zip(driver, target))))
    series = read_series(path, "sales", ["price"])
    assert series.columns == ["sales", "price"] and series.inputs.shape == (200, 2)
    result = train_forecaster(series, TrainOptions(cell="lstm", hidden=8, epochs=2, season=6, horizon=3))
    assert result.model.architecture.input_size == 2 and result.model.architecture.output_size == 3
    assert [h["horizon"] for h in result.metrics["horizons"]] == [1, 2, 3]
    forecasts = forecast_series(result.model, series.inputs)
    assert forecasts.shape == (199, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name,reading,options", [
    ("wineind.csv", {}, {}), ("taylor.csv", {}, {}), ("elnino.csv", {}, {"season": 12}),
    ("co2.csv", {"missing": "interpolate"}, {"season": 52}),
    ("macrodata.csv", {"column": "realcons", "covariates": ["realdpi", "tbilrate"]}, {"season": 4}),
], ids=["wineind", "taylor", "elnino", "co2", "macrodata"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_cell_beats_seasonal_naive_on_the_shipped_series(name, reading, options, cell):
    result = train_forecaster(read_series(DATA / name, **reading), TrainOptions(cell=cell, **options))
    assert result.metrics["test_rmse"] < result.metrics["naive_rmse"], result.metrics


@pytest.mark.slow  # trains a forecaster: 9 s, the fast loop's longest
def test_evaluate_scores_the_exported_and_the_checkpoint_alike(tmp_path):
    """train -> export -> evaluate: the JSON of the ONNX file (edgeseq's runtime) and of the
    checkpoint (PyTorch) agree; the baseline's scores are numpy's seasonal naive on the test
    span; the model's RMSE is that of PyTorch's own forecasts; the plot is a PNG."""
    target = _noisy_seasonal(150)
    data = tmp_path / "sales.csv"
    data.write_text("month,sales\n" + "".join(f"{2000 + i // 12}-{i % 12 + 1:02d},{v:.3f}\n"
                                              for i, v in enumerate(target)))
    for args in (["train", data, "-o", tmp_path / "m.pt", "--epochs", "2", "--hidden", "4", "--season", "6"],
                 ["export", tmp_path / "m.pt", "-o", tmp_path / "m.onnx"]):
        done = subprocess.run([*EDGESEQ, *map(str, args)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    results = {}
    for model in ("m.onnx", "m.pt"):
        done = subprocess.run([*EDGESEQ, "evaluate", str(tmp_path / model), str(data), "--json",
                               "--plot", str(tmp_path / f"{model}.png")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results[model] = json.loads(done.stdout)
        assert (tmp_path / f"{model}.png").read_bytes()[:4] == b"\x89PNG"
    onnx_run, torch_run = results["m.onnx"], results["m.pt"]
    assert onnx_run["steps"] == torch_run["steps"] == 22 and onnx_run["baseline"]["season"] == 6
    assert onnx_run["rmse"] == pytest.approx(torch_run["rmse"], rel=1e-5)
    values = read_series(data).values
    naive = values[128 - 6:150 - 6]
    assert onnx_run["baseline"]["rmse"] == pytest.approx(np.sqrt(np.mean((naive - values[128:]) ** 2)), rel=1e-12)
    expected = forecast_series(load_checkpoint(tmp_path / "m.pt").model, values)[127:, 0]
    assert torch_run["rmse"] == pytest.approx(np.sqrt(np.mean((expected - values[128:]) ** 2)), rel=1e-9)


def test_evaluate_refuses_a_gap_in_one_line(tmp_path):
    model = _seasonal_model(covariates=0, horizon=1)
    save_checkpoint(model, tmp_path / "m.pt")
    data = tmp_path / "gap.csv"
    data.write_text("t,y\n" + "".join(f"{i},{v:.3f}\n" for i, v in enumerate(_noisy_seasonal(60)[:-1])) + "59,\n")
    done = subprocess.run([*EDGESEQ, "evaluate", str(tmp_path / "m.pt"), str(data)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "gap.csv: line 61, column 'y': a missing value" in done.stderr
    assert subprocess.run([*EDGESEQ, "evaluate", str(tmp_path / "m.pt"), str(data), "--missing", "drop", "--json",
                           "--season", "5"], capture_output=True, text=True, timeout=120).returncode == 0


def test_python_api_trains_and_evaluates(tmp_path):
    """``edgeseq.train`` writes the checkpoint ``edgeseq.evaluate`` scores the same as training did."""
    import edgeseq

    data = tmp_path / "y.csv"
    data.write_text("y\n" + "".join(f"{v:.3f}\n" for v in _noisy_seasonal(120)))
    result = edgeseq.train(data, tmp_path / "m.pt", cell="rnn", hidden=4, epochs=2, season=6)
    scored = edgeseq.evaluate(tmp_path / "m.pt", data)
    assert scored["rmse"] == pytest.approx(result.metrics["test_rmse"], rel=1e-9)
    assert scored["baseline"]["rmse"] == pytest.approx(result.metrics["naive_rmse"], rel=1e-12)


def test_generated_c_streams_the_seasonal_forecaster_as_the_runtime_does(tmp_path):
    """The delay line and the baseline arithmetic in C: firmware_examples/host built for a
    seasonal forecaster with covariates and a horizon, fed raw rows, gives the runtime's
    forecasts within 1e-5 of their scale."""
    from edgeseq_export.backends.codegen import generate
    from support.codegen_builds import FIRMWARE, make, parse_rows, require, rows_text

    require("make", "gcc")
    model = _seasonal_model("lstm", season=4, seasons=3, horizon=2, covariates=1)
    save_checkpoint(model, tmp_path / "m.pt")
    export(tmp_path / "m.pt", tmp_path / "m.onnx")
    generate(tmp_path / "m.onnx", tmp_path / "c", "forecaster")
    make(FIRMWARE / "host", f"MODEL_DIR={tmp_path / 'c'}", "NAME=forecaster", f"BUILD={tmp_path / 'build'}",
         "CC=gcc", "CFLAGS=-O2")
    rows = _rows(60, covariates=1).astype(np.float32)
    done = subprocess.run([str(tmp_path / "build" / "forecaster" / "stream")], input=rows_text(rows),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = edgeseq_runtime.load(tmp_path / "m.onnx").run(rows)
    np.testing.assert_allclose(parse_rows(done.stdout), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_an_ensemble_is_one_network_streaming_the_members_mean(tmp_path, cell):
    """Three seeds merged into one recurrent layer (block-diagonal recurrence, averaging head):
    the exported file, stepped by the runtime, gives the mean of the members' PyTorch forecasts."""
    from edgeseq_export.forecasting.ensemble import merge

    members = [_seasonal_model(cell, seed=seed) for seed in range(3)]
    save_checkpoint(merge(members), tmp_path / "mean.pt")
    export(tmp_path / "mean.pt", tmp_path / "mean.onnx")
    rows = _rows(30).astype(np.float32)
    with torch.no_grad():
        expected = np.mean([m(torch.from_numpy(rows).unsqueeze(0))[0][0].numpy() for m in members], axis=0)
    got = edgeseq_runtime.load(tmp_path / "mean.onnx").run(rows)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_an_ensemble_is_kept_only_where_validation_says_so():
    series = Series("y", _noisy_seasonal(), "synthetic")
    metrics = train_forecaster(series, TrainOptions(cell="rnn", hidden=6, epochs=3, season=6, ensemble=3)).metrics
    ensemble = metrics["ensemble"]
    assert ensemble["seeds"] == 3 and len(ensemble["members_validation_rmse"]) == 3
    assert ensemble["kept"] == (ensemble["validation_rmse"] < ensemble["members_validation_rmse"][0])
    assert metrics["validation_rmse"] == min(ensemble["validation_rmse"], ensemble["members_validation_rmse"][0])
