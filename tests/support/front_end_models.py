"""Small streaming models with a front end of any ONNX ops before an LSTM, built with `onnx.helper`,
and the references that step them: ONNX Runtime (graph optimisations off, so that it runs each
op as written) and onnx.reference's evaluator, each fed its own state back.

`front_end_model(tmp_path, nodes, x_shape, initializers)` takes the front end as nodes from the
graph input `x` (a fixed shape, one step) to a tensor named `features`; the model then streams

    x -> front end -> features -> LSTM (state h, c: inputs `h`, `c`, outputs `hn`, `cn`)
    output y = Concat(flatten(features), flatten(LSTM's Y))

so one output shows the front end's values exactly and the LSTM's recurrence over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 18
HIDDEN = 4


@dataclass(frozen=True)
class FrontEnd:
    path: Path
    x_shape: tuple[int, ...]

    def reference(self, engine: str, xs: np.ndarray) -> np.ndarray:
        """The per-step outputs of `engine` ("onnxruntime" or "onnx") over xs (T, *x_shape)."""
        run = _onnxruntime(self.path) if engine == "onnxruntime" else _evaluator(self.path)
        h = c = np.zeros((1, 1, HIDDEN), np.float32)
        outputs = []
        for x in xs:
            y, h, c = run({"x": x.reshape(self.x_shape).astype(np.float32), "h": h, "c": c})
            outputs.append(np.asarray(y, np.float64).ravel())
        return np.stack(outputs)


def _onnxruntime(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(["y", "hn", "cn"], feeds)


def _evaluator(path):
    evaluator = ReferenceEvaluator(str(path))
    return lambda feeds: evaluator.run(["y", "hn", "cn"], feeds)


def _size_of_features(probe) -> int:
    """Elements of `features` as shape inference finds them, else as an evaluator computes them."""
    inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if info.name == "features" and info.type.tensor_type.HasField("shape") \
                and all(d.HasField("dim_value") for d in dims):
            return math.prod(d.dim_value for d in dims)
    return np.size(ReferenceEvaluator(probe).run(None, {"x": np.zeros(_shape(probe), np.float32)})[0])


def _shape(model):
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


def front_end_model(tmp_path, nodes, x_shape, initializers=(), *, opset=OPSET, seed=0,
                    filename="front_end.onnx") -> FrontEnd:
    """Write the model (see the module docstring); ``initializers`` are (name, array) pairs."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(np.asarray(v), name) for name, v in initializers]
    probe = helper.make_model(
        helper.make_graph(list(nodes), "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("features", TensorProto.UNDEFINED, None)], inits),
        opset_imports=[helper.make_opsetid("", opset)])
    n = _size_of_features(probe)
    w = rng.uniform(-0.5, 0.5, (1, 4 * HIDDEN, n)).astype(np.float32)
    r = rng.uniform(-0.5, 0.5, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    inits += [numpy_helper.from_array(w, "lstm_W"), numpy_helper.from_array(r, "lstm_R"),
              numpy_helper.from_array(np.array([1, 1, n], np.int64), "lstm_x_shape"),
              numpy_helper.from_array(np.array([1, -1], np.int64), "row_shape")]
    tail = [
        helper.make_node("Cast", ["features"], ["features_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["features_f", "lstm_x_shape"], ["lstm_x"]),
        helper.make_node("LSTM", ["lstm_x", "lstm_W", "lstm_R", "", "", "h", "c"], ["lstm_y", "hn", "cn"],
                         hidden_size=HIDDEN, name="lstm"),
        helper.make_node("Reshape", ["features_f", "row_shape"], ["features_row"]),
        helper.make_node("Reshape", ["lstm_y", "row_shape"], ["lstm_row"]),
        helper.make_node("Concat", ["features_row", "lstm_row"], ["y"], axis=1),
    ]
    state = [1, 1, HIDDEN]
    graph = helper.make_graph(
        [*nodes, *tail], "front_end",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, state)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n + HIDDEN]),
         helper.make_tensor_value_info("hn", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("cn", TensorProto.FLOAT, state)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model, full_check=True)
    path = Path(tmp_path) / filename
    onnx.save(model, str(path))
    return FrontEnd(path, tuple(x_shape))
