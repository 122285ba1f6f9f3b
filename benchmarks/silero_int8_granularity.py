"""Whether finer int8 scales keep Silero VAD's speech probability within 1% of fp32 on audio the
quantization never heard, and what ``--tolerance 0.01`` then keeps int8.

    PYTHONPATH=tests python benchmarks/silero_int8_granularity.py [--blocks 0 64 32 16 8] [--modes all 0.01 1]
        [--files ...]

For each Silero file (v5 ``silero_vad`` and ``silero_vad_16k_op15``, v6 ``silero_vad_v6``) and each
scale granularity (0: one scale per output channel, what ``edgeseq quantize`` writes today; B: one
per B values along each weight's first input axis, DequantizeLinear's ``block_size``, opset 21),
``quantize`` runs as a user runs it on audio (``--calibration`` the test suite's recording as a
WAV, ``--context 64``): each weight rounded by GPTQ (per-group scales, each set as GPTQ reaches
its group) or to nearest, whichever moves p less. Modes: ``all``, every weight int8 (GPTQ fitted
on the whole calibration, the choices measured on it); a tolerance T, int8 under ``--tolerance T``
(the rest fp16 or float32; GPTQ fitted on the first half of the calibration and its variants, the
choices measured on all of it and its variants): ``1`` keeps every weight int8, fitted and chosen
so. edgeseq's runtime does not load blocked scales, so every candidate, per channel too, is
measured by ONNX Runtime with its graph optimizations off (the QDQ graph as written).

Each file written is then stepped the same way over the calibration recording and the three
recordings of ``audio.OTHER_SPEAKERS`` (held out) and compared with ONNX Runtime on the fp32 file:
the largest |dp| and the held-out chunks whose decision (p > 0.5) differs. Sizes: the file's
(float32 scales), and the same counting each int8 scale as float16; the last column names the
weights kept int8 (all: every weight). Prints markdown; asserts nothing. About 40
minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import onnx
import onnxruntime
from edgeseq_export.backends.bench import OnnxRuntimeStepper
from edgeseq_export.backends.quantize import QuantizationError, _Values, quantize
from edgeseq_runtime import LoadOptions
from silero_quantized import THRESHOLD, probabilities, recordings
from support.silero_files import CONTEXT, VARIANTS, WINDOW

FILES = ("silero_vad", "silero_vad_16k_op15", "silero_vad_v6")


def onnxruntime_outputs(path, load_options: LoadOptions):
    """``quantize``'s ``outputs``: a candidate model stepped by ONNX Runtime, optimizations off,
    its state fed back as for the fp32 file at ``path`` (same inputs and outputs)."""
    stepper = OnnxRuntimeStepper(path, 1, load_options)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1

    def outputs(model: onnx.ModelProto, streams: list[np.ndarray]) -> list[np.ndarray]:
        stepper.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                       providers=["CPUExecutionProvider"])
        got = []
        for stream in streams:
            stepper.reset()
            got.append(np.concatenate([stepper.step(x).reshape(1, -1) for x in stream]))
        return got

    return outputs


def scale_count(path) -> int:
    """How many int8 scales the file stores (the float inputs 1 of its DequantizeLinear nodes)."""
    graphs = _Values(onnx.load(path).graph).graphs
    dims = {proto.name: proto.dims for graph in graphs for proto in graph.initializer}
    dims |= {node.output[0]: a.t.dims for graph in graphs for node in graph.node
             if node.op_type == "Constant" for a in node.attribute if a.name == "value"}
    return sum(int(np.prod(dims[node.input[1]])) for graph in graphs for node in graph.node
               if node.op_type == "DequantizeLinear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[0, 64, 32, 16, 8])
    parser.add_argument("--modes", nargs="+", default=["all", "0.01", "1"],
                        help="all: every weight int8; a number: int8 under that --tolerance")
    parser.add_argument("--files", nargs="+", default=list(FILES), choices=FILES)
    args = parser.parse_args()
    with recordings() as (folder, files, windows, held_out):
        print("| file | scales | mode | size vs fp32 (float32 / float16 scales) | weights int8 / fp16 / float32 | "
              "calibration: max abs dp | held out: max abs dp | held out: decisions differing | seconds | "
              "int8 weights |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for name in args.files:
            variant, source = VARIANTS[name], files[name]
            options = LoadOptions(variant.constants, {}, (WINDOW,), CONTEXT)
            outputs = onnxruntime_outputs(source, options)
            expected = {r: probabilities(source, variant, w, optimized=True) for r, w in windows.items()}
            for block in args.blocks:
                for mode in args.modes:
                    tolerance = None if mode == "all" else float(mode)
                    label = "every weight int8" if tolerance is None else f"--tolerance {tolerance:g}"
                    output = folder / f"{name}.{block}.{tolerance}.onnx"
                    scales = f"blocks of {block}" if block else "per channel"
                    began = time.perf_counter()
                    try:
                        report = quantize(source, output, "int8", calibration=folder / "calibration.wav",
                                          tolerance=tolerance, load_options=options, block_size=block,
                                          outputs=outputs)
                    except QuantizationError as refused:
                        print(f"| {name} | {scales} | {label} | refused: {str(refused).split('(')[-1].rstrip(')')} "
                              f"| | | | | | |", flush=True)
                        continue
                    seconds = time.perf_counter() - began
                    if not report.passed:
                        print(f"| {name} | {scales} | {label} | not within: {report.max_abs_error:.4f} | | | | | "
                              f"{seconds:.0f} | |", flush=True)
                        continue
                    got = {r: probabilities(output, variant, w, optimized=False) for r, w in windows.items()}
                    moved = {r: np.abs(got[r] - expected[r]).max() for r in windows}
                    differing = sum(int(np.sum((got[r] > THRESHOLD) != (expected[r] > THRESHOLD))) for r in held_out)
                    size, fp32 = os.path.getsize(output), os.path.getsize(source)
                    halved = size - 2 * scale_count(output)
                    counts = " / ".join(str(report.count(p)) for p in ("int8", "fp16", "float32"))
                    int8 = sorted(weight for weight, precision in report.precisions.items() if precision == "int8")
                    print(f"| {name} | {scales} | {label} | {size / fp32:.0%} / {halved / fp32:.0%} | {counts} | "
                          f"{moved['calibration']:.4f} | {max(moved[r] for r in held_out):.4f} | {differing} | "
                          f"{seconds:.0f} | {'all' if counts.endswith(' / 0 / 0') else ', '.join(int8)} |",
                          flush=True)


if __name__ == "__main__":
    main()
