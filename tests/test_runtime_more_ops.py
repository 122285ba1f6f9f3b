"""The glue that speech and sensor models emit around their recurrent core: Gelu (both forms of
`approximate`), Sin, Cos, Round (ties to even), Mod (fmod 0 and 1, integer and float meanings),
CumSum (exclusive, reverse, any axis), ArgMax / ArgMin (keepdims, select_last_index), TopK (both
outputs) and Resize (nearest and linear), attribute by attribute against ONNX Runtime and
onnx.reference (<= 1e-5 relative), each between the model input and an LSTM that streams them
(tests/support/front_end_models.py); `run` over the stream gives the bits of repeated `step`.
Against ONNX Runtime alone where onnx.reference computes another value (noted by the case).

None of these ops reads a weight, so int8 and fp16 quantization leave them as they are (their
constant inputs are axes, k, divisors and scales, never quantized).

Then the attributes still outside: each refused naming op, node and attribute in one line.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.front_end_models import front_end_model

import edgeseq_runtime
from edgeseq_runtime import ModelError

STEPS = 5
RTOL = 1e-5
rng = np.random.default_rng(23)


def node(op, inputs, outputs=("features",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_under_test", **attrs)


def ints(name, values):
    return (name, np.asarray(values, np.int64))


def to_int(name, source="x"):
    """x as int32: Cast rounds toward zero, so the integer meaning of the op is what is tested."""
    return helper.make_node("Cast", [source], [name], to=TensorProto.INT32)


ONNX_RUNTIME = {"engines": ("onnxruntime",)}


def divisors(n):
    """Divisors of both signs, none near 0."""
    return ("d", np.array([1.5, -2.0, 3.0, -0.75, 7.0, -4.0][:n], np.float32))


INTEGER_DIVISORS = ("d", np.array([2, -3, 4, -5, 7, 1], np.int32))


CASES = {
    # unary functions
    "sin": (node("Sin", ["x"]), (1, 3, 6), [], {"scale": 4.0}),
    "cos": (node("Cos", ["x"]), (1, 3, 6), [], {"scale": 4.0}),
    "round": (node("Round", ["x"]), (1, 3, 6), [], {"scale": 3.0}),
    "round ties to even": (node("Round", ["x"]), (1, 3, 6), [], {"halves": True}),
    "gelu": (node("Gelu", ["x"]), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    "gelu approximate none": (node("Gelu", ["x"], approximate="none"), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    "gelu approximate tanh": (node("Gelu", ["x"], approximate="tanh"), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    # Mod: fmod=1 truncates (the sign of A), fmod=0 floors (the sign of B): integers, and floats from opset 28
    "mod fmod=1 by constants": (node("Mod", ["x", "d"], fmod=1), (1, 3, 6), [divisors(6)], {"scale": 5.0}),
    "mod fmod=1 by a run-time tensor": ([helper.make_node("Sin", ["x"], ["d"]), node("Mod", ["x", "d"], fmod=1)],
                                        (1, 3, 6), [], {"scale": 3.0}),
    "mod fmod=1 of integers": ([to_int("a"), node("Mod", ["a", "d"], fmod=1)], (1, 3, 6), [INTEGER_DIVISORS],
                               {"scale": 20.0}),
    "mod fmod=0 of integers": ([to_int("a"), node("Mod", ["a", "d"])], (1, 3, 6), [INTEGER_DIVISORS],
                               {"scale": 20.0}),
    "mod fmod=0 of integers by integers": ([to_int("a"), helper.make_node("Abs", ["a"], ["b"]),
                                            helper.make_node("Add", ["b", "one"], ["positive"]),
                                            node("Mod", ["a", "positive"])], (1, 3, 6), [("one", np.int32(1))],
                                           {"scale": 20.0}),
    "mod fmod=0 of floats, opset 28": (node("Mod", ["x", "d"]), (1, 3, 6), [divisors(6)],
                                       {"scale": 5.0, "opset": 28, **ONNX_RUNTIME}),
    # ArgMax / ArgMin: the index as int64 (held as its value); ties (multiples of 0.5) take the first or the last
    **{f"{op.lower()} {label}": (node(op, ["x"], **attrs), (1, 3, 6), [], {"halves": True})
       for op in ("ArgMax", "ArgMin")
       for label, attrs in [("defaults", {}), ("axis 2", {"axis": 2}), ("axis 1 keepdims 0", {"axis": 1, "keepdims": 0}),
                            ("axis -1 select_last_index", {"axis": -1, "select_last_index": 1}),
                            ("axis 1 select_last_index keepdims 0", {"axis": 1, "select_last_index": 1, "keepdims": 0})]},
    "argmax of a classifier's scores": ([helper.make_node("Softmax", ["x"], ["p"], axis=-1), node("ArgMax", ["p"], axis=-1)],
                                        (1, 3, 6), [], {}),
}


@pytest.mark.parametrize("name", CASES)
def test_op_streams_as_the_references_compute_it(tmp_path, name):
    nodes, x_shape, initializers, options = CASES[name]
    model = front_end_model(tmp_path, nodes if isinstance(nodes, list) else [nodes], x_shape, initializers,
                            **{k: v for k, v in options.items() if k == "opset"})
    m = edgeseq_runtime.load(str(model.path))
    xs = step_inputs(options, int(np.prod(x_shape)))
    ys = np.stack([m.step(x) for x in xs])
    m.reset()
    assert np.array_equal(m.run(xs), ys), "run differs from repeated step"
    for engine in options.get("engines", ("onnxruntime", "onnx")):
        reference = model.reference(engine, xs)
        atol = RTOL * max(1.0, np.abs(reference).max())
        np.testing.assert_allclose(ys, reference, rtol=RTOL, atol=atol, err_msg=f"{name} vs {engine}")


def step_inputs(options, size) -> np.ndarray:
    """STEPS rows: uniform in [-scale, scale), or multiples of 0.5 in [-4, 4] (ties for rounding)."""
    if options.get("halves"):
        return (rng.integers(-8, 9, (STEPS, size)) / 2).astype(np.float32)
    return rng.uniform(-1, 1, (STEPS, size)).astype(np.float32) * options.get("scale", 1.0)


@pytest.mark.parametrize("nodes, initializers, opset, reason", [
    (node("Gelu", ["x"], approximate="erf"), [], 20, r"attribute 'approximate'='erf' is not supported \(none, tanh\)"),
    (node("Mod", ["x", "d"], fmod=2), [divisors(6)], 18, r"attribute 'fmod'=2 is not 0 or 1"),
    (node("Mod", ["x", "d"]), [divisors(6)], 18, r"attribute 'fmod'=0 on float tensors is defined from opset 28 on "
                                                 r"\(the graph has opset 18\); set fmod=1"),
    (node("ArgMax", ["x"], select_last_index=2), [], 18, r"attribute 'select_last_index'=2 is not 0 or 1"),
    (node("ArgMin", ["x"], axis=3), [], 18, r"attribute 'axis'=3 is out of range for data of shape \[1, 3, 6\]"),
], ids=["gelu approximate erf", "mod fmod=2", "mod fmod=0 of floats before opset 28", "argmax select_last_index=2",
        "argmin axis 3"])
def test_what_stays_outside_is_refused_by_name(tmp_path, nodes, initializers, opset, reason):
    op = nodes[-1].op_type if isinstance(nodes, list) else nodes.op_type
    with pytest.raises(ModelError, match=rf"^[^\n]*'{op.lower()}_under_test' \({op}\): {reason}[^\n]*$"):
        edgeseq_runtime.load(str(_one_node_model(tmp_path, nodes, initializers, opset)))


def _one_node_model(tmp_path, front, initializers, opset):
    """x [1, 3, 6] -> front -> features [d, d, d], the graph output (no LSTM: the load stops before one)."""
    nodes = front if isinstance(front, list) else [front]
    graph = helper.make_graph(nodes, "outside", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["d"] * 3)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers])
    path = tmp_path / "outside.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path
