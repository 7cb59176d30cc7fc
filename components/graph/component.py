"""GraphBuilder: the similarity graph over embeddings of the target train split."""

import json
import logging

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component

from components import features as F
from components.artifacts import Embeddings, SimilarityGraph
from components.embedder.component import SOURCE_PROPERTY
from components.embedder.embed import parse_embedding
from components.graph.beam_graph import BuildSimilarityGraph, CentrePerSpeaker, write_tsv
from components.graph.similarity import read_tsv
from components.graph.stats import graph_statistics, plot_graph_statistics
from pipeline.config import GraphConfig, section_from_json

log = logging.getLogger(__name__)

GRAPH_SPLIT = "train"  # labels of train speakers only; eval/test never shape the graph
GRAPH_PREFIX = "graph"


def _id_vector_speaker(serialized: bytes) -> tuple[str, np.ndarray, str]:
    record = parse_embedding(serialized)
    return record[F.ID], record[F.EMBEDDING], record.get(F.SPEAKER, "")


def read_node_attributes(pattern: str) -> list[dict]:
    """(id, label, speaker) of every node, for the statistics (small beside the embeddings)."""
    records = []
    for path in tf.io.gfile.glob(pattern):
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            record = parse_embedding(raw)
            record.pop(F.EMBEDDING)
            records.append(record)
    return records


@component(use_beam=True)
def GraphBuilder(  # noqa: N802
    embeddings: InputArtifact[Embeddings],
    graph: OutputArtifact[SimilarityGraph],
    config: Parameter[str],
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Embeddings -> graph-*.tsv (NSL's format), stats.json and stats.png."""
    cfg = section_from_json(GraphConfig, config)
    made_from = embeddings.get_string_custom_property(SOURCE_PROPERTY) or "teacher"
    if made_from != cfg.embedding_source:
        raise ValueError(
            f"GraphConfig.embedding_source is {cfg.embedding_source!r} but the Embedder made "
            f"{made_from!r} embeddings: pass it source=config.graph.embedding_source (and "
            "raw_examples for 'statistics')"
        )
    pattern = f"{embeddings.uri}/Split-{GRAPH_SPLIT}/*.gz"
    with beam_pipeline as pipeline:
        rows = (
            pipeline
            | "Read"
            >> beam.io.ReadFromTFRecord(
                pattern, compression_type=beam.io.filesystem.CompressionTypes.GZIP
            )
            | "Parse" >> beam.Map(_id_vector_speaker)
        )
        if cfg.speaker_centre:
            rows = rows | "CentrePerSpeaker" >> CentrePerSpeaker()
        else:
            rows = rows | "DropSpeaker" >> beam.MapTuple(lambda i, v, _: (i, v))
        edges = rows | "Graph" >> BuildSimilarityGraph(cfg)
        write_tsv(edges, f"{graph.uri}/{GRAPH_PREFIX}")

    nodes = read_node_attributes(pattern)
    edges = [
        e for path in tf.io.gfile.glob(f"{graph.uri}/{GRAPH_PREFIX}*.tsv") for e in read_tsv(path)
    ]
    stats = graph_statistics(
        edges,
        [n[F.ID] for n in nodes],
        labels={n[F.ID]: n[F.LABEL] for n in nodes},
        speakers={n[F.ID]: n[F.SPEAKER] for n in nodes},
    )
    stats["config"] = json.loads(config)
    with tf.io.gfile.GFile(f"{graph.uri}/stats.json", "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    plot_graph_statistics(stats, f"{graph.uri}/stats.png")
    log.info("graph: %s", {k: v for k, v in stats.items() if not isinstance(v, (dict, list))})
