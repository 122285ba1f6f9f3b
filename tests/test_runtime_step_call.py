"""How ``step`` and ``run`` hand arrays to the compiled code: they call it directly, without
numba's dispatcher (which types every argument of every call), so every array the code receives
must already have the one layout it was compiled for. Inputs in any other layout (read-only,
unaligned, strided) are taken as values, and give the numbers of a plain copy; an ``out`` the code
could not write is refused in one line, before anything changes; one it can is filled and returned,
whether ``step`` takes it on its fast path or only after the full checks. A value that is not
finite is refused by its place in the step, in any layout. One stream and three (whose arrays the
code receives flattened). A token model's id given as an int (taken without the
checks of an array) steps as the same id in an array; an int or number that is no id is refused as
an array of it is. References: the same stream fed plain arrays, and the float64 references of
``support.onnx_builders``."""

from __future__ import annotations

import numpy as np
import pytest
from support.onnx_builders import build_model

edgeseq_runtime = pytest.importorskip("edgeseq_runtime")

STEPS = 12
TOL = 1e-5


@pytest.fixture(scope="module", params=[1, 3], ids=["batch1", "batch3"])
def gru(tmp_path_factory, request):
    built = build_model(tmp_path_factory.mktemp("gru"), "GRU", input_size=4, hidden_size=8, head="matmul",
                        batch=request.param)
    return built, built.random_steps(np.random.default_rng(5), STEPS)


def load(built):
    return edgeseq_runtime.load(built.path, batch=built.batch)


def output_shape(model):
    return (model.output_size,) if model.batch == 1 else (model.batch, model.output_size)


def read_only(x):
    x = x.copy()
    x.flags.writeable = False
    return x


def unaligned(x):
    """x's values in a float32 array whose data starts one byte past an aligned address."""
    raw = np.zeros(x.nbytes + 1, np.uint8)[1:]
    view = raw.view(np.float32)
    view[:] = x.ravel()
    assert not view.flags.aligned
    return view.reshape(x.shape)


def strided(x):
    wide = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), np.float32)
    wide[..., ::2] = x
    return wide[..., ::2]


LAYOUTS = {"read_only": read_only, "unaligned": unaligned, "strided": strided}


def steps_checked(built, xs) -> np.ndarray:
    """The outputs of a fresh load of ``built`` stepped over plain ``xs``, each within TOL of the
    model's references."""
    model = load(built)
    expected = np.stack([model.step(x) for x in xs])
    for name, reference in built.references(xs).items():
        assert np.abs(expected - reference).max() <= TOL, name
    return expected


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_inputs_of_any_layout_step_and_run_as_their_values(gru, layout):
    built, xs = gru
    expected = steps_checked(built, xs)
    model = load(built)
    stepped = np.stack([model.step(LAYOUTS[layout](x)) for x in xs])
    assert np.array_equal(stepped, expected)
    model.reset()
    assert np.array_equal(model.run(LAYOUTS[layout](xs)), expected)


@pytest.mark.parametrize("bad", ["read_only", "unaligned", "strided", "float64", "wrong_shape"])
def test_an_out_the_code_cannot_write_is_refused_in_one_line_and_changes_nothing(gru, bad):
    built, xs = gru
    model = load(built)
    model.run(xs[:3])
    before, steps = model.get_state(), model.steps
    good = np.empty(output_shape(model), np.float32)
    out = {"read_only": read_only(good), "unaligned": unaligned(good), "strided": strided(good),
           "float64": good.astype(np.float64), "wrong_shape": np.empty(good.size + 1, np.float32)}[bad]
    with pytest.raises(ValueError, match=r"^out must be a writeable, aligned, C-contiguous float32 array of "
                                         rf"shape \({', '.join(map(str, good.shape))},?\)$"):
        model.step(xs[3], out=out)
    assert model.steps == steps
    for name, value in model.get_state().items():
        assert np.array_equal(value, before[name])


class Float32Subclass(np.ndarray):
    pass


# the kinds of out step takes: float32 arrays it may write, on its fast path (plain) or after the
# full checks (an equal dtype that is another object, a subclass of ndarray)
GOOD_OUTS = {
    "plain": lambda shape: np.empty(shape, np.float32),
    "equal_dtype": lambda shape: np.empty(shape, np.dtype(np.float32, metadata={"unit": "V"})),
    "subclass": lambda shape: np.empty(shape, np.float32).view(Float32Subclass),
}


@pytest.mark.parametrize("kind", sorted(GOOD_OUTS))
def test_an_out_the_code_can_write_receives_the_step_and_is_returned(gru, kind):
    built, xs = gru
    plain = load(built)
    expected = np.stack([plain.step(x) for x in xs])
    model = load(built)
    outs = [GOOD_OUTS[kind](output_shape(model)) for _ in xs]
    returned = [model.step(x, out=out) for x, out in zip(xs, outs)]
    assert all(y is out for y, out in zip(returned, outs))
    assert np.array_equal(np.stack(outs), expected)
    assert model.steps == len(xs)


VOCAB = 17


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """A token model, batch 1, and every id it takes (negatives count from the end) in a random order."""
    built = build_model(tmp_path_factory.mktemp("tokens"), "GRU", input_size=4, hidden_size=8, head="matmul",
                        vocab=VOCAB)
    return built, np.random.default_rng(7).permutation(np.arange(-VOCAB, VOCAB))[:, None]


def test_a_token_id_given_as_an_int_steps_as_the_same_id_in_an_array(tokens):
    built, ids = tokens
    expected = steps_checked(built, ids)
    as_ints = load(built)
    assert np.array_equal(np.stack([as_ints.step(int(row[0])) for row in ids]), expected)
    assert as_ints.steps == len(ids)


@pytest.mark.parametrize("x, message", [
    (VOCAB, rf"^input value 0 \({VOCAB}\.0\) is not a token id of this model; the state is unchanged$"),
    (-VOCAB - 1, rf"^input value 0 \(-{VOCAB + 1}\.0\) is not a token id of this model; the state is unchanged$"),
    (2**70, r"^x has dtype object; this token model takes integer ids$"),
    (True, r"^x has dtype bool; this token model takes integer ids$"),
    (5.0, r"^x has dtype float64; this token model takes integer ids$"),
])
def test_an_int_or_number_that_is_no_id_is_refused_and_changes_nothing(tokens, x, message):
    built, ids = tokens
    model = load(built)
    model.run(ids[:3])
    before, steps = model.get_state(), model.steps
    with pytest.raises(ValueError, match=message):
        model.step(x)
    assert model.steps == steps
    for name, value in model.get_state().items():
        assert np.array_equal(value, before[name])


def test_a_token_model_of_three_streams_refuses_one_int(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=4, hidden_size=8, head="matmul", vocab=VOCAB, batch=3)
    model = load(built)
    with pytest.raises(ValueError, match=r"^x has shape \(\), expected \(3,\)$"):
        model.step(5)
    assert model.steps == 0


@pytest.mark.parametrize("layout", ["plain", *sorted(LAYOUTS)])
def test_a_value_that_is_not_finite_is_refused_by_its_place_in_the_step(gru, layout):
    built, xs = gru
    model = load(built)
    model.run(xs[:3])
    before, steps = model.get_state(), model.steps
    x = xs[3].copy()
    x.flat[x.size - 2] = np.nan  # in the last stream's row when there are several
    x = x if layout == "plain" else LAYOUTS[layout](x)
    with pytest.raises(ValueError, match=rf"^input value {x.size - 2} \(nan\) is not finite; the state is unchanged$"):
        model.step(x)
    assert model.steps == steps
    for name, value in model.get_state().items():
        assert np.array_equal(value, before[name])
