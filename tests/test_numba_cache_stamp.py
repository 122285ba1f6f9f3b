"""numba holds a cached function as fresh as its own source file; the runtime's kernels are as fresh
as all the runtime's sources (``numba_cache.stamp_with_runtime_sources``). After a change to any of
them (an upgrade, a checkout), a kernel whose own file did not change compiles again, instead of
loading code made with the old constants and the old arguments of what it calls through an address
(which aborted the process where a linked symbol had gone)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from support.onnx_builders import build_model

# whether the cache holds the interpreter and the LSTM kernel for these sources, then one step's output
_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, edgeseq_runtime
    from edgeseq_runtime.kernels.interpreter import run_plan
    from edgeseq_runtime.kernels.lstm_f32 import lstm_f32
    print([bool(f._cache._cache_file._load_index()) for f in (run_plan, lstm_f32)])
    m = edgeseq_runtime.load(sys.argv[1])
    print(json.dumps(m.step(np.full(3, 0.5, np.float32)).tolist()))
""")


@pytest.mark.slow  # compiles a model's kernels afresh, twice (about 10 s)
def test_a_change_to_any_runtime_source_makes_every_cached_kernel_stale(tmp_path):
    built = build_model(tmp_path, "LSTM", input_size=3, hidden_size=4, head="gemm")
    tree = tmp_path / "tree"
    shutil.copytree(Path(edgeseq_runtime.__file__).parent, tree / "edgeseq_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def start() -> tuple[str, list]:
        done = subprocess.run([sys.executable, "-c", _SCRIPT, str(built.path)], capture_output=True, text=True,
                              timeout=600, env=env, check=False)
        assert done.returncode == 0, done.stderr
        cached, output = done.stdout.splitlines()
        return cached, np.array(json.loads(output))

    first_cached, expected = start()
    assert first_cached == "[False, False]"
    assert start()[0] == "[True, True]"
    matvec = tree / "edgeseq_runtime" / "kernels" / "matvec.py"  # neither the interpreter's file nor the LSTM's
    matvec.write_text(matvec.read_text() + "\n# a change\n")
    cached, output = start()
    assert cached == "[False, False]"
    np.testing.assert_array_equal(output, expected)
