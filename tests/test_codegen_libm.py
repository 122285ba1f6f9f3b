"""The libm functions a generated model links: those of its own plan, through the model's table
(edgeseq_rt_libm_t in NAME.c), the runtime files the same for every model. Models generated into
one folder, an LSTM followed by Sin, an LSTM whose cell activation is Softplus, and the plain LSTM:
the runtime's object and the plain model reference no table function (`nm`), the Sin model sinf
only, the Softplus one log1pf only, and both compute as edgeseq_runtime; a table edited to leave
its function out is refused with EDGESEQ_RT_MISSING_FUNCTION, the recurrent state that the LSTM
had already moved put back (Sin), or never moved (Softplus, checked before the cell runs). Built
with gcc -O2 and clang with the sanitizers, C99 with every warning an error.
"""

from __future__ import annotations

import subprocess

import edgeseq_runtime
import numpy as np
import onnx
import pytest
from edgeseq_runtime import isa
from onnx import TensorProto, helper, numpy_helper
from support.codegen_builds import (
    C99_WARNINGS,
    GCC,
    SANITIZED,
    compile_program,
    require,
)
from test_codegen_conv_ops import STEP_STATES

codegen = pytest.importorskip("edgeseq_export.backends.codegen")

HIDDEN, FEATURES, STEPS = 5, 4, 6
# Every function edgeseq_rt_libm_t holds (its members, as edgeseq_rt.h declares them).
TABLE = ("expf", "logf", "expm1f", "powf", "fmodf", "erff", "tanhf", "sinf", "cosf", "floorf", "ceilf", "rintf",
         "log1pf")
# model: the one table function it calls (Sin after its LSTM; Softplus as its LSTM's cell activation)
CALLING = {"sin": "sinf", "softplus": "log1pf"}
COMPILERS = [GCC, SANITIZED]


def lstm_model(path, kind: str):
    """x (1, 1, FEATURES) -> LSTM (state h, c) -> y; ``kind`` "sin": through Sin, which runs after
    the LSTM has written the new state; "softplus": the LSTM's cell activation (g) is Softplus;
    "plain": neither."""
    rng = np.random.default_rng(4)
    state = [1, 1, HIDDEN]
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, (1, 4 * HIDDEN, FEATURES)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-1, 1, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32), "R"),
             numpy_helper.from_array(np.array([1, HIDDEN], np.int64), "row")]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "", "", "h", "c"], ["lstm_y", "hn", "cn"], hidden_size=HIDDEN,
                              activations=["Sigmoid", "Softplus" if kind == "softplus" else "Tanh", "Tanh"]),
             helper.make_node("Reshape", ["lstm_y", "row"], ["lstm_row"])]
    nodes.append(helper.make_node("Sin", ["lstm_row"], ["y"]) if kind == "sin"
                 else helper.make_node("Identity", ["lstm_row"], ["y"]))
    graph = helper.make_graph(
        nodes, "lstm_then_sin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, FEATURES]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, state)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, HIDDEN]),
         helper.make_tensor_value_info("hn", TensorProto.FLOAT, state),
         helper.make_tensor_value_info("cn", TensorProto.FLOAT, state)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """plain, sin, softplus, and sin_missing and softplus_missing (their NAME.c with the function
    taken out of the table), generated into one folder."""
    root = tmp_path_factory.mktemp("libm")
    c_dir = root / "generated"
    for name in ["plain", *CALLING, *(f"{kind}_missing" for kind in CALLING)]:
        codegen.generate(lstm_model(root / f"{name}.onnx", name.removesuffix("_missing")), c_dir, name)
    for kind, function in CALLING.items():
        source, entry = (c_dir / f"{kind}_missing.c").read_text(), f"    .libm = {{.{function} = {function}}},\n"
        assert entry in source
        (c_dir / f"{kind}_missing.c").write_text(source.replace(entry, ""))
    return root


def undefined_symbols(c_file, tmp_path) -> set[str]:
    """The symbols that ``c_file``, compiled with gcc -O2, takes from elsewhere."""
    require("gcc", "nm")
    obj = tmp_path / (c_file.stem + ".o")
    subprocess.run(["gcc", *C99_WARNINGS, "-O2", f"-I{c_file.parent}", "-c", str(c_file), "-o", str(obj)],
                   check=True)
    listed = subprocess.run(["nm", "--undefined-only", str(obj)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in listed.stdout.splitlines()}


def test_the_runtime_and_a_model_without_them_reference_no_table_function(folder, tmp_path):
    c_dir = folder / "generated"
    assert not undefined_symbols(c_dir / "edgeseq_rt.c", tmp_path) & set(TABLE)
    assert not undefined_symbols(c_dir / "plain.c", tmp_path) & set(TABLE)
    for kind, function in CALLING.items():
        assert undefined_symbols(c_dir / f"{kind}.c", tmp_path) & set(TABLE) == {function}
        assert f"this model calls: {function};" in (c_dir / f"{kind}.h").read_text()


def stream(program, rows):
    result = subprocess.run([str(program)], input="\n".join(" ".join(map(repr, map(float, r))) for r in rows) + "\n",
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-3000:]
    return [line.split(";") for line in result.stdout.splitlines()]


def build(compiler, folder, name):
    c_dir = folder / "generated"
    return compile_program(compiler, c_dir, name, [STEP_STATES, c_dir / "edgeseq_rt.c", c_dir / f"{name}.c"],
                           folder / f"{name}_{compiler.name}")


def inputs():
    return np.random.default_rng(5).uniform(-2, 2, (STEPS, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("kind", CALLING)
@pytest.mark.parametrize("compiler", COMPILERS, ids=[c.name for c in COMPILERS])
def test_a_model_calling_a_table_function_computes_as_the_runtime(compiler, kind, folder):
    lines = stream(build(compiler, folder, kind), inputs())
    expected = edgeseq_runtime.load(folder / f"{kind}.onnx").run(inputs())
    assert [int(status) for status, _, _ in lines] == [0] * STEPS
    got = np.array([[float(v) for v in y.split()] for _, y, _ in lines])
    np.testing.assert_allclose(got, expected.reshape(STEPS, HIDDEN), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", CALLING)
@pytest.mark.parametrize("compiler", COMPILERS, ids=[c.name for c in COMPILERS])
def test_a_table_without_a_function_the_plan_calls_is_refused_with_the_state_put_back(compiler, kind, folder):
    lines = stream(build(compiler, folder, f"{kind}_missing"), inputs())
    assert [int(status) for status, _, _ in lines] == [isa.STATUS.MISSING_FUNCTION] * STEPS
    assert all(y == "" for _, y, _ in lines)
    lowered = edgeseq_runtime.lower_model(folder / f"{kind}_missing.onnx", batch=1, lean=True)  # codegen's plan
    initial = lowered.plan.arena.astype(np.float32).view(np.uint32)
    assert {s.name for s in lowered.states} == {"h", "c"}
    for _, _, arena in lines:
        after = np.array([int(bits, 16) for bits in arena.split()], np.uint32)
        for s in lowered.states:  # before the Sin, the LSTM had moved h and c
            assert np.array_equal(after[s.offset:s.offset + s.size], initial[s.offset:s.offset + s.size]), s.name
