"""What one call of ``step`` or ``run`` costs from Python, where the Python around the compiled
code is a third of a small model's step.

    python benchmarks/step_call.py [--calls N]

Models: GRU and LSTM 16/64 with a 3-output head (``step_models``, as ``step_latency``) at batch
1, the GRU at batch 16, and a token model (64 ids through an ``nn.Embedding`` into a GRU 16/64,
a 64-output head). Calls: ``step(x)``, ``step(x, out=)``, ``run`` of 1 and of 10 steps, and the
token model's ``step(id)`` with a Python int. Each figure is the fastest of 5 rounds of N
consecutive calls (``time.perf_counter_ns``; the fastest round is the least disturbed on a shared
machine), in ns a call. To compare two versions, run them in turns, each with its runtime first on
the path (``PYTHONPATH=<worktree>/runtime``). Prints markdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import edgeseq_runtime
import numpy as np
import torch
from step_models import StepShape, build, export
from torch import nn

ROUNDS = 5
VOCAB = 64


class TokenModel(nn.Module):
    """Embedding -> GRU -> Linear, as a user writes a model of token ids."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 16)
        self.rnn = nn.GRU(16, 64)
        self.head = nn.Linear(64, VOCAB)

    def forward(self, x):
        return self.head(self.rnn(self.embedding(x))[0])


def fastest_ns(call, calls: int) -> float:
    """The fastest of ``ROUNDS`` rounds of ``calls`` calls, in ns a call."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def float_rows(path: Path, batch: int, calls: int) -> dict[str, float]:
    model = edgeseq_runtime.load(path, batch=batch)
    step_shape = (model.input_size,) if batch == 1 else (batch, model.input_size)
    x = (np.random.default_rng(0).standard_normal(step_shape) * 0.1).astype(np.float32)
    out = np.empty((model.output_size,) if batch == 1 else (batch, model.output_size), np.float32)
    one, ten = x[None].copy(), np.repeat(x[None], 10, axis=0)
    return {"step(x)": fastest_ns(lambda: model.step(x), calls),
            "step(x, out=)": fastest_ns(lambda: model.step(x, out=out), calls),
            "run, 1 step": fastest_ns(lambda: model.run(one), calls // 2),
            "run, 10 steps": fastest_ns(lambda: model.run(ten), calls // 10)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls a round (default 200,000)")
    args = parser.parse_args(argv)
    print(f"runtime: {edgeseq_runtime.__file__}\n")
    print("| model | batch | call | ns |")
    print("| --- | ---: | --- | ---: |")
    with tempfile.TemporaryDirectory() as directory:
        for cell in ("GRU", "LSTM"):
            path = export(build(StepShape(cell, 16, 64, 1, 3)), Path(directory) / f"{cell}.onnx")
            for batch in (1, 16) if cell == "GRU" else (1,):
                for call, ns in float_rows(path, batch, args.calls if batch == 1 else args.calls // 8).items():
                    print(f"| {cell} 16/64 | {batch} | {call} | {ns:.0f} |", flush=True)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            path = export(TokenModel().eval(), Path(directory) / "tokens.onnx")
        model = edgeseq_runtime.load(path)
        ns = fastest_ns(lambda: model.step(5), args.calls // 2)
        print(f"| GRU 16/64, {VOCAB} ids | 1 | step(id) | {ns:.0f} |", flush=True)


if __name__ == "__main__":
    main()
