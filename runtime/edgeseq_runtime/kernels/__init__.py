"""Numba kernels: one module per operator and number type, plus the interpreter that runs a plan."""
