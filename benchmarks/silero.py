"""Per-step latency of Silero VAD on real speech: edgeseq against ONNX Runtime stepping the same file.

    PYTHONPATH=tests python benchmarks/silero.py [--quick]

For each Silero file that streams (``VARIANTS`` of tests/support/silero_files.py: silero_vad.onnx
with its If nodes on ``sr``, the op18 "ifless" one, faster-whisper's silero_vad_v6.onnx), over the
chunks of the test suite's speech recording (tests/support/audio.py), it times one step of:

* edgeseq:            ``StreamingModel.step(window)``, the 64 samples before the chunk and its 512
                      (``load(path, constants={"sr": 16000}, input_shape=(576,))``);
* edgeseq context=64: ``step(chunk)`` of the 512 new samples only, the model keeping the 64
                      before them (``load(..., context=64)``);
* onnxruntime:        ``InferenceSession.run`` on the same file called as Silero's own wrapper
                      calls it (window, state fed back, sample rate), one thread, sequential.

Each engine steps through the recording's chunks in order, wrapping around, so that every figure
comes from real audio with the state carried. Figures are medians over batches of consecutive
calls, the engines taking turns batch by batch (``step_latency.median_step_us``). The last
columns check that the engines ran the same model: the largest difference of the speech
probability over one pass of the recording, and the chunks whose decision (p > 0.5) differs.
Prints markdown; asserts nothing. ``tests/`` on ``PYTHONPATH``: the files, the audio and the
reference come from the test suite's support, so that both measure the same thing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
from pathlib import Path

import edgeseq_runtime
import numpy as np
import onnxruntime
from step_latency import median_step_us
from support import silero_files
from support.audio import speech_recording
from support.silero_files import CHUNK, CONTEXT, VARIANTS, WINDOW, OnnxRuntimeSilero

FULL = {"warmup": 600, "batches": 100, "calls": 50}
QUICK = {"warmup": 100, "batches": 20, "calls": 20}
THRESHOLD = 0.5


def cycling(step, inputs):
    """A call that steps with the next of ``inputs``, wrapping around."""
    rows = itertools.cycle(inputs)
    return lambda: step(next(rows))


def engines(path, variant):
    """``{name: (fresh stepper, its input per chunk)}`` for one Silero file."""
    load = {"constants": variant.constants, "input_shape": (WINDOW,)}
    return {
        "edgeseq": (lambda: edgeseq_runtime.load(path, **load).step, "windows"),
        "edgeseq context=64": (lambda: edgeseq_runtime.load(path, context=CONTEXT, **load).step, "chunks"),
        "onnxruntime": (lambda: OnnxRuntimeSilero(path, variant).step, "windows"),
    }


def probabilities(step, inputs) -> np.ndarray:
    return np.array([float(np.asarray(step(x)).reshape(-1)[0]) for x in inputs])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter timing runs")
    timing = QUICK if parser.parse_args(argv).quick else FULL
    files = silero_files.fetch()
    with tempfile.TemporaryDirectory() as directory:
        recording = speech_recording(Path(directory))
    inputs = {"windows": recording.windows(CHUNK, CONTEXT), "chunks": recording.chunks(CHUNK)}

    print("## Silero VAD per step on real speech\n")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"- `PYTHONPATH=tests python benchmarks/silero.py`: {len(inputs['chunks'])} chunks of 512 samples "
          f"({len(recording.samples) / 16000:.1f} s of espeak-ng speech with gaps and pink noise), one thread "
          f"per engine; median over {timing['batches']} batches of {timing['calls']} calls after "
          f"{timing['warmup']} warm-up calls, engines taking turns; µs per 32 ms chunk\n")
    print("| file | edgeseq µs | edgeseq context=64 µs | onnxruntime µs | ORT/edgeseq | ORT/edgeseq context=64 "
          "| max abs diff of p | decisions differing |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, variant in VARIANTS.items():
        made = engines(files[name], variant)
        p = {engine: probabilities(fresh(), inputs[kind]) for engine, (fresh, kind) in made.items()}
        reference = p["onnxruntime"]
        diff = max(float(np.abs(p[e] - reference).max()) for e in p)
        differing = max(int(np.sum((p[e] > THRESHOLD) != (reference > THRESHOLD))) for e in p)
        us = median_step_us({engine: cycling(fresh(), inputs[kind]) for engine, (fresh, kind) in made.items()},
                            **timing)
        print(f"| {name}.onnx | {us['edgeseq']:.1f} | {us['edgeseq context=64']:.1f} | {us['onnxruntime']:.1f} "
              f"| {us['onnxruntime'] / us['edgeseq']:.2f}x | {us['onnxruntime'] / us['edgeseq context=64']:.2f}x "
              f"| {diff:.1e} | {differing} |", flush=True)


if __name__ == "__main__":
    main()
