"""The garbage collector around the runtime's start (edgeseq_runtime.collector): paused while
long-lived objects are made, running again for a compile, and always given back as it was."""

import gc
import json
import subprocess
import sys
import textwrap

import edgeseq_runtime
import pytest
from edgeseq_runtime.collector import paused_for_long_lived_objects
from numba import njit
from support.onnx_builders import build_model


@pytest.fixture(autouse=True)
def collector_enabled():
    """Each test starts with the collector on and nothing frozen, as a fresh process has it."""
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    (gc.enable if was_enabled else gc.disable)()


def test_the_collector_pauses_in_the_block_and_runs_again_after_it():
    with paused_for_long_lived_objects():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # long-lived objects
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # joined the oldest generation, not left frozen
    assert gc.is_tracked(made[0])
    cycle = [made]
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 2  # the collector still finds garbage


def test_an_exception_in_the_block_gives_the_collector_back():
    with pytest.raises(ZeroDivisionError), paused_for_long_lived_objects():
        1 / 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_compile_in_the_block_lets_the_collector_run_for_it():
    def twice(x):
        return 2 * x

    compiled = njit(cache=False)(twice)
    with paused_for_long_lived_objects():
        assert not gc.isenabled()
        assert compiled(21) == 42  # numba compiles it now
        assert gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_turned_off_stays_off():
    gc.disable()
    with paused_for_long_lived_objects():
        pass
    assert not gc.isenabled()


def test_objects_the_process_froze_stay_frozen():
    kept = [[i] for i in range(100)]
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    with paused_for_long_lived_objects():
        assert gc.isenabled()  # nothing paused: the process runs its collector its own way
    assert gc.get_freeze_count() == frozen


def test_a_load_that_fails_gives_the_collector_back(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(edgeseq_runtime.ModelError, match="bad.onnx"):
        edgeseq_runtime.load(bad)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("before", ["", pytest.param("gc.disable()", marks=pytest.mark.slow),
                                    pytest.param("gc.freeze()", marks=pytest.mark.slow)])
def test_a_fresh_process_has_its_collector_as_it_set_it_after_import_and_load(before, tmp_path):
    """Import and load in a new process (the import is what pauses first): the collector is on
    again, or still off, and the process's own frozen objects stay frozen."""
    script = textwrap.dedent(f"""
        import gc, json, sys
        {before}
        enabled, frozen = gc.isenabled(), gc.get_freeze_count()
        import numpy as np, edgeseq_runtime
        after_import = [gc.isenabled(), gc.get_freeze_count()]
        m = edgeseq_runtime.load(sys.argv[1])
        m.step(np.zeros(m.input_size, np.float32))
        print(json.dumps([[enabled, frozen], after_import, [gc.isenabled(), gc.get_freeze_count()]]))
    """)
    model = build_model(tmp_path, "GRU")
    out = subprocess.run([sys.executable, "-c", script, str(model.path)], capture_output=True, text=True,
                         check=True)
    (enabled, frozen), after_import, after_load = json.loads(out.stdout)
    for is_enabled, freeze_count in (after_import, after_load):
        assert is_enabled == enabled
        if before == "gc.freeze()":  # the frozen objects stay frozen (a few die or come back meanwhile)
            assert freeze_count > 0.9 * frozen
        else:
            assert freeze_count == 0
