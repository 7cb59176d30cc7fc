"""The similarity graph over teacher embeddings: numpy core, Beam transform, statistics."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
