"""Compiler settings shared by every kernel, kept in one place.

fastmath lets LLVM vectorise the gate loops and fuse multiply-adds; it is restricted to the
flags that keep NaN and Inf semantics intact ('nnan' and 'ninf' are left out), because the
runtime promises to detect non-finite inputs rather than assume them away.
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
JIT_OPTIONS = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
