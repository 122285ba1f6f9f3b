"""What int8 and fp16 cost Silero VAD: file size, and how far the speech probability moves on
audio the quantization never heard.

    PYTHONPATH=tests python benchmarks/silero_quantized.py [--tolerance 0.0075 0.01]

For each Silero file that streams (``VARIANTS`` of tests/support/silero_files.py), ``quantize``
is run as a user runs it on audio: ``--calibration`` the test suite's speech recording
(tests/support/audio.py) as a WAV, ``--context 64`` (Silero's 512 new samples after the 64
before them): fp16; int8 under each ``--tolerance``; int8 without one (every weight int8). Each
quantized file is then stepped by ONNX Runtime with its graph optimizations off (the QDQ graph
as written) and compared with ONNX Runtime on the fp32 file, over every chunk of the calibration
recording and of three recordings of other voices, words, noise and loudness
(``audio.OTHER_SPEAKERS``, held out): the largest |p_quantized - p_fp32| and the chunks whose
decision (p > 0.5) differs. Prints markdown; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
from edgeseq_export.backends.quantize import QuantizationError, quantize
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


@contextmanager
def recordings():
    """(a temporary folder, the Silero files, the windows of the calibration recording (written
    as ``folder/calibration.wav``) and of the held-out ones by name, the held-out names); prints
    their lengths."""
    onnxruntime.set_default_logger_severity(3)  # not its notes on initializers the graph leaves unused
    files = silero_files.fetch()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        recording = audio.speech_recording(folder / "speech")
        audio.write_wav(folder / "calibration.wav", recording.samples)
        spoken = {"calibration": recording} | {
            name: audio.speech_recording(folder / name, speaker) for name, speaker in audio.OTHER_SPEAKERS.items()}
        windows = {name: r.windows(CHUNK, CONTEXT) for name, r in spoken.items()}
        held_out = [name for name in windows if name != "calibration"]
        print(f"calibration: {len(windows['calibration'])} chunks; held out: "
              + ", ".join(f"{name} ({len(windows[name])})" for name in held_out) + "\n")
        yield folder, files, windows, held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, nargs="+", default=[0.0075, 0.01])
    args = parser.parse_args()
    with recordings() as (folder, files, windows, held_out):
        print("| file | mode | size vs fp32 | weights int8 / fp16 / float32 | calibration: max abs dp | "
              "held out: max abs dp | held out: decisions differing |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for name, variant in VARIANTS.items():
            options = LoadOptions(variant.constants, {}, (WINDOW,), CONTEXT)
            expected = {r: probabilities(files[name], variant, w, optimized=True) for r, w in windows.items()}
            runs = [("fp16", "fp16", None), *((f"int8 --tolerance {t:g}", "int8", t) for t in args.tolerance),
                    ("int8, every weight", "int8", None)]
            for label, mode, tolerance in runs:
                output = folder / f"{name}.{len(label)}.onnx"
                try:
                    report = quantize(files[name], output, mode, calibration=folder / "calibration.wav",
                                      tolerance=tolerance, load_options=options)
                except QuantizationError as refused:
                    print(f"| {name}.onnx | {label} | refused: {str(refused).split('(')[-1].rstrip(')')} | | | | |",
                          flush=True)
                    continue
                got = {r: probabilities(output, variant, w, optimized=False) for r, w in windows.items()}
                moved = {r: np.abs(got[r] - expected[r]).max() for r in windows}
                differing = sum(int(np.sum((got[r] > THRESHOLD) != (expected[r] > THRESHOLD))) for r in held_out)
                counts = " / ".join(str(report.count(p)) for p in ("int8", "fp16", "float32")) if mode == "int8" \
                    else "- / all / -"
                print(f"| {name}.onnx | {label} | {os.path.getsize(output) / os.path.getsize(files[name]):.0%} | "
                      f"{counts} | {moved['calibration']:.4f} | {max(moved[r] for r in held_out):.4f} | "
                      f"{differing} |", flush=True)


if __name__ == "__main__":
    main()
