"""int8 (QDQ) and fp16 quantization: the files, the runtime's results against independent
references, the report, the CLI, and tampered files."""

import dataclasses
import os
import subprocess
import sys

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseq_export.backends.quantize import QuantizationError, quantize
from onnx import numpy_helper
from support.onnx_builders import build_model

TOL = 1e-5
CASES = {
    "gru": dict(op="GRU", head="matmul"),
    "gru_reset_after": dict(op="GRU", linear_before_reset=1, num_layers=2, stacked_state=True, head="matmul"),
    "lstm_two_layers": dict(op="LSTM", num_layers=2, head="matmul", head_activation="Tanh"),
    "lstm_peepholes_batch": dict(op="LSTM", peepholes=True, batch=3, head="matmul"),
    "rnn": dict(op="RNN", head="matmul", head_activation="Softmax"),
    "gru_tokens": dict(op="GRU", vocab=13, head="matmul", head_activation="LogSoftmax"),
    # groups of four streams and a lone one; tiles with outputs left over; a head of 9 outputs
    "gru_batch_5_hidden_21": dict(op="GRU", batch=5, hidden_size=21, head="matmul", output_size=9),
}


def float_model(quantized: onnx.ModelProto) -> onnx.ModelProto:
    """The float model a QDQ model stands for: each DequantizeLinear replaced by the product
    q * scale, computed here with numpy (independently of the runtime)."""
    out = onnx.ModelProto()
    out.CopyFrom(quantized)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    floats, keep = [], []
    for node in out.graph.node:
        if node.op_type != "DequantizeLinear":
            keep.append(node)
            continue
        q, scale = inits[node.input[0]].astype(np.float64), inits[node.input[1]].astype(np.float64)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [-1 if i == axis else 1 for i in range(q.ndim)]
        floats.append(numpy_helper.from_array((q * scale.reshape(shape)).astype(np.float32), node.output[0]))
    del out.graph.node[:]
    out.graph.node.extend(keep)
    out.graph.initializer.extend(floats)
    return out


def unoptimized_session(path) -> ort.InferenceSession:
    """onnxruntime running the QDQ graph as written: DequantizeLinear, then float ops. (Its
    graph optimizations would fuse the pattern into integer kernels, which compute otherwise.)"""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def stream(m, X):
    return np.stack([m.step(x) for x in X])


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_int8_runtime_matches_onnxruntime_and_numpy(tmp_path, case):
    built = build_model(tmp_path, **{"input_size": 5, "hidden_size": 16, **case})
    qpath = tmp_path / "model.int8.onnx"
    report = quantize(built.path, qpath, mode="int8")
    m = edgeseq_runtime.load(qpath, batch=built.batch)
    X = built.random_steps(np.random.default_rng(1), 60)
    Y = stream(m, X)

    same_math = built.steps_from_output(
        unoptimized_session(qpath).run([built.output_name], built.graph_feeds(X))[0])
    assert np.abs(Y - same_math).max() <= TOL

    as_float = dataclasses.replace(built, model=float_model(onnx.load(qpath)))
    assert np.abs(Y - as_float.reference_numpy(X)).max() <= TOL

    fp32 = stream(edgeseq_runtime.load(built.path, batch=built.batch), X)
    assert 0 < np.abs(Y - fp32).max() < 0.05  # quantized, but not broken
    assert report.max_abs_error > 0 and report.mean_abs_error <= report.max_abs_error


def test_int8_file_and_memory_are_a_quarter_of_fp32_for_gru_16_64(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=16, hidden_size=64, head="matmul", output_size=1,
                        linear_before_reset=1)
    qpath = tmp_path / "gru.int8.onnx"
    report = quantize(built.path, qpath, mode="int8")
    assert report.size_ratio <= 0.31  # one int8 scale per row of W and one per row of R
    fp32, int8 = edgeseq_runtime.load(built.path), edgeseq_runtime.load(qpath)
    fp32_bytes = fp32._weights.nbytes + fp32._qweights.nbytes
    int8_bytes = int8._weights.nbytes + int8._qweights.nbytes
    assert int8_bytes <= 0.32 * fp32_bytes
    graph = onnx.load(qpath).graph
    assert {n.op_type for n in graph.node} >= {"DequantizeLinear", "GRU"}
    assert all(t.data_type != onnx.TensorProto.FLOAT or t.name.endswith("_scale") or len(t.dims) <= 2
               for t in graph.initializer)  # only biases and scales stay float


def test_fp16_halves_the_file_and_matches_onnxruntime(tmp_path):
    built = build_model(tmp_path, "LSTM", input_size=8, hidden_size=32, head="matmul", num_layers=2)
    hpath = tmp_path / "model.fp16.onnx"
    report = quantize(built.path, hpath, mode="fp16")
    assert 0.45 <= report.size_ratio <= 0.6
    X = built.random_steps(np.random.default_rng(2), 50)
    Y = stream(edgeseq_runtime.load(hpath), X)
    ref = built.steps_from_output(unoptimized_session(hpath).run([built.output_name], built.graph_feeds(X))[0])
    assert np.abs(Y - ref).max() <= TOL
    assert report.max_abs_error < 1e-2
    stored = {t.name: t.data_type for t in onnx.load(hpath).graph.initializer}
    weights = {name for name in stored if name.endswith("_fp16")}
    assert weights and all(stored[name] == onnx.TensorProto.FLOAT16 for name in weights)
    # biases stay float32, as in int8: one in float16 weighs on every output of its channel
    biases = [t for t in onnx.load(hpath).graph.initializer if t.name not in weights and t.data_type != onnx.TensorProto.INT64]
    assert biases and all(t.data_type == onnx.TensorProto.FLOAT and len(t.dims) <= 2 for t in biases)


def test_calibration_rows_from_csv_and_npy(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=8, head="matmul")
    rows = np.random.default_rng(3).standard_normal((40, 3)).astype(np.float32)
    csv = tmp_path / "rows.csv"
    csv.write_text("time,a,b,c\n" + "".join(f"t{i},{r[0]},{r[1]},{r[2]}\n" for i, r in enumerate(rows)))
    np.save(tmp_path / "rows.npy", rows)
    from_csv = quantize(built.path, tmp_path / "a.onnx", calibration=csv)
    from_npy = quantize(built.path, tmp_path / "b.onnx", calibration=tmp_path / "rows.npy")
    assert from_csv.steps == from_npy.steps == 40
    assert from_csv.max_abs_error == pytest.approx(from_npy.max_abs_error, rel=1e-6)


def test_bad_calibration_and_mode_are_refused(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=8, head="matmul")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(edgeseq_runtime.EdgeseqError, match="bad.csv.*3 numbers"):
        quantize(built.path, tmp_path / "q.onnx", calibration=bad)
    with pytest.raises(QuantizationError, match="mode"):
        quantize(built.path, tmp_path / "q.onnx", mode="int4")
    os.mkfifo(tmp_path / "rows.csv")  # no writer: opening it for reading would wait forever
    with pytest.raises(edgeseq_runtime.EdgeseqError, match="rows.csv: a FIFO, not a regular file"):
        quantize(built.path, tmp_path / "q.onnx", calibration=tmp_path / "rows.csv")
    (tmp_path / "latin1.csv").write_bytes(b"a,b,c\n\xe9,1,2\n")
    with pytest.raises(edgeseq_runtime.EdgeseqError, match="latin1.csv: not a text CSV file"):
        quantize(built.path, tmp_path / "q.onnx", calibration=tmp_path / "latin1.csv")
    assert not (tmp_path / "q.onnx").exists()  # a failed quantization writes nothing


def _tampered(tmp_path, change) -> str:
    built = build_model(tmp_path, "GRU", input_size=4, hidden_size=8, head="matmul")
    qpath = tmp_path / "q.onnx"
    quantize(built.path, qpath)
    model = onnx.load(qpath)
    change(model)
    path = tmp_path / "tampered.onnx"
    onnx.save(model, path)
    return path


def _set_initializer(model, suffix, array):
    tensor = next(t for t in model.graph.initializer if t.name.endswith(suffix))
    tensor.CopyFrom(numpy_helper.from_array(array(numpy_helper.to_array(tensor)), tensor.name))


TAMPERING = {
    "zero_scale": (lambda m: _set_initializer(m, "_scale", lambda s: np.zeros_like(s)), "scale"),
    "weights_as_int32": (lambda m: _set_initializer(m, "_int8", lambda q: q.astype(np.int32)), "int32|dtype|type"),
    "missing_zero_point": (lambda m: next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
                           .input.append("gone_zero_point"), "gone_zero_point"),
    "zero_point_wrong_dtype": (lambda m: (m.graph.initializer.append(numpy_helper.from_array(
        np.zeros(24, np.uint8), "zp")), next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
        .input.append("zp")), "zero point|type"),
}


@pytest.mark.parametrize("change,message", TAMPERING.values(), ids=TAMPERING.keys())
def test_tampered_quantized_files_raise_model_error(tmp_path, change, message):
    path = _tampered(tmp_path, change)
    with pytest.raises(edgeseq_runtime.ModelError, match=message) as error:
        edgeseq_runtime.load(path)
    assert "tampered.onnx" in str(error.value)


def test_cli_prints_the_report_and_fails_above_tolerance(tmp_path):
    built = build_model(tmp_path, "LSTM", input_size=4, hidden_size=8, head="matmul")
    ok = subprocess.run([sys.executable, "-m", "edgeseq.cli", "quantize", str(built.path), "-o",
                         str(tmp_path / "q.onnx")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "file bytes" in ok.stdout and "output error" in ok.stdout
    strict = subprocess.run([sys.executable, "-m", "edgeseq.cli", "quantize", str(built.path), "-o",
                             str(tmp_path / "q2.onnx"), "--tolerance", "1e-9"], capture_output=True, text=True)
    assert strict.returncode == 1
    assert strict.stderr.count("\n") == 1 and "tolerance" in strict.stderr
    assert not (tmp_path / "q2.onnx").exists()
    missing = subprocess.run([sys.executable, "-m", "edgeseq.cli", "quantize", str(tmp_path / "nope.onnx"), "-o",
                              str(tmp_path / "q3.onnx")], capture_output=True, text=True)
    assert missing.returncode == 1 and "nope.onnx" in missing.stderr and "Traceback" not in missing.stderr


def test_calibration_reads_the_column_the_model_was_trained_on(tmp_path):
    """A CSV that train accepted (several numeric columns, no --column) calibrates the model
    trained on it: the checkpoint records the column, export carries it, quantize reads it."""
    from click.testing import CliRunner

    from edgeseq.cli import main

    rng = np.random.default_rng(2)
    data = tmp_path / "sales.csv"
    data.write_text("month,temperature,sales\n" + "".join(
        f"m{i},{rng.normal(15, 5):.2f},{1000 + 100 * np.sin(i / 2) + rng.normal(0, 10):.1f}\n" for i in range(80)))
    runner = CliRunner()
    for args in (["train", data, "-o", tmp_path / "m.pt", "--epochs", "1", "--hidden", "4"],
                 ["export", tmp_path / "m.pt", "-o", tmp_path / "m.onnx", "--no-verify"]):
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    report = quantize(tmp_path / "m.onnx", tmp_path / "q.onnx", calibration=data)
    assert report.steps == 80 and (tmp_path / "q.onnx").exists()
    sales = np.array([float(line.split(",")[2]) for line in data.read_text().splitlines()[1:]], np.float32)
    expected = edgeseq_runtime.load(tmp_path / "m.onnx").run(sales.reshape(-1, 1))
    got = edgeseq_runtime.load(tmp_path / "q.onnx").run(sales.reshape(-1, 1))
    assert report.max_abs_error == pytest.approx(float(np.abs(got.astype(np.float64) - expected).max()), rel=1e-6)


def test_calibration_of_several_columns_asks_for_column_when_the_model_does_not_say(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=1, hidden_size=8, head="matmul")
    data = tmp_path / "two.csv"
    data.write_text("t,a,b\n" + "".join(f"t{i},{i % 7},{i % 5}\n" for i in range(30)))
    with pytest.raises(edgeseq_runtime.EdgeseqError, match="two.csv: 2 numeric columns .* --column"):
        quantize(built.path, tmp_path / "q.onnx", calibration=data)
    assert not (tmp_path / "q.onnx").exists()
    assert quantize(built.path, tmp_path / "q.onnx", calibration=data, columns=["b"]).steps == 30
    with pytest.raises(edgeseq_runtime.EdgeseqError, match="no column 'c'"):
        quantize(built.path, tmp_path / "q2.onnx", calibration=data, columns=["c"])
