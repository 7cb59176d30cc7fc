"""Audio ingest: decoding, corpus adapters, windowing and speaker splits."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
