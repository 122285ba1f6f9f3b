"""edgeseq_runtime on the ONNX recurrent operators, streamed one step at a time and compared with
independent references on the whole sequence.

Every model here is built by tests/support/onnx_builders.py; each case streams T >= 50 random steps through
`StreamingModel.step` (the state carried inside the runtime) and compares with the per-step
outputs of the float64 numpy reference (tests/support/reference_rnn.py, always), of onnxruntime and of
onnx.reference.ReferenceEvaluator (where they implement the case; see onnx_builders.ORT_GAPS and
ONNX_REFERENCE_GAPS). Max abs error <= 1e-5. Then the StreamingModel API: run == steps, clone,
reset, get_state / set_state, bad input, and the models the runtime must refuse with ModelError.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from edgeseq_export.backends.quantize import quantize
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from support import reference_rnn
from support.onnx_builders import ACTIVATION_PARAMS, ALPHA_BETA_CASES, activation_cases, build_model, unsupported_op_model

edgeseq_runtime = pytest.importorskip("edgeseq_runtime")

T = 50
TOL = 1e-5
OPS = ["LSTM", "GRU", "RNN"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def load(built):
    return edgeseq_runtime.load(built.path, batch=built.batch)


def stream(m, X):
    """T calls of step; the list keeps each returned array (a reused buffer would show)."""
    return np.stack([m.step(x) for x in X])


def assert_close_to_references(built, Y, X, state=None, label=""):
    for name, ref in built.references(X, state).items():
        assert ref.shape == Y.shape, f"{label} vs {name}: shape {Y.shape} != {ref.shape}"
        err = float(np.abs(Y.astype(np.float64) - ref).max())
        worst = np.unravel_index(np.argmax(np.abs(Y - ref)), Y.shape)
        assert err <= TOL, (f"{label} vs {name}: max abs error {err:.3g} at step {worst[0]} "
                            f"(index {worst}): runtime {Y[worst]:.7g}, {name} {ref[worst]:.7g}")


def check_streaming(tmp_path, op, *, T=T, seed=0, input_scale=1.0, **kwargs):
    """Build, load, stream T steps, compare with every reference. Returns (built, m, X, Y)."""
    built = build_model(tmp_path, op, seed=seed, **kwargs)
    m = load(built)
    assert (m.input_size, m.output_size, m.batch) == (built.input_size, built.output_size,
                                                      built.batch)
    X = built.random_steps(np.random.default_rng(seed + 100), T, scale=input_scale)
    Y = stream(m, X)
    assert Y.dtype == np.float32
    assert Y.shape == (T, *(() if built.batch == 1 else (built.batch,)), built.output_size)
    assert_close_to_references(built, Y, X, label=f"{op} {kwargs}")
    return built, m, X, Y


def random_state(built, rng, scale=0.5):
    return {k: rng.uniform(-scale, scale, shape).astype(np.float32)
            for k, shape in built.state_inputs.items()}


def assert_state_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---------------------------------------------------------------------------------------------
# the operators and their attributes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden_size", [3, 16])
def test_gru_defaults(tmp_path, hidden_size):
    check_streaming(tmp_path, "GRU", hidden_size=hidden_size)


@pytest.mark.parametrize("hidden_size", [3, 16])
def test_lstm_defaults(tmp_path, hidden_size):
    check_streaming(tmp_path, "LSTM", hidden_size=hidden_size)


@pytest.mark.parametrize("hidden_size", [3, 16])
def test_rnn_defaults(tmp_path, hidden_size):
    check_streaming(tmp_path, "RNN", hidden_size=hidden_size)


def test_hidden_32_input_1(tmp_path):
    check_streaming(tmp_path, "LSTM", hidden_size=32, input_size=1, scale=0.3)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("batch, hidden_size, output_size", [(5, 21, 9), (9, 70, 2), (4, 24, 8), (37, 16, 3)])
def test_every_tile_and_remainder(tmp_path, op, batch, hidden_size, output_size):
    """Sizes that take the matrix products through all their paths: groups of four streams (in
    blocks of 32) and lone ones, tiles of 64 down to 8 outputs with a few left over, narrow and
    wide heads."""
    check_streaming(tmp_path, op, batch=batch, hidden_size=hidden_size, input_size=11, T=12,
                    head="gemm", output_size=output_size, scale=0.3)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_gru_linear_before_reset(tmp_path, linear_before_reset, bias):
    check_streaming(tmp_path, "GRU", linear_before_reset=linear_before_reset, bias=bias)


@pytest.mark.parametrize("state", ["input", "absent"])
def test_lstm_with_peepholes(tmp_path, state):
    check_streaming(tmp_path, "LSTM", peepholes=True, state=state, scale=0.8)


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_input_forget(tmp_path, peepholes):
    check_streaming(tmp_path, "LSTM", input_forget=1, peepholes=peepholes)


def test_rnn_relu(tmp_path):
    check_streaming(tmp_path, "RNN", activations=["Relu"], scale=0.3)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("op", OPS)
def test_layout_1(tmp_path, op, batch):
    """Batch-first X [batch, seq, input], state [batch, num_directions, hidden]."""
    built, m, _, _ = check_streaming(tmp_path, op, layout=1, batch=batch, peepholes=op == "LSTM")
    for name, value in m.get_state().items():
        assert value.shape == built.state_inputs[name] == (batch, 1, 8)


def test_layout_1_head(tmp_path):
    check_streaming(tmp_path, "GRU", layout=1, batch=2, head="matmul", head_activation="Softmax")


@pytest.mark.parametrize("op", OPS)
def test_clip(tmp_path, op):
    """clip 0.3 with large weights and inputs, so that most gate inputs are clipped. LSTM: the
    input of h is not clipped (onnxruntime's reading, see reference_rnn)."""
    check_streaming(tmp_path, op, clip=0.3, scale=1.0, input_scale=2.0,
                    peepholes=op == "LSTM")


def _activation_ids():
    for name in ACTIVATION_PARAMS:
        for op, attrs in activation_cases(name):
            yield pytest.param(op, attrs, id=f"{name}-{op}-{'/'.join(attrs['activations'])}")


@pytest.mark.parametrize("op, attrs", list(_activation_ids()))
def test_activation(tmp_path, op, attrs):
    """Each of the spec's 11 activations in the positions of f, g, h it can hold, with
    activation_alpha / activation_beta consumed only by the activations that take them."""
    check_streaming(tmp_path, op, scale=0.3, **attrs)


@pytest.mark.parametrize("op, activations, alpha, beta", ALPHA_BETA_CASES)
def test_activation_alpha_beta_consumption(tmp_path, op, activations, alpha, beta):
    """Lists are consumed in activation order, skipping the activations without alpha (beta):
    GRU [Tanh, LeakyRelu] alpha [0.3] means LeakyRelu alpha 0.3, not Tanh 0.3 + LeakyRelu 0.01."""
    attrs = {"activations": activations, "activation_alpha": alpha, "activation_beta": beta}
    check_streaming(tmp_path, op, scale=0.3, **attrs)


@pytest.mark.parametrize("op, activations", [
    ("RNN", ["LeakyRelu"]), ("RNN", ["Elu"]), ("GRU", ["HardSigmoid", "Elu"]),
    ("LSTM", ["HardSigmoid", "LeakyRelu", "Elu"]),
])
def test_activation_default_alpha_beta(tmp_path, op, activations):
    """No lists: LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1.0 (spec and onnxruntime agree)."""
    check_streaming(tmp_path, op, scale=0.3, activations=activations)


@pytest.mark.parametrize("op", OPS)
def test_no_bias(tmp_path, op):
    check_streaming(tmp_path, op, bias=False)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("op", OPS)
def test_initial_state_initializer(tmp_path, op, batch):
    """initial_h / initial_c are constants of the model: the first step starts from them."""
    built, m, X, Y = check_streaming(tmp_path, op, state="initializer", batch=batch,
                                     batch_dim=batch, peepholes=op == "LSTM")
    m.reset()
    np.testing.assert_array_equal(stream(m, X), Y)


@pytest.mark.parametrize("op", OPS)
def test_initial_state_absent(tmp_path, op):
    built, m, X, Y = check_streaming(tmp_path, op, state="absent")
    m.reset()
    np.testing.assert_array_equal(stream(m, X), Y)


@pytest.mark.parametrize("op", OPS)
def test_state_inputs_without_state_outputs(tmp_path, op):
    """State graph inputs, but Y_h / Y_c are not graph outputs: the runtime still carries them."""
    check_streaming(tmp_path, op, state_outputs=False)


@pytest.mark.parametrize("op", OPS)
def test_state_outputs_listed_first(tmp_path, op):
    """Graph outputs [Y_h, (Y_c,) output]: the model's output is the first non-state one."""
    check_streaming(tmp_path, op, state_outputs_first=True, head="matmul")


@pytest.mark.parametrize("op", OPS)
def test_unused_y_output(tmp_path, op):
    """The node's Y output is "" (unused); a Gemm head reads Y_h."""
    check_streaming(tmp_path, op, empty_y=True, head="gemm", head_activation="Softmax")


@pytest.mark.parametrize("op", OPS)
def test_hidden_size_attribute_absent(tmp_path, op):
    """hidden_size is optional in the schema (R has it); onnxruntime insists on it, the spec not."""
    check_streaming(tmp_path, op, hidden_size_attr=False)


@pytest.mark.parametrize("glue", ["squeeze", "transpose_reshape"])
@pytest.mark.parametrize("op", OPS)
def test_stacked_two_layers(tmp_path, op, glue):
    built, m, _, _ = check_streaming(tmp_path, op, num_layers=2, glue=glue, hidden_size=6)
    assert set(m.get_state()) == set(built.state_inputs)
    assert len(built.state_inputs) == (4 if op == "LSTM" else 2)


@pytest.mark.parametrize("op", OPS)
def test_stacked_two_layers_layout_1(tmp_path, op):
    check_streaming(tmp_path, op, num_layers=2, layout=1, batch=2)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("op", OPS)
def test_stacked_pytorch_state(tmp_path, op, batch):
    """PyTorch's form: h0 (and c0) [num_layers, batch, hidden] graph inputs, Slice'd per layer;
    the final states Concat'ed into hn (cn). The state keys are h0 / c0 with that shape."""
    built, m, _, _ = check_streaming(tmp_path, op, num_layers=2, stacked_state=True, batch=batch,
                                     hidden_size=5)
    state = m.get_state()
    assert set(state) == ({"h0", "c0"} if op == "LSTM" else {"h0"})
    assert all(v.shape == (2, batch, 5) for v in state.values())


@pytest.mark.parametrize("op", OPS)
def test_batch_gt_1(tmp_path, op):
    built, m, X, Y = check_streaming(tmp_path, op, batch=4, peepholes=op == "LSTM")
    # the streams are independent: stream 2 alone (as batch 1) gives the same numbers
    single = build_model(tmp_path, op, seed=0, batch=1, peepholes=op == "LSTM", filename="one.onnx")
    m1 = load(single)
    np.testing.assert_allclose(stream(m1, X[:, 2]), Y[:, 2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("op", OPS)
def test_token_model_gather(tmp_path, op, batch):
    """int64 token ids [seq, batch] -> Gather on an embedding initializer -> recurrent layer.
    A step takes (1,) ids for batch 1, (batch, 1) otherwise (input_size is 1)."""
    built, m, X, _ = check_streaming(tmp_path, op, vocab=17, batch=batch, head="matmul")
    assert m.input_size == 1
    assert X.dtype == np.int64


@pytest.mark.parametrize("head, activation", [
    ("matmul", None), ("matmul", "Relu"), ("matmul", "Tanh"), ("matmul", "Sigmoid"),
    ("matmul", "Softmax"), ("matmul", "LogSoftmax"), ("gemm", None), ("gemm", "Softmax"),
    ("gemm", "LogSoftmax"),
])
@pytest.mark.parametrize("batch", [1, 2])
def test_head(tmp_path, head, activation, batch):
    """matmul: Squeeze + MatMul + Add on Y (one output per step); gemm: Squeeze + Gemm on Y_h."""
    built, m, _, Y = check_streaming(tmp_path, "LSTM", head=head, head_activation=activation,
                                     batch=batch, output_size=4)
    if activation == "Softmax":
        np.testing.assert_allclose(Y.sum(axis=-1), 1.0, rtol=0, atol=1e-5)


def test_log_softmax_of_large_logits_keeps_its_precision(tmp_path):
    """LogSoftmax(x + 1e4) against float64: (x - max) - log(sum) is exact to float32 rounding
    of the result, where x - (max + log(sum)) rounds at 1e4's spacing (~1e-3). The logits are
    the input plus a constant, so every engine rounds them alike; an RNN carries the state."""
    nodes = [helper.make_node("RNN", ["x", "W", "R", "", "", "h0"], ["", "h_n"], hidden_size=3),
             helper.make_node("Add", ["x", "offset"], ["logits"]),
             helper.make_node("LogSoftmax", ["logits"], ["y"], axis=-1)]
    rng = np.random.default_rng(0)
    initializers = [numpy_helper.from_array(rng.standard_normal((1, 3, 5)).astype(np.float32), "W"),
                    numpy_helper.from_array(rng.standard_normal((1, 3, 3)).astype(np.float32), "R"),
                    numpy_helper.from_array(np.full(5, 1e4, np.float32), "offset")]
    graph = helper.make_graph(nodes, "log_softmax", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5]),
        helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, 3])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 5]),
        helper.make_tensor_value_info("h_n", TensorProto.FLOAT, [1, 1, 3])], initializers)
    path = tmp_path / "log_softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    X = (rng.standard_normal((20, 5)) * 3).astype(np.float32)
    Y = edgeseq_runtime.load(path).run(X)
    logits = (X + np.float32(1e4)).astype(np.float64)  # as float32 rounds them, in every engine
    expected = logits - logits.max(-1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(-1, keepdims=True))
    assert np.abs(Y - expected).max() <= 2e-6


def test_head_softmax(tmp_path):
    check_streaming(tmp_path, "GRU", head="matmul", head_activation="Softmax", output_size=7)


@pytest.mark.parametrize("nodes, bias_shape", [
    ([("MatMul", ["x", "W"], "mm"), ("Add", ["mm", "b"], "y")], [3]),
    ([("MatMul", ["x", "W"], "mm"), ("Add", ["b", "mm"], "y")], [1, 3]),
    # the product is also read by a second node
    ([("MatMul", ["x", "W"], "mm"), ("Add", ["mm", "b"], "a"), ("Add", ["a", "mm"], "y")], [3]),
    # the constant widens the result
    ([("MatMul", ["x", "W"], "mm"), ("Add", ["mm", "b"], "y")], [2, 3]),
    # the Add's other operand depends on the input
    ([("MatMul", ["x", "W"], "mm"), ("Relu", ["x"], "r"), ("MatMul", ["r", "W"], "m2"),
      ("Add", ["mm", "m2"], "y")], None),
])
def test_matmul_then_add(tmp_path, nodes, bias_shape):
    """A MatMul followed by an Add of a constant runs as one dense instruction with a bias; every
    other shape of the pattern keeps its meaning. Compared with ONNX's reference evaluator."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "W")]
    if bias_shape:
        weights.append(numpy_helper.from_array(rng.standard_normal(bias_shape).astype(np.float32), "b"))
    out_shape = [2, 3] if bias_shape == [2, 3] else [1, 3]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, [out]) for op, inputs, out in nodes], "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "head.onnx")
    m = edgeseq_runtime.load(tmp_path / "head.onnx")
    reference = ReferenceEvaluator(model)
    for x in rng.standard_normal((5, 5)).astype(np.float32):
        expected = reference.run(None, {"x": x[None]})[0]
        np.testing.assert_allclose(m.step(x).reshape(expected.shape), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("op", OPS)
def test_fixed_dims_step_graph(tmp_path, op):
    """seq and batch fixed at 1 (a step graph as streaming exporters write it): compared with the
    numpy reference, which ignores declared dims (onnxruntime would refuse T != 1)."""
    built = build_model(tmp_path, op, seq_dim=1, batch_dim=1, head="matmul")
    built = dataclasses.replace(built, supports=frozenset())
    m = load(built)
    X = built.random_steps(np.random.default_rng(1), T)
    assert_close_to_references(built, stream(m, X), X, label=f"{op} fixed dims")


@pytest.mark.parametrize("opset", [14, 21])
def test_other_opsets(tmp_path, opset):
    check_streaming(tmp_path, "LSTM", opset=opset, num_layers=2, head="matmul")


BOUNDED = ["Sigmoid", "HardSigmoid", "Tanh", "ScaledTanh", "Softsign"]


@st.composite
def recurrent_cases(draw):
    """A random combination of the attributes above (bounded gate activations, so that it stays
    finite); the numpy reference judges it."""
    op = draw(st.sampled_from(OPS))
    kw = {"hidden_size": draw(st.integers(3, 12)), "input_size": draw(st.integers(1, 5)),
          "batch": draw(st.sampled_from([1, 2])), "layout": draw(st.sampled_from([0, 0, 1])),
          "bias": draw(st.booleans()), "scale": 0.3, "seed": draw(st.integers(0, 1000))}
    kw["state"] = draw(st.sampled_from(["input", "absent", "initializer"]))
    if kw["state"] == "initializer":
        kw["batch_dim"] = kw["batch"]
    if draw(st.booleans()):
        kw["clip"] = draw(st.sampled_from([0.2, 0.7, 3.0]))
    n = len(reference_rnn.DEFAULT_ACTIVATIONS[op])
    if draw(st.booleans()):
        first = BOUNDED if op != "RNN" else list(ACTIVATION_PARAMS)
        acts = [draw(st.sampled_from(first))] + [draw(st.sampled_from(list(ACTIVATION_PARAMS)))
                                                 for _ in range(n - 1)]
        kw["activations"] = acts
        kw["activation_alpha"] = [draw(st.sampled_from([0.1, 0.3, 0.8])) for _ in range(n)]
        kw["activation_beta"] = [draw(st.sampled_from([0.2, 0.5, 1.1])) for _ in range(n)]
    if op == "LSTM":
        kw["peepholes"] = draw(st.booleans())
        kw["input_forget"] = int(draw(st.booleans()))
    if op == "GRU":
        kw["linear_before_reset"] = int(draw(st.booleans()))
    if kw["layout"] == 0 and kw["state"] != "initializer":
        kw["num_layers"] = draw(st.sampled_from([1, 1, 2]))
    kw["head"] = draw(st.sampled_from([None, "matmul", "gemm"]))
    return op, kw


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=recurrent_cases())
def test_random_attribute_combinations(tmp_path, case):
    op, kw = case
    built = build_model(tmp_path, op, filename="random.onnx", **kw)
    X = built.random_steps(np.random.default_rng(kw["seed"]), T)
    ref = built.reference_numpy(X)
    assume(np.abs(ref).max() < 5.0)  # Relu & co. in g/h may grow; those say nothing more
    Y = stream(load(built), X)
    err = float(np.abs(Y - ref).max())
    assert err <= TOL, f"{op} {kw}: max abs error {err:.3g} vs the numpy reference"


# ---------------------------------------------------------------------------------------------
# the StreamingModel API
# ---------------------------------------------------------------------------------------------

API_MODELS = {
    "lstm_peepholes": ("LSTM", {"peepholes": True}),
    "gru_batch3": ("GRU", {"batch": 3, "linear_before_reset": 1}),
    "rnn_layout1": ("RNN", {"layout": 1, "batch": 2}),
    "lstm_token": ("LSTM", {"vocab": 11, "head": "matmul", "head_activation": "Softmax"}),
    "gru_stacked_gemm": ("GRU", {"num_layers": 2, "head": "gemm"}),
}


@pytest.fixture(params=sorted(API_MODELS))
def api_model(request, tmp_path):
    return make_api_model(tmp_path, request.param)


def test_run_equals_steps_exactly(api_model):
    built, X = api_model
    Y_steps = stream(load(built), X)
    m = load(built)
    Y_run = m.run(X)
    assert Y_run.dtype == np.float32 and Y_run.shape == Y_steps.shape
    assert np.array_equal(Y_run, Y_steps)
    # state carried across calls: run, run, step, run
    m = load(built)
    parts = [m.run(X[:17]), m.run(X[17:30]), m.step(X[30])[None], m.run(X[31:])]
    assert np.array_equal(np.concatenate(parts), Y_steps)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("int8", [False, True])
def test_run_with_input_projections_made_ahead_equals_steps_exactly(tmp_path, op, int8):
    """run computes each layer's input projections for chunks of steps in one product (here 10
    steps a chunk, so 50 steps cross chunk boundaries); the numbers stay those of step."""
    built = build_model(tmp_path, op, batch=5, hidden_size=64, input_size=7, num_layers=2, head="matmul",
                        scale=0.3)
    path = built.path
    if int8:
        path = tmp_path / "model.int8.onnx"
        quantize(built.path, path, mode="int8")
    m = edgeseq_runtime.load(path, batch=5)
    X = built.random_steps(np.random.default_rng(3), 50)
    Y_steps = stream(edgeseq_runtime.load(path, batch=5), X)
    assert np.array_equal(m.run(X), Y_steps)
    # the chunked path ran, both layers projected: per step, the larger layer's products (the same
    # for both) and the larger of their inputs, kept for the product (the second's, 64 > 7)
    assert m._projection == 5 * 64 * {"GRU": 3, "LSTM": 4, "RNN": 1}[op] + 5 * 64
    if not int8:
        assert_close_to_references(built, Y_steps, X)


def test_step_out_buffer(api_model):
    built, X = api_model
    m, ref = load(built), load(built)
    buf = np.empty(((built.output_size,) if built.batch == 1 else (built.batch, built.output_size)),
                   np.float32)
    for x in X[:5]:
        got = m.step(x, out=buf)
        assert got is buf
        assert np.array_equal(buf, ref.step(x))


def test_step_returns_a_new_array(api_model):
    built, X = api_model
    m = load(built)
    y0 = m.step(X[0])
    kept = y0.copy()
    m.step(X[1])
    assert np.array_equal(y0, kept), "step returned a buffer that the next step overwrote"


def test_clone_streams_are_independent(api_model):
    built, X = api_model
    X2 = built.random_steps(np.random.default_rng(8), T)
    expected1, expected2 = stream(load(built), X), stream(load(built), X2)
    a = load(built)
    a.step(X2[0])  # some history, which reset() below must clear
    b = a.clone()
    a.reset()
    b.reset()
    ya, yb = [], []
    for x1, x2 in zip(X, X2):  # interleaved
        ya.append(a.step(x1))
        yb.append(b.step(x2))
    assert np.array_equal(np.stack(ya), expected1)
    assert np.array_equal(np.stack(yb), expected2)
    assert (b.input_size, b.output_size, b.batch) == (a.input_size, a.output_size, a.batch)


def test_reset_restores_the_initial_state(api_model):
    built, X = api_model
    m = load(built)
    s0 = m.get_state()
    Y = stream(m, X)
    m.reset()
    assert_state_equal(m.get_state(), s0)
    assert np.array_equal(stream(m, X), Y)


def test_get_state_names_shapes_dtypes(api_model):
    built, X = api_model
    m = load(built)
    state = m.get_state()
    assert set(state) == set(built.state_inputs)
    for name, value in state.items():
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
        assert value.shape == built.state_inputs[name]
        assert not value.any(), "the initial state of a state graph input is zeros"
    stream(m, X[:5])
    assert all(v.any() for v in m.get_state().values())


def test_get_state_returns_copies(api_model):
    built, X = api_model
    m = load(built)
    stream(m, X[:10])
    state = m.get_state()
    kept = {k: v.copy() for k, v in state.items()}
    for v in state.values():
        v[...] = 123.0
    assert_state_equal(m.get_state(), kept)
    m.step(X[10])
    assert_state_equal(state, {k: np.full_like(v, 123.0) for k, v in kept.items()})


def test_set_state_round_trip(api_model):
    built, X = api_model
    m = load(built)
    stream(m, X[:25])
    saved = m.get_state()
    rest = stream(m, X[25:])
    m.set_state(saved)
    assert_state_equal(m.get_state(), saved)
    assert np.array_equal(stream(m, X[25:]), rest)
    fresh = load(built)  # another instance, another model object: same numbers
    fresh.set_state(saved)
    assert np.array_equal(stream(fresh, X[25:]), rest)


def test_set_state_is_the_initial_state_of_the_sequence(api_model):
    """After set_state(s) the model continues exactly as the graph fed s as its state inputs."""
    built, X = api_model
    s = random_state(built, np.random.default_rng(3))
    m = load(built)
    m.set_state(s)
    assert_close_to_references(built, stream(m, X), X, state=s, label="from set_state")


def _bad_states(built):
    good = random_state(built, np.random.default_rng(0))
    name = sorted(good)[0]
    yield "missing_name", {k: v for k, v in good.items() if k != name}
    yield "extra_name", dict(good, not_a_state=np.zeros(3, np.float32))
    yield "renamed", {(k + "_x" if k == name else k): v for k, v in good.items()}
    yield "wrong_shape", dict(good, **{name: np.zeros(good[name].shape + (1,), np.float32)})
    yield "wrong_shape_first_axis", dict(good, **{name: np.zeros((7,) + good[name].shape[1:],
                                                                 np.float32)})
    yield "float64", dict(good, **{name: good[name].astype(np.float64)})
    yield "int32", dict(good, **{name: np.ones(good[name].shape, np.int32)})
    yield "strings", dict(good, **{name: np.full(good[name].shape, "a")})
    yield "not_an_array", dict(good, **{name: "zeros"})


@pytest.mark.parametrize("case", ["missing_name", "extra_name", "renamed", "wrong_shape",
                                  "wrong_shape_first_axis", "float64", "int32", "strings",
                                  "not_an_array"])
def test_set_state_rejects_wrong_names_shapes_dtypes(api_model, case):
    built, X = api_model
    bad = dict(_bad_states(built))[case]
    m = load(built)
    stream(m, X[:5])
    before = m.get_state()
    with pytest.raises(ValueError):
        m.set_state(bad)
    assert_state_equal(m.get_state(), before)


def _bad_steps(built):
    shape = built.step_shape()
    token = built.is_token_model
    good = np.zeros(shape, np.int64 if token else np.float32)
    yield "too_long", np.zeros(shape[:-1] + (shape[-1] + 1,), good.dtype)
    yield "extra_axis", np.zeros((2,) + shape, good.dtype)
    yield "wrong_batch", np.zeros((built.batch + 1, built.input_size), good.dtype)
    yield "empty", np.zeros((0,), good.dtype)
    yield "strings", np.full(shape, "1")
    yield "complex", np.zeros(shape, np.complex64)
    if token:
        yield "id_too_large", np.full(shape, built.vocab, np.int64)
        # ONNX Gather takes -vocab..vocab-1 (-1 is the last row)
        yield "id_too_negative", np.full(shape, -built.vocab - 1, np.int64)
    else:
        for label, value in [("nan", np.nan), ("inf", np.inf), ("minus_inf", -np.inf)]:
            x = np.full(shape, 0.5, np.float32)
            x.flat[-1] = value
            yield label, x


COMMON_BAD_STEPS = ["too_long", "extra_axis", "wrong_batch", "empty", "strings", "complex"]
TOKEN_BAD_STEPS = ["id_too_large", "id_too_negative"]
FLOAT_BAD_STEPS = ["nan", "inf", "minus_inf"]
BAD_STEP_CASES = [(key, case) for key in sorted(API_MODELS) for case in COMMON_BAD_STEPS + (
    TOKEN_BAD_STEPS if "vocab" in API_MODELS[key][1] else FLOAT_BAD_STEPS)]


def make_api_model(tmp_path, key):
    op, kwargs = API_MODELS[key]
    built = build_model(tmp_path, op, **kwargs)
    return built, built.random_steps(np.random.default_rng(7), T)


@pytest.mark.parametrize("key, case", BAD_STEP_CASES)
def test_bad_step_input_raises_and_keeps_state(tmp_path, key, case):
    built, X = make_api_model(tmp_path, key)
    m = load(built)
    Y_ref = stream(load(built), X)
    stream(m, X[:20])
    before = m.get_state()
    with pytest.raises(ValueError):
        m.step(dict(_bad_steps(built))[case])
    assert_state_equal(m.get_state(), before)
    # and the stream goes on as if the bad call never happened
    assert np.array_equal(stream(m, X[20:]), Y_ref[20:])


@pytest.mark.parametrize("key, case", BAD_STEP_CASES)
def test_bad_run_input_raises_and_keeps_state(tmp_path, key, case):
    """A bad value at step 30 of a run (or a wrongly shaped run): nothing of it is applied."""
    built, X = make_api_model(tmp_path, key)
    bad_step = dict(_bad_steps(built))[case]
    if bad_step.shape == X.shape[1:]:
        Xbad = X.astype(bad_step.dtype) if bad_step.dtype.kind in "UOc" else X.copy()
        Xbad[30] = bad_step
    else:
        Xbad = np.stack([bad_step] * 3) if bad_step.size else np.zeros((3, 0), X.dtype)
    m = load(built)
    Y_ref = stream(load(built), X)
    stream(m, X[:10])
    before = m.get_state()
    with pytest.raises(ValueError):
        m.run(Xbad)
    assert_state_equal(m.get_state(), before)
    assert np.array_equal(m.run(X[10:]), Y_ref[10:])


def test_run_rejects_wrong_rank(api_model):
    built, X = api_model
    m = load(built)
    if not built.is_token_model:  # a token model might read (1,) as one step of one id
        with pytest.raises(ValueError):
            m.run(X[0])  # one step, not a sequence
    with pytest.raises(ValueError):
        m.run(X[None])


def test_load_batch_argument(tmp_path):
    built = build_model(tmp_path, "GRU")
    for batch in (1, 5):
        m = edgeseq_runtime.load(built.path, batch=batch)
        assert m.batch == batch
        assert m.step(np.zeros((batch, 4), np.float32) if batch > 1 else np.zeros(4, np.float32)
                      ).shape == ((8,) if batch == 1 else (batch, 8))
        assert all(v.shape == (1, batch, 8) for v in m.get_state().values())
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError):
            edgeseq_runtime.load(built.path, batch=bad)


# ---------------------------------------------------------------------------------------------
# models the runtime must refuse
# ---------------------------------------------------------------------------------------------


def test_model_error_is_a_value_error():
    assert issubclass(edgeseq_runtime.ModelError, ValueError)


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
@pytest.mark.parametrize("op", OPS)
def test_non_forward_direction_is_refused(tmp_path, op, direction):
    built = build_model(tmp_path, op, direction=direction)
    with pytest.raises(edgeseq_runtime.ModelError) as info:
        load(built)
    message = str(info.value)
    for part in (op, built.node_names[0], direction):
        assert part in message, f"{part!r} not in {message!r}"


def test_unsupported_op_is_refused(tmp_path):
    path = unsupported_op_model(tmp_path)
    with pytest.raises(edgeseq_runtime.ModelError) as info:
        edgeseq_runtime.load(path)
    message = str(info.value)
    assert "Hardmax" in message and "hardmax_head" in message, message


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_file_is_refused(tmp_path, fraction):
    built = build_model(tmp_path, "LSTM", num_layers=2, hidden_size=16)
    data = built.path.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(edgeseq_runtime.ModelError) as info:
        edgeseq_runtime.load(path)
    assert "truncated.onnx" in str(info.value), str(info.value)


@pytest.mark.parametrize("content", [b"", b"name,value\n1,2\n",
                                     b"\x89PNG\r\n\x1a\n" + bytes(range(256))],
                         ids=["empty", "csv", "png"])
def test_non_onnx_file_is_refused(tmp_path, content):
    path = tmp_path / "not_a_model.onnx"
    path.write_bytes(content)
    with pytest.raises(edgeseq_runtime.ModelError) as info:
        edgeseq_runtime.load(path)
    assert "not_a_model.onnx" in str(info.value), str(info.value)


def _lstm_file(tmp_path, *, steps, sequence_lens=None, weights_as_inputs=False, dropout=None):
    """An LSTM over X [steps, 1, 2] (hidden 3), as ONNX's own node tests write one: optionally a
    constant sequence_lens, W and R as graph inputs, or a Dropout (ratio, training_mode) on Y_h."""
    rng = np.random.default_rng(4)
    weights = {"W": rng.standard_normal((1, 12, 2)).astype(np.float32),
               "R": rng.standard_normal((1, 12, 3)).astype(np.float32)}
    initializers = [] if weights_as_inputs else [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, 1, 2])]
    if weights_as_inputs:
        inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in weights.items()]
    lens = ""
    if sequence_lens is not None:
        initializers.append(numpy_helper.from_array(np.array([sequence_lens], np.int32), "lens"))
        lens = "lens"
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "", lens], ["", "Y_h"], hidden_size=3, name="lstm")]
    output = "Y_h"
    if dropout is not None:
        ratio, training = dropout
        initializers += [numpy_helper.from_array(np.array(ratio, np.float32), "ratio"),
                         numpy_helper.from_array(np.array(training), "training")]
        nodes.append(helper.make_node("Dropout", ["Y_h", "ratio", "training"], ["dropped"], name="dropout"))
        output = "dropped"
    graph = helper.make_graph(nodes, "lstm", inputs, [helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                                                    [1, 1, 3])], initializers)
    path = tmp_path / "lstm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return path


def test_sequence_lens_covering_the_sequence_streams_like_onnxruntime(tmp_path):
    import onnxruntime as ort

    path = _lstm_file(tmp_path, steps=5, sequence_lens=5)
    X = np.random.default_rng(5).standard_normal((5, 1, 2)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"X": X})[0]
    got = edgeseq_runtime.load(path).run(X[:, 0])[-1]  # the state after the whole sequence
    np.testing.assert_allclose(got, expected.reshape(-1), atol=TOL)


@pytest.mark.parametrize("steps, lengths", [(5, 3), (5, 0), (None, 3)], ids=["shorter", "zero", "undeclared"])
def test_sequence_lens_that_ends_a_sequence_early_is_refused(tmp_path, steps, lengths):
    path = _lstm_file(tmp_path, steps=steps or "T", sequence_lens=lengths)
    with pytest.raises(edgeseq_runtime.ModelError, match=r"'lstm' \(LSTM\): sequence_lens \[\d\] does not cover"):
        edgeseq_runtime.load(path)


def test_weights_that_are_graph_inputs_are_named(tmp_path):
    path = _lstm_file(tmp_path, steps=1, weights_as_inputs=True)
    with pytest.raises(edgeseq_runtime.ModelError,
                       match=r"'lstm' \(LSTM\): W \('W'\), R \('R'\) are graph inputs; .* initializers"):
        edgeseq_runtime.load(path)


@pytest.mark.parametrize("ratio, training, refused", [(0.5, True, True), (0.0, True, False), (0.5, False, False)])
def test_dropout_in_training_mode_is_refused_not_ignored(tmp_path, ratio, training, refused):
    path = _lstm_file(tmp_path, steps=1, dropout=(ratio, training))
    if refused:
        with pytest.raises(edgeseq_runtime.ModelError, match="'dropout' \\(Dropout\\): training_mode is true"):
            edgeseq_runtime.load(path)
        return
    X = np.random.default_rng(6).standard_normal((1, 1, 2)).astype(np.float32)
    expected = ReferenceEvaluator(str(path)).run(None, {"X": X})[0]
    np.testing.assert_allclose(edgeseq_runtime.load(path).step(X[0, 0]), expected.reshape(-1), atol=TOL)
