"""AudioExampleGen: the Beam ingest job and its TFX component."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
