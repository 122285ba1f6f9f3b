"""The generated C in the firmware examples: the bare-metal Cortex-M4F build (arm-none-eabi-gcc)
run under QEMU's mps2-an386 and compared with edgeseq_runtime on the same synthetic sensor stream
(<= 1e-5), its `make size` figures, and the Arduino sketch compile-checked with the Arm compiler.
"""

from __future__ import annotations

import re
import shutil

import pytest
from support.codegen_builds import (
    FIRMWARE,  # noqa: F401
    MODELS,
    STEPS,
    TOL,
    make,
    max_error,
    parse_rows,
    require,
    runtime_outputs,
    synthetic_sensor_rows,
    write_model,
)

pytestmark = pytest.mark.slow  # cross-compiles for a Cortex-M4 and runs it under QEMU

codegen = pytest.importorskip("edgeseq_export.backends.codegen")

# One fp32 and one int8 model, two layers each, between them LSTM, GRU, a Gemm and a MatMul head.
CORTEX_M_MODELS = [case for case in MODELS if case.name in ("lstm_fp32_2layers", "gru_int8_2layers_stacked_state")]
CORTEX_M_IDS = [case.name for case in CORTEX_M_MODELS]
MAX_STACK_BYTES = 2048


def header_define(builds, case, suffix: str) -> int:
    header = (builds.c_dir / f"{case.name}.h").read_text()
    return int(re.search(rf"#define {case.name}_{suffix} (\d+)", header).group(1))


@pytest.mark.parametrize("case", CORTEX_M_MODELS, ids=CORTEX_M_IDS)
def test_cortex_m4_under_qemu_matches_runtime(case, builds):
    arguments = builds.cortex_m(case)
    require("qemu-system-arm", "timeout")
    output = make(FIRMWARE / "cortex-m", *arguments, "TIMEOUT=60", target="run")
    steps = re.findall(r"^step (\d+): (.*)$", output, re.M)
    assert [int(t) for t, _ in steps] == list(range(STEPS)), output[-500:]
    got = parse_rows("\n".join(values for _, values in steps))
    X = synthetic_sensor_rows(STEPS, header_define(builds, case, "INPUT_SIZE"), case.vocab)
    err = max_error(got, runtime_outputs(builds.onnx_path(case), X))
    assert err <= TOL, f"{case.name}: Cortex-M4 and edgeseq_runtime differ by {err:.3g}"
    stack = int(re.search(r"^stack (\d+)$", output, re.M).group(1))
    assert 0 < stack <= MAX_STACK_BYTES


@pytest.mark.parametrize("case", CORTEX_M_MODELS, ids=CORTEX_M_IDS)
def test_cortex_m4_size_reports_flash_and_ram(case, builds):
    output = make(FIRMWARE / "cortex-m", *builds.cortex_m(case), target="size")
    flash, ram = map(int, re.search(r"flash (\d+) bytes, RAM (\d+) bytes", output).groups())
    model_flash, model_ram = header_define(builds, case, "FLASH_BYTES"), header_define(builds, case, "RAM_BYTES")
    assert flash >= model_flash and ram >= model_ram
    model_object = re.search(rf"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\S*/{case.name}\.o$", output, re.M)
    text, data, bss = map(int, model_object.groups())
    assert text >= model_flash and data == bss == 0, "the model's data must all be constant"


def test_arduino_sketch_compiles_against_a_generated_model(tmp_path):
    require("make", "arm-none-eabi-gcc", "arm-none-eabi-g++")
    sketch = tmp_path / "edgeseq_sensor"
    sketch.mkdir()
    shutil.copy(FIRMWARE / "arduino" / "edgeseq_sensor" / "edgeseq_sensor.ino", sketch)
    codegen.generate(write_model(MODELS[1], tmp_path), sketch, "sensor_model")
    make(FIRMWARE / "arduino", f"SKETCH_DIR={sketch}", target="check")
