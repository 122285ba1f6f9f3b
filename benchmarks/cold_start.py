"""Cold start: a fresh process, from its start to its first output, with numba's cache empty or warm.

    python benchmarks/cold_start.py [--repeats 3] [--without-scipy] [--where 12]

Per model, in fresh subprocesses: ``load(path).step(zeros)`` with ``NUMBA_CACHE_DIR`` an empty
temporary folder (everything the model uses compiles: a new install without
``python -m edgeseq_runtime.compile``), then again with that folder as the first left it (warm:
the kernels load from the cache), and ``import numba`` alone for scale. Reports the wall time to
the first output line and the CPU time the process had spent by then (steadier than wall time on
a shared machine). The models: GRU 1/32 and LSTM 64/256 (``step_models``' exporter), and Silero
VAD v5 (``constants={"sr": 16000}``) and v6, 576-sample windows, if their files are in the test
cache. ``--without-scipy`` makes scipy unimportable in those processes, as on a device (numba
imports it, when it first loads or compiles anything, to check for BLAS: a quarter of a second).
``--where N`` lists, after the table, the N functions whose compiling took the most CPU in each
empty-cache start (numba's compile events, less the functions each compiled for itself), each
with the part LLVM took (numba's llvm_lock events: optimising and generating machine code; the
rest is numba's own typing and lowering). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from step_models import StepShape, build, export

SILERO = Path.home() / ".cache" / "edgeseq-tests" / "silero"
WINDOW = [576]  # Silero's 512 new samples after the 64 before them, at 16 kHz
FIRST_OUTPUT = """
import json, sys, time
import numpy as np, edgeseq_runtime as e
m = e.load(sys.argv[1], **json.loads(sys.argv[2]))
m.step(np.zeros((), np.int64) if m.is_token_model else np.zeros(m.input_shape, np.float32))
print(time.process_time(), flush=True)
"""
COMPILE_EVENTS = """
import time
from collections import Counter
from numba.core import event
compiles, llvm, compiling = Counter(), Counter(), []
class Exclusive(event.Listener):  # CPU seconds per function, less those of the functions it compiled
    def on_start(self, ev):
        compiling.append([ev.data["dispatcher"].py_func.__qualname__, time.process_time(), 0.0])
    def on_end(self, ev):
        name, start, inner = compiling.pop()
        spent = time.process_time() - start
        compiles[name] += spent - inner
        if compiling:
            compiling[-1][2] += spent
class Llvm(event.Listener):  # of that, LLVM's CPU seconds, for the function being compiled
    def on_start(self, ev):
        self.start = time.process_time()
    def on_end(self, ev):
        if compiling:
            llvm[compiling[-1][0]] += time.process_time() - self.start
event.register("numba:compile", Exclusive())
event.register("numba:llvm_lock", Llvm())
"""
REPORT_COMPILES = "print(json.dumps([(name, seconds, llvm[name]) for name, seconds in compiles.most_common()]))\n"
IMPORT_NUMBA = "import time, numba; print(time.process_time(), flush=True)"
WITHOUT_SCIPY = "import sys; sys.modules['scipy'] = None\n"  # an import of scipy raises ImportError


def first_output(script: str, args: list[str], cache: str | None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds) of a fresh process up to the line it prints, and what it
    printed after that line."""
    env = {**os.environ, **({"NUMBA_CACHE_DIR": cache} if cache else {})}
    start = time.perf_counter()
    # the rest of stdout is read through the same buffer as the first line (communicate() reads
    # the pipe itself, and loses what readline() had buffered); stderr goes to a file meanwhile
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen([sys.executable, "-c", script, *args], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=errors) as process:
            line = process.stdout.readline()
            wall = time.perf_counter() - start
            rest = process.stdout.read()
        if process.returncode or not line.strip():
            errors.seek(0)
            raise RuntimeError(f"the process failed: {errors.read().strip().splitlines()[-1:]}")
    return wall, float(line), rest


def models(folder: Path) -> dict[str, tuple[Path, dict]]:
    found = {}
    for shape in (StepShape("GRU", 1, 32), StepShape("LSTM", 64, 256)):
        found[f"{shape.cell} {shape.input_size}/{shape.hidden_size}"] = (
            export(build(shape), folder / f"{shape.name}.onnx"), {})
    silero = {"Silero VAD v5": ("silero_vad.onnx", {"constants": {"sr": 16000}, "state": {"state": "stateN"}}),
              "Silero VAD v6": ("silero_vad_v6.onnx", {"state": {"h": "hn", "c": "cn"}})}
    for name, (file, options) in silero.items():
        if (SILERO / file).exists():
            found[name] = (SILERO / file, {**options, "input_shape": WINDOW})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm starts and imports per model (the best counts)")
    parser.add_argument("--without-scipy", action="store_true", help="make scipy unimportable, as on a device")
    parser.add_argument("--where", type=int, default=0, metavar="N",
                        help="list the N functions whose compiling took the most CPU in each empty-cache start")
    args = parser.parse_args()
    prefix = WITHOUT_SCIPY if args.without_scipy else ""
    cold_script = prefix + (COMPILE_EVENTS + FIRST_OUTPUT + REPORT_COMPILES if args.where else FIRST_OUTPUT)
    where = {}
    print("| model | empty cache: first output (s) | CPU (s) | warm cache (s) | CPU (s) "
          "| `import numba` (s) | warm / import numba |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for name, (path, options) in models(Path(folder)).items():
            call = [str(path), json.dumps(options)]
            with tempfile.TemporaryDirectory() as cache:
                cold = first_output(cold_script, call, cache)
                warm = min(first_output(prefix + FIRST_OUTPUT, call, cache) for _ in range(args.repeats))
            numba_alone = min(first_output(prefix + IMPORT_NUMBA, [], None) for _ in range(args.repeats))
            print(f"| {name} | {cold[0]:.1f} | {cold[1]:.1f} | {warm[0]:.2f} | {warm[1]:.2f} "
                  f"| {numba_alone[0]:.2f} | {warm[0] / numba_alone[0]:.1f}x |", flush=True)
            if args.where:
                where[name] = json.loads(cold[2])
    for name, compiles in where.items():
        total, in_llvm = (sum(column) for column in list(zip(*compiles))[1:])
        print(f"\n{name}: compiling took {total:.1f} s CPU ({in_llvm:.1f} in LLVM); the most (LLVM's part):",
              ", ".join(f"{function} {seconds:.2f} ({llvm:.2f})" for function, seconds, llvm in compiles[:args.where]))


if __name__ == "__main__":
    main()
