"""Packing graph neighbours into training examples in NSL's NL_nbr_ format."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
