"""Many cores: independent streams stepped from several Python threads at once.

    python benchmarks/threads.py [--threads N] [--steps 20000]

Each thread owns a ``clone()`` of one loaded model (clones share the compiled code and the
weights, each has its own state) and steps its own input, with ``run`` over a long sequence and
with a loop of single ``step`` calls. The kernels release the GIL, so the threads' kernels run on
all cores at once and only the Python around each call holds it; except in a call too short to
be worth handing the GIL over (``model.RELEASE_GIL_WEIGHTS``), which keeps it: the column GIL
says which a ``step`` does. Reports, per model, the stream-steps per second with 1 thread and
with N (default: the machine's cores), and their ratio: N threads at N times one thread's rate is
perfect scaling. The models are ``step_models``' (the product's exporter): a GRU 16/64 and an
LSTM 64/256, batch 1 and 16. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
from edgeseq_runtime.kernels.interpreter import execute_holding_gil
from step_models import StepShape, build, export

SHAPES = (StepShape("GRU", 16, 64), StepShape("LSTM", 64, 256))
BATCHES = (1, 16)


def gil_kept(model) -> bool:
    """Whether ``model.step`` keeps the GIL while its kernels run."""
    return model._step_entry is execute_holding_gil


def steps_per_second(model, threads: int, xs: np.ndarray, calls: str) -> float:
    """Stream-steps per second of ``threads`` clones of ``model``, each over ``xs`` at once."""
    clones = [model.clone() for _ in range(threads)]
    for clone in clones:  # warm: the first call of each way of calling is not timed
        clone.run(xs[:10]) if calls == "run" else clone.step(xs[0])
    start_line = threading.Barrier(threads + 1)

    def work(clone):
        start_line.wait()
        if calls == "run":
            clone.run(xs)
        else:
            for x in xs:
                clone.step(x)

    workers = [threading.Thread(target=work, args=(clone,)) for clone in clones]
    for worker in workers:
        worker.start()
    start_line.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * len(xs) * model.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=20000, help="steps per thread for run (step: a tenth)")
    args = parser.parse_args()
    print(f"| model | batch | call | GIL | 1 thread (stream-steps/s) | {args.threads} threads | scaling |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for shape in SHAPES:
            path = export(build(shape), Path(folder) / f"{shape.name}.onnx")
            for batch in BATCHES:
                model = edgeseq_runtime.load(path, batch=batch)
                rng = np.random.default_rng(0)
                for calls, steps in (("run", args.steps), ("step", args.steps // 10)):
                    dims = (steps, batch, shape.input_size) if batch > 1 else (steps, shape.input_size)
                    xs = rng.standard_normal(dims).astype(np.float32)
                    one = max(steps_per_second(model, 1, xs, calls) for _ in range(3))
                    many = max(steps_per_second(model, args.threads, xs, calls) for _ in range(3))
                    gil = "kept" if calls == "step" and gil_kept(model) else "released"
                    print(f"| {shape.cell} {shape.input_size}/{shape.hidden_size} | {batch} | {calls} | {gil} | "
                          f"{one:,.0f} | {many:,.0f} | {many / one:.2f}x |")


if __name__ == "__main__":
    main()
