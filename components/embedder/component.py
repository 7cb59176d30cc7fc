"""Embedder: every candidate embedding of every target example (a Beam job), split by split.

Reads the transformed examples (teacher and log-mel candidates) and the raw ones (utterance
statistics) of the same windows and joins them by id; the GraphBuilder chooses which candidate,
or which weighted combination, the graph is built from.
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

from emograph.components.artifacts import Embeddings
from emograph.components.embedder.embed import EmbedExamples
from emograph.components.embedder.expert import parse_expert

GZIP = beam.io.filesystem.CompressionTypes.GZIP


@component(use_beam=True)
def Embedder(  # noqa: N802
    examples: InputArtifact[Examples],
    model: InputArtifact[Model],
    raw_examples: InputArtifact[Examples],
    embeddings: OutputArtifact[Embeddings],
    mel_bands: Parameter[int] = 40,
    sample_rate: Parameter[int] = 16000,
    expert_features: Parameter[str] = "",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """(Transformed, raw) examples -> Split-<name>/embeddings-*.gz (id, embedding_*, label).

    `expert_features`: comma-separated expert candidates to compute too ("egemaps,compare";
    components/embedder/expert.py `expert_sources` names those a GraphConfig uses).
    """
    expert = parse_expert(expert_features)
    model_dir = path_utils.serving_model_path(model.uri)
    splits = artifact_utils.decode_split_names(examples.split_names)
    with beam_pipeline as pipeline:
        for split in splits:
            transformed, raw = (
                pipeline
                | f"Read{kind}[{split}]"
                >> beam.io.ReadFromTFRecord(
                    artifact_utils.get_split_uri([artifact], split) + "/*", compression_type=GZIP
                )
                for kind, artifact in (("Transformed", examples), ("Raw", raw_examples))
            )
            _ = (
                (transformed, raw)
                | f"Embed[{split}]"
                >> EmbedExamples(model_dir, mel_bands, sample_rate, expert=expert)
                | f"Write[{split}]"
                >> beam.io.WriteToTFRecord(
                    f"{embeddings.uri}/Split-{split}/embeddings",
                    file_name_suffix=".gz",
                    compression_type=GZIP,
                )
            )
    embeddings.set_string_custom_property("split_names", examples.split_names)
