"""Recurrent nodes whose sequence runs inside one step (e.g. a bidirectional GRU across the
frequency bins of one audio frame, as DPCRN/GTCRN-style speech enhancement models run it):
forward, reverse and bidirectional, layouts 0 and 1, every output (Y, Y_h, Y_c) and attribute,
against a float64 numpy reference written from the ONNX spec (tests/support/reference_rnn.py,
each direction of it) and ONNX Runtime; then a DPCRN-like model (bidirectional GRU over 33 and
129 bins feeding a forward GRU that streams) against ONNX Runtime stepping the same file with
its state fed back, and ``run`` against repeated ``step``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import reference_rnn

import edgeseq_runtime
from edgeseq_runtime import ModelError
from edgeseq_runtime.lowering import lower

RTOL = 1e-5  # of the largest reference value
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def _ort(path):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _close(got, expected, what):
    expected = np.asarray(expected, np.float64).ravel()
    error = np.max(np.abs(np.asarray(got, np.float64).ravel() - expected))
    assert error <= RTOL * max(np.max(np.abs(expected)), 1.0), f"{what}: max error {error:.3g}"


# -- one node, every output, against the float64 reference ---------------------------------------

def reference(op, X, W, R, B, initial, attrs, layout, direction):
    """The node's (Y, Y_h[, Y_c]) in float64: reference_rnn, which runs one forward direction,
    on each direction's weights, X reversed in time for a reverse one."""
    time_axis = 1 if layout else 0
    per_direction = len(reference_rnn.DEFAULT_ACTIVATIONS[op])
    reversed_ = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
    names = attrs.get("activations") or reference_rnn.DEFAULT_ACTIVATIONS[op] * len(reversed_)
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    results = []
    for d, reverse in enumerate(reversed_):
        # alpha/beta are consumed across both directions' activations in order (as ONNX Runtime does)
        mine = names[d * per_direction:(d + 1) * per_direction]
        kwargs = {k: v for k, v in attrs.items() if k not in ("activations", "activation_alpha", "activation_beta")}
        taken_a = [alphas.pop(0) for n in mine if reference_rnn.TAKES_ALPHA_BETA[n][0] and alphas]
        taken_b = [betas.pop(0) for n in mine if reference_rnn.TAKES_ALPHA_BETA[n][1] and betas]
        states = {k: (v[:, d:d + 1] if layout else v[d:d + 1]) for k, v in initial.items()}
        if "P" in kwargs:
            kwargs["P"] = kwargs["P"][d:d + 1]
        x = np.flip(X, time_axis) if reverse else X
        out = reference_rnn.OPS[op](x, W[d:d + 1], R[d:d + 1], B[d:d + 1], **states, activations=mine,
                                    activation_alpha=taken_a, activation_beta=taken_b, layout=layout, **kwargs)
        y = np.flip(out[0], time_axis) if reverse else out[0]
        results.append((y, *out[1:]))
    dir_axis = 2 if layout else 1
    state_axis = 1 if layout else 0
    return (np.concatenate([r[0] for r in results], dir_axis),
            *[np.concatenate([r[k] for r in results], state_axis) for k in range(1, len(results[0]))])


def node_model(tmp_path, op, *, direction="bidirectional", layout=0, steps=7, batch=1, n_in=3, hidden=5,
               initial="zeros", attrs=None, seed=0):
    """x [batch, steps*n_in] -> X (layout's order) -> the node -> y: Y, Y_h (and Y_c) flattened
    and concatenated. ``initial``: "absent", "zeros" (an initializer), "constant" (random), or
    "computed" (from x, inside the step). Returns the path and the float64 reference's y
    for an x, as a function."""
    rng = np.random.default_rng(seed)
    attrs = dict(attrs or {})
    gates, dirs = GATES[op], DIRECTIONS[direction]
    W = rng.uniform(-0.6, 0.6, (dirs, gates * hidden, n_in)).astype(np.float32)
    R = rng.uniform(-0.6, 0.6, (dirs, gates * hidden, hidden)).astype(np.float32)
    B = rng.uniform(-0.3, 0.3, (dirs, 2 * gates * hidden)).astype(np.float32)
    state_shape = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    x_shape = [batch, steps, n_in] if layout else [steps, batch, n_in]
    inits = [numpy_helper.from_array(v, k) for k, v in (("W", W), ("R", R), ("B", B))]
    inits.append(numpy_helper.from_array(np.array(x_shape if layout else [batch, steps, n_in], np.int64), "x_shape"))
    nodes = [helper.make_node("Reshape", ["x", "x_shape"], ["X" if layout else "x3"])]
    if not layout:
        nodes.append(helper.make_node("Transpose", ["x3"], ["X"], perm=[1, 0, 2]))
    states = ["initial_h", "initial_c"][:2 if op == "LSTM" else 1]
    constants = {}
    for k, name in enumerate(states):
        if initial in ("zeros", "constant"):
            value = np.zeros(state_shape, np.float32) if initial == "zeros" else \
                rng.uniform(-0.8, 0.8, state_shape).astype(np.float32)
            constants[name] = value
            inits.append(numpy_helper.from_array(value, name))
        elif initial == "computed":  # tanh of x's first values, scaled: a state made in the step
            size = int(np.prod(state_shape))
            inits += [numpy_helper.from_array(np.array([0], np.int64), f"{name}_start"),
                      numpy_helper.from_array(np.array([size], np.int64), f"{name}_end"),
                      numpy_helper.from_array(np.array(state_shape, np.int64), f"{name}_shape"),
                      numpy_helper.from_array(np.float32(0.7 + 0.2 * k), f"{name}_scale")]
            flat = "x_flat"
            if k == 0:
                nodes.append(helper.make_node("Reshape", ["x", "flat_shape"], [flat]))
                inits.append(numpy_helper.from_array(np.array([-1], np.int64), "flat_shape"))
            nodes += [helper.make_node("Slice", [flat, f"{name}_start", f"{name}_end"], [f"{name}_slice"]),
                      helper.make_node("Mul", [f"{name}_slice", f"{name}_scale"], [f"{name}_scaled"]),
                      helper.make_node("Tanh", [f"{name}_scaled"], [f"{name}_flat"]),
                      helper.make_node("Reshape", [f"{name}_flat", f"{name}_shape"], [name])]
    P = None
    if attrs.pop("peepholes", False):
        P = rng.uniform(-0.5, 0.5, (dirs, 3 * hidden)).astype(np.float32)
        inits.append(numpy_helper.from_array(P, "P"))
    inputs = ["X", "W", "R", "B", ""] + [s if initial != "absent" else "" for s in states]
    if P is not None:
        inputs.append("P")
    outputs = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    nodes.append(helper.make_node(op, inputs, outputs, name="cell", hidden_size=hidden, direction=direction,
                                  layout=layout, **attrs))
    inits.append(numpy_helper.from_array(np.array([batch, -1], np.int64), "flat"))
    for name in outputs:
        nodes.append(helper.make_node("Reshape", [name, "flat"], [f"{name}_flat"]))
    nodes.append(helper.make_node("Concat", [f"{n}_flat" for n in outputs], ["y"], axis=1))
    graph = helper.make_graph(nodes, "in_step", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 ["batch", steps * n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])], inits)
    path = tmp_path / f"{op}_{direction}_{layout}_{initial}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)

    def expected(x):
        X = x.reshape(batch, steps, n_in).astype(np.float64)
        X = X if layout else X.transpose(1, 0, 2)
        initial_values = dict(constants)
        if initial == "computed":
            flat = x.ravel().astype(np.float64)
            size = int(np.prod(state_shape))
            initial_values = {name: np.tanh(flat[:size] * np.float32(0.7 + 0.2 * k)).reshape(state_shape)
                              for k, name in enumerate(states)}
        kwargs = dict(attrs)
        if P is not None:
            kwargs["P"] = P
        outs = reference(op, X, W, R, B, initial_values, kwargs, layout, direction)
        return np.concatenate([o.reshape(batch, -1) for o in outs], axis=1)

    return path, expected


CELL_CASES = [
    ("GRU", {}), ("GRU", {"linear_before_reset": 1}), ("GRU", {"clip": 0.7}),
    ("GRU", {"activations": ["HardSigmoid", "Tanh", "Sigmoid", "LeakyRelu"], "activation_alpha": [0.3, 0.1, 0.2],
             "activation_beta": [0.6]}),
    ("LSTM", {}), ("LSTM", {"peepholes": True}), ("LSTM", {"input_forget": 1}), ("LSTM", {"clip": 0.5}),
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Softsign", "HardSigmoid", "Elu", "Tanh"],
              "activation_alpha": [0.25, 0.8], "activation_beta": [0.4]}),
    ("RNN", {}), ("RNN", {"activations": ["Relu", "Tanh"]}), ("RNN", {"clip": 0.4}),
]


def _attrs_for(attrs, direction):
    """A bidirectional case's activations as given; one direction's: its first half."""
    if "activations" in attrs and direction != "bidirectional":
        attrs = {**attrs, "activations": attrs["activations"][:len(attrs["activations"]) // 2]}
    return attrs


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op, attrs", CELL_CASES, ids=[f"{op}-{a}" for op, a in CELL_CASES])
def test_node_over_a_sequence_inside_the_step(tmp_path, op, attrs, direction, layout):
    attrs = _attrs_for(attrs, direction)
    path, expected = node_model(tmp_path, op, direction=direction, layout=layout, initial="constant", attrs=attrs)
    model = edgeseq_runtime.load(path)
    xs = np.random.default_rng(1).uniform(-1, 1, (3, 21)).astype(np.float32)
    for x in xs:  # three steps: each runs the whole sequence from the same initial state
        _close(model.step(x), expected(x), "against the float64 reference")
    if layout == 0:  # ONNX Runtime's recurrent ops take layout 0 only
        session = _ort(path)
        for x in xs:
            _close(model.run(x[None])[0], session.run(None, {"x": x[None]})[0], "against ONNX Runtime")


@pytest.mark.parametrize("initial", ["absent", "zeros", "computed"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("op", GATES)
def test_initial_state_absent_constant_or_computed_in_the_step(tmp_path, op, layout, initial):
    path, expected = node_model(tmp_path, op, layout=layout, initial=initial, steps=6, n_in=4, hidden=3)
    model = edgeseq_runtime.load(path)
    for x in np.random.default_rng(2).uniform(-1, 1, (3, 24)).astype(np.float32):
        _close(model.step(x), expected(x), f"initial state {initial}")


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("op", GATES)
def test_batch_of_streams(tmp_path, op, layout):
    path, expected = node_model(tmp_path, op, layout=layout, batch=3, initial="computed", steps=5)
    model = edgeseq_runtime.load(path, batch=3)
    x = np.random.default_rng(3).uniform(-1, 1, (3, 15)).astype(np.float32)
    _close(model.step(x), expected(x), "3 streams")
    if layout == 0:
        _close(model.step(x), _ort(path).run(None, {"x": x})[0], "3 streams, ONNX Runtime")


def test_int8_weights_stay_exact_per_direction(tmp_path):
    """A QDQ node with one scale per direction: each direction reads its own int8 weights."""
    from edgeseq_export.backends.quantize import quantize_int8

    path, _ = node_model(tmp_path, "GRU", initial="absent")
    quantized = tmp_path / "int8.onnx"
    onnx.save(quantize_int8(onnx.load(path))[0], quantized)
    x = np.random.default_rng(4).uniform(-1, 1, (1, 21)).astype(np.float32)
    _close(edgeseq_runtime.load(quantized).step(x[0]), _ort(quantized).run(None, {"x": x})[0], "int8")


def test_one_scratch_region_for_every_record_of_a_node(tmp_path):
    """The records of a node run one after another: they share one scratch, so the arena grows
    with the sequence by Y's slots alone, not by a scratch per time index."""
    sizes = []
    for steps in (10, 100):
        path, _ = node_model(tmp_path, "GRU", steps=steps, n_in=1, hidden=16, initial="absent")
        sizes.append(lower(onnx.load(path), str(path), 1).plan.arena.size)
    per_index = (sizes[1] - sizes[0]) / 90
    # Y's slots (2 directions of 16) and the output that concatenates them, x and its transpose;
    # a scratch per record would add 2 * 7 * 16
    assert per_index <= 2 * (2 * 16) + 2 + 1, f"{per_index} floats of arena per time index"


# -- a DPCRN-like model: intra-frame bidirectional GRU, inter-frame streaming GRU --------------------

def dpcrn_like(tmp_path, bins, *, intra="GRU", intra_state=False, channels=4, intra_hidden=6, hidden=16, seed=5):
    """frame [B, bins] -> per-bin features [bins, B, channels] -> a bidirectional intra-frame
    ``intra`` across the bins -> [1, B, bins*2*intra_hidden] -> a forward GRU whose state h is fed
    back from step to step -> a sigmoid mask on the frame. With ``intra_state`` the intra node
    starts each frame from the previous frame's final state (inputs h_intra[, c_intra], fed back)."""
    rng = np.random.default_rng(seed)
    gates = GATES[intra]
    mixed = bins * 2 * intra_hidden

    def init(name, shape, scale):
        return numpy_helper.from_array(rng.uniform(-scale, scale, shape).astype(np.float32), name)

    inits = [init("conv_w", (1, channels), 1.0), init("conv_b", (channels,), 0.2),
             init("W1", (2, gates * intra_hidden, channels), 0.5), init("R1", (2, gates * intra_hidden, intra_hidden), 0.5),
             init("B1", (2, 2 * gates * intra_hidden), 0.2),
             init("W2", (1, 3 * hidden, mixed), 1.0 / np.sqrt(mixed)), init("R2", (1, 3 * hidden, hidden), 0.4),
             init("B2", (1, 6 * hidden), 0.2), init("mask_w", (hidden, bins), 0.5), init("mask_b", (bins,), 0.2),
             numpy_helper.from_array(np.array([2], np.int64), "last"),
             numpy_helper.from_array(np.array([0, 1], np.int64), "axes01"),
             numpy_helper.from_array(np.array([1, -1, mixed], np.int64), "mixed_shape")]
    inputs = [helper.make_tensor_value_info("frame", TensorProto.FLOAT, ["B", bins]),
              helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "B", hidden])]
    outputs = [helper.make_tensor_value_info("enhanced", TensorProto.FLOAT, ["B", bins]),
               helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, "B", hidden])]
    intra_inputs = ["features", "W1", "R1", "B1", ""]
    intra_outputs = ["intra_y", "intra_h_out" if intra_state else ""]
    if intra_state:
        intra_inputs.append("h_intra")
        inputs.append(helper.make_tensor_value_info("h_intra", TensorProto.FLOAT, [2, "B", intra_hidden]))
        outputs.append(helper.make_tensor_value_info("intra_h_out", TensorProto.FLOAT, [2, "B", intra_hidden]))
        if intra == "LSTM":
            intra_inputs.append("c_intra")
            intra_outputs.append("c_intra_out")
            inputs.append(helper.make_tensor_value_info("c_intra", TensorProto.FLOAT, [2, "B", intra_hidden]))
            outputs.append(helper.make_tensor_value_info("c_intra_out", TensorProto.FLOAT, [2, "B", intra_hidden]))
    nodes = [
        helper.make_node("Unsqueeze", ["frame", "last"], ["frame3"]),                  # [B, bins, 1]
        helper.make_node("MatMul", ["frame3", "conv_w"], ["projected"]),              # [B, bins, C]
        helper.make_node("Add", ["projected", "conv_b"], ["biased"]),
        helper.make_node("Relu", ["biased"], ["activated"]),
        helper.make_node("Transpose", ["activated"], ["features"], perm=[1, 0, 2]),   # [bins, B, C]
        helper.make_node(intra, intra_inputs, intra_outputs, name="intra", hidden_size=intra_hidden,
                         direction="bidirectional"),                                   # [bins, 2, B, H1]
        helper.make_node("Transpose", ["intra_y"], ["by_stream"], perm=[2, 0, 1, 3]),  # [B, bins, 2, H1]
        helper.make_node("Reshape", ["by_stream", "mixed_shape"], ["mixed"]),          # [1, B, bins*2*H1]
        helper.make_node("GRU", ["mixed", "W2", "R2", "B2", "", "h"], ["inter_y", "h_out"], name="inter",
                         hidden_size=hidden, linear_before_reset=1),
        helper.make_node("Squeeze", ["inter_y", "axes01"], ["inter"]),                 # [B, H2]
        helper.make_node("MatMul", ["inter", "mask_w"], ["logits"]),
        helper.make_node("Add", ["logits", "mask_b"], ["mask_logits"]),
        helper.make_node("Sigmoid", ["mask_logits"], ["mask"]),
        helper.make_node("Mul", ["mask", "frame"], ["enhanced"]),
    ]
    graph = helper.make_graph(nodes, "dpcrn_like", inputs, outputs, inits)
    path = tmp_path / f"dpcrn_{bins}_{intra}_{intra_state}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return path


def _ort_stepped(path, frames, batch, state_names):
    """ONNX Runtime stepping the file frame by frame, each state output fed back."""
    session = _ort(path)
    shapes = {i.name: [batch if d == "B" else d for d in i.shape] for i in session.get_inputs()}
    state = {name: np.zeros(shapes[name], np.float32) for name in state_names}
    outputs = []
    for frame in frames:
        results = session.run(None, {"frame": frame.reshape(batch, -1), **state})
        outputs.append(results[0])
        state = dict(zip(state_names, results[1:]))
    return np.stack(outputs), state


@pytest.mark.parametrize("bins", [33, 129])
def test_dpcrn_like_streams_like_onnx_runtime_stepping_it(tmp_path, bins):
    path = dpcrn_like(tmp_path, bins)
    frames = np.abs(np.random.default_rng(bins).standard_normal((60, bins))).astype(np.float32)
    expected, state = _ort_stepped(path, frames, 1, ["h"])
    model = edgeseq_runtime.load(path)
    stepped = np.stack([model.step(frame) for frame in frames])
    for t in range(len(frames)):
        _close(stepped[t], expected[t], f"frame {t}")
    _close(model.get_state()["h"], state["h"], "final state")
    assert np.array_equal(edgeseq_runtime.load(path).run(frames), stepped), "run differs from repeated step"


@pytest.mark.parametrize("intra", ["GRU", "LSTM"])
def test_dpcrn_like_with_intra_frame_state_carried_and_a_batch(tmp_path, intra):
    """The intra-frame node starts from the previous frame's final state, a state input fed back
    by name; three streams at once."""
    path = dpcrn_like(tmp_path, 33, intra=intra, intra_state=True)
    states = ["h", "h_intra"] + (["c_intra"] if intra == "LSTM" else [])
    frames = np.abs(np.random.default_rng(9).standard_normal((50, 3, 33))).astype(np.float32)
    expected, state = _ort_stepped(path, frames, 3, states)
    model = edgeseq_runtime.load(path, batch=3)
    stepped = np.stack([model.step(frame) for frame in frames])
    for t in range(len(frames)):
        _close(stepped[t], expected[t], f"frame {t}")
    for name in states:
        _close(model.get_state()[name], state[name], f"final {name}")
    assert np.array_equal(edgeseq_runtime.load(path, batch=3).run(frames), stepped)


def test_intra_state_without_an_output_is_carried_by_the_node(tmp_path):
    """A state input feeding a whole-sequence node's initial_h that no output feeds back is
    carried by the node itself, as a streaming node carries its own: the next step starts
    from this step's Y_h (checked against ONNX Runtime fed Y_h by hand)."""
    path = dpcrn_like(tmp_path, 33, intra_state=True)
    model_proto = onnx.load(path)
    kept = [o for o in model_proto.graph.output if o.name != "intra_h_out"]
    del model_proto.graph.output[:]
    model_proto.graph.output.extend(kept)
    carried = tmp_path / "carried.onnx"
    onnx.save(model_proto, carried)
    frames = np.abs(np.random.default_rng(10).standard_normal((8, 33))).astype(np.float32)
    expected, _ = _ort_stepped(path, frames, 1, ["h", "h_intra"])  # the same graph, Y_h fed back
    model = edgeseq_runtime.load(carried)
    for t, frame in enumerate(frames):
        _close(model.step(frame), expected[t], f"frame {t}")


@pytest.mark.parametrize("op", GATES)
def test_state_carried_by_a_batch_first_node(tmp_path, op):
    """layout=1: X [batch, 6, 2], the states h0 (and c0) [batch, 2 directions, 3] graph inputs that
    no output feeds back: each step starts from the last one's Y_h (and Y_c), checked against the
    float64 reference stepped the same way."""
    rng = np.random.default_rng(14)
    gates, batch, steps, hidden = GATES[op], 2, 6, 3
    W, R = (rng.uniform(-0.6, 0.6, (2, gates * hidden, n)).astype(np.float32) for n in (2, hidden))
    B = rng.uniform(-0.3, 0.3, (2, 2 * gates * hidden)).astype(np.float32)
    states = ["h0", "c0"][:2 if op == "LSTM" else 1]
    nodes = [helper.make_node(op, ["X", "W", "R", "B", "", *states], ["Y"], name="cell", hidden_size=hidden,
                              direction="bidirectional", layout=1)]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", steps, 2])] + \
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 2, hidden]) for name in states]
    graph = helper.make_graph(nodes, "carried", inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", steps, 2, hidden])],
                              [numpy_helper.from_array(v, k) for k, v in (("W", W), ("R", R), ("B", B))])
    path = tmp_path / "carried.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    model = edgeseq_runtime.load(path, batch=batch)
    carried = {name: np.zeros((batch, 2, hidden)) for name in states}
    for x in rng.uniform(-1, 1, (3, batch, steps, 2)).astype(np.float32):
        outs = reference(op, x, W, R, B, {f"initial_{name[0]}": v for name, v in carried.items()}, {}, 1,
                         "bidirectional")
        _close(model.step(x.reshape(batch, -1)), outs[0], "Y")
        carried = dict(zip(states, outs[1:]))
    for name in states:
        _close(model.get_state()[name], carried[name], f"final {name}")


def test_a_node_across_the_fixed_axis_of_the_model_input(tmp_path):
    """The model input [B, 33 bins, 2] reaches the bidirectional node through a Transpose only:
    its bins axis is a sequence inside the step, not the stream's time axis."""
    rng = np.random.default_rng(13)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name)
             for name, shape in (("W", (2, 12, 2)), ("R", (2, 12, 4)), ("B", (2, 24)))]
    nodes = [helper.make_node("Transpose", ["x"], ["X"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["X", "W", "R", "B"], ["Y"], name="across_bins", hidden_size=4,
                              direction="bidirectional"),
             helper.make_node("Transpose", ["Y"], ["y"], perm=[2, 0, 1, 3])]
    graph = helper.make_graph(nodes, "bins", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 33, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 33, 2, 4])], inits)
    path = tmp_path / "bins.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    x = rng.uniform(-1, 1, (2, 33, 2)).astype(np.float32)
    _close(edgeseq_runtime.load(path, batch=2).step(x.reshape(2, -1)), _ort(path).run(None, {"x": x})[0], "bins of the input")


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_a_non_forward_node_over_the_stream_is_refused_saying_why(tmp_path, direction):
    path, _ = node_model(tmp_path, "GRU", direction=direction, steps=1, n_in=3)
    with pytest.raises(ModelError, match=rf"'cell' \(GRU\): direction='{direction}' over a sequence of one "
                                         r"element per step.*export a forward"):
        edgeseq_runtime.load(path)


def test_a_shorter_sequence_lens_inside_the_step_is_refused(tmp_path):
    path, _ = node_model(tmp_path, "LSTM", steps=7)
    model = onnx.load(path)
    cell = next(n for n in model.graph.node if n.name == "cell")
    cell.input[4] = "lens"
    model.graph.initializer.append(numpy_helper.from_array(np.array([5], np.int32), "lens"))
    onnx.save(model, path)
    with pytest.raises(ModelError, match=r"'cell' \(LSTM\): sequence_lens \[5\] does not cover the 7-step"):
        edgeseq_runtime.load(path)


def test_a_sequence_lens_covering_the_sequence_inside_the_step_changes_nothing(tmp_path):
    path, expected = node_model(tmp_path, "LSTM", steps=7, initial="absent")
    model = onnx.load(path)
    cell = next(n for n in model.graph.node if n.name == "cell")
    cell.input[4] = "lens"
    model.graph.initializer.append(numpy_helper.from_array(np.array([7], np.int32), "lens"))
    onnx.save(model, path)
    x = np.random.default_rng(11).uniform(-1, 1, 21).astype(np.float32)
    _close(edgeseq_runtime.load(path).step(x), expected(x), "sequence_lens = 7")


def test_activations_for_one_direction_of_two_are_refused(tmp_path):
    path, _ = node_model(tmp_path, "GRU", attrs={"activations": ["Sigmoid", "Tanh"]})
    with pytest.raises(ModelError, match=r"'cell' \(GRU\): GRU takes 2 activations for each of its 2 direction"):
        edgeseq_runtime.load(path)


def test_a_sequence_too_long_to_unroll_inside_a_step_is_refused_before_it_is_unrolled(tmp_path):
    path, _ = node_model(tmp_path, "GRU", steps=5000, n_in=1, hidden=2, initial="absent")
    with pytest.raises(ModelError, match=r"'cell' \(GRU\): X runs a sequence of 5000 inside one step; at most 4096"):
        edgeseq_runtime.load(path)
