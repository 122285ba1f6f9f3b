"""An empty cache's start compiles only the code paths its model's steps can take: the products
for as many rows of each kind of matrix as its instructions multiply (kernels.matvec.MORE_ROWS,
their helpers inlined into them, not compiled on their own), and an LSTM's cell for peepholes or
clip only for a layer that has them (lstm_f32.peephole_or_clip_cell). Each case in a fresh
process with an empty numba cache, as a new install's first step."""

import json
import os
import subprocess
import sys
import textwrap

import edgeseq_runtime
import numpy as np
import onnxruntime
import pytest
from support.onnx_builders import build_model

# the helpers of products for two rows or more: inlined into those products, never compiled apart
MORE_ROWS_HELPERS = ("_strips", "_panel_strips", "_panel_rows", "_strip_of")


def _fresh_process(script: str, cache) -> list[str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow  # compiles a GRU's and an LSTM's kernels afresh (about 4 s)
def test_one_stream_compiles_no_product_for_more_rows_and_a_plain_lstm_no_peephole_cell(tmp_path):
    gru = build_model(tmp_path, "GRU", filename="gru.onnx", input_size=3, hidden_size=8, head="matmul")
    lstm = build_model(tmp_path, "LSTM", filename="lstm.onnx", input_size=3, hidden_size=16, head="gemm")
    lines = _fresh_process(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels import matvec
        from edgeseq_runtime.kernels.lstm_f32 import peephole_or_clip_cell
        for path in {[str(gru.path), str(lstm.path)]!r}:
            edgeseq_runtime.load(path).step(np.zeros(3, np.float32))
        print(sorted(f.__name__ for f in matvec.MORE_ROWS.values() if f.overloads))
        print(sorted(name for name in {MORE_ROWS_HELPERS!r} if getattr(matvec, name).overloads))
        print(bool(peephole_or_clip_cell.overloads))
    """, tmp_path / "cache")
    assert lines == ["[]", "[]", "False"]


@pytest.mark.slow  # compiles an LSTM's kernels afresh three times (about 4 s each)
@pytest.mark.parametrize("attrs", [{"peepholes": True}, {"clip": 0.3, "scale": 1.0}, {"input_forget": 1}])
def test_an_lstm_with_peepholes_or_clip_steps_through_its_cell_like_onnx_runtime(tmp_path, attrs):
    built = build_model(tmp_path, "LSTM", input_size=3, hidden_size=5, **attrs)
    steps = built.random_steps(np.random.default_rng(2), 4)
    lines = _fresh_process(f"""
        import json, numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.lstm_f32 import peephole_or_clip_cell
        m = edgeseq_runtime.load({str(built.path)!r})
        ys = [m.step(x).tolist() for x in np.array({steps.tolist()!r}, np.float32)]
        print(bool(peephole_or_clip_cell.overloads))
        print(json.dumps(ys))
    """, tmp_path / "cache")
    assert lines[0] == str("peepholes" in attrs or "clip" in attrs)
    stepped = np.array(json.loads(lines[1]), np.float32)
    (Y, *_) = onnxruntime.InferenceSession(str(built.path)).run(None, built.graph_feeds(steps))
    np.testing.assert_allclose(stepped, built.steps_from_output(Y), rtol=1e-5, atol=1e-5)
    assert np.array_equal(edgeseq_runtime.load(built.path).run(steps), stepped)  # run and step, bit for bit


@pytest.mark.slow  # compiles Silero VAD's kernels afresh (about 5 s)
def test_silero_vad_compiles_the_products_of_its_convolutions_rows_not_of_its_lstms(tmp_path, silero):
    # its convolutions multiply float32 matrices for four, two and one output positions; its LSTM
    # steps one row of packed (FLOAT32_PANELS) weights
    lines = _fresh_process(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels import matvec
        m = edgeseq_runtime.load({str(silero["silero_vad"])!r}, constants={{"sr": 16000}},
                                 state={{"state": "stateN"}}, input_shape=[576])
        m.step(np.zeros(576, np.float32))
        print(sorted(f.__name__ for f in matvec.MORE_ROWS.values() if f.overloads))
    """, tmp_path / "cache")
    assert lines == ["['_float32_strips']"]
