"""The Python runtime under hostile inputs: no read outside a table, no stream that cannot resume.

* Every index computed at run time is checked against its own table: ids that a second,
  smaller table does not have, and a float input used as an index (12, -11, 2.5, 1e8), are
  refused with a ValueError naming the value, the state unchanged; in-range ids (negative ones
  counting from the end) give ONNX Runtime's / onnx.reference's / numpy's numbers.
* A step whose new state would leave float32's range (3e38 into a ReLU RNN; rows of 1e4-1e6
  into a growing ReLU RNN or LSTM, where the float64 reference says which step) is refused like
  a NaN input: ``step`` keeps the state bit for bit, ``run`` keeps the state of before the run
  and names the step; the stream then goes on, and its state saves and loads.

Models and references: tests/support/hostile_models.py.
"""

from __future__ import annotations

import re

import edgeseq_runtime
import numpy as np
import pytest
from onnx import numpy_helper
from support.hostile_models import (
    GROWING,
    GROWING_IDS,
    LARGE_TABLE_ROWS,
    SMALL_TABLE_ROWS,
    TABLE_ROWS,
    first_overflow,
    float_index_rnn,
    growing,
    reference_states,
    two_tables,
)
from support.onnx_builders import build_model


def same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)) for k in a)


# -- reads out of bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("first", ["small", "large"])
def test_ids_that_the_smaller_table_lacks_are_refused_and_the_others_match_onnxruntime(tmp_path, first):
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    path, tables = two_tables(tmp_path, first)
    m = edgeseq_runtime.load(path)
    assert m.vocab_size == SMALL_TABLE_ROWS
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    evaluator = ReferenceEvaluator(str(path))
    for token in range(-SMALL_TABLE_ROWS, SMALL_TABLE_ROWS):
        feeds = {"ids": np.array([[token]], np.int64)}
        expected = tables["large"][token] + tables["small"][token]
        for reference in (session.run(None, feeds)[0], evaluator.run(None, feeds)[0]):
            np.testing.assert_allclose(reference.ravel(), expected, rtol=1e-6)
        np.testing.assert_allclose(m.step(token), expected, rtol=1e-6)
    for token in [*range(SMALL_TABLE_ROWS, LARGE_TABLE_ROWS), *range(-LARGE_TABLE_ROWS, -SMALL_TABLE_ROWS), 10**8]:
        with pytest.raises(ValueError, match=rf"\({re.escape(format(np.float32(token)))}\) is not a token id.*state is unchanged"):
            m.step(token)


@pytest.mark.parametrize("bad", [TABLE_ROWS, TABLE_ROWS + 2, -TABLE_ROWS - 1, 2.5, -0.5, 1e8, 3e38])
def test_a_float_index_outside_its_table_is_refused_with_the_state_unchanged(tmp_path, bad):
    model = float_index_rnn(tmp_path)
    m = edgeseq_runtime.load(model.path)
    m.run(np.array([[3.0], [-1.0]], np.float32))
    before, steps = m.get_state(), m.steps
    with pytest.raises(ValueError, match=rf"index {re.escape(format(np.float32(bad)))} .* \({TABLE_ROWS} rows.*state is unchanged"):
        m.step(np.array([bad], np.float32))
    assert same_bits(m.get_state(), before) and m.steps == steps


def test_in_range_float_indices_match_the_float64_reference_negative_ones_from_the_end(tmp_path):
    model = float_index_rnn(tmp_path)
    m = edgeseq_runtime.load(model.path)
    rows = np.arange(-TABLE_ROWS, TABLE_ROWS, dtype=np.float32)[:, None]
    expected, _ = model.reference(rows, None)
    np.testing.assert_allclose(m.run(rows), expected, atol=1e-5)


def test_run_refuses_the_step_with_a_bad_index_and_keeps_the_state_of_before_the_run(tmp_path):
    model = float_index_rnn(tmp_path)
    m = edgeseq_runtime.load(model.path)
    m.run(np.array([[1.0]], np.float32))
    before = m.get_state()
    rows = np.array([[2.0], [5.0], [-3.0], [float(TABLE_ROWS)], [4.0]], np.float32)
    with pytest.raises(ValueError, match=rf"^step 3: index {float(TABLE_ROWS)} .*as it was before the run"):
        m.run(rows)
    assert same_bits(m.get_state(), before) and m.steps == 1
    expected, _ = model.reference(np.r_[[[1.0]], rows[:3]], None)
    np.testing.assert_allclose(m.run(rows[:3]), expected[1:], atol=1e-5)


# -- a stream that can never resume -------------------------------------------------------------

@pytest.fixture
def relu_rnn(tmp_path):
    """A ReLU RNN whose state stays bounded on rows in [-1, 1], and a row that overflows it."""
    built = build_model(tmp_path, "RNN", input_size=8, hidden_size=8, activations=["Relu"], head="matmul")
    W = numpy_helper.to_array(next(i for i in built.model.graph.initializer if i.name == "rnn_0_W"))
    return built, np.float32(3e38) * np.sign(W[0, 0])  # every term of the first unit's sum adds up


def test_3e38_into_a_relu_rnn_is_refused_and_the_state_kept_bit_for_bit(relu_rnn):
    built, x = relu_rnn
    warm = np.random.default_rng(2).uniform(-1, 1, (5, 8)).astype(np.float32)
    assert first_overflow(reference_states(built, np.r_[warm, [x]])) == len(warm)
    m = edgeseq_runtime.load(built.path)
    m.run(warm)
    before = m.get_state()
    with pytest.raises(ValueError, match="^the input drives the recurrent state to Inf or NaN.*state is unchanged"):
        m.step(x)
    assert same_bits(m.get_state(), before) and m.steps == len(warm)
    following = np.full((1, 8), 0.5, np.float32)
    expected = built.reference_numpy(np.r_[warm, following])[-1]
    np.testing.assert_allclose(m.step(following[0]), expected, atol=1e-5)


def test_run_names_the_step_999_that_overflows_and_keeps_the_state_of_before_the_run(relu_rnn):
    built, x = relu_rnn
    warm = np.random.default_rng(2).uniform(-1, 1, (7, 8)).astype(np.float32)
    rows = np.r_[np.random.default_rng(3).uniform(-1, 1, (999, 8)), [x]].astype(np.float32)
    assert first_overflow(reference_states(built, np.r_[warm, rows])) == len(warm) + 999
    m = edgeseq_runtime.load(built.path)
    m.run(warm)
    before = m.get_state()
    with pytest.raises(ValueError, match="^step 999: the input drives .* as it was before the run"):
        m.run(rows)
    assert same_bits(m.get_state(), before) and m.steps == 7
    np.testing.assert_allclose(m.run(rows[:999]), built.reference_numpy(np.r_[warm, rows[:999]])[7:], atol=1e-4)


@pytest.mark.parametrize("case", GROWING, ids=GROWING_IDS)
def test_rows_of_1e4_to_1e6_refused_at_the_reference_overflow_and_the_stream_resumes(case, tmp_path):
    built = growing(tmp_path, *case)
    X = np.random.default_rng(1).uniform(1e4, 1e6, (1500, 4)).astype(np.float32)
    t = first_overflow(reference_states(built, X))
    m = edgeseq_runtime.load(built.path)
    initial = m.get_state()
    with pytest.raises(ValueError, match=f"^step {t}: .*as it was before the run"):
        m.run(X)
    assert same_bits(m.get_state(), initial) and m.steps == 0
    m.run(X[:t])
    with pytest.raises(ValueError, match="state is unchanged"):
        m.step(X[t])
    m.save_state(tmp_path / "stream.state")  # the state saved is finite, so it loads again
    resumed = m.clone()
    resumed.reset()
    resumed.load_state(tmp_path / "stream.state")
    assert same_bits(resumed.get_state(), m.get_state()) and resumed.steps == t


@pytest.mark.parametrize("indices", [[0, 7], [-9], [4], [2, -1, -4]])
def test_copy_tables_come_only_from_constant_indices_that_onnx_accepts(tmp_path, indices):
    """Indices fixed in the file become a copy table at load, where ONNX's own Gather checks them:
    out of range, the model is refused; in range, the copy reads what numpy's take reads."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], "constant_gather",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, len(indices)])],
        [numpy_helper.from_array(np.array(indices, np.int64), "i")])
    path = tmp_path / "constant_gather.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    x = np.arange(4, dtype=np.float32) + 10
    if all(-4 <= i < 4 for i in indices):
        np.testing.assert_array_equal(edgeseq_runtime.load(path).step(x), np.take(x, indices))
    else:
        with pytest.raises(edgeseq_runtime.ModelError, match="out of bounds"):
            edgeseq_runtime.load(path)
