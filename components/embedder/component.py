"""Embedder: teacher embeddings of every target example (a Beam job), split by split."""

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    InputArtifact,
    OutputArtifact,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model
from tfx.utils import path_utils

from components.artifacts import Embeddings
from components.embedder.embed import EmbedExamples

GZIP = beam.io.filesystem.CompressionTypes.GZIP


@component(use_beam=True)
def Embedder(  # noqa: N802
    examples: InputArtifact[Examples],
    model: InputArtifact[Model],
    embeddings: OutputArtifact[Embeddings],
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Transformed examples + teacher -> Split-<name>/embeddings-*.gz (id, embedding, label)."""
    model_dir = path_utils.serving_model_path(model.uri)
    splits = artifact_utils.decode_split_names(examples.split_names)
    with beam_pipeline as pipeline:
        for split in splits:
            _ = (
                pipeline
                | f"Read[{split}]"
                >> beam.io.ReadFromTFRecord(
                    artifact_utils.get_split_uri([examples], split) + "/*", compression_type=GZIP
                )
                | f"Embed[{split}]" >> EmbedExamples(model_dir)
                | f"Write[{split}]"
                >> beam.io.WriteToTFRecord(
                    f"{embeddings.uri}/Split-{split}/embeddings",
                    file_name_suffix=".gz",
                    compression_type=GZIP,
                )
            )
    embeddings.set_string_custom_property("split_names", examples.split_names)
