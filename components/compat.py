"""Makes the pinned stack importable together; imported before TensorFlow everywhere.

Two traps of TF 2.16 + NSL 1.4 (see README, "Stack"):
- NSL's GraphRegularization needs Keras 2 (`tf_keras`); `TF_USE_LEGACY_KERAS=1` must be set
  before `tf.keras` is first touched, in every process (Beam workers inherit `os.environ`).
- NSL 1.4 does `from tensorflow import estimator`, which TF 2.16 removed; an empty stub module
  satisfies the import (NSL's estimator wrappers are never used here).

This module imports nothing heavy, so the TensorFlow-free edge predictor can import it too.
"""

import os
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.modules.setdefault("tensorflow.estimator", types.ModuleType("tensorflow.estimator"))
