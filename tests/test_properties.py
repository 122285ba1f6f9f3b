"""Properties of StreamingModel over random cells, sizes, batches and heads (hypothesis).

``run`` is exactly repeated ``step``; a sequence cut into chunks, with the state moved by
``get_state``/``set_state`` between them (into the same model, a clone or a freshly loaded
one), gives exactly the uninterrupted outputs; ``reset`` gives exactly the first outputs again.
"Exactly" means bit for bit: streaming must not depend on how the steps are grouped.
"""

import edgeseq_runtime
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.onnx_builders import build_model

PROPERTIES = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow])


@st.composite
def model_options(draw) -> dict:
    """build_model options for a streamable model: any cell, size, batch, head and state form."""
    op = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    options = dict(op=op, input_size=draw(st.integers(1, 6)), hidden_size=draw(st.integers(1, 12)),
                   batch=draw(st.integers(1, 3)), num_layers=draw(st.integers(1, 2)),
                   layout=draw(st.sampled_from([0, 1])), head=draw(st.sampled_from([None, "matmul", "gemm"])),
                   seed=draw(st.integers(0, 2**16)), filename="model.onnx")
    if options["head"] is not None:
        options["head_activation"] = draw(st.sampled_from([None, "Tanh", "Softmax", "LogSoftmax"]))
    state = draw(st.sampled_from(["input", "initializer", "absent"]))
    options["state"] = state
    if state == "initializer":
        options["batch_dim"] = options["batch"]  # a constant initial state has a fixed batch
    if options["layout"] == 0:
        options["vocab"] = draw(st.sampled_from([None, None, 9]))
        options["stacked_state"] = state == "input" and draw(st.booleans())
    if op == "LSTM":
        options["peepholes"] = draw(st.booleans())
        options["input_forget"] = draw(st.sampled_from([0, 1]))
    if op == "GRU":
        options["linear_before_reset"] = draw(st.sampled_from([0, 1]))
    if draw(st.booleans()):
        options["clip"] = draw(st.sampled_from([0.5, 3.0]))
    return options


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _built_and_inputs(folder, options, data, max_steps=30):
    built = build_model(folder, **options)
    steps = data.draw(st.integers(1, max_steps), label="steps")
    xs = built.random_steps(np.random.default_rng(options["seed"]), steps)
    return built, xs


@PROPERTIES
@given(options=model_options(), data=st.data())
def test_run_equals_repeated_step(folder, options, data):
    built, xs = _built_and_inputs(folder, options, data)
    ran = edgeseq_runtime.load(built.path, batch=built.batch).run(xs)
    stepper = edgeseq_runtime.load(built.path, batch=built.batch)
    stepped = np.stack([stepper.step(x) for x in xs])
    np.testing.assert_array_equal(ran, stepped)
    assert np.isfinite(ran).all()


@PROPERTIES
@given(options=model_options(), data=st.data())
def test_chunks_with_state_moved_between_them_equal_one_run(folder, options, data):
    built, xs = _built_and_inputs(folder, options, data)
    whole = edgeseq_runtime.load(built.path, batch=built.batch).run(xs)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(xs) - 1), max_size=4), label="cuts")) if len(xs) > 1 else []
    model = edgeseq_runtime.load(built.path, batch=built.batch)
    rng = np.random.default_rng(options["seed"] + 1)
    outputs = []
    for start, end in zip([0, *cuts], [*cuts, len(xs)]):
        chunk = xs[start:end]
        if data.draw(st.booleans(), label="step by step"):
            outputs.extend(model.step(x) for x in chunk)
        else:
            outputs.extend(model.run(chunk))
        state = model.get_state()
        target = data.draw(st.sampled_from(["same model, disturbed", "fresh load", "clone of a fresh load"]),
                           label="state moves to")
        if target == "fresh load":
            model = edgeseq_runtime.load(built.path, batch=built.batch)
        elif target == "clone of a fresh load":
            model = edgeseq_runtime.load(built.path, batch=built.batch).clone()
        else:
            model.run(built.random_steps(rng, 3))  # set_state must undo this completely
        model.set_state(state)
    np.testing.assert_array_equal(np.stack(outputs), whole)


@PROPERTIES
@given(options=model_options(), data=st.data())
def test_reset_restores_the_initial_outputs(folder, options, data):
    built, xs = _built_and_inputs(folder, options, data, max_steps=15)
    model = edgeseq_runtime.load(built.path, batch=built.batch)
    first = model.run(xs)
    model.run(built.random_steps(np.random.default_rng(options["seed"] + 2), data.draw(st.integers(1, 20))))
    model.reset()
    assert model.steps == 0
    np.testing.assert_array_equal(model.run(xs), first)
