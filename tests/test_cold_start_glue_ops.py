"""The glue ops' kernels reach each of their functions through its one address in a table
(``UNARY_FUNCTIONS``, ``BINARY_FUNCTIONS``, ``REDUCTIONS``), as the activations are reached through
``APPLY`` (tests/test_cold_start.py): a model compiles only the unary functions, binary functions
and reductions its instructions take, and a function without its address fails the step with a
RuntimeError naming the table, before the state changes."""

import os
import subprocess
import sys
import textwrap

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseq_runtime.isa import BINARY_FUNCTION, REDUCE_FUNCTION, UNARY_FUNCTION
from edgeseq_runtime.kernels import linking
from edgeseq_runtime.kernels.elementwise_f32 import BINARY_FUNCTIONS
from edgeseq_runtime.kernels.math_f32 import UNARY_FUNCTIONS
from edgeseq_runtime.kernels.reduce_f32 import REDUCTIONS
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 4


def _square_add_mean_gru(path):
    """x (1, 1, 3) -> Pow 2 (UNARY's SQUARE) -> Add 0.25 -> ReduceMean over the features -> GRU (hidden 4), whose
    state h is the model's state: the glue ops run before the state is written."""
    rng = np.random.default_rng(5)
    weights = {"W": (1, 3 * HIDDEN, 1), "R": (1, 3 * HIDDEN, HIDDEN), "B": (1, 6 * HIDDEN)}
    initializers = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name)
                    for name, shape in weights.items()]
    initializers += [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                     numpy_helper.from_array(np.array([0.25], np.float32), "quarter"),
                     numpy_helper.from_array(np.array([2], np.int64), "features")]
    nodes = [helper.make_node("Pow", ["x", "two"], ["squared"]),
             helper.make_node("Add", ["squared", "quarter"], ["shifted"]),
             helper.make_node("ReduceMean", ["shifted", "features"], ["mean"], keepdims=1),
             helper.make_node("GRU", ["mean", "W", "R", "B", "", "h"], ["y", "h_next"], hidden_size=HIDDEN)]
    graph = helper.make_graph(
        nodes, "glue", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3]),
                        helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, HIDDEN]),
         helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [1, 1, HIDDEN])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _onnx_runtime(path, xs):
    """Each step's y and the last state, as ONNX Runtime streams them."""
    session, h, ys = ort.InferenceSession(str(path)), np.zeros((1, 1, HIDDEN), np.float32), []
    for x in xs:
        y, h = session.run(None, {"x": x.reshape(1, 1, 3), "h": h})
        ys.append(y.reshape(-1))
    return np.array(ys), h


@pytest.mark.parametrize("table, functions", [(UNARY_FUNCTIONS, UNARY_FUNCTION), (BINARY_FUNCTIONS, BINARY_FUNCTION),
                                              (REDUCTIONS, REDUCE_FUNCTION)])
def test_every_function_of_the_op_has_one_in_its_table(table, functions):
    assert set(table.functions) == set(functions)


@pytest.mark.parametrize("table, function", [(UNARY_FUNCTIONS, UNARY_FUNCTION.SQUARE), (BINARY_FUNCTIONS, BINARY_FUNCTION.ADD),
                                             (REDUCTIONS, REDUCE_FUNCTION.MEAN)], ids=["unary", "binary", "reduction"])
def test_a_function_without_its_address_fails_the_step_and_leaves_the_state(tmp_path, table, function):
    path = _square_add_mean_gru(tmp_path / "glue.onnx")
    xs = np.random.default_rng(6).uniform(-1, 1, (3, 3)).astype(np.float32)
    model = edgeseq_runtime.load(path, state={"h": "h_next"})
    first = model.step(xs[0])
    before = model.get_state()
    cells, index = linking._slots[table.functions[function]]
    at, cells[index] = cells[index], 0
    try:
        with pytest.raises(RuntimeError, match=f"this {table.name} has no address"):
            model.step(xs[1])
    finally:
        cells[index] = at
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[name])
    ys, h = _onnx_runtime(path, xs)
    np.testing.assert_allclose([first, model.step(xs[1]), model.step(xs[2])], ys.reshape(3, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_state()["h"].reshape(-1), h.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # compiles a model's kernels afresh (about 5 s)
def test_an_empty_cache_compiles_only_the_functions_the_model_takes(tmp_path):
    path = _square_add_mean_gru(tmp_path / "glue.onnx")
    script = textwrap.dedent(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.interpreter import TABLES
        m = edgeseq_runtime.load({str(path)!r}, state={{"h": "h_next"}})
        m.step(np.zeros(3, np.float32))
        for table in TABLES:
            print(table.name, sorted(f.__name__ for f in table.functions.values() if f.overloads))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["activation ['sigmoid', 'tanh']", "unary function ['square']",
                                          "binary function ['add']", "reduction ['mean']"]
