"""Compiler settings shared by every kernel, kept in one place.

fastmath lets LLVM vectorise the gate loops and fuse multiply-adds; it is restricted to the
flags that keep NaN and Inf semantics intact ('nnan' and 'ninf' are left out), because the
runtime promises to detect non-finite inputs rather than assume them away.

The kernels allocate nothing and only take views of the arrays they are given, so they run
without numba's runtime (``_nrt=False``): no reference counting of every view, which otherwise
costs as much as the arithmetic of a small layer.
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
JIT_OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
