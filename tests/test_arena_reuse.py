"""Arena regions never live at once share memory (``arena_plan``): the arena shrinks to what
liveness allows and every number a step computes stays as it was.

The shared memory is filled with NaN before every step here: a region read before the step
writes it (a value kept from the previous step, or zeros relied on from the load) would then
turn the outputs into NaN, so these runs check the pinning as well as the packing.
"""

from itertools import pairwise
from pathlib import Path

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeseq_runtime.isa import GRU, HEADER, OPCODE, RECORD, SLOTS, STAGE
from edgeseq_runtime.model import StreamingModel
from edgeseq_runtime.plan import ALIGN, PlanBuilder
from onnx import TensorProto, helper
from support import silero_files
from support.crnn_models import crnn, expected_delay, full_sequence, random_sequence
from torch import nn

import edgeseq

WIDTH = 16
HIDDEN = 8
WIDE = 64  # as many floats as a GRU's scratch of HIDDEN, aligned


def load(path, **options) -> tuple[StreamingModel, list]:
    """The model and its builder's layout: (offset, floats, pinned, first, last) of each region."""
    builders = []
    build = PlanBuilder.build

    def recorded(builder, *args, **kwargs):
        builders.append(builder)
        return build(builder, *args, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PlanBuilder, "build", recorded)
        model = edgeseq_runtime.load(path, **options)
    return model, builders[-1].layout


def shared_memory(layout) -> np.ndarray:
    """Arena elements that no pinned region holds."""
    size = max(offset + floats for offset, floats, *_ in layout)
    shared = np.zeros(size, bool)
    for offset, floats, pinned, *_ in layout:
        shared[offset:offset + floats] |= not pinned
    for offset, floats, pinned, *_ in layout:
        if pinned:
            shared[offset:offset + floats] = False
    return shared


def poisoned_steps(model, layout, xs) -> np.ndarray:
    """``step`` over xs, the shared memory set to NaN before each step."""
    shared = shared_memory(layout)
    outputs = []
    for x in xs:
        model._arena[:shared.size][shared] = np.nan
        outputs.append(model.step(x).copy())
    return np.stack(outputs)


def peak_live(layout) -> int:
    """The most floats live at one point of the step: no placement does with less."""
    live = np.zeros(max(last for *_, last in layout) + 2, np.int64)  # the step's start, instructions, end
    for _, floats, _, first, last in layout:
        live[first + 1:last + 2] += floats
    return int(live.max())


def assert_no_live_overlap(layout):
    for k, (a, n, _, f, l) in enumerate(layout):
        for b, m, _, g, e in layout[k + 1:]:
            assert not (f <= e and g <= l and a < b + m and b < a + n), "regions live at once share memory"


def diamond(path: Path) -> Path:
    """x -> a (a chain of seven ops) and b (a chain of five, then half of it and half a constant
    by Concat and Slice: an indexed copy reading a constant region), a + b into a GRU whose
    output adds a's first link transposed (an indexed copy at the end of the step reading a
    region written at its start): every intermediate of one branch is live while the other runs."""
    rng = np.random.default_rng(3)
    init = [helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel()) for name, value in {
        "scale": rng.uniform(0.5, 1.5, WIDTH).astype(np.float32),
        "shift": rng.uniform(-1, 1, WIDTH).astype(np.float32),
        "W": rng.uniform(-0.5, 0.5, (1, 3 * HIDDEN, WIDTH)).astype(np.float32),
        "R": rng.uniform(-0.5, 0.5, (1, 3 * HIDDEN, HIDDEN)).astype(np.float32),
        "head": rng.uniform(-0.5, 0.5, (HIDDEN, WIDTH)).astype(np.float32),
        "filler": rng.uniform(-1, 1, (1, 1, WIDTH)).astype(np.float32),
    }.items()]
    init += [helper.make_tensor(name, TensorProto.INT64, [len(value)], value) for name, value in {
        "one": [1], "middle_start": [WIDTH // 2], "middle_end": [3 * WIDTH // 2], "last_axis": [2],
        "square": [1, 4, WIDTH // 4], "row": [1, 1, WIDTH]}.items()]
    chain_a = [("Tanh", []), ("Mul", ["scale"]), ("Sigmoid", []), ("Add", ["shift"]), ("Relu", []),
               ("Mul", ["scale"]), ("Tanh", [])]
    chain_b = [("Neg", []), ("Abs", []), ("Add", ["shift"]), ("Sigmoid", []), ("Mul", ["scale"])]
    nodes = []
    for prefix, chain in (("a", chain_a), ("b", chain_b)):
        previous = "x"
        for k, (op, extra) in enumerate(chain):
            nodes.append(helper.make_node(op, [previous, *extra], [f"{prefix}{k}"]))
            previous = f"{prefix}{k}"
    nodes += [helper.make_node("Concat", [f"b{len(chain_b) - 1}", "filler"], ["b_and_filler"], axis=2),
              helper.make_node("Slice", ["b_and_filler", "middle_start", "middle_end", "last_axis"], ["b_half"]),
              helper.make_node("Add", [f"a{len(chain_a) - 1}", "b_half"], ["sum"]),
              helper.make_node("GRU", ["sum", "W", "R", "", "", "h"], ["Y", "h_out"], hidden_size=HIDDEN),
              helper.make_node("Squeeze", ["Y", "one"], ["y_squeezed"]),
              helper.make_node("MatMul", ["y_squeezed", "head"], ["projected"]),
              helper.make_node("Reshape", ["a0", "square"], ["a0_square"]),
              helper.make_node("Transpose", ["a0_square"], ["a0_transposed"], perm=[0, 2, 1]),
              helper.make_node("Reshape", ["a0_transposed", "row"], ["a0_row"]),
              helper.make_node("Add", ["projected", "a0_row"], ["y"])]
    graph = helper.make_graph(nodes, "diamond",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, WIDTH]),
                               helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, HIDDEN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, WIDTH]),
                               helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 1, HIDDEN])],
                              init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def chain(path: Path, links: int) -> Path:
    """x -> Tanh -> Tanh ... (``links`` of them) -> y, each (1, 1, WIDTH)."""
    names = ["x", *(f"t{k}" for k in range(links - 1)), "y"]
    nodes = [helper.make_node("Tanh", [a], [b]) for a, b in pairwise(names)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, WIDTH])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def steps(count: int, width: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((count, width)) * 2).astype(np.float32)


def test_a_chain_needs_two_regions_besides_the_pinned_ones(tmp_path):
    """x is live until the first Tanh reads it, each link's output from its Tanh to the next (y
    from its Tanh to the step's end): two regions of WIDTH floats take turns, besides the pinned
    state copy (no state: one aligned block) and fault cells. Each region its own, the arena
    would be 2 + 9 blocks."""
    model, layout = load(chain(tmp_path / "chain.onnx", links=8))
    assert model._arena.size == 2 * max(WIDTH, ALIGN) + 2 * max(WIDTH, ALIGN)
    xs = steps(5, WIDTH)
    expected = xs.astype(np.float64)
    for _ in range(8):
        expected = np.tanh(expected)
    np.testing.assert_allclose(poisoned_steps(model, layout, xs), expected, rtol=1e-6, atol=1e-6)


def test_diamond_streams_like_onnxruntime_over_50_steps(tmp_path):
    path = diamond(tmp_path / "diamond.onnx")
    model, layout = load(path)
    assert_no_live_overlap(layout)
    assert model._arena.size == peak_live(layout)
    xs = steps(50, WIDTH)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h = np.zeros((1, 1, HIDDEN), np.float32)
    expected = []
    for x in xs:
        y, h = session.run(None, {"x": x.reshape(1, 1, WIDTH), "h": h})
        expected.append(y.ravel())
    np.testing.assert_allclose(poisoned_steps(model, layout, xs), np.stack(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.get_state()["h"].ravel(), h.ravel(), rtol=1e-5, atol=1e-5)


def test_run_equals_repeated_poisoned_step_bit_for_bit(tmp_path):
    model, layout = load(diamond(tmp_path / "diamond.onnx"))
    xs = steps(50, WIDTH, seed=1)
    stepped = poisoned_steps(model, layout, xs)
    model.reset()
    np.testing.assert_array_equal(model.run(xs), stepped)


def tanhs_then_gru(path: Path, tanhs: int) -> Path:
    """x -> Tanh ... (``tanhs`` of them) -> GRU (state h) -> y, x (1, 1, WIDE)."""
    rng = np.random.default_rng(5)
    init = [helper.make_tensor(name, TensorProto.FLOAT, shape, rng.uniform(-0.5, 0.5, shape).ravel())
            for name, shape in (("W", (1, 3 * HIDDEN, WIDE)), ("R", (1, 3 * HIDDEN, HIDDEN)))]
    names = ["x", *(f"t{k}" for k in range(tanhs))]
    nodes = [helper.make_node("Tanh", [a], [b]) for a, b in pairwise(names)]
    nodes.append(helper.make_node("GRU", [names[-1], "W", "R", "", "", "h"], ["y", "h_out"], hidden_size=HIDDEN))
    graph = helper.make_graph(nodes, "tanhs_then_gru",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, WIDE]),
                               helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, HIDDEN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, HIDDEN]),
                               helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 1, HIDDEN])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("tanhs", [0, 2])
def test_run_projects_ahead_a_layer_that_reads_the_input_or_what_comes_before_it(tmp_path, tanhs):
    """x is live only until its first reader: after two Tanhs, the GRU's input takes x's place
    in the arena (x and the Tanhs' outputs are as large as the GRU's scratch, placed before it).
    ``run`` computes the GRU's input projections ahead from what it reads, kept step by step from
    a first stage (the Tanhs, or nothing): both ways it gives ONNX Runtime's numbers, and
    repeated poisoned steps' bit for bit."""
    path = tanhs_then_gru(tmp_path / "model.onnx", tanhs)
    model, layout = load(path)
    code = model._lowered.plan.code
    pc = code[HEADER.START]
    while code[pc + RECORD.OPCODE] != OPCODE.GRU:
        pc += code[pc + RECORD.LENGTH]
    assert code[pc + RECORD.FIELDS + GRU.X] == code[HEADER.X_OFFSET]  # where x was, whatever the GRU reads
    second_stage = code[HEADER.TABLES] + code[HEADER.STAGES] + SLOTS.STAGE
    assert code[HEADER.N_STAGES] == 2 and code[second_stage + STAGE.START] == pc
    xs = steps(30, WIDE, seed=6)
    stepped = poisoned_steps(model, layout, xs)
    model.reset()
    np.testing.assert_array_equal(model.run(xs), stepped)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h, expected = np.zeros((1, 1, HIDDEN), np.float32), []
    for x in xs:
        y, h = session.run(None, {"x": x.reshape(1, 1, WIDE), "h": h})
        expected.append(y.ravel())
    np.testing.assert_allclose(stepped, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_state_round_trips_through_a_file(tmp_path):
    """Saved after 20 steps and loaded into a fresh model, the state gives the next 20 outputs
    of the model that went on."""
    path = diamond(tmp_path / "diamond.onnx")
    xs = steps(40, WIDTH, seed=2)
    model, layout = load(path)
    poisoned_steps(model, layout, xs[:20])
    model.save_state(tmp_path / "state.edgeseq")
    went_on = poisoned_steps(model, layout, xs[20:])
    fresh, fresh_layout = load(path)
    fresh.load_state(tmp_path / "state.edgeseq")
    np.testing.assert_array_equal(poisoned_steps(fresh, fresh_layout, xs[20:]), went_on)


@pytest.mark.parametrize("name", ["silero_vad_v6", "silero_vad"])
def test_silero_arena_shrinks_to_what_liveness_allows(name, silero):
    """Silero VAD (v6; v5 with its graph inside If branches) at 512 new samples a step: the
    arena is what the regions live at once need, and 30 poisoned steps of noise and tones give
    ONNX Runtime's probabilities. Each region its own, v6's arena was 14,096 floats."""
    variant = silero_files.VARIANTS[name]
    model, layout = load(silero[name], constants=variant.constants, input_shape=(576,), context=64)
    assert_no_live_overlap(layout)
    assert model._arena.size <= 1.05 * peak_live(layout)
    assert model._arena.size < 0.45 * sum(floats for _, floats, *_ in layout)
    rng = np.random.default_rng(4)
    t = np.arange(30 * 512) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    chunks = samples.reshape(30, 512)
    session = silero_files.OnnxRuntimeSilero(silero[name], variant)
    windows = np.concatenate([np.zeros((1, 64), np.float32), chunks[:-1, -64:]])
    expected = [session.step(np.concatenate([w, c])) for w, c in zip(windows, chunks)]
    np.testing.assert_allclose(poisoned_steps(model, layout, chunks)[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_a_crnn_streams_like_pytorch_with_its_arena_shared(tmp_path):
    """The keyword spotter's shape (two causal convs, dilation 1 and 2, batch norm, ReLU, a GRU, a
    head), exported: arena at what liveness allows, 40 poisoned steps as PyTorch's full-sequence
    forward aligned by the delay."""
    network = crnn(nn.Conv1d(8, 12, 3), nn.BatchNorm1d(12), nn.ReLU(), nn.Conv1d(12, 12, 3, dilation=2),
                   nn.BatchNorm1d(12), nn.ReLU())
    report = edgeseq.export(network, tmp_path / "crnn.onnx", steps=48)
    model, layout = load(report.path)
    assert_no_live_overlap(layout)
    assert model._arena.size == peak_live(layout) < sum(floats for _, floats, *_ in layout)
    delay = expected_delay(network)
    xs = random_sequence(network, 40 + delay)
    np.testing.assert_allclose(poisoned_steps(model, layout, xs)[delay:], full_sequence(network, xs)[:40],
                               rtol=0, atol=1e-5)


def test_an_index_table_reaches_only_into_regions():
    """A copy's table is not checked at run time: an address between two regions (alignment
    padding, which placing the regions drops) or past the last is refused when it is stored."""
    builder = PlanBuilder()
    first = builder.alloc(3)
    second = builder.alloc(1)
    assert builder.table([first, first + 2, second]) >= 0
    for address in (first + 3, second - 1, second + 1, -1):
        with pytest.raises(ValueError, match=f"reaches arena element {address}, outside every region"):
            builder.table([first, address])
