"""Models and inputs that attack the run-time kernels, with their float64 references.

Shared by tests/test_hostile_runtime.py (the Python runtime) and tests/test_hostile_c.py (the
generated C):

* ``two_tables``: token ids index a 20-row and a 5-row embedding table (valid ONNX, so ONNX
  Runtime and onnx.reference are references); an id of the larger table read the smaller one
  past its end.
* ``float_index_rnn``: the float step input indexes a 10-row table directly (not valid ONNX:
  Gather wants integer indices, but the runtime loads it), whose rows feed an RNN with state. No
  input check knows the table, so only the lookup itself can refuse 12, -11, 2.5 or 1e8.
* ``growing``: ReLU RNN / LSTM whose state grows without bound on rows of 1e4-1e6; the float64
  reference says at which step it leaves float32's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from support import reference_rnn
from support.onnx_builders import Built, build_model

FLOAT32_MAX = float(np.finfo(np.float32).max)
TABLE_ROWS = 10
SMALL_TABLE_ROWS, LARGE_TABLE_ROWS = 5, 20


def _save(path: Path, nodes, inputs, outputs, initializers: dict, check: bool = True) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def two_tables(directory: Path, first: str = "small") -> tuple[Path, dict]:
    """y = T_large[ids] + T_small[ids], the ``first`` table's Gather first in the graph; returns
    the path and the tables."""
    rng = np.random.default_rng(5)
    tables = {"large": rng.standard_normal((LARGE_TABLE_ROWS, 6)).astype(np.float32),
              "small": rng.standard_normal((SMALL_TABLE_ROWS, 6)).astype(np.float32)}
    second = "large" if first == "small" else "small"
    nodes = [helper.make_node("Gather", [first, "ids"], ["a"]),
             helper.make_node("Gather", [second, "ids"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    path = _save(directory / "two_tables.onnx", nodes,
                 [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 1])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 6])], tables)
    return path, tables


@dataclass(frozen=True)
class FloatIndexRnn:
    path: Path
    table: np.ndarray
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray

    def reference(self, rows, h0) -> tuple[np.ndarray, np.ndarray]:
        """(outputs (T, hidden), final state), float64, for index rows (T, 1) from state h0."""
        ids = np.asarray(rows, np.float64).reshape(-1)
        assert np.all(ids == np.floor(ids)) and np.all(np.abs(ids + 0.5) < TABLE_ROWS)
        X = self.table[ids.astype(np.int64)][:, None, :]
        Y, Y_h = reference_rnn.rnn(X, self.W, self.R, self.B, initial_h=h0)
        return Y[:, 0, 0], Y_h


def float_index_rnn(directory: Path) -> FloatIndexRnn:
    """x (a float) -> Gather on a 10-row table -> RNN (tanh, state input h0) -> Y."""
    rng = np.random.default_rng(6)
    hidden, width = 3, 4
    table = rng.standard_normal((TABLE_ROWS, width)).astype(np.float32)
    W = rng.uniform(-0.5, 0.5, (1, hidden, width)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (1, hidden, hidden)).astype(np.float32)
    B = rng.uniform(-0.5, 0.5, (1, 2 * hidden)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "x"], ["rows"]),
             helper.make_node("RNN", ["rows", "W", "R", "B", "", "h0"], ["Y", "h"], hidden_size=hidden)]
    path = _save(directory / "float_index_rnn.onnx", nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1]),
                  helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, hidden])],
                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 1, hidden]),
                  helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, hidden])],
                 {"table": table, "W": W, "R": R, "B": B}, check=False)
    return FloatIndexRnn(path, table, W, R, B)


# (op, activations, seed): weights uniform(-0.8, 0.8) whose state grows on rows of 1e4-1e6
GROWING = [("RNN", ["Relu"], 0), ("LSTM", ["Sigmoid", "Relu", "Relu"], 1)]
GROWING_IDS = [op for op, _, _ in GROWING]


def growing(directory: Path, op: str, activations, seed: int) -> Built:
    return build_model(directory, op, input_size=4, hidden_size=8, activations=activations,
                       head="matmul", seed=seed, scale=0.8, filename=f"growing_{op}.onnx")


def reference_states(built: Built, X: np.ndarray) -> np.ndarray:
    """The float64 reference's state after each row of X (T, input_size), from zeros: (T, n)
    (LSTM: h and c side by side)."""
    weights = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in built.model.graph.initializer}
    node = next(n for n in built.model.graph.node if n.op_type in ("RNN", "LSTM"))
    activations = next(list(a.strings) for a in node.attribute if a.name == "activations")
    activations = [a.decode() for a in activations]
    W, R, B = (weights[name] for name in node.input[1:4])
    states = []
    h = c = None
    with np.errstate(over="ignore", invalid="ignore"):
        for row in np.asarray(X, np.float64):
            if node.op_type == "RNN":
                _, h = reference_rnn.rnn(row[None, None], W, R, B, initial_h=h, activations=activations)
                states.append(h.ravel())
            else:
                _, h, c = reference_rnn.lstm(row[None, None], W, R, B, initial_h=h, initial_c=c,
                                             activations=activations)
                states.append(np.r_[h.ravel(), c.ravel()])
    return np.array(states)


def first_overflow(states: np.ndarray, margin: float = 1.02) -> int:
    """The first step whose float64 state is outside float32's range, checked to be clear of the
    boundary by ``margin`` on both sides (so float32 rounding cannot move it by a step)."""
    peaks = np.abs(states).max(axis=1)
    outside = np.flatnonzero(~(peaks <= FLOAT32_MAX))
    assert outside.size, "the reference state never leaves float32's range"
    t = int(outside[0])
    assert peaks[t] > margin * FLOAT32_MAX and (t == 0 or peaks[t - 1] < FLOAT32_MAX / margin)
    return t
