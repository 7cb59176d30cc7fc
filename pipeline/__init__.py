"""emograph's orchestration: configuration, pipeline assembly, runners and the CLI."""

from emograph.components import compat  # noqa: F401  (must run before TensorFlow is imported)
