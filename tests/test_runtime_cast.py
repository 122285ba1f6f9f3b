"""Cast of a computed tensor to integer and bool types, and the integer tensors that follow it
(arithmetic, integer Div, comparisons, Where, Gather indices), against ONNX Runtime and ONNX's
reference evaluator: exact, value for value. What ONNX leaves undefined (values outside the
target's range) is refused where the range is known at load time.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import edgeseq_runtime
from edgeseq_runtime import ModelError

N = 24
INTEGER_TYPES = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16,
                 TensorProto.UINT16: np.uint16, TensorProto.INT32: np.int32, TensorProto.UINT32: np.uint32,
                 TensorProto.INT64: np.int64, TensorProto.UINT64: np.uint64}


def model(tmp_path, nodes, initializers=(), n=N, name="cast"):
    """x [1, n] float -> nodes -> y (float, or whatever the last node makes)."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto = onnx.shape_inference.infer_shapes(proto)
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, path)
    return path


def references(path, x):
    """ONNX Runtime's and the reference evaluator's y for x."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0], ReferenceEvaluator(str(path)).run(None, {"x": x})[0]


def assert_exact(path, x):
    got = edgeseq_runtime.load(path).step(x[0])
    for name, expected in zip(("ONNX Runtime", "onnx.reference"), references(path, x)):
        np.testing.assert_array_equal(got, np.asarray(expected, np.float64).ravel().astype(np.float32), err_msg=name)


def in_range(dtype, rng, n=N):
    """Values whose truncation the type holds: fractions either side of zero, halves, the type's
    own limits (within float32's exact integers, 2^24) and a fraction beyond them."""
    info = np.iinfo(dtype)
    low, high = max(info.min, -(1 << 24)), min(info.max, 1 << 24)
    picks = [0.0, 0.5, 0.999, 1.0, 1.5, 2.5, high, low]
    if high < 1 << 23:
        picks.append(high + 0.5)
    if low < 0:
        picks += [-0.5, -1.5, -2.5] + ([low - 0.5] if low > -(1 << 23) else [])
    picks += list(rng.uniform(low, high, n - len(picks)))
    return np.asarray(picks, np.float32).reshape(1, n)


@pytest.mark.parametrize("to", INTEGER_TYPES, ids=[TensorProto.DataType.Name(t) for t in INTEGER_TYPES])
def test_cast_to_an_integer_type_truncates_toward_zero(tmp_path, to):
    path = model(tmp_path, [helper.make_node("Cast", ["x"], ["i"], to=to),
                            helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)])
    x = in_range(INTEGER_TYPES[to], np.random.default_rng(to))
    assert_exact(path, x)


def test_cast_to_bool_is_nonzero(tmp_path):
    path = model(tmp_path, [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BOOL),
                            helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)])
    x = np.array([[0.0, -0.0, 1e-30, -1e-30, 0.5, -3.0, 7.0, 1e30] * 3], np.float32)
    assert_exact(path, x)


def integer_model(tmp_path, tail, initializers=(), name="ints"):
    """i = Cast(x * 10 -> int32), j = Cast(x * -7 -> int32), then ``tail`` to y."""
    nodes = [helper.make_node("Mul", ["x", "ten"], ["x10"]), helper.make_node("Cast", ["x10"], ["i"], to=TensorProto.INT32),
             helper.make_node("Mul", ["x", "minus_seven"], ["x7"]),
             helper.make_node("Cast", ["x7"], ["j"], to=TensorProto.INT32), *tail]
    return model(tmp_path, nodes, [("ten", np.float32(10)), ("minus_seven", np.float32(-7)), *initializers], name=name)


def to_float(name, out="y"):
    return helper.make_node("Cast", [name], [out], to=TensorProto.FLOAT)


INTEGER_TAILS = {
    "add, sub, mul": ([helper.make_node("Add", ["i", "j"], ["s"]), helper.make_node("Mul", ["s", "three"], ["m"]),
                       helper.make_node("Sub", ["m", "i"], ["d"]), to_float("d")], [("three", np.int32(3))]),
    "div by a constant truncates": ([helper.make_node("Div", ["i", "four"], ["q"]), to_float("q")], [("four", np.int32(4))]),
    "div by a negative constant": ([helper.make_node("Div", ["i", "minus_three"], ["q"]), to_float("q")],
                                   [("minus_three", np.int32(-3))]),
    "div of two computed ints": ([helper.make_node("Abs", ["j"], ["aj"]), helper.make_node("Add", ["aj", "one"], ["den"]),
                                  helper.make_node("Div", ["i", "den"], ["q"]), to_float("q")], [("one", np.int32(1))]),
    "div after a reshape": ([helper.make_node("Reshape", ["i", "shape"], ["r"]),
                             helper.make_node("Div", ["r", "five"], ["q"]), to_float("q")],
                            [("shape", np.array([4, 6], np.int64)), ("five", np.int32(5))]),
    "comparisons and where": ([helper.make_node("Greater", ["i", "j"], ["g"]), helper.make_node("Equal", ["i", "zero"], ["e"]),
                               helper.make_node("Or", ["g", "e"], ["c"]), helper.make_node("Where", ["c", "i", "j"], ["w"]),
                               to_float("w")], [("zero", np.int32(0))]),
    "bool to int and on": ([helper.make_node("Less", ["i", "zero"], ["neg"]),
                            helper.make_node("Cast", ["neg"], ["n"], to=TensorProto.INT64),
                            helper.make_node("Cast", ["i"], ["i64"], to=TensorProto.INT64),
                            helper.make_node("Add", ["i64", "n"], ["s"]), helper.make_node("Neg", ["s"], ["ns"]),
                            to_float("ns")], [("zero", np.int32(0))]),
    "reducemean truncates": ([helper.make_node("Reshape", ["i", "shape"], ["r"]),
                              helper.make_node("ReduceMean", ["r"], ["m"], axes=[1], keepdims=0), to_float("m")],
                             [("shape", np.array([8, 3], np.int64))]),
    "reducel2 truncates": ([helper.make_node("Reshape", ["j", "shape"], ["r"]),
                            helper.make_node("ReduceL2", ["r"], ["m"], axes=[1], keepdims=1), to_float("m")],
                           [("shape", np.array([6, 4], np.int64))]),
    "pow of ints": ([helper.make_node("Pow", ["i", "two"], ["p"]), helper.make_node("Abs", ["i"], ["a"]),
                     helper.make_node("Min", ["a", "three"], ["e"]), helper.make_node("Pow", ["j", "e"], ["q"]),
                     helper.make_node("Add", ["p", "q"], ["s"]), to_float("s")],
                    [("two", np.int32(2)), ("three", np.int32(3))]),
    "min, max, clip": ([helper.make_node("Min", ["i", "j"], ["lo"]), helper.make_node("Max", ["lo", "minus_five"], ["hi"]),
                        helper.make_node("Clip", ["hi", "minus_five", "six"], ["c"]), to_float("c")],
                       [("minus_five", np.int32(-5)), ("six", np.int32(6))]),
}


@pytest.mark.parametrize("case", INTEGER_TAILS)
def test_integer_ops_after_a_cast_are_exact(tmp_path, case):
    tail, inits = INTEGER_TAILS[case]
    path = integer_model(tmp_path, tail, inits)
    x = np.random.default_rng(3).uniform(-2, 2, (1, N)).astype(np.float32)
    x[0, :4] = [0.0, -0.05, 0.37, -0.37]
    assert_exact(path, x)


def test_gather_indices_from_a_computed_integer_tensor(tmp_path):
    """Rows of a constant table picked by Cast(Floor(x * 8)): the embedding lookup, ids checked."""
    table = np.random.default_rng(4).standard_normal((8, 3)).astype(np.float32)
    nodes = [helper.make_node("Mul", ["x", "eight"], ["x8"]), helper.make_node("Floor", ["x8"], ["f"]),
             helper.make_node("Cast", ["f"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)]
    path = model(tmp_path, nodes, [("eight", np.float32(8)), ("table", table)])
    x = np.random.default_rng(5).uniform(-0.99, 0.99, (1, N)).astype(np.float32)
    assert_exact(path, x)
    with pytest.raises(ValueError, match="index"):  # an id outside the table: refused, not read
        edgeseq_runtime.load(path).step(np.full(N, 1.5, np.float32))


def test_gather_on_another_axis_with_computed_indices_is_refused_by_name(tmp_path):
    nodes = [helper.make_node("Cast", ["x"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids"], ["y"], axis=1, name="pick")]
    path = model(tmp_path, nodes, [("table", np.ones((3, 8), np.float32))])
    with pytest.raises(ModelError, match=r"'pick' \(Gather\): run-time indices are supported for an embedding"):
        edgeseq_runtime.load(path)


@pytest.mark.parametrize("producer, to, refused", [
    (helper.make_node("Tanh", ["x"], ["v"]), TensorProto.UINT8, True),       # -1 is outside
    (helper.make_node("Tanh", ["x"], ["v"]), TensorProto.INT8, False),
    (helper.make_node("Sigmoid", ["x"], ["v"]), TensorProto.UINT8, False),
    (helper.make_node("Clip", ["x", "low", "high"], ["v"]), TensorProto.UINT8, True),  # [-5, 300]
    (helper.make_node("Clip", ["x", "low", "high"], ["v"]), TensorProto.INT16, False),
], ids=["tanh-uint8", "tanh-int8", "sigmoid-uint8", "clip-uint8", "clip-int16"])
def test_cast_of_a_known_range_outside_the_type_is_refused(tmp_path, producer, to, refused):
    nodes = [producer, helper.make_node("Cast", ["v"], ["c"], to=to, name="narrow"), to_float("c")]
    path = model(tmp_path, nodes, [("low", np.float32(-5)), ("high", np.float32(300))])
    if refused:
        with pytest.raises(ModelError, match=r"'narrow' \(Cast\): casts values in \[-?\d+, \d+\] \(from node "
                                             r"'v' \(\w+\)\) to UINT8, which holds \[0, 255\]"):
            edgeseq_runtime.load(path)
        return
    x = np.random.default_rng(6).uniform(-3, 3, (1, N)).astype(np.float32)
    assert_exact(path, x)


def test_cast_to_a_string_is_refused_by_name(tmp_path):
    nodes = [helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING, name="to_text"),
             helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT)]
    path = model(tmp_path, nodes)
    with pytest.raises(ModelError, match=r"'to_text' \(Cast\): casting a computed tensor to STRING is not supported"):
        edgeseq_runtime.load(path)
