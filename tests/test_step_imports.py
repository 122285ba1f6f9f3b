"""A process that loads a model and steps or runs it imports no more than it needs: numpy.ma (6-10
ms of a start) stays out. Numba's ``typeof`` of an array and ``np.unique`` both import it, so
``step`` and ``run`` call compiled code with the argument types written out, and the arena plan
does without ``np.unique``. Run with only the runtime's install (scipy, which numba imports when it
is there and which imports numpy.ma, is no dependency of the runtime), once to fill numba's cache
(numba's compiler imports numpy.ma) and once to check."""


from support.device_process import run_without
from support.onnx_builders import build_model

BLOCKED = ("scipy", "torch", "onnxruntime")


def test_loading_stepping_and_running_a_model_leaves_numpy_ma_unimported(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=4, hidden_size=8, head="matmul")
    body = f"""
        import numpy as np
        import edgeseq_runtime
        m = edgeseq_runtime.load({str(built.path)!r})
        y = m.step(np.ones(4, np.float32))
        y = m.step(np.ones(4, np.float32), out=y)
        m.run(np.ones((1, 4), np.float32))
        m.run(np.ones((30, 4), np.float32))
        m.clone().get_state()
        print("NUMPY_MA", "numpy.ma" in sys.modules)
    """
    for purpose in ("fill the cache", "check"):
        result = run_without(BLOCKED, body)
        assert result.returncode == 0, (purpose, result.stderr)
    assert "NUMPY_MA False" in result.stdout
