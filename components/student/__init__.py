"""student step of the emograph pipeline."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
