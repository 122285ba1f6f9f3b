"""Small graphs in the style of recurrent models edgeseq did not export, built with onnx.helper.

They carry what such files carry: an extra input that selects a branch (Silero VAD's ``sr``),
recurrent nodes inside If branches, state under exporters' own names, h and c stacked in one
``state[2, B, H]`` tensor, states whose batch axis is axis 0, symbolic input dims. Each builder
writes a checked file and returns its path; ``step_with_onnxruntime`` is the reference: ONNX
Runtime stepping the file with the state outputs fed back.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(model: onnx.ModelProto, path) -> str:
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return str(path)


def _const(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "foreign", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def written_out_cell(path, *, state_in: str, state_out: str, layout: str = "batch_first",
                     inputs: int = 3, hidden: int = 4, seed: int = 0) -> str:
    """x[B, inputs] -> y[B, 2]: new = tanh(x W + s R), s the state flattened per stream.

    ``layout``: "batch_first" keeps the state as s[B, 2, hidden] (batch axis 0); "stacked"
    as s[2, B, hidden] (two halves, like Silero's h and c in one tensor; batch axis 1);
    "unbatched" as s[2, hidden], one stream's state with no batch axis (a batch-1 export)."""
    rng = np.random.default_rng(seed)
    k = 2 * hidden
    shape = {"batch_first": ["B", 2, hidden], "stacked": [2, "B", hidden], "unbatched": [2, hidden]}[layout]
    init = [_const("W", rng.normal(0, 0.5, (inputs, k)).astype(np.float32)),
            _const("R", rng.normal(0, 0.5, (k, k)).astype(np.float32)),
            _const("V", rng.normal(0, 0.5, (k, 2)).astype(np.float32)),
            _const("flat", np.array([-1, k], np.int64)), _const("split", np.array([-1, 2, hidden][layout == "unbatched":], np.int64))]
    nodes = []
    s = state_in
    if layout == "stacked":
        nodes.append(helper.make_node("Transpose", [state_in], ["s_bf"], perm=[1, 0, 2]))
        s = "s_bf"
    nodes += [helper.make_node("Reshape", [s, "flat"], ["s_flat"]),
              helper.make_node("MatMul", ["x", "W"], ["xw"]),
              helper.make_node("MatMul", ["s_flat", "R"], ["sr"]),
              helper.make_node("Add", ["xw", "sr"], ["pre"]),
              helper.make_node("Tanh", ["pre"], ["new"]),
              helper.make_node("MatMul", ["new", "V"], ["y"])]
    if layout == "stacked":
        nodes += [helper.make_node("Reshape", ["new", "split"], ["new_bf"]),
                  helper.make_node("Transpose", ["new_bf"], [state_out], perm=[1, 0, 2])]
    else:
        nodes.append(helper.make_node("Reshape", ["new", "split"], [state_out]))
    model = _model(nodes,
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", inputs]),
                    helper.make_tensor_value_info(state_in, TensorProto.FLOAT, shape)],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2]),
                    helper.make_tensor_value_info(state_out, TensorProto.FLOAT, shape)], init)
    return _save(model, path)


def two_states(path, names=(("a", "p"), ("b", "q")), hidden: int = 3) -> str:
    """x[B, 2] and two states of equal shape [B, hidden] whose names say nothing of their pairs:
    p = tanh(x W + a), q = tanh(a + b), y = p + q."""
    (a, p), (b, q) = names
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("Add", ["xw", a], ["pa"]), helper.make_node("Tanh", ["pa"], [p]),
             helper.make_node("Add", [a, b], ["ab"]), helper.make_node("Tanh", ["ab"], [q]),
             helper.make_node("Add", [p, q], ["y"])]
    state = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", hidden]) for n in (a, b)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 2]), *state],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", hidden]),
                    *(helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", hidden]) for n in (p, q))],
                   [_const("W", rng.normal(0, 0.5, (2, hidden)).astype(np.float32))])
    return _save(model, path)


def lstm_in_if_branches(path, *, inputs: int = 3, hidden: int = 5, seed: int = 2,
                        weights_in_branches: bool = False) -> str:
    """Silero VAD's shape of graph: ``input[B, T]`` (T symbolic), ``state[2, B, hidden]`` (h and
    c stacked), ``sr`` (int64 scalar). ``If(sr == 16000)`` takes a branch that runs an LSTM on
    the input scaled by 1 (then) or 2 (else), with h and c read from ``state`` outside the
    branch; ``output`` = sigmoid of a projection of the new h, ``stateN`` = [h, c]. With
    ``weights_in_branches`` each branch holds its own LSTM weights, as Silero's file does: the
    then branch in Constant nodes, the else branch as its initializers."""
    rng = np.random.default_rng(seed)
    weights = {"W": rng.normal(0, 0.5, (1, 4 * hidden, inputs)).astype(np.float32),
               "R": rng.normal(0, 0.5, (1, 4 * hidden, hidden)).astype(np.float32),
               "Bias": rng.normal(0, 0.5, (1, 8 * hidden)).astype(np.float32)}
    init = [*([] if weights_in_branches else [_const(name, value) for name, value in weights.items()]),
            _const("V", rng.normal(0, 0.5, (hidden, 1)).astype(np.float32)),
            _const("rate", np.array(16000, np.int64)), _const("zero", np.array([0], np.int64)),
            _const("one", np.array(1, np.int64)), _const("first", np.array(0, np.int64)),
            _const("x_shape", np.array([1, -1, inputs], np.int64))]

    def branch(tag: str, scale: float) -> onnx.GraphProto:
        p = f"{tag}_"
        w, r, b = (f"{p}{name}" if weights_in_branches else name for name in weights)
        local = [_const(f"{p}scale", np.float32(scale))]
        nodes = []
        if weights_in_branches and tag == "then":
            nodes += [helper.make_node("Constant", [], [f"{p}{name}"], value=_const(f"{p}{name}", value))
                      for name, value in weights.items()]
        elif weights_in_branches:
            local += [_const(f"{p}{name}", value) for name, value in weights.items()]
        nodes += [helper.make_node("Mul", ["input", f"{p}scale"], [f"{p}scaled"]),
                 helper.make_node("Reshape", [f"{p}scaled", "x_shape"], [f"{p}X"]),
                 helper.make_node("Gather", ["state", "first"], [f"{p}h"], axis=0),
                 helper.make_node("Gather", ["state", "one"], [f"{p}c"], axis=0),
                 helper.make_node("Unsqueeze", [f"{p}h", "zero"], [f"{p}h0"]),
                 helper.make_node("Unsqueeze", [f"{p}c", "zero"], [f"{p}c0"]),
                 helper.make_node("LSTM", [f"{p}X", w, r, b, "", f"{p}h0", f"{p}c0"],
                                  [f"{p}Y", f"{p}Yh", f"{p}Yc"], hidden_size=hidden, name=f"{p}lstm"),
                 helper.make_node("Squeeze", [f"{p}Yh", "zero"], [f"{p}hn"]),
                 helper.make_node("MatMul", [f"{p}hn", "V"], [f"{p}logit"]),
                 helper.make_node("Sigmoid", [f"{p}logit"], [f"{p}out"]),
                 helper.make_node("Concat", [f"{p}Yh", f"{p}Yc"], [f"{p}stateN"], axis=0)]
        return helper.make_graph(
            nodes, f"{tag}_branch", [],
            [helper.make_tensor_value_info(f"{p}out", TensorProto.FLOAT, None),
             helper.make_tensor_value_info(f"{p}stateN", TensorProto.FLOAT, None)],
            local)

    nodes = [helper.make_node("Equal", ["sr", "rate"], ["is_16k"]),
             helper.make_node("If", ["is_16k"], ["if_out", "if_state"], name="rate_if",
                              then_branch=branch("then", 1.0), else_branch=branch("else", 2.0)),
             helper.make_node("Identity", ["if_out"], ["output"]),
             helper.make_node("Identity", ["if_state"], ["stateN"])]
    model = _model(nodes,
                   [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", "T"]),
                    helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "B", hidden]),
                    helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                   [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", 1]),
                    helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "B", hidden])], init)
    return _save(model, path)


def if_on_the_stream(path) -> str:
    """An If whose condition is a state input (fed back from an output), so the branch it takes
    changes from step to step."""
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t_y"])], "then", [],
                               [helper.make_tensor_value_info("t_y", TensorProto.FLOAT, None)],
                               [_const("two", np.float32(2))])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e_y"])], "else", [],
                               [helper.make_tensor_value_info("e_y", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["flag"], ["y"], name="flag_if", then_branch=then_g, else_branch=else_g),
             helper.make_node("Identity", ["flag"], ["flag_out"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("flag", TensorProto.BOOL, [1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
                    helper.make_tensor_value_info("flag_out", TensorProto.BOOL, [1])], [])
    return _save(model, path)


def scaled_window(path, width: int = 6) -> str:
    """input[B, T] -> output[B, width] = input * w: shows which samples a step saw."""
    weights = np.arange(1, width + 1, dtype=np.float32)
    nodes = [helper.make_node("Mul", ["input", "w"], ["output"])]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", "T"])],
                   [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", "T"])], [_const("w", weights)])
    return _save(model, path)


def step_with_onnxruntime(path, xs, state: dict, fixed: dict | None = None,
                          pairs: dict | None = None) -> np.ndarray:
    """The first output over the steps ``xs`` ([T, B, ...]), each state input fed the output
    ``pairs`` names for it (from zeros ``state`` {input: initial array})."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x_name = next(i.name for i in session.get_inputs() if i.name not in state and i.name not in (fixed or {}))
    out_names = [o.name for o in session.get_outputs()]
    state = dict(state)
    ys = []
    for x in xs:
        result = dict(zip(out_names, session.run(None, {x_name: x, **state, **(fixed or {})})))
        ys.append(result[out_names[0]])
        state = {name: result[out] for name, out in pairs.items()}
    return np.stack(ys)


def swapped_states(path) -> str:
    """Two states that trade values each step (a_next = b + x, b_next = a): a copy back that
    wrote ``a`` before reading it for ``b`` would be wrong. y = a * 2 + b."""
    nodes = [helper.make_node("Add", ["b", "x"], ["a_next"]),
             helper.make_node("Identity", ["a"], ["b_next"]),
             helper.make_node("Mul", ["a", "two"], ["a2"]),
             helper.make_node("Add", ["a2", "b"], ["y"])]
    vector = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", 3]) for n in ("x", "a", "b")]
    model = _model(nodes, vector, [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", 3])
                                   for n in ("y", "a_next", "b_next")], [_const("two", np.float32(2))])
    return _save(model, path)


def named_like_its_output(path, width: int = 4) -> str:
    """A denoiser's naming: audio[B, width] -> audio_out = 2 tanh(audio + state), with
    state[B, width] -> state_out = tanh(audio + state). The step input's name pairs with an output
    too, yet the graph has no other input to step on."""
    nodes = [helper.make_node("Add", ["audio", "state"], ["pre"]), helper.make_node("Tanh", ["pre"], ["state_out"]),
             helper.make_node("Mul", ["state_out", "two"], ["audio_out"])]
    vector = ["B", width]
    model = _model(nodes, [helper.make_tensor_value_info(n, TensorProto.FLOAT, vector) for n in ("audio", "state")],
                   [helper.make_tensor_value_info(n, TensorProto.FLOAT, vector) for n in ("audio_out", "state_out")],
                   [_const("two", np.float32(2))])
    return _save(model, path)


def state_read_after_its_node(path, *, op: str = "GRU", inputs: int = 3, hidden: int = 4, seed: int = 4) -> str:
    """A recurrent node whose state input is read again after the node: the next state is a
    blend of the node's Y_h and the state it started from, ``h_next = 0.5 * Y_h + 0.5 * h``
    (and c likewise for an LSTM), through a Squeeze view of ``h`` taken before the node and
    ``h`` itself read after it. The step's values of ``h`` are the ones it started with."""
    rng = np.random.default_rng(seed)
    gates = {"GRU": 3, "LSTM": 4, "RNN": 1}[op]
    inits = [_const("W", rng.standard_normal((1, gates * hidden, inputs)).astype(np.float32) * 0.5),
             _const("R", rng.standard_normal((1, gates * hidden, hidden)).astype(np.float32) * 0.5),
             _const("half", np.float32(0.5)), _const("axes", np.array([0], np.int64))]
    states = ["h", "c"] if op == "LSTM" else ["h"]
    nodes = [helper.make_node("Squeeze", ["h", "axes"], ["h_view"])]  # a view taken before the node
    nodes.append(helper.make_node(op, ["x", "W", "R", "", "", *states], ["", *[f"{s}_y" for s in states]],
                                  hidden_size=hidden))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, hidden])]
    for s in states:
        nodes += [helper.make_node("Add", [f"{s}_y", s], [f"{s}_sum"]),
                  helper.make_node("Mul", [f"{s}_sum", "half"], [f"{s}_next"])]
        outputs.append(helper.make_tensor_value_info(f"{s}_next", TensorProto.FLOAT, [1, 1, hidden]))
    nodes.append(helper.make_node("Add", ["h_view", "h_next"], ["y_sum"]))
    nodes.append(helper.make_node("Squeeze", ["y_sum", "axes"], ["y"]))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, inputs])]
    graph_inputs += [helper.make_tensor_value_info(s, TensorProto.FLOAT, [1, 1, hidden]) for s in states]
    return _save(_model(nodes, graph_inputs, outputs, inits), path)
