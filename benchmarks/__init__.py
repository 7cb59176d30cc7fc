"""Benchmarks, run as modules (`python -m benchmarks.graph`) so this runs first.

emograph.components.compat must pick OpenBLAS's kernels before numpy loads it (see its docstring).
"""

from emograph.components import compat  # noqa: F401
