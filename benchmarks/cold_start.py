"""Cold start: a fresh process, from its start to its first output, with numba's cache empty or warm.

    python benchmarks/cold_start.py [--repeats 3] [--without-scipy]

Per model, in fresh subprocesses: ``load(path).step(zeros)`` with ``NUMBA_CACHE_DIR`` an empty
temporary folder (everything the model uses compiles: a new install without
``python -m edgeseq_runtime.compile``), then again with that folder as the first left it (warm:
the kernels load from the cache), and ``import numba`` alone for scale. Reports the wall time to
the first output line and the CPU time the process had spent by then (steadier than wall time on
a shared machine). The models: GRU 1/32 and LSTM 64/256 (``step_models``' exporter), and Silero
VAD v5 (``constants={"sr": 16000}``) and v6, 576-sample windows, if their files are in the test
cache. ``--without-scipy`` makes scipy unimportable in those processes, as on a device (numba
imports it, when it first loads or compiles anything, to check for BLAS: a quarter of a second).
Asserts nothing.
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
IMPORT_NUMBA = "import time, numba; print(time.process_time(), flush=True)"
WITHOUT_SCIPY = "import sys; sys.modules['scipy'] = None\n"  # an import of scipy raises ImportError


def first_output(script: str, args: list[str], cache: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a fresh process up to the line it prints."""
    env = {**os.environ, **({"NUMBA_CACHE_DIR": cache} if cache else {})}
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, "-c", script, *args], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        line = process.stdout.readline()
        wall = time.perf_counter() - start
        _, errors = process.communicate()
    if process.returncode or not line.strip():
        raise RuntimeError(f"the process failed: {errors.strip().splitlines()[-1:]}")
    return wall, float(line)


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
    args = parser.parse_args()
    prefix = WITHOUT_SCIPY if args.without_scipy else ""
    print("| model | empty cache: first output (s) | CPU (s) | warm cache (s) | CPU (s) "
          "| `import numba` (s) | warm / import numba |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for name, (path, options) in models(Path(folder)).items():
            call = [str(path), json.dumps(options)]
            with tempfile.TemporaryDirectory() as cache:
                cold = first_output(prefix + FIRST_OUTPUT, call, cache)
                warm = min(first_output(prefix + FIRST_OUTPUT, call, cache) for _ in range(args.repeats))
            numba_alone = min(first_output(prefix + IMPORT_NUMBA, [], None) for _ in range(args.repeats))
            print(f"| {name} | {cold[0]:.1f} | {cold[1]:.1f} | {warm[0]:.2f} | {warm[1]:.2f} "
                  f"| {numba_alone[0]:.2f} | {warm[0] / numba_alone[0]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
