"""The matrix product every layer uses (kernels.matvec.project), on the shapes that take each of
its paths: one row, two or three, a tile of rows and its half and single rows past it, strips of
outputs and their narrower tails, float32 strips read in place or from a panel, in blocks of
inputs. Against float64 numpy and ONNX Runtime; a batch against its rows one by one; matrices
packed into panels at load against the same matrices input-major, bit for bit."""

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime
import pytest
from edgeseq_runtime.isa import HEADER, LANES, LSTM, MATRIX, MATRIX_KIND, OPCODE, PANEL, RECORD
from edgeseq_runtime.kernels.matvec import (
    ONE_ROW,
    PACK_ROWS,
    PANEL_K,
    ROW_TILE,
    STRIP,
    link_products,
    project,
    rows_independent,
)
from edgeseq_runtime.model import StreamingModel
from edgeseq_runtime.plan import PlanBuilder
from onnx import TensorProto, helper, numpy_helper
from support.onnx_builders import build_model

# rows: 1, 2, 3 (their own loops), a tile of rows, its half, single rows after them, several
# tiles, enough for float32 strips to be copied into a panel
ROWS = (1, 2, 3, 4, ROW_TILE, ROW_TILE + 1, 2 * ROW_TILE + ROW_TILE // 2 + 3, PACK_ROWS + ROW_TILE // 2 + 1)
# outputs: one strip, strips with each narrower tail, outputs past the last vector of 8, and a
# row's widest tile followed by each narrower one (a batch of them bit for bit)
OUTPUTS = (STRIP, STRIP + 8, 3 * STRIP + 24, 77, 5, ONE_ROW + 15 * LANES)
# inputs: one, a few, more than a panel takes at once (and the single row in one sweep)
INPUTS = (1, 33, PANEL_K + 44)


@pytest.fixture(autouse=True, scope="module")
def _every_product():
    """project, called here outside a model, reaches every kind of matrix through its address."""
    link_products()


def _operands(rng, n_in, n_out, int8):
    """(code, w, q, weights as float64): a matrix operand at code[0:] for project."""
    if int8:
        q = rng.integers(-127, 128, (n_in, n_out)).astype(np.int8)
        scale = (rng.random(n_out) * 0.02 + 0.001).astype(np.float32)
        return np.array([MATRIX_KIND.INT8, 0, 0], np.int64), scale, q.ravel(), q * scale.astype(np.float64)
    weights = rng.standard_normal((n_in, n_out)).astype(np.float32)
    return (np.array([MATRIX_KIND.FLOAT32, 0, -1], np.int64), weights.ravel(), np.zeros(1, np.int8),
            weights.astype(np.float64))


def _product(code, w, q, x, start):
    out = start.copy()
    project(code, 0, w, q, out.shape[1], 0, x, out, 0, out.shape[1])
    return out


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
@pytest.mark.parametrize("n_in", INPUTS)
def test_every_path_adds_the_product_to_the_output(n_in, int8):
    rng = np.random.default_rng(n_in)
    for n_out in OUTPUTS:
        code, w, q, weights = _operands(rng, n_in, n_out, int8)
        for rows in ROWS:
            x = rng.standard_normal((rows, n_in)).astype(np.float32)
            start = rng.standard_normal((rows, n_out)).astype(np.float32)
            expected = start + x.astype(np.float64) @ weights
            got = _product(code, w, q, x, start)
            scale = np.abs(x).astype(np.float64) @ np.abs(weights) + np.abs(start)
            assert np.all(np.abs(got - expected) <= 1e-6 * scale * np.sqrt(n_in)), (rows, n_in, n_out)


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
@pytest.mark.parametrize("n_in", INPUTS)
def test_a_batch_gives_the_numbers_of_its_rows_one_by_one(n_in, int8):
    """rows_independent's promise, which run's precomputed projections and batching rest on:
    the same operations in the same order for every output whatever the number of rows."""
    rng = np.random.default_rng(100 + n_in)
    for n_out in OUTPUTS:
        code, w, q, _ = _operands(rng, n_in, n_out, int8)
        x = rng.standard_normal((max(ROWS), n_in)).astype(np.float32)
        start = rng.standard_normal((max(ROWS), n_out)).astype(np.float32)
        one_by_one = np.concatenate([_product(code, w, q, x[b:b + 1], start[b:b + 1]) for b in range(len(x))])
        for rows in ROWS:
            batch = _product(code, w, q, x[:rows], start[:rows])
            if rows_independent(n_out):
                np.testing.assert_array_equal(batch, one_by_one[:rows])
            else:
                np.testing.assert_allclose(batch, one_by_one[:rows], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 16, 40])
def test_int8_matches_onnxruntime_dequantize_then_matmul(rows):
    """int8 weights: what ONNX Runtime computes from DequantizeLinear (one scale per output) and
    MatMul, its graph optimisations off."""
    rng = np.random.default_rng(rows)
    n_in, n_out = 168, 3 * STRIP + 24
    code, w, q, _ = _operands(rng, n_in, n_out, True)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "scale"], ["weights"], axis=1),
         helper.make_node("MatMul", ["x", "weights"], ["y"])], "int8_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n_out])],
        [numpy_helper.from_array(q.reshape(n_in, n_out), "q"), numpy_helper.from_array(w, "scale")])
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                                           .SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected, = session.run(None, {"x": x})
    got = _product(code, w, q, x, np.zeros((rows, n_out), np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def _packed(weights, panels):
    """(code, w) of ``weights`` (n_in, n_out) as PlanBuilder stores it, with or without panels."""
    builder = PlanBuilder()
    x = builder.alloc(1)
    operand = builder.matrix(weights, out_axis=1, panels=panels)
    return np.array(operand, np.int64), builder.build(x, 1, x, 1, 0).weights


@pytest.mark.parametrize("n_in", INPUTS)
def test_panels_give_the_numbers_of_the_input_major_layout(n_in):
    """FLOAT32_PANELS, packed by the planner, against FLOAT32 bit for bit: every row count, whole
    matrices and a strip from the middle (GRU's third gate), inputs in one block and in several."""
    rng = np.random.default_rng(200 + n_in)
    for n_out in (PANEL, 3 * PANEL):
        weights = rng.standard_normal((n_in, n_out)).astype(np.float32)
        (panels, w_panels), (plain, w_plain) = _packed(weights, True), _packed(weights, False)
        assert (panels[MATRIX.KIND], plain[MATRIX.KIND]) == (MATRIX_KIND.FLOAT32_PANELS, MATRIX_KIND.FLOAT32)
        q = np.zeros(1, np.int8)
        for rows in ROWS:
            x = rng.standard_normal((rows, n_in)).astype(np.float32)
            for col, n in {(0, n_out), (n_out - PANEL, PANEL)}:
                start = rng.standard_normal((rows, n)).astype(np.float32)
                got, expected = start.copy(), start.copy()
                project(panels, 0, w_panels, q, n_out, col, x, got, 0, n)
                project(plain, 0, w_plain, q, n_out, col, x, expected, 0, n)
                np.testing.assert_array_equal(got, expected, err_msg=f"{rows} x {n_in} @ {n_in} x {n_out}")


def _matrix_kinds(plan):
    """The kinds of the matrices of a plan's LSTM records."""
    code, kinds = plan.code, []
    pc, end = int(code[HEADER.START]), int(code[HEADER.END])
    while pc < end:
        if code[pc + RECORD.OPCODE] == OPCODE.LSTM:
            kinds += [int(code[pc + RECORD.FIELDS + field + MATRIX.KIND]) for field in (LSTM.W, LSTM.R)]
        pc += int(code[pc + RECORD.LENGTH])
    return kinds


def test_a_model_streams_the_numbers_of_its_plan_without_panels(tmp_path, monkeypatch):
    """An LSTM whose W and R fill whole panels: its plan packs them (a lean plan, which codegen
    takes, does not), and run and step give the numbers of the plan without panels, bit for bit."""
    built = build_model(tmp_path, "LSTM", input_size=PANEL // 4, hidden_size=PANEL // 2, batch=3, head="matmul",
                        output_size=PANEL)
    for lean, kind in ((False, MATRIX_KIND.FLOAT32_PANELS), (True, MATRIX_KIND.FLOAT32)):
        assert set(_matrix_kinds(edgeseq_runtime.lower_model(built.path, batch=3, lean=lean).plan)) == {kind}
    xs = np.random.default_rng(0).standard_normal((5, 3, PANEL // 4)).astype(np.float32)

    def outputs():
        model = edgeseq_runtime.load(built.path, batch=3)
        ran = model.run(xs)
        model.reset()
        return ran, np.stack([model.step(x) for x in xs])

    with_panels = outputs()
    matrix = PlanBuilder.matrix
    monkeypatch.setattr(PlanBuilder, "matrix", lambda builder, *args, panels=False, **options:
                        matrix(builder, *args, **options))
    without = outputs()
    for got, expected in zip(with_panels, without):
        np.testing.assert_array_equal(got, expected)


def test_codegen_refuses_a_plan_with_panels(tmp_path):
    """Panels are the Python runtime's alone: the C runtime never reads them."""
    from edgeseq_export.backends import codegen

    built = build_model(tmp_path, "GRU", input_size=8, hidden_size=PANEL)
    codegen.plan_image(edgeseq_runtime.lower_model(built.path, lean=True), built.path)
    with pytest.raises(codegen.CodegenError, match="FLOAT32_PANELS, which only the Python runtime reads"):
        codegen.plan_image(edgeseq_runtime.lower_model(built.path), built.path)


def test_an_int8_matrix_of_few_inputs_is_stored_as_its_float_value(tmp_path):
    """A QDQ LSTM of 1 input: the Python runtime's plan holds W (one input: its per-output scale
    would double the multiply-adds) as DequantizeLinear's float32 values and R int8; a lean plan
    (codegen's) keeps both int8. Both stream what ONNX Runtime computes from the QDQ graph."""
    from edgeseq_export.backends.quantize import quantize

    built = build_model(tmp_path, "LSTM", input_size=1, hidden_size=PANEL // 2, batch=3, head="matmul",
                        output_size=1)
    qpath = tmp_path / "model.int8.onnx"
    quantize(built.path, qpath, mode="int8")
    assert _matrix_kinds(edgeseq_runtime.lower_model(qpath, batch=3).plan) == [MATRIX_KIND.FLOAT32_PANELS,
                                                                               MATRIX_KIND.INT8]
    assert _matrix_kinds(edgeseq_runtime.lower_model(qpath, batch=3, lean=True).plan) == [MATRIX_KIND.INT8] * 2
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(qpath), options, providers=["CPUExecutionProvider"])
    xs = built.random_steps(np.random.default_rng(0), 40)
    expected = built.steps_from_output(session.run([built.output_name], built.graph_feeds(xs))[0])
    model = edgeseq_runtime.load(qpath, batch=3)
    ran = model.run(xs)
    model.reset()
    stepped = np.stack([model.step(x) for x in xs])
    np.testing.assert_array_equal(ran, stepped)
    np.testing.assert_allclose(stepped, expected, rtol=0, atol=1e-5)



@pytest.mark.parametrize("lean", [False, True], ids=["load", "lean"])
@pytest.mark.parametrize("rows", [1, 3, 6, 70])  # one row, a pair and one, strips of tiles, panels
def test_a_gemm_adds_its_bias_after_its_terms(tmp_path, rows, lean):
    """Small terms next to a large bias (as test_runtime_conv_ops's Conv: 387 terms of inputs under
    1e-3, biases of 16 to 30) keep their low bits: each output is within float64's error bound for
    its terms summed in float32, then the bias added. Carried from the bias, the sum was rounded to
    the bias's precision at every term."""
    rng = np.random.default_rng(15)
    w = rng.uniform(-0.5, 0.5, (387, 19)).astype(np.float32)
    b = (rng.uniform(16, 30, 19) * rng.choice([-1, 1], 19)).astype(np.float32)
    x = rng.uniform(0, 1e-3, (rows, 387)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"])], "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, b.size])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    m = StreamingModel(edgeseq_runtime.lower_model(str(path), lean=True), 1, str(path)) if lean \
        else edgeseq_runtime.load(str(path))
    y = m.step(x.ravel()).reshape(rows, b.size)
    exact = x.astype(np.float64) @ w.astype(np.float64) + b
    u, terms = 2.0 ** -24, w.shape[0]
    bound = 2 * u * np.abs(exact) + terms * u / (1 - terms * u) * (x.astype(np.float64) @ np.abs(w.astype(np.float64)))
    worst = np.unravel_index(np.argmax(np.abs(y - exact) / bound), bound.shape)
    assert np.abs(y - exact)[worst] <= bound[worst], f"{np.abs(y - exact)[worst]:.2e} from float64, bound {bound[worst]:.2e}"
