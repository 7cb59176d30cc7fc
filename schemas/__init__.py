"""The tf.Example schemas (schema.pbtxt per dataset) the pipeline validates against, as package
data: `schema_path` finds them in a source tree and in an installed wheel alike."""

from importlib.resources import files
from pathlib import Path


def schema_path(name: str) -> Path:
    """The schema.pbtxt of dataset `name` ("raw_audio", "packed_examples")."""
    return Path(str(files(__name__) / name / "schema.pbtxt"))
