"""The generated C under hostile inputs, built for the host with gcc and with clang's AddressSanitizer
and UBSan (any report aborts): no read outside a table, no stream that cannot resume.

tests/c/step_states.c prints each step's status, outputs and the state struct's bytes. A step
with an embedding index outside its table (EDGESEQ_RT_BAD_INDEX, or EDGESEQ_RT_BAD_TOKEN at the
input of a token model), or whose new state would not be finite (EDGESEQ_RT_STATE_NOT_FINITE), is
refused with the recurrent state's bytes unchanged; the accepted steps give the Python runtime's
numbers (itself checked against float64 references in tests/test_hostile_runtime.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from onnx import numpy_helper
from support.codegen_builds import GCC, SANITIZED, TOL, compile_program, rows_text
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

pytestmark = pytest.mark.slow  # compiles generated C

pytest.importorskip("edgeseq_export")

HARNESS = Path(__file__).resolve().parent / "c" / "step_states.c"
OK, BAD_TOKEN, BAD_INDEX, STATE_NOT_FINITE = 0, 2, 4, 5  # EDGESEQ_RT_* of edgeseq_rt.h
COMPILERS = [GCC, SANITIZED]
COMPILER_IDS = [c.name for c in COMPILERS]


def stream(compiler, model_path: Path, rows: np.ndarray) -> tuple[list[int], list[np.ndarray], np.ndarray]:
    """Generate the model's C, build the harness, step it through rows: (statuses, outputs of
    the accepted steps, the state struct after each step as uint32 bits)."""
    from edgeseq_export.backends.codegen import generate

    c_dir = model_path.parent / "generated"
    generate(model_path, c_dir, "hostile")
    program = compile_program(compiler, c_dir, "hostile", [HARNESS, c_dir / "hostile.c", c_dir / "edgeseq_rt.c"],
                              model_path.parent / f"step_states_{compiler.name}")
    result = subprocess.run([str(program)], input=rows_text(rows), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-3000:]
    statuses, outputs, arenas = [], [], []
    for line in result.stdout.splitlines():
        status, y, arena = line.split(";")
        statuses.append(int(status))
        if y:
            outputs.append(np.array(y.split(), np.float64))
        arenas.append(np.array([int(bits, 16) for bits in arena.split()], np.uint32))
    assert len(statuses) == len(rows), result.stderr[-3000:]
    return statuses, outputs, np.array(arenas)


def assert_refused_steps_keep_the_state(model_path: Path, statuses, arenas) -> None:
    lowered = edgeseq_runtime.lower_model(model_path, batch=1)
    initial = lowered.plan.arena.view(np.uint32)
    for t, status in enumerate(statuses):
        if status != OK:
            before = arenas[t - 1] if t else initial
            for slot in lowered.states:
                region = slice(slot.offset, slot.offset + slot.size)
                assert np.array_equal(arenas[t][region], before[region]), f"step {t} changed {slot.name}"


def assert_matches_the_runtime(model_path: Path, accepted_rows, outputs) -> None:
    expected = edgeseq_runtime.load(model_path).run(np.asarray(accepted_rows, np.float32))
    assert np.abs(np.array(outputs) - expected).max() <= TOL


@pytest.mark.parametrize("compiler", COMPILERS, ids=COMPILER_IDS)
def test_ids_that_the_smaller_table_lacks_are_refused(compiler, tmp_path):
    path, tables = two_tables(tmp_path, "small")
    good = np.arange(-SMALL_TABLE_ROWS, SMALL_TABLE_ROWS)
    bad = [*range(SMALL_TABLE_ROWS, LARGE_TABLE_ROWS), -LARGE_TABLE_ROWS, 10**8]
    statuses, outputs, _ = stream(compiler, path, np.r_[good, bad].astype(np.float32)[:, None])
    assert statuses == [OK] * len(good) + [BAD_TOKEN] * len(bad)
    np.testing.assert_allclose(outputs, tables["large"][good] + tables["small"][good], rtol=1e-6)


@pytest.mark.parametrize("compiler", COMPILERS, ids=COMPILER_IDS)
def test_a_float_index_outside_its_table_is_refused_with_the_state_unchanged(compiler, tmp_path):
    model = float_index_rnn(tmp_path)
    rows = np.array([3, -1, TABLE_ROWS, 2, 2.5, -TABLE_ROWS - 1, 1e8, 3e38, -0.5, 4], np.float32)[:, None]
    statuses, outputs, arenas = stream(compiler, model.path, rows)
    assert statuses == [OK, OK, BAD_INDEX, OK, BAD_INDEX, BAD_INDEX, BAD_INDEX, BAD_INDEX, BAD_INDEX, OK]
    assert_refused_steps_keep_the_state(model.path, statuses, arenas)
    accepted = rows[np.array(statuses) == OK]
    expected, _ = model.reference(accepted, None)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


@pytest.mark.parametrize("compiler", COMPILERS, ids=COMPILER_IDS)
def test_3e38_into_a_relu_rnn_is_refused_and_the_stream_goes_on(compiler, tmp_path):
    built = build_model(tmp_path, "RNN", input_size=8, hidden_size=8, activations=["Relu"], head="matmul")
    W = next(i for i in built.model.graph.initializer if i.name == "rnn_0_W")
    overflowing = np.float32(3e38) * np.sign(numpy_helper.to_array(W)[0, 0])
    rng = np.random.default_rng(4)
    rows = np.r_[rng.uniform(-1, 1, (5, 8)), [overflowing], rng.uniform(-1, 1, (5, 8))].astype(np.float32)
    assert first_overflow(reference_states(built, rows[:6])) == 5
    statuses, outputs, arenas = stream(compiler, built.path, rows)
    assert statuses == [OK] * 5 + [STATE_NOT_FINITE] + [OK] * 5
    assert_refused_steps_keep_the_state(built.path, statuses, arenas)
    assert_matches_the_runtime(built.path, np.delete(rows, 5, axis=0), outputs)


@pytest.mark.parametrize("case", GROWING, ids=GROWING_IDS)
def test_rows_of_1e4_to_1e6_refused_at_the_reference_overflow(case, tmp_path):
    built = growing(tmp_path, *case)
    X = np.random.default_rng(1).uniform(1e4, 1e6, (1500, 4)).astype(np.float32)
    t = first_overflow(reference_states(built, X))
    statuses, _, arenas = stream(GCC, built.path, X[:t + 1])
    assert statuses == [OK] * t + [STATE_NOT_FINITE]
    assert_refused_steps_keep_the_state(built.path, statuses, arenas)
