"""Makes the pinned stack importable together; imported before TensorFlow everywhere.

Two traps of TF 2.16 + NSL 1.4 (see README, "Stack"):
- NSL's GraphRegularization needs Keras 2 (`tf_keras`); `TF_USE_LEGACY_KERAS=1` must be set
  before `tf.keras` is first touched, in every process (Beam workers inherit `os.environ`).
- NSL 1.4 does `from tensorflow import estimator`, which TF 2.16 removed; an empty stub module
  satisfies the import (NSL's estimator wrappers are never used here).
And one of the machine: in a VM that hides the CPU model, numpy's OpenBLAS falls back to its
"Prescott" kernels (SSE3) and matrix products, the graph builder's whole cost, run ~3x slower
(50 vs 140 GFLOP/s on this project's 2-core CI machine); the core is named from the CPU's
instruction sets instead, before numpy loads OpenBLAS (too late once numpy is imported: that is
warned about, since it silently costs the 3x). An explicit OPENBLAS_CORETYPE wins.

This module imports nothing heavy, so the TensorFlow-free edge predictor can import it too.
"""

import os
import sys
import types
import warnings

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


def openblas_core(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """OpenBLAS's name for the best kernel this CPU's flags allow, or None to let it detect."""
    try:
        with open(cpuinfo) as f:
            flags = next(
                (line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []
            )
    except OSError:
        return None
    if AVX512 <= set(flags):
        return "SkylakeX"
    if {"avx2", "fma"} <= set(flags):
        return "Haswell"
    return None


if "OPENBLAS_CORETYPE" not in os.environ and (core := openblas_core()):
    os.environ["OPENBLAS_CORETYPE"] = core
    if "numpy" in sys.modules:
        warnings.warn(
            f"numpy was imported before emograph.components.compat, so OpenBLAS runs the kernels "
            f"it detected, not {core}: import emograph.components.compat first (or set "
            "OPENBLAS_CORETYPE)",
            stacklevel=2,
        )
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.modules.setdefault("tensorflow.estimator", types.ModuleType("tensorflow.estimator"))
