"""emograph's pipeline steps: pure functions per step, each with a thin TFX wrapper."""

from components import compat  # noqa: F401  (must run before TensorFlow is imported)
