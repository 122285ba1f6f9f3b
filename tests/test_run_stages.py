"""``run`` goes through a stacked model stage by stage (``stages``): a chunk of steps through the
first layer, then each later layer's input projections for the whole chunk in one product, then
that layer, ... The numbers stay those of repeated ``step`` bit for bit, and ONNX Runtime's
within 1e-5; a model whose dataflow forbids a cut (the head reads the first layer's output too)
runs with fewer stages and gives them too; a step whose state overflows in either layer is refused
as one step at a time refuses it, with the state of before the run.
"""

from __future__ import annotations

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseq_export.backends.quantize import quantize
from edgeseq_runtime.isa import HEADER, OPCODE, RECORD, SLOTS, STAGE
from onnx import TensorProto, helper, numpy_helper
from support.onnx_builders import build_model

STEPS = 70  # more than one chunk at every size here
HIDDEN = 8


def stage_layers(path, batch: int = 1) -> list[str]:
    """The instruction each stage but the first starts with (a recurrent layer projected ahead)."""
    code = edgeseq_runtime.lower_model(path, batch).plan.code
    table = code[HEADER.TABLES] + code[HEADER.STAGES]
    starts = [code[table + s * SLOTS.STAGE + STAGE.START] for s in range(1, code[HEADER.N_STAGES])]
    return [OPCODE(int(code[start + RECORD.OPCODE])).name for start in starts]


def stepped(path, batch: int, xs) -> np.ndarray:
    model = edgeseq_runtime.load(path, batch=batch)
    return np.stack([model.step(x) for x in xs])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_a_stack_runs_stage_by_stage_with_the_numbers_of_step(tmp_path, op, layers, batch):
    built = build_model(tmp_path, op, input_size=5, hidden_size=HIDDEN, num_layers=layers, batch=batch,
                        stacked_state=True, head="matmul")
    assert stage_layers(built.path, batch) == [op] * layers
    xs = built.random_steps(np.random.default_rng(1), STEPS)
    expected = stepped(built.path, batch, xs)
    assert np.array_equal(edgeseq_runtime.load(built.path, batch=batch).run(xs), expected)
    np.testing.assert_allclose(expected, built.reference_onnxruntime(xs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_an_int8_stack_runs_stage_by_stage_with_the_numbers_of_step(tmp_path, op):
    built = build_model(tmp_path, op, input_size=5, hidden_size=HIDDEN, num_layers=2, batch=3, head="matmul")
    path = tmp_path / "model.int8.onnx"
    quantize(built.path, path, mode="int8")
    assert stage_layers(path, 3) == [op] * 2
    xs = built.random_steps(np.random.default_rng(2), STEPS)
    assert np.array_equal(edgeseq_runtime.load(path, batch=3).run(xs), stepped(path, 3, xs))


def rnn_stack(path, activations, weights, skip: bool = False):
    """x (seq, 1, 8) -> one RNN node per activation, weights[k] its (W, R), no bias, state private
    -> y: the last node's Y, plus the first's with ``skip``."""
    nodes, initializers, x = [], [], "x"
    outputs = []
    for k, (activation, (W, R)) in enumerate(zip(activations, weights)):
        initializers += [numpy_helper.from_array(W[None], f"W{k}"), numpy_helper.from_array(R[None], f"R{k}")]
        nodes.append(helper.make_node("RNN", [x, f"W{k}", f"R{k}"], [f"Y{k}"], hidden_size=HIDDEN,
                                      activations=[activation]))
        initializers.append(numpy_helper.from_array(np.array([1], np.int64), f"axis{k}"))
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", f"axis{k}"], [f"h{k}"]))
        x = f"h{k}"
        outputs.append(x)
    if skip:
        nodes.append(helper.make_node("Add", [outputs[-1], outputs[0]], ["skipped"]))
        x = "skipped"
    graph = helper.make_graph(nodes, "rnn_stack",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 1, 8])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["seq", 1, HIDDEN])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def onnxruntime_outputs(path, xs) -> np.ndarray:
    """The whole sequence through ONNX Runtime at once, one output row per step."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": xs[:, None, :]})[0][:, 0, :]


def test_a_skip_from_the_first_layer_to_the_output_keeps_the_second_layer_in_its_stage(tmp_path):
    rng = np.random.default_rng(3)
    weights = [(rng.uniform(-0.5, 0.5, (HIDDEN, 8)).astype(np.float32),
                rng.uniform(-0.5, 0.5, (HIDDEN, HIDDEN)).astype(np.float32)) for _ in range(2)]
    path = rnn_stack(tmp_path / "skip.onnx", ["Tanh", "Tanh"], weights, skip=True)
    assert stage_layers(path) == ["RNN"]  # the first layer alone is projected ahead
    xs = rng.uniform(-1, 1, (STEPS, 8)).astype(np.float32)
    expected = stepped(path, 1, xs)
    assert np.array_equal(edgeseq_runtime.load(path).run(xs), expected)
    np.testing.assert_allclose(expected, onnxruntime_outputs(path, xs), rtol=1e-5, atol=1e-6)


OVERFLOW = 37  # the step whose input drives the state past float32's range


def overflowing(path, layer: int):
    """Two RNNs, the ``layer``-th a ReLU weighing each input 5e37, the other a Tanh (weights in
    [0.1, 0.5] after ReLU's 4e37 at most, 1e-37 times that): on inputs in [-0.1, 0.1], the ReLU's
    inputs sum to less than 6.8 (Tanh's outputs to 5.3 at most, the model inputs to 0.8) and it
    stays finite; an input of 10s takes it to Inf (each of Tanh's outputs near 1)."""
    rng = np.random.default_rng(4)
    relu = (np.full((HIDDEN, 8), 5e37, np.float32), np.zeros((HIDDEN, HIDDEN), np.float32))
    tanh = (rng.uniform(0.1, 0.5, (HIDDEN, 8)).astype(np.float32) * np.float32(1e-37 if layer == 1 else 1),
            rng.uniform(-0.05, 0.05, (HIDDEN, HIDDEN)).astype(np.float32))
    return rnn_stack(path, ["Relu", "Tanh"] if layer == 1 else ["Tanh", "Relu"],
                     [relu, tanh] if layer == 1 else [tanh, relu])


@pytest.mark.parametrize("layer", [1, 2])
def test_a_state_overflowing_mid_run_is_refused_at_its_step_with_the_state_of_before(tmp_path, layer):
    """The first layer has run every step of the chunk when the second refuses one; the second
    runs the step the first refused (it could have refused it for a bad index first)."""
    path = overflowing(tmp_path / "overflow.onnx", layer)
    assert stage_layers(path) == ["RNN", "RNN"]
    rng = np.random.default_rng(5)
    warm, xs = (rng.uniform(-0.1, 0.1, (n, 8)).astype(np.float32) for n in (5, STEPS))
    xs[OVERFLOW] = 10
    one_by_one = edgeseq_runtime.load(path)
    one_by_one.run(warm)
    expected = np.stack([one_by_one.step(x) for x in xs[:OVERFLOW]])
    with pytest.raises(ValueError, match="drives the recurrent state to Inf"):
        one_by_one.step(xs[OVERFLOW])
    model = edgeseq_runtime.load(path)
    model.run(warm)
    before = model.get_state()
    out = np.full((STEPS, HIDDEN), np.nan, np.float32)
    with pytest.raises(ValueError, match=f"^step {OVERFLOW}: the input drives .* as it was before the run"):
        model.run(xs, out=out)
    assert np.array_equal(out[:OVERFLOW], expected) and np.isnan(out[OVERFLOW:]).all()
    state = model.get_state()
    assert state.keys() == before.keys() and all(np.array_equal(state[k], before[k]) for k in state)
    assert np.array_equal(model.run(xs[:OVERFLOW]), expected)
