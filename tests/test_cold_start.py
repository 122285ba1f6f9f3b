"""An empty cache's start compiles each shared function once (kernels.linking): the kernels apply
each activation through its one address in ``activations.APPLY``, and both entry points run the
interpreter through the one address of ``run_plan``, instead of each caller optimising its own
copy of them again; a model compiles only the activations it applies."""

import os
import subprocess
import sys
import textwrap

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime.isa import ACTIVATION_KIND
from edgeseq_runtime.kernels import linking
from edgeseq_runtime.kernels.activations import APPLY
from edgeseq_runtime.kernels.interpreter import run_plan
from support.onnx_builders import build_model


def _without_address(function):
    """Empty ``function``'s cell for a while (as in a process that never asked for its address)."""
    cells, index = linking._slots[function] if function in linking._slots else (linking._cells[function][1], None)

    class Emptied:
        def __enter__(self):
            if index is None:
                self.at, cells.value = cells.value, 0
            else:
                self.at, cells[index] = cells[index], 0

        def __exit__(self, *exc):
            if index is None:
                cells.value = self.at
            else:
                cells[index] = self.at

    return Emptied()


def test_every_activation_has_a_function_in_the_table():
    assert set(APPLY.functions) == set(ACTIVATION_KIND)


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
def test_the_kernels_apply_their_activations_through_one_address(tmp_path, cell):
    built = build_model(tmp_path, cell, input_size=3, hidden_size=8, head="gemm", head_activation="Sigmoid")
    steps = built.random_steps(np.random.default_rng(2), 4)
    model = edgeseq_runtime.load(built.path)
    with _without_address(APPLY.functions[ACTIVATION_KIND.SIGMOID]), \
            pytest.raises(RuntimeError, match="this activation has no address"):
        model.step(steps[0])
    model = edgeseq_runtime.load(built.path)
    outputs = [model.step(x) for x in steps]
    np.testing.assert_allclose(outputs, built.reference_numpy(steps), rtol=1e-5, atol=1e-6)


def test_both_entry_points_run_the_interpreter_through_one_address(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=8, head="matmul")
    steps = built.random_steps(np.random.default_rng(3), 4)
    model = edgeseq_runtime.load(built.path)
    model.step(steps[0])
    before = model.get_state()
    with _without_address(run_plan):
        for call in (lambda: model.step(steps[1]), lambda: model.run(steps[1:])):
            with pytest.raises(RuntimeError, match="run_plan has no address"):
                call()
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[name])
    np.testing.assert_allclose(model.run(steps[1:]), built.reference_numpy(steps)[1:], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # compiles a model's kernels afresh (about 5 s)
def test_an_empty_cache_compiles_the_activations_and_the_interpreter_once_not_inside_their_callers(tmp_path):
    built = build_model(tmp_path, "LSTM", input_size=3, hidden_size=4, head="gemm", head_activation="Tanh")
    script = textwrap.dedent(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.activations import APPLY
        from edgeseq_runtime.kernels.interpreter import ENTRY_POINTS, KERNELS, run_plan, run_stages
        m = edgeseq_runtime.load({str(built.path)!r})
        for entry in ENTRY_POINTS:
            entry(m._model, m._arena, np.zeros(3, np.float32), np.empty(m.output_size, np.float32), 1,
                  np.empty(0, np.float32), m._kernels)

        def defines(caller, callee):  # whether caller's code holds a copy of callee's
            module, name = callee.py_func.__module__.split(".")[-1], callee.__name__
            mangled = f"{{len(module)}}{{module}}{{len(name)}}{{name}}"
            return any(line.startswith("define") and mangled in line
                       for ir in caller.inspect_llvm().values() for line in ir.splitlines())

        callers = [kernel for kernel in KERNELS.values() if kernel.overloads] + list(ENTRY_POINTS)
        shared = [run_plan, *APPLY.functions.values()]
        print(sorted(c.__name__ for c in callers))
        print(sorted(c.__name__ for c in callers if any(defines(c, f) for f in shared)))
        print(sorted(f.__name__ for f in APPLY.functions.values() if f.overloads))
        print(bool(run_stages.overloads))
        m.run(np.zeros((3, 3), np.float32))
        print(bool(run_stages.overloads))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    compiled, with_copies, activations, stages_after_steps, stages_after_run = result.stdout.splitlines()
    assert compiled == str(sorted(["lstm_f32", "dense_f32", "activation_f32", "execute", "execute_holding_gil"]))
    assert with_copies == "[]"
    assert activations == str(["sigmoid", "tanh"])  # the LSTM's f, g and h, and the head's Tanh
    # the stage-by-stage loop of run compiles when a run first projects its inputs, not for steps
    assert (stages_after_steps, stages_after_run) == ("False", "True")
