"""The on-device runtime must run a model with neither torch nor onnxruntime importable, nor replay's
pyarrow and Ray (host tools: a device install never pulls them)."""

import pathlib
import re
import tomllib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from support.device_process import run_without

BLOCKED = ("torch", "onnxruntime", "pyarrow", "ray")


def _gru_model(path):
    rng = np.random.default_rng(0)
    hidden, n_in = 8, 3
    inits = [
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, 3 * hidden, n_in)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, 3 * hidden, hidden)).astype(np.float32), "R"),
    ]
    node = helper.make_node("GRU", ["x", "W", "R", "", "", "h0"], ["Y", "Y_h"], hidden_size=hidden)
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 1, n_in]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, hidden])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", 1, 1, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, hidden])],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_runtime_runs_without_host_packages(tmp_path):
    path = tmp_path / "gru.onnx"
    _gru_model(path)
    result = run_without(BLOCKED, f"""
        import numpy as np
        import edgeseq_runtime
        m = edgeseq_runtime.load({str(path)!r})
        y = m.run(np.ones((5, 3), np.float32))
        assert y.shape == (5, 8) and np.isfinite(y).all()
        import edgeseq  # the facade and CLI import the runtime only
        import edgeseq.cli
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in {BLOCKED!r})
        print("LOADED", loaded)
    """)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_runtime_install_requires_no_host_package():
    runtime = pathlib.Path(__file__).parents[1] / "runtime" / "pyproject.toml"
    requirements = tomllib.loads(runtime.read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group().lower() for r in requirements}
    assert names.isdisjoint(BLOCKED), names
