"""``python -m edgeseq_runtime.compile``: an install compiles the kernels once, and a later
process's first step loads them from numba's cache instead of compiling."""

import os
import subprocess
import sys
import textwrap

import edgeseq_runtime
import numpy as np
import pytest
from support.onnx_builders import build_model


def _python(args, cache, timeout=900):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})


@pytest.mark.slow  # compiles every kernel afresh
def test_kernels_compiled_ahead_of_time_serve_every_later_process(tmp_path):
    gru = build_model(tmp_path, "GRU", filename="gru.onnx", input_size=3, hidden_size=5, head="matmul")
    lstm = build_model(tmp_path, "LSTM", filename="lstm.onnx", input_size=3, hidden_size=4, num_layers=2)
    cache = tmp_path / "cache"

    first = _python(["-m", "edgeseq_runtime.compile"], cache)
    assert first.returncode == 0 and "kernels compiled in" in first.stdout, first.stderr
    again = _python(["-m", "edgeseq_runtime.compile"], cache, timeout=120)
    assert again.returncode == 0 and "already compiled" in again.stdout, again.stderr

    script = textwrap.dedent(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.interpreter import ENTRY_POINTS, KERNELS, project_inputs
        from edgeseq_runtime.kernels.matvec import LINKED
        print(edgeseq_runtime.kernels_cached(every_kernel=True))
        for path in {[str(gru.path), str(lstm.path)]!r}:
            m = edgeseq_runtime.load(path)
            x = np.linspace(-1, 1, 3 * 6, dtype=np.float32).reshape(6, 3)
            print(m.step(x[0]).tolist(), m.run(x[1:]).tolist())
        compiled = (*ENTRY_POINTS, *KERNELS.values(), project_inputs, *LINKED)
        print(sum(sum(k.stats.cache_hits.values()) > 0 for k in ENTRY_POINTS),
              sum(sum(k.stats.cache_misses.values()) for k in compiled))
    """)
    later = _python(["-c", script], cache, timeout=120)
    assert later.returncode == 0, later.stderr
    lines = later.stdout.splitlines()
    assert lines[0] == "True"
    assert lines[-1] in ("1 0", "2 0")  # an entry point loaded from the cache; nothing compiled
    x = np.linspace(-1, 1, 3 * 6, dtype=np.float32).reshape(6, 3)
    for line, built in zip(lines[1:3], (gru, lstm)):
        m = edgeseq_runtime.load(built.path)
        assert line == f"{m.step(x[0]).tolist()} {m.run(x[1:]).tolist()}"


def test_compile_takes_no_arguments_but_help(tmp_path):
    result = _python(["-m", "edgeseq_runtime.compile", "--bogus"], tmp_path / "cache", timeout=120)
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr
