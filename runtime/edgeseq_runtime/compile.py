"""Compile the runtime's kernels ahead of time, once per install:

    python -m edgeseq_runtime.compile

A fresh install compiles its kernels at the first step (tens of seconds on a small board,
minutes on the slowest) and keeps them in numba's on-disk cache. Run this where the install
happens (a device image's build on the device's CPU, a Dockerfile's ``RUN``, a first-boot
unit) and the first step of every later process loads the kernels instead: a warm start.
numba keys its cache on the CPU and the kernels' sources, so it is run again after an upgrade
of edgeseq-runtime or numba, and on the CPU that will run it.

Every model runs through the same entry points, with one signature (``interpreter.execute``, and
``execute_holding_gil`` for short calls), which call the interpreter (``run_plan``) and it the
kernels of a model's instructions by their addresses (``kernels.linking``), as the kernels call
the activations and the matrix product of each kind of matrix: this compiles the entry points,
the interpreter, every kernel and every product, so that no model compiles anything; no model
is needed.
"""

import argparse
import sys
import time

import numba


def compile_kernels() -> bool:
    """Compile the entry points and every kernel into numba's cache unless they are there;
    whether anything compiled."""
    from . import kernels_cached
    from .kernels.interpreter import ADDRESSED, ENTRY_POINTS, ENTRY_TYPES
    from .kernels.linking import address
    from .kernels.matvec import link_products

    if kernels_cached(every_kernel=True):
        return False
    for entry in ENTRY_POINTS:
        entry.compile(ENTRY_TYPES)
    for kernel in ADDRESSED:
        address(kernel)
    link_products()
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeseq_runtime.compile",
                                     description="Compile edgeseq's runtime kernels into numba's cache.")
    parser.parse_args(argv)
    start = time.perf_counter()
    folder = numba.config.CACHE_DIR or "beside the runtime's sources"
    if compile_kernels():
        print(f"edgeseq-runtime: kernels compiled in {time.perf_counter() - start:.1f} s, cached {folder}")
    else:
        print(f"edgeseq-runtime: kernels already compiled, cached {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
