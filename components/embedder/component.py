"""Embedder: an embedding of every target example (a Beam job), split by split.

The embedding is the teacher's (`source="teacher"`, from the transformed examples) or the
utterance statistics of the raw audio (`source="statistics"`, from `raw_examples`); which one
makes the better graph is `GraphConfig.embedding_source`.
"""

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model
from tfx.utils import path_utils

from components.artifacts import Embeddings
from components.embedder.embed import EmbedExamples
from components.embedder.statistics import StatisticsExamples
from pipeline.config import EMBEDDING_SOURCES

GZIP = beam.io.filesystem.CompressionTypes.GZIP
SOURCE_PROPERTY = "embedding_source"  # read back by the GraphBuilder to check its config


@component(use_beam=True)
def Embedder(  # noqa: N802
    examples: InputArtifact[Examples],
    model: InputArtifact[Model],
    embeddings: OutputArtifact[Embeddings],
    raw_examples: InputArtifact[Examples] = None,
    source: Parameter[str] = "teacher",
    sample_rate: Parameter[int] = 16000,
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Transformed (or raw) examples -> Split-<name>/embeddings-*.gz (id, embedding, label)."""
    if source not in EMBEDDING_SOURCES:
        raise ValueError(f"source must be one of {EMBEDDING_SOURCES}, got {source!r}")
    if source == "statistics" and raw_examples is None:
        raise ValueError("source='statistics' needs raw_examples (the ExampleGen output)")
    read_from = raw_examples if source == "statistics" else examples
    model_dir = path_utils.serving_model_path(model.uri)
    splits = artifact_utils.decode_split_names(read_from.split_names)
    with beam_pipeline as pipeline:
        for split in splits:
            records = pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                artifact_utils.get_split_uri([read_from], split) + "/*", compression_type=GZIP
            )
            if source == "statistics":
                embedded = records | f"Embed[{split}]" >> StatisticsExamples(sample_rate)
            else:
                embedded = records | f"Embed[{split}]" >> EmbedExamples(model_dir)
            _ = embedded | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                f"{embeddings.uri}/Split-{split}/embeddings",
                file_name_suffix=".gz",
                compression_type=GZIP,
            )
    embeddings.set_string_custom_property("split_names", read_from.split_names)
    embeddings.set_string_custom_property(SOURCE_PROPERTY, source)
