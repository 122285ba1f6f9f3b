"""Loading a hostile model file ends in a model or a ModelError, quickly and in bounded memory.

A few hundred bytes of ONNX can ask constant folding for gigabytes (a Pad, OneHot, Resize or
broadcast Mul of 2**31 elements), 10**12 multiply-adds (a Conv), a Loop of 10**12 iterations or
one whose condition never turns false, a Scan over millions of rows, subgraphs nested deeper than
anyone needs, or random values that would change the model at each load. Each case is loaded in
a ``LoadSandbox`` worker (time limit, address-space cap, peak-memory bound): it must be refused
with a ModelError that names the offending node. Control flow within the budget still folds,
to the numbers of ONNX's reference evaluator.
"""

import numpy as np
import onnx
import pytest

import edgeseq_runtime
from load_sandbox import MODEL_ERROR, LoadSandbox
from onnx_builders import build_model
from onnx_mutations import CONTROL_FLOW_BOMBS, FOLD_BOMBS, insert_fold_bomb

SECONDS_PER_CASE = 5  # a refusal takes well under a second; a hang is killed after this

HOSTILE_SIZES = {  # bomb -> its size: elements, multiply-adds, iterations or nesting levels
    **{kind: 2**31 for kind in FOLD_BOMBS},
    "Conv": 10**12, "MatMul": 2**33, "Einsum": 2**34,
    "Loop": 10**12, "LoopForever": 0, "NestedLoop": 4096**2, "Scan": 1 << 22, "If": 2**31, "NestedIf": 24,
}
WITHIN_BUDGET = {"Loop": 7, "Scan": 5, "If": 4, "NestedIf": 3, "NestedLoop": 9}  # results broadcast into [1, 1, 5]


@pytest.fixture(scope="module")
def sandbox():
    with LoadSandbox(seconds_per_case=SECONDS_PER_CASE) as box:
        yield box


def with_bomb(tmp_path, kind: str, size: int):
    """A GRU model whose output adds the result of bomb ``kind``; (its Built, the bomb's node prefix)."""
    built = build_model(tmp_path, "GRU", head="matmul", filename=f"{kind}.onnx")
    prefix = insert_fold_bomb(built.model.graph, 0, kind, size)
    onnx.save(built.model, built.path)
    return built, prefix


@pytest.mark.parametrize("kind", [*FOLD_BOMBS, *CONTROL_FLOW_BOMBS])
def test_refuses_a_constant_computation_beyond_the_budget_before_running_it(tmp_path, sandbox, kind):
    built, prefix = with_bomb(tmp_path, kind, HOSTILE_SIZES[kind])
    outcome = sandbox.load(built.path.read_bytes())
    assert outcome.kind == MODEL_ERROR, f"{outcome.kind}: {outcome.detail}"
    assert prefix in outcome.detail and "\n" not in outcome.detail, outcome.detail


@pytest.mark.parametrize("kind", sorted(WITHIN_BUDGET))
def test_folds_control_flow_within_the_budget_like_the_reference_evaluator(tmp_path, kind):
    built, _ = with_bomb(tmp_path, kind, WITHIN_BUDGET[kind])
    X = np.random.default_rng(0).standard_normal((6, built.input_size)).astype(np.float32)
    expected = built.reference_onnx(X)
    np.testing.assert_allclose(edgeseq_runtime.load(built.path).run(X), expected, rtol=1e-5, atol=1e-5)
