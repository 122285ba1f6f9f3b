"""edgeseq_runtime streams what torch.onnx.export writes, step by step, like PyTorch does.

Each case builds a seeded ``torch.nn.GRU`` / ``LSTM`` / ``RNN`` + ``Linear`` step model
(tests/support/torch_models.py), exports it with the TorchScript exporter, the dynamo exporter, and the
dynamo exporter with its weights in an external ``.onnx.data`` file, loads it with
``edgeseq_runtime.load(path, batch=B)``, streams 60 random steps through ``m.step``, and compares
with two independent references: PyTorch running the whole sequence at once, and onnxruntime
stepping the exported graph with its state outputs fed back.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edgeseq_runtime  # noqa: E402
from support.torch_models import (  # noqa: E402
    EXPORTERS,
    OrtStepper,
    StepSpec,
    build,
    export_step,
    external_initializers,
    ort_session,
    torch_sequence,
)

STEPS = 60
TOLERANCE = 1e-5  # max abs error, fp32

SPECS = [
    StepSpec("GRU"),
    StepSpec("GRU", batch_first=True),
    StepSpec("GRU", num_layers=2),
    StepSpec("GRU", num_layers=2, batch_first=True, bias=False),
    StepSpec("LSTM"),
    StepSpec("LSTM", batch_first=True),
    StepSpec("LSTM", num_layers=2, batch_first=True),
    StepSpec("LSTM", bias=False),
    StepSpec("RNN"),
    StepSpec("RNN", nonlinearity="relu", batch_first=True),
    StepSpec("RNN", nonlinearity="relu", num_layers=2),
    StepSpec("RNN", num_layers=2, batch_first=True, bias=False),
]

spec_params = pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
exporter_params = pytest.mark.parametrize("exporter", [  # torch.onnx's dynamo exporter takes seconds a model
    pytest.param(e, marks=pytest.mark.slow) if "dynamo" in e else e for e in EXPORTERS])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(spec, exporter) -> (model, path)``; each model is built and exported once."""
    cache = {}
    directory = tmp_path_factory.mktemp("torch_export")

    def get(spec: StepSpec, exporter: str):
        if (spec, exporter) not in cache:
            model = build(spec, seed=SPECS.index(spec))
            path = export_step(model, directory / f"{spec.name}-{exporter}.onnx", exporter)
            if EXPORTERS[exporter]["external_data"]:
                # Otherwise this case would not test what it says it tests.
                assert external_initializers(path), f"{path.name}: no external initializer"
                assert path.with_name(path.name + ".data").stat().st_size > 0
            cache[spec, exporter] = model, path
        return cache[spec, exporter]

    return get


def random_sequence(spec: StepSpec, batch: int, seed: int = 1) -> np.ndarray:
    """``(STEPS, batch, input)`` standard normal float32."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((STEPS, batch, spec.input_size)).astype(np.float32)


def stream(m, x_tbi: np.ndarray) -> np.ndarray:
    """Stream ``(T, batch, input)`` through ``m.step``; returns ``(T, batch, output)``."""
    if m.batch == 1:
        return np.stack([m.step(x[0])[None] for x in x_tbi])
    return np.stack([m.step(x) for x in x_tbi])


def max_error(actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))


@spec_params
@exporter_params
@pytest.mark.parametrize("batch", [1, 3], ids=lambda b: f"batch{b}")
def test_step_matches_torch_and_onnxruntime(exported, spec, exporter, batch, tmp_path,
                                            monkeypatch):
    model, path = exported(spec, exporter)
    x = random_sequence(spec, batch)
    y_torch, state_torch = torch_sequence(model, x)
    ort_stepper = OrtStepper(spec, ort_session(path), batch)
    y_ort = ort_stepper.sequence(x)
    # The references agree with each other, or the export (not edgeseq) is at fault.
    assert max_error(y_ort, y_torch) <= TOLERANCE, "onnxruntime disagrees with PyTorch"

    monkeypatch.chdir(tmp_path)  # external data resolves next to the model, not in the cwd
    m = edgeseq_runtime.load(path, batch=batch)
    assert (m.input_size, m.output_size, m.batch) == (spec.input_size, spec.output_size, batch)

    y_edge = stream(m, x)
    assert y_edge.dtype == np.float32
    err_torch, err_ort = max_error(y_edge, y_torch), max_error(y_edge, y_ort)
    assert err_torch <= TOLERANCE and err_ort <= TOLERANCE, (
        f"{path.name}, batch {batch}: max |edgeseq - torch| = {err_torch:.3g}, "
        f"max |edgeseq - onnxruntime| = {err_ort:.3g} over {STEPS} steps; first step "
        f"{max_error(y_edge[:1], y_torch[:1]):.3g}")

    state = m.get_state()
    assert sorted(state) == sorted(spec.state_inputs), f"state keys {sorted(state)}"
    for name, expected in state_torch.items():
        assert state[name].shape == expected.shape, f"{name}: shape {state[name].shape}"
        assert max_error(state[name], expected) <= TOLERANCE, (
            f"{name}: max |edgeseq - torch| = {max_error(state[name], expected):.3g}")


@spec_params
@exporter_params
def test_run_equals_steps_and_reset_restarts(exported, spec, exporter):
    model, path = exported(spec, exporter)
    batch = 3
    x = random_sequence(spec, batch, seed=2)
    m = edgeseq_runtime.load(path, batch=batch)

    y_run = m.run(x)
    m.reset()
    y_steps = stream(m, x)
    np.testing.assert_array_equal(y_run, y_steps, err_msg="run(X) != T calls of step")
    assert max_error(y_run, torch_sequence(model, x)[0]) <= TOLERANCE
