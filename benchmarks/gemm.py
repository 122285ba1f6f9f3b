"""The matrix products of the benchmark matrix's models: edgeseq's kernel against numpy's BLAS and
ONNX Runtime's MatMul, one thread each, in one run.

    python benchmarks/gemm.py [--quick]

Each shape is rows x n_in @ n_in x n_out (a batch of streams times a layer's weights, all gates
at once): edgeseq's ``project`` (the product every Dense/LSTM/GRU/RNN/Conv layer uses) with
float32 and with int8 weights, numpy's ``matmul`` into a preallocated output (its BLAS, one
thread: OPENBLAS_NUM_THREADS and its kin are set before numpy is imported) and ONNX Runtime's
MatMul of the weights as an initializer (one intra-op thread, inputs and outputs bound once).
edgeseq's calls are repeated inside one compiled loop, numpy's and ONNX Runtime's from Python,
so at the smallest shapes the latter two include a call's overhead (about 1 and 5 µs). The
engines take turns; each figure is the median over rounds. Prints GMAC/s (multiply-adds per
nanosecond) per engine and edgeseq's ratios as a Markdown table. Asserts nothing.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy's import: its BLAS reads them once

import argparse
import platform
import statistics
import time

import numpy as np
import onnxruntime
from edgeseq_runtime.isa import MATRIX_KIND
from edgeseq_runtime.kernels.matvec import link_products, project
from edgeseq_runtime.kernels.packing import pack
from numba import njit
from onnx import TensorProto, helper, numpy_helper

# (what it is, rows, n_in, n_out); the concatenated [x, h] shapes are how ONNX Runtime's LSTM
# multiplies, edgeseq takes X @ W and H @ R apart
SHAPES = (
    ("LSTM 64/256 step, batch 1: H @ R", 1, 256, 1024),
    ("LSTM 64/256 step, batch 16: X @ W", 16, 64, 1024),
    ("LSTM 64/256 step, batch 16: H @ R", 16, 256, 1024),
    ("LSTM 64/256 step, batch 256: X @ W", 256, 64, 1024),
    ("LSTM 64/256 step, batch 256: H @ R", 256, 256, 1024),
    ("LSTM 64/256, batch 256: [X, H] @ [W; R]", 256, 320, 1024),
    ("LSTM 40/128, batch 256: [X, H] @ [W; R]", 256, 168, 512),
    ("GRU 64/256 step, batch 16: H @ R", 16, 256, 768),
    ("GRU 64/256 step, batch 256: H @ R", 256, 256, 768),
    ("LSTM 16/64 step, batch 256: H @ R", 256, 64, 256),
)


@njit(nogil=True)
def _repeat(code, w, q, x, out, n, calls):
    """``calls`` products in one compiled loop: edgeseq's kernel without the call from Python."""
    for _ in range(calls):
        project(code, 0, w, q, n, 0, x, out, 0, n)


def _edgeseq(x, weights, int8):
    """A function of a call count running edgeseq's product of x and the weights that many times."""
    link_products()  # project reaches each kind of matrix through its product's address
    n = weights.shape[1]
    if int8:
        scale = (np.abs(weights).max(axis=0) / 127).astype(np.float32)
        q = np.round(weights / scale).astype(np.int8).ravel()
        code, w = np.array([MATRIX_KIND.INT8, 0, 0], np.int64), scale
    else:
        code, w, q = np.array([MATRIX_KIND.FLOAT32, 0, -1], np.int64), weights.ravel().copy(), np.zeros(1, np.int8)
    _, code, w, q = pack(code, w, q)  # laid out as a loaded model holds them: from a cache line
    out = np.zeros((x.shape[0], n), np.float32)
    return lambda calls: _repeat(code, w, q, x, out, n, calls)


def _numpy(x, weights):
    out = np.empty((x.shape[0], weights.shape[1]), np.float32)

    def calls_of(calls):
        for _ in range(calls):
            np.matmul(x, weights, out=out)
    return calls_of


def _onnxruntime(x, weights):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.shape[0], weights.shape[1]])],
        [numpy_helper.from_array(weights, "w")])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(helper.make_model(graph).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    out = np.empty((x.shape[0], weights.shape[1]), np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y", "cpu", element_type=np.float32, shape=out.shape, buffer_ptr=out.ctypes.data)

    def calls_of(calls, out=out):  # the bound output buffer lives as long as the function
        for _ in range(calls):
            session.run_with_iobinding(binding)
    return calls_of


def measure(rows: int, n_in: int, n_out: int, rounds: int) -> dict[str, float]:
    """GMAC/s of each engine on rows x n_in @ n_in x n_out, the median over ``rounds`` turns."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    weights = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    engines = {"edgeseq fp32": _edgeseq(x, weights, False), "edgeseq int8": _edgeseq(x, weights, True),
               "numpy": _numpy(x, weights), "onnxruntime": _onnxruntime(x, weights)}
    macs = rows * n_in * n_out
    calls = max(1, int(2e6 / macs * 40))  # about 1 ms a turn at 80 GMAC/s
    for run in engines.values():
        run(calls)  # compiled, warm
    seconds = {name: [] for name in engines}
    for _ in range(rounds):
        for name, run in engines.items():
            start = time.perf_counter()
            run(calls)
            seconds[name].append((time.perf_counter() - start) / calls)
    return {name: macs / statistics.median(times) / 1e9 for name, times in seconds.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds per figure")
    rounds = 7 if parser.parse_args(argv).quick else 31
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__} "
          f"({_blas_name()}), onnxruntime {onnxruntime.__version__}; "
          f"GMAC/s, one thread per engine, medians of {rounds} rounds\n")
    print("| product | rows x n_in @ n_in x n_out | edgeseq fp32 | edgeseq int8 | numpy | ORT MatMul "
          "| fp32 / numpy | fp32 / ORT | int8 time / fp32 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rows, n_in, n_out in SHAPES:
        g = measure(rows, n_in, n_out, rounds)
        print(f"| {name} | {rows}x{n_in} @ {n_in}x{n_out} | {g['edgeseq fp32']:.1f} | {g['edgeseq int8']:.1f} "
              f"| {g['numpy']:.1f} | {g['onnxruntime']:.1f} | {g['edgeseq fp32'] / g['numpy']:.2f}x "
              f"| {g['edgeseq fp32'] / g['onnxruntime']:.2f}x | {g['edgeseq fp32'] / g['edgeseq int8']:.2f} |",
              flush=True)


def _blas_name() -> str:
    """The name of numpy's BLAS library, as numpy reports its build."""
    libraries = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return f"{libraries['name']} {libraries.get('version', '')}".strip()


if __name__ == "__main__":
    main()
