"""The numpy reference (reference_rnn) and the model builders (onnx_builders) checked by themselves
against onnxruntime and onnx.reference.ReferenceEvaluator, before anything uses them to judge the
runtime. Also the evidence for what reference_rnn's docstring says about activation_alpha /
activation_beta, defaults, clip, and what each reference supports.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper
from support import reference_rnn
from support.onnx_builders import ACTIVATION_PARAMS, ALPHA_BETA_CASES, activation_cases, build_model, unsupported_op_model

ort = pytest.importorskip("onnxruntime")

TOL = 1e-5  # float32 onnxruntime vs float64 reference over >= 50 steps
T = 50

ATTRIBUTE_CASES = {
    "lstm_defaults": ("LSTM", {}),
    "gru_defaults": ("GRU", {}),
    "rnn_defaults": ("RNN", {}),
    "gru_linear_before_reset": ("GRU", {"linear_before_reset": 1}),
    "lstm_peepholes": ("LSTM", {"peepholes": True}),
    "lstm_input_forget": ("LSTM", {"input_forget": 1}),
    "lstm_input_forget_peepholes": ("LSTM", {"input_forget": 1, "peepholes": True}),
    "lstm_clip": ("LSTM", {"clip": 0.3, "scale": 1.0}),
    "gru_clip": ("GRU", {"clip": 0.3, "scale": 1.0}),
    "rnn_clip": ("RNN", {"clip": 0.3, "scale": 1.0}),
    "lstm_no_bias": ("LSTM", {"bias": False}),
    "gru_no_bias_lbr": ("GRU", {"bias": False, "linear_before_reset": 1}),
    "lstm_state_initializer": ("LSTM", {"state": "initializer", "batch_dim": 1}),
    "gru_state_absent": ("GRU", {"state": "absent"}),
    "lstm_layout_1": ("LSTM", {"layout": 1, "batch": 2}),
    "gru_layout_1": ("GRU", {"layout": 1, "batch": 2, "linear_before_reset": 1}),
    "rnn_layout_1": ("RNN", {"layout": 1, "batch": 2, "head": "matmul"}),
    "lstm_batch_3": ("LSTM", {"batch": 3, "peepholes": True}),
    "lstm_stacked": ("LSTM", {"num_layers": 2}),
    "gru_stacked_transpose_reshape": ("GRU", {"num_layers": 2, "glue": "transpose_reshape"}),
    "lstm_stacked_pytorch_state": ("LSTM", {"num_layers": 2, "stacked_state": True, "batch": 2}),
    "lstm_layout_1_stacked": ("LSTM", {"num_layers": 2, "layout": 1}),
    "lstm_head_matmul_softmax": ("LSTM", {"head": "matmul", "head_activation": "Softmax"}),
    "gru_head_gemm_logsoftmax": ("GRU", {"head": "gemm", "head_activation": "LogSoftmax",
                                         "batch": 2}),
    "rnn_head_gemm_relu": ("RNN", {"head": "gemm", "head_activation": "Relu", "scale": 0.3}),
    "lstm_token": ("LSTM", {"vocab": 13, "head": "matmul", "head_activation": "Sigmoid"}),
    "gru_token_batch": ("GRU", {"vocab": 13, "batch": 2, "head": "matmul",
                                "head_activation": "Tanh"}),
    "rnn_relu": ("RNN", {"activations": ["Relu"], "scale": 0.3}),
}
for _name in ACTIVATION_PARAMS:
    for _k, (_op, _attrs) in enumerate(activation_cases(_name)):
        ATTRIBUTE_CASES[f"activation_{_name}_{_op}_{_k}"] = (_op, dict(_attrs, scale=0.3))


@pytest.mark.parametrize("case", sorted(ATTRIBUTE_CASES))
def test_reference_agrees_with_onnxruntime_and_onnx_reference(tmp_path, case):
    op, kwargs = ATTRIBUTE_CASES[case]
    built = build_model(tmp_path, op, seed=len(case), **kwargs)
    X = built.random_steps(np.random.default_rng(len(case) + 1), T)
    refs = built.references(X)
    assert set(refs) == {"numpy"} | set(built.supports)
    y = refs["numpy"]
    assert y.shape == (T, *(() if built.batch == 1 else (built.batch,)), built.output_size)
    assert np.isfinite(y).all() and np.abs(y).max() < 10.0, "weights too large: values diverge"
    assert np.abs(y).max() > 0.05, "degenerate case: the output is ~0"
    if kwargs.get("layout", 0) == 0:  # onnxruntime checks every case but layout=1
        assert "onnxruntime" in built.supports
    for name, other in refs.items():
        err = float(np.abs(other - y).max())
        assert err <= TOL, f"{case}: reference_rnn vs {name}: max abs error {err:.3g}"


def _positional_to_consumed(activations, alpha, beta, defaults):
    """The lists that give, under consume-only-if-used, what one-entry-per-activation would."""
    out_a, out_b = [], []
    for k, name in enumerate(activations):
        takes_a, takes_b = reference_rnn.TAKES_ALPHA_BETA[name]
        if takes_a:
            out_a.append(alpha[k] if k < len(alpha) else defaults[name][0])
        if takes_b:
            out_b.append(beta[k] if k < len(beta) else defaults[name][1])
    return out_a, out_b


@pytest.mark.parametrize("op, activations, alpha, beta", ALPHA_BETA_CASES)
def test_alpha_beta_are_consumed_only_by_activations_that_take_them(tmp_path, op, activations,
                                                                    alpha, beta):
    attrs = {"activations": activations, "activation_alpha": alpha}
    if beta:
        attrs["activation_beta"] = beta
    built = build_model(tmp_path, op, scale=0.3, **attrs)
    X = built.random_steps(np.random.default_rng(0), T)
    y_ort = built.reference_onnxruntime(X)
    consumed = built.reference_numpy(X)
    assert np.abs(consumed - y_ort).max() <= TOL
    # The other reading (one list entry per activation) gives visibly different numbers.
    pa, pb = _positional_to_consumed(activations, alpha, beta, reference_rnn.ONNXRUNTIME_DEFAULTS)
    positional = build_model(tmp_path, op, scale=0.3, activations=activations,
                             activation_alpha=pa, activation_beta=pb, filename="positional.onnx")
    assert np.abs(positional.reference_numpy(X) - y_ort).max() > 1e-3


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_leftover_alpha_beta_values_are_ignored(tmp_path, op):
    n = len(reference_rnn.DEFAULT_ACTIVATIONS[op])
    acts = ["LeakyRelu"] + reference_rnn.DEFAULT_ACTIVATIONS[op][1:]
    short = build_model(tmp_path, op, scale=0.3, activations=acts, activation_alpha=[0.2])
    long = build_model(tmp_path, op, scale=0.3, activations=acts,
                       activation_alpha=[0.2] + [9.0] * n, activation_beta=[7.0] * n,
                       filename="long.onnx")
    X = short.random_steps(np.random.default_rng(0), T)
    np.testing.assert_array_equal(short.reference_onnxruntime(X), long.reference_onnxruntime(X))


@pytest.mark.parametrize("name", ["LeakyRelu", "HardSigmoid", "Elu", "ThresholdedRelu", "Affine",
                                  "ScaledTanh"])
@pytest.mark.parametrize("op", ["RNN", "GRU"])
def test_onnxruntime_defaults_for_missing_alpha_beta(tmp_path, name, op):
    acts = [name] if op == "RNN" else ["Sigmoid", name]
    built = build_model(tmp_path, op, scale=0.3, activations=acts)
    X = built.random_steps(np.random.default_rng(3), T)
    y_ort = built.reference_onnxruntime(X)
    assert np.abs(built.reference_numpy(X) - y_ort).max() <= TOL
    spec = reference_rnn.SPEC_DEFAULTS.get(name)
    if spec is not None and spec != reference_rnn.ONNXRUNTIME_DEFAULTS[name]:
        takes_a, takes_b = reference_rnn.TAKES_ALPHA_BETA[name]
        as_spec = build_model(tmp_path, op, scale=0.3, activations=acts,
                              activation_alpha=[spec[0]] if takes_a else [],
                              activation_beta=[spec[1]] if takes_b else [], filename="spec.onnx")
        # onnxruntime departs from the ONNX operator's default here (ThresholdedRelu, Affine)
        assert np.abs(as_spec.reference_numpy(X) - y_ort).max() > 1e-3


def test_lstm_clip_onnxruntime_does_not_clip_the_input_of_h(tmp_path):
    built = build_model(tmp_path, "LSTM", clip=0.3, scale=1.0)
    X = built.random_steps(np.random.default_rng(0), T, scale=2.0)
    y_ort = built.reference_onnxruntime(X)
    assert np.abs(built.reference_numpy(X) - y_ort).max() <= TOL
    (node,) = [n for n in built.model.graph.node if n.op_type == "LSTM"]
    feeds = built.graph_feeds(X)
    values = {i.name: numpy_helper.to_array(i) for i in built.model.graph.initializer}
    values.update(feeds)
    args = [values[n] for n in node.input[:4]]
    literal = reference_rnn.lstm(*args, initial_h=values[node.input[5]],
                                 initial_c=values[node.input[6]], clip=0.3, clip_h_input=True)[0]
    unclipped = reference_rnn.lstm(*args, initial_h=values[node.input[5]],
                                   initial_c=values[node.input[6]], clip=None)[0]
    assert np.abs(literal[:, 0] - y_ort).max() > 1e-3  # the cell state does exceed the clip
    assert np.abs(unclipped[:, 0] - y_ort).max() > 1e-3  # and clip matters


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_onnxruntime_rejects_layout_1(tmp_path, op):
    """Why the layout=1 cases are checked with numpy and onnx.reference only."""
    built = build_model(tmp_path, op, layout=1, batch=2)
    assert "onnxruntime" not in built.supports
    with pytest.raises(Exception, match="layout"):
        ort.InferenceSession(built.model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_onnxruntime_rejects_missing_hidden_size(tmp_path, op):
    built = build_model(tmp_path, op, hidden_size_attr=False)
    assert "onnxruntime" not in built.supports and "onnx_reference" in built.supports
    with pytest.raises(Exception, match="hidden_size"):
        ort.InferenceSession(built.model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_builder_output_order_and_empty_y(tmp_path, op):
    built = build_model(tmp_path, op, head="gemm", empty_y=True, state_outputs_first=True)
    assert built.model.graph.output[-1].name == built.output_name == "head_gemm"
    X = built.random_steps(np.random.default_rng(0), 10)
    refs = built.references(X)
    assert set(refs) == {"numpy", "onnxruntime", "onnx_reference"}
    for y in refs.values():
        assert np.abs(y - refs["numpy"]).max() <= TOL


@pytest.mark.parametrize("op, attrs", [
    ("LSTM", {"clip": 0.3}), ("GRU", {"clip": 0.3}), ("LSTM", {"input_forget": 1}),
    ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Tanh"]}),
    ("GRU", {"activations": ["Sigmoid", "Softsign"]}),
])
def test_onnx_reference_silently_ignores(tmp_path, op, attrs):
    """Why cases with these attributes are not checked with onnx.reference: it runs them as if
    the attribute were absent."""
    from onnx.reference import ReferenceEvaluator

    built = build_model(tmp_path, op, scale=1.0, **attrs)
    assert "onnx_reference" not in built.supports
    X = built.random_steps(np.random.default_rng(0), T, scale=2.0)
    plain = build_model(tmp_path, op, scale=1.0, filename="plain.onnx")
    (Y, *_states) = ReferenceEvaluator(built.model).run(None, built.graph_feeds(X))
    got = built.steps_from_output(Y)
    assert np.abs(got - plain.reference_numpy(X)).max() <= TOL
    assert np.abs(got - built.reference_numpy(X)).max() > 1e-3


def test_onnx_reference_rnn_knows_only_tanh_and_affine(tmp_path):
    from onnx.reference import ReferenceEvaluator

    built = build_model(tmp_path, "RNN", activations=["Relu"])
    assert "onnx_reference" not in built.supports
    X = built.random_steps(np.random.default_rng(0), 5)
    with pytest.raises(Exception, match="Relu"):
        ReferenceEvaluator(built.model).run(None, built.graph_feeds(X))


def test_reference_layout_1_is_layout_0_transposed():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (7, 3, 4))
    W, R, B = (rng.uniform(-0.5, 0.5, s) for s in [(1, 32, 4), (1, 32, 8), (1, 64)])
    h0, c0 = rng.uniform(-0.5, 0.5, (2, 1, 3, 8))
    Y0, h, c = reference_rnn.lstm(X, W, R, B, h0, c0)
    Y1, h1, c1 = reference_rnn.lstm(X.transpose(1, 0, 2), W, R, B, h0.transpose(1, 0, 2),
                                    c0.transpose(1, 0, 2), layout=1)
    np.testing.assert_array_equal(Y1, Y0.transpose(2, 0, 1, 3))
    np.testing.assert_array_equal(h1, h.transpose(1, 0, 2))
    np.testing.assert_array_equal(c1, c.transpose(1, 0, 2))


def test_reference_sequence_equals_steps_with_state_carried():
    """The streaming semantics in one line: a sequence run = one-step runs with Y_h/Y_c fed back."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (20, 2, 3))
    W, R, B, P = (rng.uniform(-0.5, 0.5, s) for s in [(1, 20, 3), (1, 20, 5), (1, 40), (1, 15)])
    Y, h, c = reference_rnn.lstm(X, W, R, B, P=P, input_forget=1, clip=0.9)
    hs, cs = None, None
    for t in range(len(X)):
        y, hs, cs = reference_rnn.lstm(X[t:t + 1], W, R, B, hs, cs, P, input_forget=1, clip=0.9)
        np.testing.assert_allclose(y[0], Y[t], rtol=0, atol=1e-13)
    np.testing.assert_allclose(hs, h, rtol=0, atol=1e-13)


def test_reference_rejects_what_it_does_not_implement():
    x = np.zeros((2, 1, 3))
    with pytest.raises(NotImplementedError, match="reverse"):
        reference_rnn.rnn(x, np.zeros((1, 4, 3)), np.zeros((1, 4, 4)), direction="reverse")
    with pytest.raises(ValueError, match="unknown activation"):
        reference_rnn.rnn(x, np.zeros((1, 4, 3)), np.zeros((1, 4, 4)), activations=["Swish"])
    with pytest.raises(ValueError, match="needs activation_alpha"):
        reference_rnn.resolve_activations("RNN", ["ScaledTanh"],
                                          defaults=reference_rnn.SPEC_DEFAULTS)


def test_activation_functions_match_their_definitions():
    x = np.linspace(-3, 3, 61)
    f = {n: reference_rnn.resolve_activations("RNN", [n], [0.4], [0.7])[0] for n in
         reference_rnn.ACTIVATIONS}
    np.testing.assert_allclose(f["Tanh"](x), (1 - np.exp(-2 * x)) / (1 + np.exp(-2 * x)))
    np.testing.assert_allclose(f["Sigmoid"](x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(f["Relu"](x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(f["Affine"](x), 0.4 * x + 0.7)
    np.testing.assert_allclose(f["LeakyRelu"](x), np.where(x >= 0, x, 0.4 * x))
    np.testing.assert_allclose(f["ThresholdedRelu"](x), np.where(x >= 0.4, x, 0))
    np.testing.assert_allclose(f["ScaledTanh"](x), 0.4 * np.tanh(0.7 * x))
    np.testing.assert_allclose(f["HardSigmoid"](x), np.clip(0.4 * x + 0.7, 0, 1))
    np.testing.assert_allclose(f["Elu"](x), np.where(x >= 0, x, 0.4 * (np.exp(x) - 1)))
    np.testing.assert_allclose(f["Softsign"](x), x / (1 + np.abs(x)))
    np.testing.assert_allclose(f["Softplus"](x), np.log(1 + np.exp(x)))
    # names are case-insensitive, as onnxruntime reads them
    assert reference_rnn.canonical_activation_name("leakyrelu") == "LeakyRelu"


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_builders_make_valid_non_forward_models(tmp_path, direction):
    built = build_model(tmp_path, "GRU", direction=direction)
    session = ort.InferenceSession(str(built.path), providers=["CPUExecutionProvider"])
    X = built.random_steps(np.random.default_rng(0), 4)
    (y, *_rest) = session.run(None, built.graph_feeds(X))
    assert y.shape == (4, 2 if direction == "bidirectional" else 1, 1, 8)


def test_unsupported_op_model_is_valid(tmp_path):
    path = unsupported_op_model(tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 1, 8), np.float32)
    feeds = {"X": np.zeros((3, 1, 4), np.float32), "lstm_0_initial_h": zeros,
             "lstm_0_initial_c": zeros}
    assert session.run(None, feeds)[0].shape == (3, 1, 8)
