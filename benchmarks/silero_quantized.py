"""What int8 and fp16 cost Silero VAD: file size and how far the speech probability moves.

    PYTHONPATH=tests python benchmarks/silero_quantized.py [--tolerance 0.0095]

For each Silero file that streams (``VARIANTS`` of tests/support/silero_files.py), ``quantize``
is run as a user runs it on audio: ``--calibration`` the test suite's speech recording
(tests/support/audio.py) as a WAV, ``--context 64`` (Silero's 512 new samples after the 64
before them), ``--tolerance`` for int8. Each quantized file is then stepped by ONNX Runtime with
its graph optimizations off (the QDQ graph as written) and compared with ONNX Runtime on the
fp32 file, over every chunk: the largest |p_quantized - p_fp32| and the chunks whose decision
(p > 0.5) differs. The int8 file is made twice: calibrated on the whole recording (the figures
the tests hold to 0.01), and calibrated on its first half only, measured on its second half
(chunks the calibration never saw). Prints markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
from edgeseq_export.backends.quantize import quantize
from edgeseq_runtime import LoadOptions
from support import audio, silero_files
from support.silero_files import CHUNK, CONTEXT, VARIANTS, WINDOW, OnnxRuntimeSilero

THRESHOLD = 0.5


def probabilities(path, variant, windows, optimized: bool) -> np.ndarray:
    """ONNX Runtime stepping the file as Silero's wrapper does; optimizations off for a QDQ file."""
    stepper = OnnxRuntimeSilero(path, variant)
    if not optimized:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        stepper.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.array([stepper.step(window) for window in windows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=0.0095)
    args = parser.parse_args()
    onnxruntime.set_default_logger_severity(3)  # not its notes on initializers the graph leaves unused
    files = silero_files.fetch()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        recording = audio.speech_recording(folder / "speech")
        half = len(recording.samples) // 2 // CHUNK * CHUNK
        audio.write_wav(folder / "whole.wav", recording.samples)
        audio.write_wav(folder / "first_half.wav", recording.samples[:half])
        windows = recording.windows(CHUNK, CONTEXT)
        unseen = slice(half // CHUNK, None)
        print(f"{len(windows)} chunks; int8 within --tolerance {args.tolerance:g} on the calibration; "
              f"held out: calibrated on chunks 0-{half // CHUNK - 1}, measured on the other "
              f"{len(windows) - half // CHUNK}\n")
        print("| file | mode | size vs fp32 | weights int8 / fp16 / float32 | max abs dp | decisions differing | "
              "held out: max abs dp | held out: decisions differing |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, variant in VARIANTS.items():
            options = LoadOptions(variant.constants, {}, (WINDOW,), CONTEXT)
            expected = probabilities(files[name], variant, windows, optimized=True)
            for mode in ("int8", "fp16"):
                tolerance = args.tolerance if mode == "int8" else None
                output = folder / f"{name}.{mode}.onnx"
                report = quantize(files[name], output, mode, calibration=folder / "whole.wav",
                                  tolerance=tolerance, load_options=options)
                got = probabilities(output, variant, windows, optimized=False)
                row = [name + ".onnx", mode, f"{os.path.getsize(output) / os.path.getsize(files[name]):.0%}",
                       " / ".join(str(report.count(p)) for p in ("int8", "fp16", "float32")) if mode == "int8"
                       else "- / all / -",
                       f"{np.abs(got - expected).max():.4f}", str(int(np.sum((got > THRESHOLD) != (expected > THRESHOLD))))]
                if mode == "int8":
                    held = folder / f"{name}.held.onnx"
                    quantize(files[name], held, mode, calibration=folder / "first_half.wav", tolerance=tolerance,
                             load_options=options)
                    got = probabilities(held, variant, windows, optimized=False)[unseen]
                    row += [f"{np.abs(got - expected[unseen]).max():.4f}",
                            str(int(np.sum((got > THRESHOLD) != (expected[unseen] > THRESHOLD))))]
                else:
                    row += ["", ""]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
