"""The generated C of the glue ops of tests/test_runtime_more_ops.py (Gelu, Sin, Cos, Round, Mod,
CumSum, ArgMax / ArgMin, TopK, Resize): every case built into one program with gcc (-O2) and with
clang (AddressSanitizer + UBSan, any report aborts), both with -std=c99 -Wall -Wextra -Wpedantic
-Werror, and compared with edgeseq_runtime step by step (<= 1e-5 relative), a NaN row in mid-stream
refused with the stream going on as without it. Builds are made once per run (conftest `builds`).
"""

from __future__ import annotations

from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime import isa
from support.codegen_builds import GCC, SANITIZED, StepCases
from support.front_end_models import front_end_model
from test_codegen_conv_ops import FUNCTIONS, NOT_FINITE, records
from test_runtime_more_ops import CASES, step_inputs

pytestmark = pytest.mark.slow  # compiles generated C with gcc and clang (sanitizers too)

codegen = pytest.importorskip("edgeseq_export.backends.codegen")

RTOL = 1e-5
STEPS = 8
COMPILERS = [GCC, SANITIZED]
NAMES = list(CASES)
# The functions and instructions these ops lower to, each of which some case must reach.
COVERED = {*((isa.OPCODE.UNARY, int(f)) for f in (isa.UNARY_FUNCTION.SIN, isa.UNARY_FUNCTION.COS,
                                                   isa.UNARY_FUNCTION.ROUND, isa.UNARY_FUNCTION.GELU,
                                                   isa.UNARY_FUNCTION.GELU_TANH)),
           *((isa.OPCODE.BINARY, int(f)) for f in (isa.BINARY_FUNCTION.MOD, isa.BINARY_FUNCTION.FMOD)),
           *((isa.OPCODE.REDUCE, int(f)) for f in (isa.REDUCE_FUNCTION.ARG_MAX, isa.REDUCE_FUNCTION.ARG_MIN,
                                                    isa.REDUCE_FUNCTION.LAST_ARG_MAX, isa.REDUCE_FUNCTION.LAST_ARG_MIN)),
           (isa.OPCODE.CUMSUM, None), (isa.OPCODE.TOPK, None)}


def _write_case(index: int, path: Path) -> None:
    nodes, x_shape, initializers, options = CASES[NAMES[index]]
    front_end_model(path.parent, nodes if isinstance(nodes, list) else [nodes], x_shape, initializers,
                    filename=path.name, **{k: v for k, v in options.items() if k == "opset"})


@pytest.fixture(scope="module")
def more_ops(builds):
    return StepCases(builds, "more_ops", len(NAMES), _write_case)


@pytest.mark.parametrize("compiler", COMPILERS, ids=[c.name for c in COMPILERS])
@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_op_in_c_computes_as_the_runtime(index, compiler, more_ops):
    reference = edgeseq_runtime.load(more_ops.model_path(index))
    xs = np.concatenate([step_inputs(CASES[NAMES[index]][3], reference.input_size) for _ in range(2)])[:STEPS]
    expected = reference.run(xs)
    with_nan = np.insert(xs, STEPS // 2, np.nan, axis=0)  # refused: the stream goes on as without it
    statuses, got = more_ops.step(compiler, index, with_nan)
    assert statuses == [0] * (STEPS // 2) + [NOT_FINITE] + [0] * (STEPS - STEPS // 2)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * max(1.0, np.abs(expected).max()),
                               err_msg=NAMES[index])


def test_the_cases_reach_every_function_and_instruction_of_these_ops(more_ops):
    reached = set()
    for index in range(len(NAMES)):
        for op, fields in records(more_ops.model_path(index)):
            reached.add((op, None))
            if op in FUNCTIONS:
                reached.add((op, int(fields[FUNCTIONS[op][0]])))
    assert not COVERED - reached, sorted(COVERED - reached)
