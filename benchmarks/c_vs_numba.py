"""The generated C next to the Numba runtime, and what the C costs on a Cortex-M4.

    python benchmarks/c_vs_numba.py [--steps 10000] [--repeats 7]

For GRU and LSTM models (a torch.nn layer of 16 inputs and 64 hidden, or 64 and 256, with a
Linear head to 3 outputs; exported by edgeseq's exporter with the TorchScript exporter:
``step_models``), in fp32 and in int8 (QDQ weights written by edgeseq's quantizer,
edgeseq_export.backends.quantize.quantize), it reports:

* for 16/64 (64/256 needs more memory than the board has), Cortex-M4 (firmware_examples/cortex-m, arm-none-eabi-gcc -O2, QEMU mps2-an386): flash (vectors,
  text, rodata and the .data image, from `make size`), of which the model's constant data
  (NAME_FLASH_BYTES) and the runtime's code (edgeseq_rt.o); RAM: .data + .bss + the stack's peak
  (painted at reset and measured by `make run`);
* host time per step of the generated C (firmware_examples/host built with gcc -O3 -march=native,
  `stream --bench STEPS`: STEPS steps in one loop) and of the Numba runtime inside its kernel
  (`kernels.interpreter.execute` over STEPS steps in one call, so no Python per step); each the
  median over REPEATS runs;
* the largest difference between the two over 200 steps (a sanity check that both ran the
  same model).

Needs torch, make, gcc, arm-none-eabi-gcc and qemu-system-arm. Prints markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
from edgeseq_export.backends.codegen import generate
from edgeseq_runtime.kernels.interpreter import execute, kernel_table
from edgeseq_runtime.kernels.packing import pack
from step_models import StepShape, build, export, quantized

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("GRU", "LSTM")
SIZES = [(16, 64), (64, 256)]  # (inputs, hidden)
BOARD_SIZE = (16, 64)  # the size also built for the Cortex-M4
OUTPUT_SIZE = 3
HOST_CFLAGS = "-O3 -march=native"
CHECK_STEPS = 200
NO_SCRATCH = np.empty(0, np.float32)  # no input projections made ahead: one step at a time, as the C runs


def make(directory: Path, *arguments: str, target: str | None = None) -> str:
    command = ["make", "-s", "-C", str(directory), *arguments] + ([target] if target else [])
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def export_models(directory: Path) -> list[tuple[str, tuple[int, int], str, Path]]:
    """(cell, (inputs, hidden), "fp32" or "int8", ONNX path) for every model measured."""
    models = []
    for size in SIZES:
        for cell in CELLS:
            stem = f"{cell.lower()}_{size[0]}_{size[1]}"
            fp32 = export(build(StepShape(cell, *size, 1, OUTPUT_SIZE)), directory / f"{stem}_fp32.onnx")
            int8 = quantized(fp32, directory / f"{stem}_int8.onnx")
            models += [(cell, size, "fp32", fp32), (cell, size, "int8", int8)]
    return models


def host_us_per_step(c_dir: Path, name: str, build_dir: Path, steps: int, repeats: int) -> float:
    make(ROOT / "firmware_examples" / "host", f"MODEL_DIR={c_dir}", f"NAME={name}", f"BUILD={build_dir}",
         "CC=gcc", f"CFLAGS={HOST_CFLAGS}")
    program = build_dir / name / "stream"
    times = []
    for _ in range(repeats):
        out = subprocess.run([str(program), "--bench", str(steps)], capture_output=True, text=True,
                             check=True).stdout
        times.append(float(re.match(r"([\d.]+) ns per step", out).group(1)) / 1000.0)
    return statistics.median(times)


def numba_us_per_step(path: Path, input_size: int, steps: int, repeats: int) -> float:
    plan = edgeseq_runtime.lower_model(path).plan
    x = np.random.default_rng(0).uniform(-1, 1, steps * input_size).astype(np.float32)
    y = np.empty(steps * OUTPUT_SIZE, np.float32)
    arena = plan.arena.copy()
    model, code = pack(plan.code, plan.weights, plan.qweights)[:2]
    kernels = kernel_table(code)  # compiles / loads the kernels from the cache
    execute(model, arena, x, y, 1, NO_SCRATCH, kernels)
    times = []
    for _ in range(repeats):
        arena[:] = plan.arena
        start = time.perf_counter()
        execute(model, arena, x, y, steps, NO_SCRATCH, kernels)
        times.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(times)


def c_vs_runtime_difference(path: Path, program: Path) -> float:
    model = edgeseq_runtime.load(path)
    X = np.random.default_rng(1).uniform(-1, 1, (CHECK_STEPS, model.input_size)).astype(np.float32)
    text = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)
    out = subprocess.run([str(program)], input=text, capture_output=True, text=True, check=True).stdout
    got = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()])
    return float(np.abs(got - model.run(X)).max())


def cortex_m_figures(c_dir: Path, name: str, build_dir: Path) -> dict[str, int]:
    arguments = [f"MODEL_DIR={c_dir}", f"NAME={name}", f"BUILD={build_dir}", "STEPS=20"]
    size = make(ROOT / "firmware_examples" / "cortex-m", *arguments, target="size")
    run = make(ROOT / "firmware_examples" / "cortex-m", *arguments, target="run")
    flash, ram = map(int, re.search(r"flash (\d+) bytes, RAM (\d+) bytes", size).groups())
    runtime_text = int(re.search(r"^\s*(\d+)\s+\d+\s+\d+\s+\d+\s+\w+\s+\S*/edgeseq_rt\.o$", size, re.M).group(1))
    stack = int(re.search(r"^stack (\d+)$", run, re.M).group(1))
    header = (c_dir / f"{name}.h").read_text()
    model_flash = int(re.search(rf"#define {name}_FLASH_BYTES (\d+)", header).group(1))
    state = int(re.search(rf"#define {name}_RAM_BYTES (\d+)", header).group(1))
    return dict(flash=flash, model_flash=model_flash, runtime_text=runtime_text, ram=ram + stack,
                stack=stack, state=state)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps per timed run (default 10000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (default 7)")
    args = parser.parse_args(argv)

    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    arm = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"# Generated C vs the Numba runtime: inputs/hidden {', '.join(f'{i}/{h}' for i, h in SIZES)}, "
          f"Linear head to {OUTPUT_SIZE}, batch 1\n")
    print(f"- host: {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"- host C: {gcc}, {HOST_CFLAGS}; Numba: `execute` over {args.steps} steps in one call")
    print(f"- Cortex-M4F: {arm}, -O2, QEMU mps2-an386; RAM = .data + .bss + measured stack peak")
    print(f"- times: median of {args.repeats} runs of {args.steps} steps\n")
    print("| model | weights | M4 flash B | of which model data B | of which runtime code B "
          "| M4 RAM B | of which state B | stack peak B | C µs/step | Numba µs/step | Numba/C "
          "| max abs diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        for cell, size, weights, path in export_models(directory):
            name = path.stem
            c_dir = directory / "generated"
            generate(path, c_dir, name)
            board = cortex_m_figures(c_dir, name, directory / f"m4_{name}") if size == BOARD_SIZE else None
            m4 = {k: f"{v:,}" for k, v in board.items()} if board else dict.fromkeys(
                ("flash", "model_flash", "runtime_text", "ram", "state", "stack"), "-")
            c_us = host_us_per_step(c_dir, name, directory / "host", args.steps, args.repeats)
            numba_us = numba_us_per_step(path, size[0], args.steps, args.repeats)
            diff = c_vs_runtime_difference(path, directory / "host" / name / "stream")
            print(f"| {cell} {size[0]}/{size[1]} + Linear | {weights} | {m4['flash']} "
                  f"| {m4['model_flash']} | {m4['runtime_text']} | {m4['ram']} | {m4['state']} "
                  f"| {m4['stack']} | {c_us:.2f} | {numba_us:.2f} | {numba_us / c_us:.2f}x "
                  f"| {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
