"""The generated C on the host: built with gcc and with clang (-Wall -Wextra -Wpedantic -Werror),
run through firmware_examples/host, and compared with edgeseq_runtime over 200 steps (<= 1e-5,
fp32 and int8); NaN / Inf rows and bad token ids rejected with the state untouched; the C API
contract (tests/c/check_model_api.c); an AddressSanitizer + UBSan run; and static properties of
the objects (no allocation, no mutable globals, no VLAs, a bounded stack).

The models are tests/support/codegen_builds.MODELS; each build compiles the shared runtime once.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from support.codegen_builds import (
    C99_WARNINGS,  # noqa: F401
    GCC,
    MODEL_IDS,
    MODELS,
    SANITIZED,
    SIZES,
    STEPS,
    TOL,
    VOCAB,
    max_error,
    parse_rows,
    require,
    rows_text,
    runtime_outputs,
)

pytestmark = pytest.mark.slow  # compiles generated C with gcc and clang (sanitizers too)

pytest.importorskip("edgeseq_export")

# What the generated code and the runtime may call: libm functions that newlib has too (softmax,
# softplus, the front ends' pointwise math) and the compiler's own block copies. Anything else
# (malloc, printf, ...) would break the firmware promise.
ALLOWED_CALLS = {"expf", "logf", "log1pf", "expm1f", "sqrtf", "powf", "erff", "floorf", "ceilf", "rintf", "sinf",
                 "cosf", "tanhf", "fmodf", "memcpy", "memmove", "memset"}
STRICT_WARNINGS = ["-Wvla", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wundef",
                   "-Wcast-qual", "-Wdouble-promotion", "-Wconversion"]
STACK_LIMIT = 1024  # bytes per function (gcc -Wstack-usage): any unbounded stack fails too


def random_rows(case, rng) -> np.ndarray:
    if case.vocab:
        return rng.integers(-VOCAB, VOCAB, size=(STEPS, 1)).astype(np.float32)
    return rng.uniform(-1, 1, size=(STEPS, SIZES["input_size"])).astype(np.float32)


def stream(program, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(program)], input=text, capture_output=True, text=True, timeout=60)


def with_bad_rows(case, X: np.ndarray) -> tuple[str, list[str]]:
    """X as CSV with rejected rows in the middle, and the statuses they must be reported with."""
    bad = [np.full(X.shape[1], np.nan), np.full(X.shape[1], np.inf), np.r_[X[0, :-1], -np.inf]]
    statuses = ["1", "1", "1"]
    if case.vocab:
        bad += [[0.5], [VOCAB], [-VOCAB - 1]]
        statuses += ["2", "2", "2"]
    half = len(X) // 2
    text = rows_text(X[:half]) + rows_text(np.array(bad, np.float32)) + rows_text(X[half:])
    return text, statuses


@pytest.mark.parametrize("case", MODELS, ids=MODEL_IDS)
def test_gcc_build_matches_runtime_over_200_steps(case, builds):
    X = random_rows(case, np.random.default_rng(7))
    result = stream(builds.host(GCC, case).stream, rows_text(X))
    assert result.returncode == 0, result.stderr
    err = max_error(parse_rows(result.stdout), runtime_outputs(builds.onnx_path(case), X))
    assert err <= TOL, f"{case.name}: C and edgeseq_runtime differ by {err:.3g}"


@pytest.mark.parametrize("case", MODELS, ids=MODEL_IDS)
def test_rejected_rows_leave_the_state_untouched(case, builds):
    """NaN / Inf rows (and bad token ids) in mid-stream: reported, skipped, and the outputs
    after them are those of the stream without them."""
    X = random_rows(case, np.random.default_rng(8))
    text, statuses = with_bad_rows(case, X)
    result = stream(builds.host(GCC, case).stream, text)
    assert result.returncode == 2, result.stderr
    assert re.findall(r"rejected \(status (\d)\), state unchanged", result.stderr) == statuses
    err = max_error(parse_rows(result.stdout), runtime_outputs(builds.onnx_path(case), X))
    assert err <= TOL


@pytest.mark.parametrize("case", MODELS, ids=MODEL_IDS)
def test_c_api_contract(case, builds):
    result = subprocess.run([str(builds.host(GCC, case).api_check)], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stdout + result.stderr


@pytest.mark.parametrize("case", MODELS, ids=MODEL_IDS)
def test_address_and_undefined_behaviour_sanitizers_are_clean(case, builds):
    """clang with -Werror, ASan and UBSan (any report aborts): the API check, and a stream with
    rejected rows that still matches the runtime."""
    programs = builds.host(SANITIZED, case)
    check = subprocess.run([str(programs.api_check)], capture_output=True, text=True, timeout=120)
    assert (check.returncode, check.stdout.strip()) == (0, "ok"), check.stdout + check.stderr
    X = random_rows(case, np.random.default_rng(9))
    text, _ = with_bad_rows(case, X)
    result = stream(programs.stream, text)
    assert result.returncode == 2 and "Sanitizer" not in result.stderr, result.stderr
    assert max_error(parse_rows(result.stdout), runtime_outputs(builds.onnx_path(case), X)) <= TOL


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_strict_warnings_no_vlas_and_a_bounded_stack(compiler, builds, tmp_path):
    """The runtime and every generated file compile without a warning under stricter flags,
    including -Wvla; gcc's -Wstack-usage (which needs the optimised runtime) fails on any
    function whose stack is unbounded or large."""
    require(compiler)
    c_dir = builds.c_dir
    flags = [compiler, *C99_WARNINGS, *STRICT_WARNINGS, f"-I{c_dir}"]
    commands = [[*flags, "-fsyntax-only", str(c_dir / f"{case.name}.c")] for case in MODELS]
    if compiler == "gcc":
        commands.append([*flags, "-O2", f"-Wstack-usage={STACK_LIMIT}", "-c", str(c_dir / "edgeseq_rt.c"),
                         "-o", str(tmp_path / "edgeseq_rt.o")])
    else:
        commands.append([*flags, "-fsyntax-only", str(c_dir / "edgeseq_rt.c")])
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr}"


def test_objects_allocate_nothing_and_keep_no_mutable_globals(builds):
    """The runtime and the generated code call only libm and block copies, and define no
    writable data (.data, .bss): all state is in the caller's NAME_state_t. (On a PIE host a
    constant struct of pointers lands in .data.rel.ro, read-only once relocated.)"""
    require("objdump")
    programs = [builds.host(GCC, case) for case in MODELS]
    objects = [programs[0].runtime_object, *(p.model_object for p in programs)]
    for obj in objects:
        table = subprocess.run(["objdump", "-t", str(obj)], capture_output=True, text=True, check=True).stdout
        undefined = set(re.findall(r"\*UND\*\s+\S+\s+(\S+)", table))
        unexpected = undefined - ALLOWED_CALLS - {"edgeseq_rt_reset", "edgeseq_rt_step"}
        assert not unexpected, f"{obj.name} calls {sorted(unexpected)}"
        writable = re.findall(r"\s(\.bss\S*|\.data(?!\.rel\.ro)\S*|\*COM\*)\s+\S+\s+(\S+)", table)
        assert not [w for w in writable if w[1] != w[0]], f"{obj.name} has writable globals: {writable}"


def test_host_example_reports_a_malformed_row(builds):
    result = stream(builds.host(GCC, MODELS[0]).stream, "1,2,3\n")
    assert result.returncode == 1
    assert "line 1: expected 6 numbers" in result.stderr


def test_host_example_bench_mode(builds):
    result = subprocess.run([str(builds.host(GCC, MODELS[0]).stream), "--bench", "1000"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[\d.]+ ns per step over 1000 steps\n", result.stdout)
