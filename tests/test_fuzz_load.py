"""Fuzzing ``edgeseq_runtime.load``: damaged model files load or raise ModelError, nothing else.

Valid models (``onnx_mutations.seed_models``) are damaged by hypothesis-chosen mutations and
loaded in a ``LoadSandbox`` worker: each must load (and then step) or raise ``ModelError``,
never another exception, a crash, a hang or memory taken without a bound. Each mutation gets
its own test, then mixtures of them get one more; the number of cases tried is printed at the
end of the session. The tests at the bottom are minimal reproducers of the bugs the fuzzing
found: those fixed stay as regression tests; those listed in ``KNOWN_BUGS`` are strict
expected failures (as is the fuzzing of the mutation that finds them) until fixed, when
strict makes their passing a failure until the mark is removed.

The examples are derandomized so that the suite passes or fails the same way on every run;
``benchmarks/fuzz_load_atheris.py`` explores further.
"""

import signal
from contextlib import contextmanager

import edgeseq_runtime
import onnx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from onnx import helper
from support.load_sandbox import LOADED, MEMORY, LoadSandbox
from support.onnx_builders import build_model
from support.onnx_mutations import (
    MUTATIONS,
    append_gather_diamonds,
    insert_concat_diamonds,
    insert_huge_shape,
    insert_identity_chain,
    mutated,
    seed_models,
)

EXAMPLES_PER_MUTATION = 40
MIXED_EXAMPLES = 300

# mutation -> the bug it finds today (reproduced by a test at the bottom)
KNOWN_BUGS: dict[str, str] = {}

FUZZ = settings(max_examples=EXAMPLES_PER_MUTATION, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: keeps a failure quick
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class DrawnChoices:
    """onnx_mutations.Choices drawn from hypothesis, so that every decision shows in a report."""

    def __init__(self, data):
        self.data = data

    def integer(self, low, high):
        return self.data.draw(st.integers(low, high))

    def pick(self, options):
        return self.data.draw(st.sampled_from(options))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return seed_models(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def sandbox(request):
    with LoadSandbox(seconds_per_case=30) as box:  # a load takes milliseconds; a busy machine stalls it for seconds
        yield box
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print(f"\nfuzz_load: {box.summary()}")


def assert_loads_or_refuses(sandbox, data: bytes, batch: int):
    outcome = sandbox.load(data, batch)
    assert outcome.accepted, f"{outcome.kind}: {outcome.detail}"


def test_seed_models_load_and_give_finite_outputs(seeds, sandbox):
    for name, seed in seeds.items():
        outcome = sandbox.load(seed.data, seed.batch)
        assert outcome.kind == LOADED and outcome.finite, (name, outcome)


@pytest.mark.parametrize("mutation", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])) if name in KNOWN_BUGS else name
    for name in MUTATIONS])
@FUZZ
@given(data=st.data())
def test_mutated_model_loads_or_raises_model_error(seeds, sandbox, mutation, data):
    seed = seeds[data.draw(st.sampled_from(sorted(seeds)), label="seed")]
    assert_loads_or_refuses(sandbox, mutated(seed.data, [mutation], DrawnChoices(data)), seed.batch)


@pytest.mark.slow  # the per-mutation tests cover each class; this one combines them
@settings(FUZZ, max_examples=MIXED_EXAMPLES)
@given(data=st.data())
def test_mixed_mutations_load_or_raise_model_error(seeds, sandbox, data):
    seed = seeds[data.draw(st.sampled_from(sorted(seeds)), label="seed")]
    clean = [name for name in MUTATIONS if name not in KNOWN_BUGS]
    names = data.draw(st.lists(st.sampled_from(clean), min_size=2, max_size=4), label="mutations")
    batch = data.draw(st.sampled_from([seed.batch, 1, 2]), label="batch")
    assert_loads_or_refuses(sandbox, mutated(seed.data, names, DrawnChoices(data)), batch)


# -- minimal reproducers of the known bugs -----------------------------------------------------


def _edited(tmp_path, edit, **options):
    """A build_model file after ``edit(model)``."""
    built = build_model(tmp_path, **options)
    model = onnx.load(built.path)
    edit(model)
    onnx.save(model, built.path)
    return built.path


def test_refuses_or_loads_a_long_identity_chain(tmp_path):
    path = _edited(tmp_path, lambda m: insert_identity_chain(m.graph, 0, 1200), op="GRU", head="matmul")
    try:
        edgeseq_runtime.load(path)
    except edgeseq_runtime.ModelError:
        pass  # refusing so deep a graph is as good as loading it


def test_refuses_a_graph_without_outputs(tmp_path):
    path = _edited(tmp_path, lambda m: m.graph.ClearField("output"), op="GRU")
    with pytest.raises(edgeseq_runtime.ModelError):
        edgeseq_runtime.load(path)


def test_refuses_a_state_input_whose_size_overflows(tmp_path):
    def overflowing(model):
        h0 = next(v for v in model.graph.input if v.name == "h0")
        h0.type.tensor_type.shape.dim[0].dim_value = 2**61 + 1  # [layers, batch, 8]: 8 * (2**61 + 1) = 2**64 + 8

    path = _edited(tmp_path, overflowing, op="GRU", stacked_state=True)
    with pytest.raises(edgeseq_runtime.ModelError):
        edgeseq_runtime.load(path)


def test_refuses_an_input_of_unknown_element_type(tmp_path):
    def unknown_type(model):
        model.graph.input[0].type.tensor_type.elem_type = 1000

    path = _edited(tmp_path, unknown_type, op="GRU")
    with pytest.raises(edgeseq_runtime.ModelError):
        edgeseq_runtime.load(path)


def test_refuses_an_activation_name_that_is_not_utf8(tmp_path):
    def not_utf8(model):
        model.graph.node[0].attribute.append(helper.make_attribute("activations", [b"\xff"]))

    path = _edited(tmp_path, not_utf8, op="RNN")
    with pytest.raises(edgeseq_runtime.ModelError):
        edgeseq_runtime.load(path)


def test_refuses_a_huge_constant_before_allocating_it(tmp_path, sandbox):
    path = _edited(tmp_path, lambda m: insert_huge_shape(m.graph, 0, "ConstantOfShape", 2**31), op="GRU", head="matmul")
    outcome = sandbox.load(path.read_bytes())
    assert outcome.kind != MEMORY, outcome.detail


@contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError in this (main) thread when the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


DOUBLED_READS = {  # 40 nodes each, 2**40 paths
    "concat_chain_after_state_output": (lambda m: insert_concat_diamonds(m.graph, 1, 40),
                                        dict(op="GRU", head="matmul")),
    "gather_chain_after_token_input": (lambda m: append_gather_diamonds(m.graph, "tokens", 40),
                                       dict(op="GRU", vocab=9, head="matmul")),
}


@pytest.mark.parametrize("case", DOUBLED_READS.values(), ids=DOUBLED_READS.keys())
def test_loads_or_refuses_quickly_a_chain_of_nodes_that_read_a_value_twice(tmp_path, case):
    edit, options = case
    path = _edited(tmp_path, edit, **options)
    with _time_limit(3.0):
        try:
            edgeseq_runtime.load(path)
        except edgeseq_runtime.ModelError:
            pass


def test_refuses_doubling_concats_before_allocating_their_result(tmp_path, sandbox):
    path = _edited(tmp_path, lambda m: insert_concat_diamonds(m.graph, 0, 24), op="GRU", head="matmul")
    outcome = sandbox.load(path.read_bytes())
    assert outcome.kind != MEMORY, outcome.detail


def test_refuses_a_matmul_of_a_scalar(tmp_path):
    def squeeze_input_to_scalar(model):  # one step of X, (1, 1, 1), squeezed on every axis
        next(n for n in model.graph.node if n.name == "head_squeeze").input[:] = ["X"]

    path = _edited(tmp_path, squeeze_input_to_scalar, op="GRU", input_size=1, head="matmul")
    with pytest.raises(edgeseq_runtime.ModelError):
        edgeseq_runtime.load(path)
