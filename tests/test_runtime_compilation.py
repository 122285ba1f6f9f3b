"""Every model shares the compiled entry points, with one signature: loading a new model never
compiles them again."""

import subprocess
import sys
import textwrap

from support.onnx_builders import build_model


def test_models_of_every_kind_share_one_compiled_signature(tmp_path):
    built = [
        build_model(tmp_path, "GRU", filename="gru.onnx", head="matmul"),
        build_model(tmp_path, "LSTM", filename="lstm.onnx", num_layers=2, batch=3, peepholes=True),
        build_model(tmp_path, "RNN", filename="rnn.onnx", vocab=11, head="gemm", head_activation="Softmax"),
    ]
    script = textwrap.dedent(f"""
        import numpy as np
        import edgeseq_runtime
        from edgeseq_runtime.kernels.interpreter import ENTRY_POINTS
        for path, batch in {[(str(b.path), b.batch) for b in built]!r}:
            m = edgeseq_runtime.load(path, batch=batch)
            x = np.zeros(m._x_step, np.int64 if m.is_token_model else np.float32)
            m.step(x)
            m.run(np.stack([x, x]))
        print("SIGNATURES", max(len(entry.signatures) for entry in ENTRY_POINTS))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "SIGNATURES 1" in result.stdout
