"""The generated C of conv front ends: every case of tests/test_runtime_conv_ops.py (Conv and
ConvTranspose attribute by attribute, norms, reductions, pointwise math, comparisons, Where,
batched MatMul; the Conv cases in int8 too) built into one program with gcc (-O2) and with clang
(AddressSanitizer + UBSan, any report aborts), both with -std=c99 -Wall -Wextra -Wpedantic -Werror,
and compared with edgeseq_runtime step by step (<= 1e-5 relative), a NaN row in mid-stream refused
with the stream going on as without it.

Then the real Silero VAD files (silero_vad_v6.onnx, fp32 and int8, and silero_vad.onnx with
--constant sr=16000) generated with the load options of the CLI and run on the host over the
speech recording of tests/support/audio.py: the Python runtime's probabilities within 1e-5
relative, the same speech decisions, and a NaN chunk refused with the state's bytes unchanged.

Builds are made once per run (support.codegen_builds.Builds), shared by the test workers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from click.testing import CliRunner
from edgeseq_runtime import isa
from support import silero_files
from support.codegen_builds import (
    FIRMWARE,
    GCC,
    SANITIZED,
    StepCases,
    compile_program,
    parse_rows,
    rows_text,
)
from support.foreign_graphs import two_states
from support.front_end_models import front_end_model
from test_runtime_conv_ops import (CASES, QUANTIZED_FRONT_ENDS, Case, assert_bias_after_taps, conv,
                                    large_bias_conv, node)

pytestmark = pytest.mark.slow  # compiles generated C with gcc and clang (sanitizers too)

codegen = pytest.importorskip("edgeseq_export.backends.codegen")

HERE = Path(__file__).resolve().parent
STEP_STATES = HERE / "c" / "step_states.c"
HOST_MAIN = FIRMWARE / "host" / "main.c"
RTOL = 1e-5
STEPS = 8
NOT_FINITE = 1  # EDGESEQ_RT_NOT_FINITE
COMPILERS = [GCC, SANITIZED]
COMPILER_IDS = [c.name for c in COMPILERS]

# Sums that float32 taken in order gets wrong (the Python runtime sums in float64, the C runtime
# with compensation): terms of 1000 that cancel around the small ones, and a row normalized far
# from zero (mean / spread about 5000), where x - mean needs the mean to more than float32.
CANCELLING = [
    Case("ReduceSum of cancelling terms", [node("Mul", ["x", "big"], ["a"]), node("Neg", ["a"], ["b"]),
                                           node("Concat", ["a", "x", "b"], ["terms"], axis=1),
                                           node("ReduceSum", ["terms", "axes"])], (1, 3, 5),
         [("big", np.array(1000.0, np.float32)), ("axes", np.array([1], np.int64))]),
    Case("layernorm far from zero", [node("Mul", ["x", "small"], ["a"]), node("Add", ["a", "far"], ["b"]),
                                     node("LayerNormalization", ["b", "s"])], (1, 3, 8),
         [("small", np.array(0.01, np.float32)), ("far", np.array(30.0, np.float32)), ("s", np.ones(8, np.float32))]),
]
# Subtraction and division (the cases above reach them only inside folded constants).
ARITHMETIC = Case("sub and div, of constants and of run-time tensors", [
    node("Sub", ["x", "shift"], ["shifted"]), node("Div", ["shifted", "scale"], ["scaled"]),
    node("Mul", ["x", "x"], ["square"]), node("Add", ["square", "one"], ["positive"]),
    node("Div", ["scaled", "positive"], ["ratio"]), node("Sub", ["one", "ratio"])],
    (1, 3, 5), [("shift", np.linspace(-0.5, 0.5, 5, dtype=np.float32)), ("scale", np.array([[0.5], [2.0], [-3.0]], np.float32)),
                ("one", np.array(1.0, np.float32))])
# Small taps next to a large bias (test_runtime_conv_ops.large_bias_conv): X scaled by QUIET first.
QUIET = np.float32(1e-3)
_W, _B, _ = large_bias_conv(4)
LARGE_BIAS = Case("conv with a large bias after small taps", [node("Mul", ["x", "quiet"], ["scaled"]),
                                                             node("Conv", ["scaled", "W", "B"], pads=[1, 1])],
                  (1, _W.shape[1], 4), [("quiet", QUIET), ("W", _W), ("B", _B)])
# A Gemm's: 387 small terms, biases of 16 to 30 (test_runtime_gemm's test of the Python runtime).
_RNG = np.random.default_rng(15)
_GEMM_W = _RNG.uniform(-0.5, 0.5, (387, 19)).astype(np.float32)
_GEMM_B = (_RNG.uniform(16, 30, 19) * _RNG.choice([-1, 1], 19)).astype(np.float32)
LARGE_BIAS_GEMM = Case("gemm with a large bias after small terms", [node("Mul", ["x", "quiet"], ["scaled"]),
                                                                    node("Gemm", ["scaled", "W", "B"])],
                       (3, 387), [("quiet", QUIET), ("W", _GEMM_W), ("B", _GEMM_B)])
# Every case in float32, and the Conv cases with int8 filters (input-major and by output).
FRONT_ENDS = [(case, None) for case in [*CASES, *CANCELLING, ARITHMETIC, LARGE_BIAS, LARGE_BIAS_GEMM]] + \
    [(case, "int8") for case in QUANTIZED_FRONT_ENDS]
FRONT_END_IDS = [case.name + (f" {mode}" if mode else "") for case, mode in FRONT_ENDS]
# The instructions of the conv front-end ops, each of whose functions the cases must reach.
FRONT_END_OPS = {isa.OPCODE.CONV, isa.OPCODE.UNARY, isa.OPCODE.BINARY, isa.OPCODE.WHERE, isa.OPCODE.REDUCE,
                 isa.OPCODE.NORMALIZE, isa.OPCODE.MATMUL}
FUNCTIONS = {isa.OPCODE.UNARY: (isa.UNARY.FUNCTION, isa.UNARY_FUNCTION),
             isa.OPCODE.BINARY: (isa.BINARY.FUNCTION, isa.BINARY_FUNCTION),
             isa.OPCODE.REDUCE: (isa.REDUCE.FUNCTION, isa.REDUCE_FUNCTION),
             isa.OPCODE.CONV: (isa.CONV.W + isa.MATRIX.KIND, isa.MATRIX_KIND)}


def records(path: Path, **options):
    """(opcode, fields) of every instruction of the model's plan for one stream."""
    options = edgeseq_runtime.LoadOptions(**options)
    code = edgeseq_runtime.lower_model(path, batch=1, options=options, lean=True).plan.code  # codegen's plan
    pc = int(code[isa.HEADER.START])
    while pc < code[isa.HEADER.END]:
        yield int(code[pc + isa.RECORD.OPCODE]), code[pc + isa.RECORD.FIELDS:pc + code[pc + isa.RECORD.LENGTH]]
        pc += int(code[pc + isa.RECORD.LENGTH])


def _write_front_end(index: int, path: Path) -> None:
    """Front end ``index`` of FRONT_ENDS at ``path``: float32, or quantized from a float32 file beside it."""
    from edgeseq_export.backends.quantize import quantize

    case, mode = FRONT_ENDS[index]
    model = front_end_model(path.parent, case.nodes, case.x_shape, case.initializers,
                            filename="float32.onnx" if mode else path.name,
                            **({"opset": case.opset} if case.opset else {}))
    if mode:
        quantize(model.path, path, mode)


@pytest.fixture(scope="module")
def front_ends(builds):
    return StepCases(builds, "conv_ops", len(FRONT_ENDS), _write_front_end)


@pytest.mark.parametrize("compiler", COMPILERS, ids=COMPILER_IDS)
@pytest.mark.parametrize("index", range(len(FRONT_ENDS)), ids=FRONT_END_IDS)
def test_front_end_op_in_c_computes_as_the_runtime(index, compiler, front_ends):
    case, _ = FRONT_ENDS[index]
    path = front_ends.model_path(index)
    reference = edgeseq_runtime.load(path)
    rng = np.random.default_rng(index)
    xs = rng.uniform(-1, 1, (STEPS, reference.input_size)).astype(np.float32)
    if case.positive:
        xs = np.abs(xs) + 0.1
    expected = reference.run(xs)
    with_nan = np.insert(xs, STEPS // 2, np.nan, axis=0)  # refused: the stream goes on as without it
    statuses, got = front_ends.step(compiler, index, with_nan)
    assert statuses == [0] * (STEPS // 2) + [NOT_FINITE] + [0] * (STEPS - STEPS // 2)
    atol = RTOL * max(1.0, np.abs(expected).max()) if case.atol is None else case.atol
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol, err_msg=case.name)


def test_a_conv_in_c_adds_its_bias_after_its_taps(front_ends):
    """The C runtime's Conv is within the float64 bound of test_runtime_conv_ops's (its taps
    summed, then the bias added), on X of 1e-3 at most against biases of 16 to 30."""
    xs = np.random.default_rng(15).uniform(-1, 1, (STEPS, _W.shape[1] * 4)).astype(np.float32)
    statuses, got = front_ends.step(GCC, FRONT_ENDS.index((LARGE_BIAS, None)), xs)
    assert statuses == [0] * STEPS
    for row, x in zip(got, xs * QUIET):
        assert_bias_after_taps(row[:_B.size * 4].reshape(_B.size, 4), _W, _B, x.reshape(1, -1, 4))


def test_a_gemm_in_c_adds_its_bias_after_its_terms(front_ends):
    """The C runtime's Dense is within float64's bound for its terms summed in float32, then the
    bias added, on X of 1e-3 at most against biases of 16 to 30."""
    xs = np.random.default_rng(15).uniform(0, 1, (STEPS, 3 * 387)).astype(np.float32)
    statuses, got = front_ends.step(GCC, FRONT_ENDS.index((LARGE_BIAS_GEMM, None)), xs)
    assert statuses == [0] * STEPS
    w = _GEMM_W.astype(np.float64)
    u, terms = 2.0 ** -24, w.shape[0]
    for row, x in zip(got, xs * QUIET):
        x = x.reshape(3, terms).astype(np.float64)
        exact = x @ w + _GEMM_B
        bound = 2 * u * np.abs(exact) + terms * u / (1 - terms * u) * (np.abs(x) @ np.abs(w))
        error = np.abs(row[:exact.size].reshape(exact.shape) - exact)
        assert (error <= bound).all(), f"{error.max():.2e} from float64, bound {bound.max():.2e}"


def test_the_cases_reach_every_front_end_instruction_and_function(front_ends):
    """Each front-end instruction, each function of UNARY, BINARY and REDUCE, and each
    filter storage of CONV is in some case's plan, so the parity above covers it."""
    reached = set()
    for index in range(len(FRONT_ENDS)):
        for op, fields in records(front_ends.model_path(index)):
            reached.add((op, None))
            if op in FUNCTIONS:
                reached.add((op, int(fields[FUNCTIONS[op][0]])))
    wanted = {(op, None) for op in FRONT_END_OPS}
    wanted |= {(op, int(member)) for op, (_, group) in FUNCTIONS.items() for member in group}
    from test_codegen_more_ops import COVERED  # the glue ops' functions: their cases are there

    wanted -= COVERED
    wanted.discard((isa.OPCODE.CONV, int(isa.MATRIX_KIND.FLOAT32_PANELS)))  # the numba runtime's alone: never in C
    assert not wanted - reached, sorted(wanted - reached)


def test_codegen_refuses_a_plan_with_an_instruction_not_in_c(tmp_path, monkeypatch):
    """An instruction the C runtime lacks (none today: CONV stands in for one) is refused by name."""
    monkeypatch.setitem(codegen.NOT_IN_C, isa.OPCODE.CONV, "CONV")
    case = conv("conv", (1, 3, 12), (4, 3, 3))
    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers)
    with pytest.raises(codegen.CodegenError, match=r"^[^\n]*front_end\.onnx: the plan uses instruction CONV, which "
                                                   r"the C runtime does not implement yet[^\n]*$"):
        codegen.generate(model.path, tmp_path / "c", "m")
    assert not (tmp_path / "c").exists()


# ---- Silero VAD ------------------------------------------------------------------------------

# name: (Silero file, int8 or None, the CLI's load options)
SILERO = {
    "vad6": ("silero_vad_v6", None, ["--context", "64"]),
    "vad6_int8": ("silero_vad_v6", "int8", ["--context", "64"]),
    "vad5": ("silero_vad", None, ["--constant", "sr=16000", "--input-shape", "576", "--context", "64"]),
}
LOAD_OPTIONS = {"vad6": {"context": 64}, "vad6_int8": {"context": 64},
                "vad5": {"constants": {"sr": 16000}, "input_shape": (576,), "context": 64}}
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def chunks(recording):
    return recording.chunks(silero_files.CHUNK)


class SileroBuild:
    """Each Silero model generated by `edgeseq codegen` with its load options, and built into
    firmware_examples/host's stream program and the state-printing harness, once per run."""

    def __init__(self, shared, files):
        self.builds, self.silero, self.folder = shared, files, shared.root / "silero"

    def onnx_path(self, name: str) -> Path:
        source, mode, _ = SILERO[name]
        if mode is None:
            return self.silero[source]
        path = self.folder / f"{name}.onnx"

        def quantized():
            from edgeseq_export.backends.quantize import quantize

            self.folder.mkdir(exist_ok=True)
            quantize(self.silero[source], path, mode)

        self.builds.once(f"silero-{name}-onnx", quantized)
        return path

    def c_dir(self, name: str) -> Path:
        from edgeseq.cli import main

        c_dir = self.folder / name

        def generate():
            result = CliRunner().invoke(main, ["codegen", str(self.onnx_path(name)), "-o", str(c_dir),
                                               "--name", name, *SILERO[name][2]])
            assert result.exit_code == 0, result.output

        self.builds.once(f"silero-{name}-c", generate)
        return c_dir

    def program(self, compiler, name: str, harness: Path = HOST_MAIN) -> Path:
        c_dir = self.c_dir(name)
        program = self.folder / f"{harness.stem}_{name}_{compiler.name}"
        sources = [harness, c_dir / f"{name}.c", c_dir / "edgeseq_rt.c"]
        self.builds.once(program.name, lambda: compile_program(compiler, c_dir, name, sources, program))
        return program


@pytest.fixture(scope="module")
def silero_builds(builds, silero):
    return SileroBuild(builds, silero)


def stream_chunks(program: Path, rows: np.ndarray) -> subprocess.CompletedProcess:
    return subprocess.run([str(program)], input=rows_text(rows), capture_output=True, text=True, timeout=600,
                          check=False)


def test_codegen_cli_takes_the_load_options(silero_builds):
    """`edgeseq codegen --constant sr=16000 --input-shape 576 --context 64`: the step input is the
    512 new samples of each 576-sample window (the plan's, as the Python runtime takes them)."""
    header = (silero_builds.c_dir("vad5") / "vad5.h").read_text()
    assert "#define vad5_INPUT_SIZE 512\n" in header and "#define vad5_OUTPUT_SIZE 1\n" in header
    assert "input.context [1, 64]" in header  # the kept samples are state, named in the header


def test_codegen_without_context_takes_the_whole_window(silero, tmp_path):
    from edgeseq.cli import main

    result = CliRunner().invoke(main, ["codegen", str(silero["silero_vad"]), "-o", str(tmp_path), "--name", "vad",
                                       "--constant", "sr=16000", "--input-shape", "576"])
    assert result.exit_code == 0, result.output
    assert "#define vad_INPUT_SIZE 576\n" in (tmp_path / "vad.h").read_text()


def test_codegen_without_the_sample_rate_says_what_to_pass(silero, tmp_path):
    from edgeseq.cli import main

    result = CliRunner().invoke(main, ["codegen", str(silero["silero_vad"]), "-o", str(tmp_path / "c")])
    assert result.exit_code == 1 and "--constant" in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "c").exists()


def test_codegen_cli_pairs_states_as_state_says(tmp_path):
    """Two states whose names say nothing of their outputs: codegen refuses in one line naming
    --state, and with --state a=p --state b=q the C steps as edgeseq.load(state=...) does."""
    from edgeseq.cli import main

    path = two_states(tmp_path / "two.onnx")
    refused = CliRunner().invoke(main, ["codegen", path, "-o", str(tmp_path / "refused"), "--name", "two"])
    assert refused.exit_code == 1 and "--state INPUT=OUTPUT" in refused.output, refused.output
    assert refused.output.count("\n") == 1 and not (tmp_path / "refused").exists()
    result = CliRunner().invoke(main, ["codegen", path, "-o", str(tmp_path / "c"), "--name", "two",
                                       "--state", "a=p", "--state", "b=q"])
    assert result.exit_code == 0, result.output
    program = compile_program(GCC, tmp_path / "c", "two", [HOST_MAIN, tmp_path / "c" / "two.c",
                                                           tmp_path / "c" / "edgeseq_rt.c"], tmp_path / "stream")
    xs = np.random.default_rng(3).uniform(-1, 1, (20, 2)).astype(np.float32)
    streamed = stream_chunks(program, xs)
    assert streamed.returncode == 0, streamed.stderr
    expected = edgeseq_runtime.load(path, state={"a": "p", "b": "q"}).run(xs)
    np.testing.assert_allclose(parse_rows(streamed.stdout), expected, rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("name", SILERO)
def test_silero_in_c_streams_speech_as_the_runtime(name, silero_builds, chunks):
    """>= 300 chunks of speech in noise: every probability within 1e-5 relative of the Python
    runtime on the same file, and the same speech decision on every chunk."""
    assert len(chunks) >= 300
    result = stream_chunks(silero_builds.program(GCC, name), chunks)
    assert result.returncode == 0, result.stderr
    got = parse_rows(result.stdout)[:, 0]
    expected = edgeseq_runtime.load(silero_builds.onnx_path(name), **LOAD_OPTIONS[name]).run(chunks)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-7)
    assert np.array_equal(got > THRESHOLD, expected > THRESHOLD)
    assert (expected > THRESHOLD).any() and (expected < THRESHOLD).any()


def test_silero_under_sanitizers_refuses_nan_and_inf_and_streams_on(silero_builds, chunks):
    """clang's ASan + UBSan build of v6: a NaN chunk and an Inf chunk in mid-stream are refused and
    the stream after them is the runtime's stream without them."""
    rows = chunks[:160]
    bad = np.array([np.full(rows.shape[1], np.nan), np.r_[rows[0, :-1], np.inf]], np.float32)
    with_bad = np.concatenate([rows[:80], bad, rows[80:]])
    result = stream_chunks(silero_builds.program(SANITIZED, "vad6"), with_bad)
    assert result.returncode == 2 and "Sanitizer" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("state unchanged") == 2
    expected = edgeseq_runtime.load(silero_builds.onnx_path("vad6"), **LOAD_OPTIONS["vad6"]).run(rows)[:, 0]
    np.testing.assert_allclose(parse_rows(result.stdout)[:, 0], expected, rtol=RTOL, atol=1e-7)


def test_silero_nan_chunk_leaves_the_state_bytes_untouched(silero_builds, chunks):
    """tests/c/step_states.c prints the state struct after each call: a NaN chunk changes none of
    the recurrent state's bytes (h, c and the kept context samples)."""
    rows = np.concatenate([chunks[100:104], np.full((1, chunks.shape[1]), np.nan, np.float32), chunks[104:106]])
    result = stream_chunks(silero_builds.program(GCC, "vad6", STEP_STATES), rows)
    assert result.returncode == 0, result.stderr
    lines = [line.split(";") for line in result.stdout.splitlines()]
    assert [int(status) for status, _, _ in lines] == [0, 0, 0, 0, NOT_FINITE, 0, 0]
    arenas = [np.array([int(bits, 16) for bits in arena.split()], np.uint32) for _, _, arena in lines]
    states = edgeseq_runtime.lower_model(silero_builds.onnx_path("vad6"), batch=1, lean=True,
                                         options=edgeseq_runtime.LoadOptions(context=64)).states  # codegen's plan
    assert {slot.name for slot in states} == {"h", "c", "input.context"}
    for slot in states:
        region = slice(slot.offset, slot.offset + slot.size)
        assert np.array_equal(arenas[4][region], arenas[3][region]), slot.name
        assert not np.array_equal(arenas[5][region], arenas[4][region]), slot.name  # and the next step moves it


# ---- recurrent nodes whose sequence runs inside one step ----------------------------------------

@pytest.mark.parametrize("intra", ["GRU", "LSTM"])
def test_a_bidirectional_node_across_the_bins_of_a_frame_runs_in_c_as_in_the_runtime(intra, tmp_path):
    """tests/test_runtime_in_step_recurrent.py's DPCRN-like model (a bidirectional GRU or LSTM over
    33 bins, its final state carried to the next frame, then a streaming GRU), generated and built
    with gcc: the runtime's outputs within 1e-5 relative over 40 frames."""
    from test_runtime_in_step_recurrent import dpcrn_like

    path = dpcrn_like(tmp_path, 33, intra=intra, intra_state=True)
    frames = np.abs(np.random.default_rng(9).standard_normal((40, 33))).astype(np.float32)
    codegen.generate(path, tmp_path / "c", "dpcrn")
    program = compile_program(GCC, tmp_path / "c", "dpcrn", [HOST_MAIN, tmp_path / "c" / "dpcrn.c",
                                                             tmp_path / "c" / "edgeseq_rt.c"], tmp_path / "stream")
    result = stream_chunks(program, frames)
    assert result.returncode == 0, result.stderr
    expected = edgeseq_runtime.load(path).run(frames)
    np.testing.assert_allclose(parse_rows(result.stdout), expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())
