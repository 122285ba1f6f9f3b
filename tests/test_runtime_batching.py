"""Many streams in one model: the four-streams-at-a-time kernels against the references,
for every cell, odd and even sizes, float32 and int8 weights."""

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_export.backends.quantize import quantize
from support.onnx_builders import build_model

TOL = 1e-5


@pytest.mark.parametrize("batch", [4, 5, 9])
@pytest.mark.parametrize("op,attrs", [("GRU", {"linear_before_reset": 0}), ("GRU", {"linear_before_reset": 1}),
                                      ("LSTM", {"peepholes": True}), ("RNN", {})], ids=["gru", "gru_lbr", "lstm", "rnn"])
def test_streams_match_references(tmp_path, op, attrs, batch):
    built = build_model(tmp_path, op, input_size=5, hidden_size=9, batch=batch, head="matmul", **attrs)
    m = edgeseq_runtime.load(built.path, batch=batch)
    X = built.random_steps(np.random.default_rng(batch), 40)
    Y = np.stack([m.step(x) for x in X])
    for name, ref in built.references(X).items():
        assert np.abs(Y - ref).max() <= TOL, name


@pytest.mark.parametrize("batch", [1, 6])
def test_int8_streams_match_each_stream_run_alone(tmp_path, batch):
    built = build_model(tmp_path, "LSTM", input_size=7, hidden_size=10, batch=batch, head="matmul", num_layers=2)
    qpath = tmp_path / "q.onnx"
    quantize(built.path, qpath)
    X = built.random_steps(np.random.default_rng(0), 30)
    together = edgeseq_runtime.load(qpath, batch=batch).run(X)
    single = build_model(tmp_path, "LSTM", input_size=7, hidden_size=10, batch=1, head="matmul", num_layers=2,
                         filename="single.onnx")
    quantize(single.path, tmp_path / "q1.onnx")
    alone = edgeseq_runtime.load(tmp_path / "q1.onnx")
    for b in range(batch):
        alone.reset()
        stream = X[:, b] if batch > 1 else X
        expected = alone.run(stream)
        got = together[:, b] if batch > 1 else together
        assert np.abs(got - expected).max() <= TOL
