"""NeighbourPacker: packs graph neighbours' features into the target train examples."""

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples

from emograph.components.artifacts import SimilarityGraph
from emograph.components.graph.component import GRAPH_PREFIX, GRAPH_SPLIT
from emograph.components.graph.similarity import parse_edge
from emograph.components.neighbours.beam_pack import PackNeighbours

GZIP = beam.io.filesystem.CompressionTypes.GZIP


@component(use_beam=True)
def NeighbourPacker(  # noqa: N802
    examples: InputArtifact[Examples],
    graph: InputArtifact[SimilarityGraph],
    packed_examples: OutputArtifact[Examples],
    max_neighbours: Parameter[int],
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Train split: NL_nbr_{i}_* features added (NSL's format); other splits copied unchanged."""
    splits = artifact_utils.decode_split_names(examples.split_names)
    with beam_pipeline as pipeline:
        train = (
            pipeline
            | "ReadExamples"
            >> beam.io.ReadFromTFRecord(
                artifact_utils.get_split_uri([examples], GRAPH_SPLIT) + "/*",
                compression_type=GZIP,
            )
            | "Parse" >> beam.Map(tf.train.Example.FromString)
        )
        edges = (
            pipeline
            | "ReadGraph" >> beam.io.ReadFromText(f"{graph.uri}/{GRAPH_PREFIX}*.tsv")
            | "ParseEdges" >> beam.Map(parse_edge)
        )
        _ = (
            (train, edges)
            | "Pack" >> PackNeighbours(max_neighbours)
            | "Serialize" >> beam.Map(lambda example: example.SerializeToString())
            | "Write"
            >> beam.io.WriteToTFRecord(
                f"{packed_examples.uri}/Split-{GRAPH_SPLIT}/data_tfrecord",
                file_name_suffix=".gz",
                compression_type=GZIP,
            )
        )
    for split in splits:
        if split == GRAPH_SPLIT:
            continue
        source = artifact_utils.get_split_uri([examples], split)
        target = f"{packed_examples.uri}/Split-{split}"
        tf.io.gfile.makedirs(target)
        for path in tf.io.gfile.glob(f"{source}/*"):
            tf.io.gfile.copy(path, f"{target}/{path.rsplit('/', 1)[-1]}", overwrite=True)
    packed_examples.split_names = examples.split_names
