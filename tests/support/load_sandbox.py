"""Load untrusted model files in a child process, under a time limit and a memory limit.

A hostile file may crash the interpreter, hang it or allocate without bound; in the test
process any of these would take the whole suite down. Here a worker process loads each file
and steps the model a few times, and the parent tells the outcomes apart: a clean load, the
``ModelError`` the contract promises, any other exception, memory taken without a bound, a
crash (the worker died; its faulthandler dump says where), or a hang (no answer within the
time limit; the worker is killed). After a crash, a hang or a memory finding a new worker
takes over, so that every case starts from the same state.

Memory: the worker's address space is capped at what it uses once warmed up plus
``ADDRESS_SPACE_BUDGET``, so an attempt to allocate without bound fails quickly instead of
exhausting the machine. A loader that checks dimensions before allocating never meets that
cap: a ``MemoryError`` anywhere in an exception's chain (a ``ModelError`` raised while handling
one included) counts as a finding, and so does a case that raises the worker's peak resident
memory by more than ``MEMORY_BOUND``.

    with LoadSandbox() as sandbox:
        outcome = sandbox.load(model_bytes)      # an Outcome
        outcome = sandbox.load_file(path)        # a file beside its external data

Run as a script, this file is the worker: it reads cases from stdin (a JSON header line, then
the file's bytes, or a path in the header) and answers each with one JSON line on its original stdout. Its
``load_and_step`` also serves in-process fuzzers (benchmarks/fuzz_load_atheris.py).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass

import numpy as np

import edgeseq_runtime
from support.onnx_builders import build_model

# Outcome kinds. The first two are what the contract allows; the rest are bugs.
LOADED = "loaded"            # loaded, and a few steps ran
MODEL_ERROR = "model_error"  # edgeseq_runtime.ModelError
EXCEPTION = "exception"      # any other exception, from load or from stepping the loaded model
MEMORY = "memory"            # memory taken without a bound
CRASH = "crash"              # the worker process died
HANG = "hang"                # no answer within the time limit
ACCEPTED = frozenset({LOADED, MODEL_ERROR})

STEPS = 5  # time steps run on a model that loads: half through run(), half through step()
ADDRESS_SPACE_BUDGET = 2 << 30  # bytes of address space a case may add to the warmed-up worker
MEMORY_BOUND = 256 << 20  # peak resident memory a case may add: the seed models take kilobytes
WARM_UP_SECONDS = 300.0  # the first case may have to compile the kernels


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""  # the error's message, a traceback, or the crash's stderr
    finite: bool = True  # for LOADED: every output value was finite

    @property
    def accepted(self) -> bool:
        return self.kind in ACCEPTED


class LoadSandbox:
    """A worker process that loads model bytes; replaced after a crash, a hang or a memory finding."""

    def __init__(self, seconds_per_case: float = 10.0):
        self.seconds_per_case = seconds_per_case
        self.counts: dict[str, int] = {}
        self._process = None
        self._stderr = tempfile.TemporaryFile()

    def load(self, data: bytes, batch: int = 1) -> Outcome:
        """Load ``data`` as a model file for ``batch`` streams and step it; the outcome."""
        return self._ask({"size": len(data), "batch": batch}, data)

    def load_file(self, path, batch: int = 1) -> Outcome:
        """Load the model file at ``path`` (beside its external data) and step it; the outcome."""
        return self._ask({"path": os.fspath(path), "batch": batch}, b"")

    def _ask(self, case: dict, data: bytes) -> Outcome:
        fresh = self._process is None
        if fresh:
            self._start()
        stderr_start = self._stderr.seek(0, os.SEEK_END)
        timeout = WARM_UP_SECONDS if fresh else self.seconds_per_case
        try:
            self._process.stdin.write(json.dumps(case).encode() + b"\n" + data)
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died; reading its answer below reports the crash
        answer = self._answer(timeout)
        if answer is None:
            hung = self._process.poll() is None
            code = self._stop()
            outcome = (Outcome(HANG, f"no answer within {timeout:.0f} s") if hung else
                       Outcome(CRASH, f"worker exited with {_exit_reason(code)}\n{self._stderr_since(stderr_start)}"))
        else:
            outcome = Outcome(**answer)
            if outcome.kind == MEMORY:
                self._stop()  # its peak memory would hide the next case's
        self.counts[outcome.kind] = self.counts.get(outcome.kind, 0) + 1
        return outcome

    def summary(self) -> str:
        total = sum(self.counts.values())
        return f"{total} cases: " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items()))

    def close(self) -> None:
        if self._process is not None:
            self._stop()
        self._stderr.close()

    def __enter__(self) -> LoadSandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where ``support`` is found
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "support.load_sandbox"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env)

    def _stop(self) -> int:
        process, self._process = self._process, None
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        code = process.wait()
        process.stdin.close()
        process.stdout.close()
        return code

    def _answer(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else b""
        return json.loads(line) if line else None

    def _stderr_since(self, start: int) -> str:
        self._stderr.seek(start)
        return self._stderr.read().decode(errors="replace")[-4000:]


def _exit_reason(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"


# -- the worker side ---------------------------------------------------------------------------


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def limit_address_space() -> None:
    """Cap the address space at what the warmed-up worker uses plus the budget."""
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = used + ADDRESS_SPACE_BUDGET
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _ran_out_of_memory(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, MemoryError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _failure(what: str, error: Exception) -> dict:
    """An exception that the contract does not allow: a memory finding when memory ran out."""
    kind = EXCEPTION
    if _ran_out_of_memory(error):
        kind, what = MEMORY, f"{what} ran out of its {ADDRESS_SPACE_BUDGET >> 30} GiB address-space budget"
    return {"kind": kind, "detail": f"{what}\n" + "".join(traceback.format_exception(error))}


def _refused_step(error: ValueError) -> bool:
    """A step refused as the contract allows: a ValueError that says the state is untouched."""
    return "the state is unchanged" in str(error) or "the state is as it was" in str(error)


def _try_load_and_step(path: str, batch: int) -> dict:
    """Load and step one model file; the answer as Outcome's fields."""
    try:
        model = edgeseq_runtime.load(path, batch=batch)
    except edgeseq_runtime.ModelError as e:
        if not _ran_out_of_memory(e):
            return {"kind": MODEL_ERROR, "detail": str(e)}
        return _failure("load", e)
    except Exception as e:  # noqa: BLE001 - any other exception is the finding to report
        return _failure("load", e)
    try:
        rng = np.random.default_rng(0)
        step_shape = (model.batch,) if model.batch > 1 else ()
        if model.is_token_model:
            xs = rng.integers(0, model.vocab_size, size=(STEPS, *step_shape))
        else:
            xs = rng.standard_normal((STEPS, *step_shape, model.input_size)).astype(np.float32)
        half = STEPS // 2
        ys = [*model.run(xs[:half]), *(model.step(x) for x in xs[half:])]
        finite = all(bool(np.isfinite(y).all()) for y in ys)
    except ValueError as e:
        if not _refused_step(e):
            return _failure(f"stepping {model!r}", e)
        finite = False  # hostile weights drove the state past float32: the contract refuses the step
    except Exception as e:  # noqa: BLE001
        return _failure(f"stepping {model!r}", e)
    return {"kind": LOADED, "detail": repr(model), "finite": finite}


def load_and_step(path: str, batch: int) -> dict:
    """Load and step one model file in this process: the answer as Outcome's fields, a memory
    finding when it raised the peak resident memory too much."""
    before = _peak_rss()
    answer = _try_load_and_step(path, batch)
    grown = _peak_rss() - before
    if grown > MEMORY_BOUND and answer["kind"] in ACCEPTED:
        answer = {"kind": MEMORY, "detail": f"peak resident memory grew by {grown >> 20} MiB "
                                            f"({answer['kind']}: {answer['detail']})"}
    return answer


def _serve() -> None:
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the answers
    cases = sys.stdin.buffer
    with tempfile.TemporaryDirectory() as folder:
        # Load and step a valid model first, so that the kernels are compiled (or read from
        # numba's cache) and the libraries imported before the cap applies.
        warm_up = build_model(folder, "GRU", head="matmul", filename="warm_up.onnx")
        assert load_and_step(str(warm_up.path), 1)["kind"] == LOADED
        limit_address_space()
        path = os.path.join(folder, "model.onnx")
        while header := cases.readline():
            case = json.loads(header)
            if "path" not in case:
                with open(path, "wb") as f:
                    f.write(cases.read(case["size"]))
            answers.write(json.dumps(load_and_step(case.get("path", path), case["batch"])) + "\n")
            answers.flush()


if __name__ == "__main__":
    _serve()
