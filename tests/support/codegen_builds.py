"""Models for the code generation tests, and the builds and runs of the C generated from them.

`MODELS` names one small ONNX model per case (built by tests/support/onnx_builders.py; int8 ones through
`edgeseq_export.backends.quantize.quantize_int8`, which puts DequantizeLinear with per-channel scales in
front of every weight matrix). Together they use every instruction of the C runtime: LSTM, GRU
and RNN in fp32 and int8, one and two layers, Gemm and MatMul + Add heads, activations, softmax,
log-softmax, the copies that stacked state needs, embeddings of token models, a non-zero
initial state.

`Builds` makes each build once per test run, shared by the pytest-xdist workers: every model is
generated into one folder (as a firmware with several models would be), and each compiler builds
the shared runtime once. `synthetic_sensor_rows` replays the stream of
firmware_examples/common/synthetic_sensor.h, which the Cortex-M example feeds its model.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from support.onnx_builders import build_model

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_examples"
API_CHECK = Path(__file__).resolve().parents[1] / "c" / "check_model_api.c"
C99_WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
TOL = 1e-5
STEPS = 200
SIZES = dict(input_size=6, hidden_size=16, output_size=5)
VOCAB = 20


@dataclass(frozen=True)
class ModelCase:
    name: str              # the C name (--name) and the pytest id
    op: str
    int8: bool
    builder: dict          # build_model's options besides the op and the sizes

    @property
    def vocab(self) -> int:
        return self.builder.get("vocab", 0)


MODELS = [
    ModelCase("lstm_fp32_2layers", "LSTM", False, dict(num_layers=2, head="matmul")),
    ModelCase("lstm_int8_peepholes_softmax", "LSTM", True,
              dict(peepholes=True, head="gemm", head_activation="Softmax")),
    ModelCase("gru_fp32_linear_before_reset_logsoftmax", "GRU", False,
              dict(linear_before_reset=1, head="gemm", head_activation="LogSoftmax")),
    ModelCase("gru_int8_2layers_stacked_state", "GRU", True,
              dict(num_layers=2, stacked_state=True, head="matmul")),
    ModelCase("rnn_fp32_2layers_tanh", "RNN", False,
              dict(num_layers=2, head="matmul", head_activation="Tanh")),
    ModelCase("rnn_int8_relu_clip_initial_state", "RNN", True,
              dict(activations=["Relu"], clip=2.0, head="gemm", state="initializer", batch_dim=1)),
    ModelCase("lstm_fp32_tokens", "LSTM", False, dict(vocab=VOCAB, head="matmul")),
    ModelCase("gru_int8_tokens", "GRU", True, dict(vocab=VOCAB, head="gemm")),
]
MODEL_IDS = [case.name for case in MODELS]


@dataclass(frozen=True)
class HostCompiler:
    name: str
    cc: str
    cflags: str


GCC = HostCompiler("gcc", "gcc", "-O2")
# -O0: nothing optimised away before the sanitizers see it; any report aborts the program.
SANITIZED = HostCompiler("clang_sanitized", "clang",
                         "-O0 -g -fsanitize=address,undefined -fno-sanitize-recover=all")


def require(*tools: str) -> None:
    """Skip the calling test, saying which tool is missing."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install make gcc clang gcc-arm-none-eabi "
                        f"libnewlib-arm-none-eabi qemu-system-arm)")


def write_model(case: ModelCase, directory: Path) -> Path:
    """The case's ONNX file in ``directory``."""
    built = build_model(directory, case.op, seed=3, filename=f"{case.name}.onnx", **SIZES, **case.builder)
    if case.int8:
        from edgeseq_export.backends.quantize import quantize_int8

        model, _ = quantize_int8(onnx.load(built.path))
        onnx.save(model, built.path)
    return built.path


def make(directory: Path, *arguments, target: str | None = None, timeout: float = 120) -> str:
    """``make -C directory arguments [target]``; its stdout, or a test failure with its stderr."""
    command = ["make", "-s", "-C", str(directory), *[str(a) for a in arguments]]
    if target:
        command.append(str(target))
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result.stdout


class Builds:
    """Generated code and builds, each made once per test run and shared by all workers: the
    first worker to need one makes it under a file lock, the others wait and reuse it."""

    def __init__(self, tmp_path_factory):
        base = tmp_path_factory.getbasetemp()
        # pytest-xdist gives each worker its own folder inside the run's one
        self.root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "codegen_builds"
        self.root.mkdir(exist_ok=True)

    def once(self, key: str, action: Callable[[], object]) -> None:
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = self.root / f"{key}.done"
            if not done.exists():
                action()
                done.touch()

    @property
    def c_dir(self) -> Path:
        """The folder with every model's generated C (and the one copy of the runtime)."""
        self.once("models", self._generate_models)
        return self.root / "models" / "generated"

    def onnx_path(self, case: ModelCase) -> Path:
        self.once("models", self._generate_models)
        return self.root / "models" / f"{case.name}.onnx"

    def _generate_models(self) -> None:
        from edgeseq_export.backends.codegen import generate

        (self.root / "models").mkdir()
        for case in MODELS:
            generate(write_model(case, self.root / "models"), self.root / "models" / "generated", case.name)

    def host(self, compiler: HostCompiler, case: ModelCase) -> HostPrograms:
        """firmware_examples/host's program and the API check, built for ``case``."""
        require("make", compiler.cc)
        c_dir, programs = self.c_dir, HostPrograms(self.root / compiler.name, case.name)
        host_make = [FIRMWARE / "host", f"MODEL_DIR={c_dir}", f"NAME={case.name}",
                     f"BUILD={programs.directory}", f"CC={compiler.cc}", f"CFLAGS={compiler.cflags}"]
        self.once(f"{compiler.name}-runtime", lambda: make(*host_make, target=programs.runtime_object))

        def build() -> None:
            make(*host_make)
            compile_program(compiler, c_dir, case.name, [API_CHECK, programs.model_object, programs.runtime_object],
                            programs.api_check)

        self.once(f"{compiler.name}-{case.name}", build)
        return programs

    def cortex_m(self, case: ModelCase) -> list[str]:
        """The make arguments of firmware_examples/cortex-m built for ``case``."""
        require("make", "arm-none-eabi-gcc", "arm-none-eabi-size")
        arguments = [f"MODEL_DIR={self.c_dir}", f"NAME={case.name}", f"STEPS={STEPS}",
                     f"BUILD={self.root / ('cortex_m-' + case.name)}"]
        self.once(f"cortex_m-{case.name}", lambda: make(FIRMWARE / "cortex-m", *arguments))
        return arguments


def compile_program(compiler: HostCompiler, c_dir: Path, name: str, sources, output: Path) -> Path:
    """Build a program from ``sources`` (C files or objects) against the model ``name`` generated
    into ``c_dir`` (C99 with every warning an error; firmware_examples/common on the include path)."""
    require(compiler.cc)
    command = [compiler.cc, *C99_WARNINGS, *compiler.cflags.split(), f"-DMODEL_NAME={name}",
               f"-I{c_dir}", f"-I{FIRMWARE / 'common'}", *sources, "-o", output, "-lm"]
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building {output.name} of {name} failed:\n{result.stderr}")
    return output


STEP_CASES = Path(__file__).resolve().parents[1] / "c" / "step_cases.c"


class StepCases:
    """Models generated into one folder and built with tests/c/step_cases.c into one program per
    compiler that steps any of them by its C name; ``write(index, path)`` writes model ``index``
    of ``count`` at ``path``. Generated and built once per run (conftest ``builds``)."""

    def __init__(self, shared, label: str, count: int, write: Callable[[int, Path], object]):
        self.builds, self.label, self.count, self._write = shared, label, count, write
        self.folder = shared.root / label
        shared.once(f"{label}-models", self._generate)

    def c_name(self, index: int) -> str:
        return f"{self.label}{index}"

    def model_path(self, index: int) -> Path:
        return self.folder / self.c_name(index) / "model.onnx"

    def _generate(self) -> None:
        from edgeseq_export.backends import codegen

        c_dir, generated = self.folder / "generated", []
        for index in range(self.count):
            path = self.model_path(index)
            path.parent.mkdir(parents=True)
            self._write(index, path)
            generated.append(codegen.generate(path, c_dir, self.c_name(index)))
        (c_dir / "cases.h").write_text(
            "".join(f'#include "{model.name}.h"\n' for model in generated)
            + "#define CASES " + " ".join(f"X({model.name})" for model in generated) + "\n"
            + f"#define MAX_INPUT {max(model.input_size for model in generated)}\n"
            + f"#define MAX_OUTPUT {max(model.output_size for model in generated)}\n")

    def step(self, compiler: HostCompiler, index: int, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(statuses, outputs of the accepted steps) of model ``index`` in C over ``rows``."""
        c_dir, program = self.folder / "generated", self.folder / f"step_cases_{compiler.name}"
        sources = [STEP_CASES, c_dir / "edgeseq_rt.c", *(c_dir / f"{self.c_name(i)}.c" for i in range(self.count))]
        self.builds.once(f"{self.label}-{compiler.name}",
                         lambda: compile_program(compiler, c_dir, self.c_name(0), sources, program))
        result = subprocess.run([str(program), self.c_name(index)], input=rows_text(rows), capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-3000:]
        lines = [line.split(";") for line in result.stdout.splitlines()]
        assert len(lines) == len(rows), result.stdout[-2000:]
        return [int(status) for status, _ in lines], np.array([parse_rows(y)[0] for status, y in lines if y])


@dataclass(frozen=True)
class HostPrograms:
    """What Builds.host made for one model, in the build folder of one compiler."""

    directory: Path
    name: str

    @property
    def stream(self) -> Path:
        return self.directory / self.name / "stream"

    @property
    def api_check(self) -> Path:
        return self.directory / self.name / "check_api"

    @property
    def model_object(self) -> Path:
        return self.directory / self.name / f"{self.name}.o"

    @property
    def runtime_object(self) -> Path:
        """edgeseq_rt.o, shared by every model this compiler built."""
        return self.directory / "edgeseq_rt.o"


def rows_text(X: np.ndarray) -> str:
    """Rows of inputs as CSV with every float32 written exactly."""
    X = np.asarray(X, np.float32).reshape(len(X), -1)
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)


def parse_rows(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.replace(",", " ").split()] for line in text.splitlines()])


def synthetic_sensor_rows(steps: int, input_size: int, vocab: int = 0, seed: int = 1) -> np.ndarray:
    """The rows firmware_examples/common/synthetic_sensor.h gives from ``seed``: (steps, input_size)."""
    state, values = seed, []
    for _ in range(steps * input_size):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        k = state >> 8
        values.append(k % vocab if vocab else k / 2.0 ** 23 - 1.0)
    return np.array(values, np.float32).reshape(steps, input_size)


def runtime_outputs(model_path: Path, X: np.ndarray) -> np.ndarray:
    """edgeseq_runtime's outputs for the rows X, state carried from the initial state."""
    import edgeseq_runtime

    m = edgeseq_runtime.load(model_path)
    inputs = X[:, 0].astype(np.int64) if m.is_token_model else X
    return m.run(inputs)


def max_error(got: np.ndarray, expected: np.ndarray) -> float:
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    return float(np.abs(got.astype(np.float64) - expected).max())
