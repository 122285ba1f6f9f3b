"""Loading graphs edgeseq did not export: constants (and the If branches they decide), state
paired by name, by shape or by ``state=``, state of any shape, ``input_shape``, ``context``.

References: ONNX Runtime stepping the same file with its state outputs fed back; the command line
takes the same options on every command that loads a model."""

import subprocess
import sys

import edgeseq_runtime
import numpy as np
import onnx
import pytest
from edgeseq_runtime import ModelError
from support import foreign_graphs as fg
from support.cli_results import assert_one_line_error, run

RNG = np.random.default_rng(15)


def _steps(steps, batch, *shape):
    return RNG.normal(0, 1, (steps, batch, *shape)).astype(np.float32)


@pytest.mark.parametrize("sr, scale", [(16000, 1.0), (8000, 2.0)], ids=["then", "else"])
@pytest.mark.parametrize("batch", [1, 2])
def test_if_on_a_constant_input_lowers_the_taken_branch_with_its_lstm(tmp_path, sr, scale, batch):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5)
    model = edgeseq_runtime.load(path, batch, constants={"sr": sr}, input_shape=(3,))
    xs = _steps(12, batch, 3)
    expected = fg.step_with_onnxruntime(path, xs, {"state": np.zeros((2, batch, 5), np.float32)},
                                        fixed={"sr": np.array(sr, np.int64)}, pairs={"state": "stateN"})
    got = np.stack([model.step(x if batch > 1 else x[0]) for x in xs])
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
    assert set(model.get_state()) == {"state"} and model.get_state()["state"].shape == (2, batch, 5)
    model.reset()
    np.testing.assert_allclose(model.run(xs if batch > 1 else xs[:, 0]).reshape(expected.shape), expected,
                               rtol=1e-5, atol=1e-6)


def test_the_branch_taken_follows_the_constant(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5)
    x = np.ones(3, np.float32)
    fast = edgeseq_runtime.load(path, constants={"sr": 16000}, input_shape=(3,)).step(x)
    slow = edgeseq_runtime.load(path, constants={"sr": 8000}, input_shape=(3,)).step(x)
    assert not np.allclose(fast, slow)


def test_an_if_on_the_stream_is_refused_naming_it(tmp_path):
    path = fg.if_on_the_stream(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"flag_if.*(If).*condition depends on the step input or the state.*constants="):
        edgeseq_runtime.load(path)


@pytest.mark.parametrize("out_name", ["{}_out", "{}n", "{}N", "{}_next", "next_{}"])
def test_state_is_paired_by_each_naming_rule(tmp_path, out_name):
    out = out_name.format("mem")
    path = fg.written_out_cell(tmp_path / "m.onnx", state_in="mem", state_out=out)
    model = edgeseq_runtime.load(path)
    xs = _steps(10, 1, 3)
    expected = fg.step_with_onnxruntime(path, xs, {"mem": np.zeros((1, 2, 4), np.float32)}, pairs={"mem": out})
    np.testing.assert_allclose(model.run(xs[:, 0]), expected[:, 0], rtol=1e-5, atol=1e-6)
    assert list(model.get_state()) == ["mem"]


@pytest.mark.parametrize("layout", ["batch_first", "stacked"])
def test_state_of_any_shape_and_batch_axis_streams_in_batches(tmp_path, layout):
    path = fg.written_out_cell(tmp_path / "m.onnx", state_in="memory", state_out="carry", layout=layout)
    model = edgeseq_runtime.load(path, batch=3)  # paired as the only input and output of equal shape
    state_shape = (3, 2, 4) if layout == "batch_first" else (2, 3, 4)
    xs = _steps(10, 3, 3)
    start = RNG.normal(0, 0.5, state_shape).astype(np.float32)
    model.set_state({"memory": start})
    expected = fg.step_with_onnxruntime(path, xs, {"memory": start}, pairs={"memory": "carry"})
    np.testing.assert_allclose(model.run(xs), expected, rtol=1e-5, atol=1e-6)


def test_a_state_without_a_batch_axis_streams_at_batch_1_and_asks_for_it_above(tmp_path):
    path = fg.written_out_cell(tmp_path / "m.onnx", state_in="memory", state_out="carry", layout="unbatched")
    model = edgeseq_runtime.load(path)  # s[2, 4]: no axis of extent 1 or symbolic, so no batch axis
    xs = _steps(10, 1, 3)
    start = RNG.normal(0, 0.5, (2, 4)).astype(np.float32)
    model.set_state({"memory": start})
    expected = fg.step_with_onnxruntime(path, xs, {"memory": start}, pairs={"memory": "carry"})
    np.testing.assert_allclose(model.run(xs[:, 0]), expected[:, 0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match=r"'memory' \[2, 4\] has no batch axis; load it with batch=1"):
        edgeseq_runtime.load(path, batch=3)


def test_state_survives_save_and_load(tmp_path):
    path = fg.written_out_cell(tmp_path / "m.onnx", state_in="state", state_out="stateN", layout="stacked")
    model = edgeseq_runtime.load(path)
    model.run(_steps(5, 1, 3)[:, 0])
    model.save_state(tmp_path / "s.state")
    before = model.get_state()
    model.reset()
    model.load_state(tmp_path / "s.state")
    np.testing.assert_array_equal(model.get_state()["state"], before["state"])
    assert before["state"].shape == (2, 1, 4) and np.abs(before["state"]).sum() > 0


def test_ambiguous_pairs_ask_for_state_and_state_resolves_them(tmp_path):
    path = fg.two_states(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"\['a', 'b'\].*state=\{'INPUT': 'OUTPUT'\}.*--state INPUT=OUTPUT"):
        edgeseq_runtime.load(path)
    pairs = {"a": "p", "b": "q"}
    model = edgeseq_runtime.load(path, state=pairs)
    xs = _steps(8, 1, 2)
    expected = fg.step_with_onnxruntime(path, xs, {n: np.zeros((1, 3), np.float32) for n in pairs}, pairs=pairs)
    np.testing.assert_allclose(model.run(xs[:, 0]), expected[:, 0], rtol=1e-5, atol=1e-6)


def test_two_outputs_named_for_one_input_are_ambiguous(tmp_path):
    path = fg.two_states(tmp_path / "m.onnx", names=(("h", "hn"), ("g", "h_next")))
    with pytest.raises(ModelError, match=r"\['hn', 'h_next'\].*'h'.*state="):
        edgeseq_runtime.load(path)


@pytest.mark.parametrize("options, message", [
    ({"state": {"nope": "p"}}, "'nope' is not a graph input"),
    ({"state": {"a": "nope", "b": "q"}}, "'nope' is not a graph output"),
    ({"constants": {"nope": 1}}, "'nope' is not a graph input"),
], ids=["state_input", "state_output", "constant_name"])
def test_options_naming_what_the_graph_lacks_are_refused(tmp_path, options, message):
    path = fg.two_states(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=message):
        edgeseq_runtime.load(path, **options)


@pytest.mark.parametrize("options", [{"constants": {"sr": "fast"}}, {"state": {"a": 1}}, {"input_shape": (0,)},
                                     {"input_shape": "576"}, {"context": -1}, {"constants": {"sr": float("nan")}}])
def test_malformed_options_are_value_errors(tmp_path, options):
    path = fg.two_states(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=next(iter(options))):
        edgeseq_runtime.load(path, **options)


def test_a_state_without_a_batch_axis_says_to_load_with_batch_1(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx")
    model = onnx.load(path)
    model.graph.input[1].type.tensor_type.shape.dim[1].dim_value = 1  # state[2, 1, H]
    onnx.save(model, path)
    with pytest.raises(ModelError, match="batch=1"):
        edgeseq_runtime.load(path, batch=2, constants={"sr": 16000}, input_shape=(3,))


def test_input_shape_fills_symbolic_dims_and_step_takes_either_shape(tmp_path):
    path = fg.scaled_window(tmp_path / "m.onnx", width=6)
    with pytest.raises(ModelError, match="does not fit input 'input'"):
        edgeseq_runtime.load(path, input_shape=(2, 3, 1))
    model = edgeseq_runtime.load(path, batch=2, input_shape=(6,))
    assert (model.input_size, model.output_size, model.input_shape) == (6, 6, (6,))
    x = RNG.normal(0, 1, (2, 6)).astype(np.float32)
    np.testing.assert_allclose(model.step(x), x * np.arange(1, 7), rtol=1e-6)


def test_context_keeps_the_last_input_values_as_state(tmp_path):
    path = fg.scaled_window(tmp_path / "m.onnx", width=6)
    model = edgeseq_runtime.load(path, batch=2, input_shape=(6,), context=2)
    assert model.input_size == 4 and "input.context" in model.get_state()
    stream = RNG.normal(0, 1, (5, 2, 4)).astype(np.float32)
    history = np.concatenate([np.zeros((2, 2), np.float32), *stream], axis=1)  # per stream: zeros, then samples
    expected = np.stack([history[:, 4 * t:4 * t + 6] * np.arange(1, 7) for t in range(5)])
    np.testing.assert_allclose(model.run(stream), expected, rtol=1e-6)
    saved = model.get_state()
    np.testing.assert_array_equal(saved["input.context"], stream[-1][:, 2:])
    model.reset()
    np.testing.assert_array_equal(model.get_state()["input.context"], 0)
    model.set_state(saved)
    np.testing.assert_allclose(model.step(stream[0])[:, :2], stream[-1][:, 2:] * [1, 2], rtol=1e-6)


def test_context_must_leave_room_for_new_values(tmp_path):
    path = fg.scaled_window(tmp_path / "m.onnx", width=6)
    with pytest.raises(ModelError, match="context=6"):
        edgeseq_runtime.load(path, input_shape=(6,), context=6)


# -- the command line: the same options on every command that loads a model ------------------

LOADING_COMMANDS = [("inspect",), ("verify",), ("stream",), ("bench",), ("quantize", "-o", "q.onnx"),
                    ("codegen", "-o", "c_out")]


@pytest.mark.parametrize("command", LOADING_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("option, message", [
    (("--constant", "sr"), "--constant: 'sr' is not NAME=VALUE"),
    (("--constant", "sr=fast"), "--constant: 'sr=fast': 'fast' is not a number"),
    (("--state", "state"), "--state: 'state' is not IN=OUT"),
    (("--input-shape", "5,x"), "--input-shape: '5,x' is not a shape"),
    (("--input-shape", "0"), "--input-shape: '0' is not a shape"),
], ids=["constant_no_value", "constant_not_a_number", "state_no_output", "shape_not_ints", "shape_zero"])
def test_every_loading_command_refuses_a_bad_option_in_one_line_naming_it(tmp_path, command, option, message):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx")
    result = run(*command[:1], path, *(str(tmp_path / a) if a.endswith(("onnx", "out")) else a for a in command[1:]),
                 *option)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert message in result.stderr and "Traceback" not in result.output, result.stderr
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "c_out").exists()


def test_inspect_counts_the_weights_of_the_branch_taken_and_shows_symbolic_dims(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5, weights_in_branches=True)
    lstm, head = 4 * 5 * 3 + 4 * 5 * 5 + 8 * 5, 5 * 1
    # without sr the runtime cannot decide the If: both branches are counted, and it cannot stream
    result = run("inspect", path)
    assert result.exit_code == 1 and result.stderr.startswith("edgeseq: error: "), result.output
    assert f"{2 * lstm + head:,} (layer weights" in result.stdout
    for sr, taken in (("16000", "then_lstm"), ("8000", "else_lstm")):
        result = run("inspect", path, "--constant", f"sr={sr}", "--input-shape", "3")
        assert result.exit_code == 0, result.output
        assert f" {lstm + head:,} (layer weights" in result.stdout and taken in result.stdout
    assert "input: float32 ['B', 'T']" in result.stdout and "sr: int64 []" in result.stdout
    assert "stateN" in result.stdout  # the output that carries the state's next value
    assert "[2, 1, 5]" in result.stdout


def test_inspect_counts_no_weights_of_the_branch_not_taken_among_other_constants(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5, weights_in_branches=True)
    model = onnx.load(path)
    else_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "else_branch")
    weights = [t for t in else_branch.initializer if t.name != "else_scale"]  # read from the outer graph,
    model.graph.initializer.extend(weights)  # as an exporter that shares names across branches writes it
    for t in weights:
        else_branch.initializer.remove(t)
    onnx.save(model, path)
    result = run("inspect", path, "--constant", "sr=16000", "--input-shape", "3")
    assert result.exit_code == 0, result.output
    assert " 1 floats (" in result.stdout  # the then branch's scale; not the else LSTM's 200 weights


def test_inspect_shows_the_kernel_of_a_conv_that_leaves_out_kernel_shape(tmp_path):
    weight = onnx.numpy_helper.from_array(np.ones((2, 1, 3), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 6])], [weight])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    result = run("inspect", tmp_path / "m.onnx")
    assert "kernel 3 " in result.stdout and "kernel ?" not in result.stdout, result.output


@pytest.mark.parametrize("op", ["Div", "Mod"])
def test_a_constant_integer_division_by_zero_is_refused_naming_the_node(tmp_path, op):
    # ONNX leaves it undefined and ONNX Runtime refuses the file; numpy would fold it to 0
    numbers = [onnx.numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("n", [6, 4, 2]), ("d", [3, 0, 1]))]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ["n", "d"], ["q"], name="ratio"),
         onnx.helper.make_node("Cast", ["q"], ["qf"], to=onnx.TensorProto.FLOAT),
         onnx.helper.make_node("Add", ["x", "qf"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])], numbers)
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=rf"node 'ratio' \({op}\): divides integers by zero"):
        edgeseq_runtime.load(tmp_path / "m.onnx")


def test_a_refusal_after_symbolic_input_dims_were_guessed_says_to_give_input_shape(tmp_path):
    # Silero's input[batch, sequence] into an STFT Conv: without input_shape a step is one sample
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Unsqueeze", ["input", "axis"], ["frames"]),
         onnx.helper.make_node("Conv", ["frames", "basis"], ["output"], name="stft")], "g",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", "sequence"])],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", 2, "frames"])],
        [onnx.numpy_helper.from_array(np.array([1], np.int64), "axis"),
         onnx.numpy_helper.from_array(np.ones((2, 1, 4), np.float32), "basis")])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"node 'stft' .*wider.* \(input 'input' \['batch', 'sequence'\] was taken "
                                         r"as \[1, 1\]; give one stream's shape with input_shape="):
        edgeseq_runtime.load(tmp_path / "m.onnx")
    model = edgeseq_runtime.load(tmp_path / "m.onnx", input_shape=(6,))
    np.testing.assert_allclose(model.step(np.arange(6, dtype=np.float32)), [6, 10, 14] * 2)


def test_inspect_shows_dims_without_a_name_as_unknown(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5)
    model = onnx.load(path)
    model.graph.input[0].type.tensor_type.shape.dim[1].Clear()  # input[B, ?]: neither value nor name
    onnx.save(model, path)
    result = run("inspect", path, "--constant", "sr=16000", "--input-shape", "3")
    assert result.exit_code == 0 and "input: float32 ['B', '?']" in result.stdout, result.output


def test_stream_with_context_takes_only_the_new_values(tmp_path):
    path = fg.scaled_window(tmp_path / "m.onnx", width=6)
    result = subprocess.run([sys.executable, "-m", "edgeseq.cli", "stream", path, "--input-shape", "6",
                             "--context", "2"], check=False, input="1,2,3,4\n5,6,7,8\n", capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [[float(v) for v in line.split(",")] for line in result.stdout.splitlines()]
    np.testing.assert_allclose(rows, [np.array([0, 0, 1, 2, 3, 4]) * np.arange(1, 7),
                                      np.array([3, 4, 5, 6, 7, 8]) * np.arange(1, 7)])


def test_states_that_trade_values_are_copied_back_from_the_step_s_values(tmp_path):
    path = fg.swapped_states(tmp_path / "m.onnx")
    model = edgeseq_runtime.load(path, batch=2)
    xs = _steps(6, 2, 3)
    pairs = {"a": "a_next", "b": "b_next"}
    expected = fg.step_with_onnxruntime(path, xs, {n: np.zeros((2, 3), np.float32) for n in pairs}, pairs=pairs)
    np.testing.assert_allclose(model.run(xs), expected, rtol=1e-6)


def test_step_and_run_take_the_step_input_in_its_own_shape_too(tmp_path):
    path = fg.scaled_window(tmp_path / "m.onnx", width=6)
    model = edgeseq_runtime.load(path, input_shape=(1, 6))  # the graph's whole shape: no batch axis to add
    assert (model.input_size, model.input_shape) == (6, (1, 6))
    xs = RNG.normal(0, 1, (4, 6)).astype(np.float32)
    expected = xs * np.arange(1, 7)
    np.testing.assert_allclose([model.step(x.reshape(1, 6)) for x in xs], expected, rtol=1e-6)
    np.testing.assert_allclose(model.run(xs.reshape(4, 1, 6)), expected, rtol=1e-6)
    np.testing.assert_allclose(model.run(xs), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        model.step(xs[0].reshape(2, 3))


def test_a_branch_with_another_number_of_outputs_than_its_if_is_refused(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx")
    model = onnx.load(path)
    then_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "then_branch")
    del then_branch.output[1]
    onnx.save(model, path)
    with pytest.raises(ModelError, match=r"rate_if.*then_branch has 1 outputs, the If 2"):
        edgeseq_runtime.load(path, constants={"sr": 16000}, input_shape=(3,))


def test_verify_compares_onnx_runtime_and_edgeseq_on_a_file_without_edgeseq_metadata(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx", inputs=3, hidden=5)
    result = run("verify", path, "--constant", "sr=8000", "--input-shape", "3", "--batch", "2", "--steps", "30")
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime vs edgeseq" in result.stdout and "no edgeseq metadata" in result.stdout
    assert_one_line_error(run("verify", path, "--input-shape", "3"), "'sr'")  # sr is neither state nor fixed


def test_a_step_input_named_like_an_output_is_still_the_step_input(tmp_path):
    path = fg.named_like_its_output(tmp_path / "m.onnx")
    model = edgeseq_runtime.load(path)
    assert list(model.get_state()) == ["state"]
    xs = _steps(6, 1, 4)
    expected = fg.step_with_onnxruntime(path, xs, {"state": np.zeros((1, 4), np.float32)}, pairs={"state": "state_out"})
    np.testing.assert_allclose(model.run(xs[:, 0]), expected[:, 0], rtol=1e-5, atol=1e-6)


def test_an_op_of_another_domain_counts_only_in_the_branch_taken(tmp_path):
    path = fg.lstm_in_if_branches(tmp_path / "m.onnx")
    model = onnx.load(path)
    else_branch = next(a.g for a in model.graph.node[1].attribute if a.name == "else_branch")
    next(n for n in else_branch.node if n.op_type == "Sigmoid").domain = "com.example"
    model.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    onnx.save(model, path)
    edgeseq_runtime.load(path, constants={"sr": 16000}, input_shape=(3,))
    with pytest.raises(ModelError, match=r"else_out.*domain 'com.example'.*else_branch of node 'rate_if'"):
        edgeseq_runtime.load(path, constants={"sr": 8000}, input_shape=(3,))


@pytest.mark.parametrize("op", ["GRU", "LSTM", "RNN"])
def test_a_state_read_after_its_recurrent_node_keeps_the_value_the_step_started_with(tmp_path, op):
    """The node updates its state in place; nodes after it that read the state input (or a
    view of it taken before) must still see the old value, as ONNX Runtime does."""
    path = fg.state_read_after_its_node(tmp_path / "blend.onnx", op=op)
    states = ["h", "c"] if op == "LSTM" else ["h"]
    xs = np.random.default_rng(5).standard_normal((30, 1, 1, 3)).astype(np.float32)
    expected = fg.step_with_onnxruntime(path, xs, {s: np.zeros((1, 1, 4), np.float32) for s in states},
                                        pairs={s: f"{s}_next" for s in states})
    m = edgeseq_runtime.load(path)
    stepped = np.stack([m.step(x.reshape(3)) for x in xs])
    np.testing.assert_allclose(stepped, expected.reshape(30, 4), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(edgeseq_runtime.load(path).run(xs.reshape(30, 3)), stepped)
