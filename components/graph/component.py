"""GraphBuilder: the similarity graph over embeddings of the target train split.

With `embedding_source="auto"` it first chooses the source, threshold and top-k on the
validation speakers (components/graph/selection.py), then builds the train graph with them.
"""

import dataclasses
import json
import logging
import zlib

import apache_beam as beam
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
from components.embedder.embed import parse_embedding
from components.graph import selection
from components.graph.beam_graph import BuildSimilarityGraph, write_tsv
from components.graph.prepare import OVERFETCH, PrepareEmbeddings, ReweightSameSpeakerEdges
from components.graph.similarity import read_tsv
from components.graph.stats import graph_statistics, plot_graph_statistics
from pipeline.config import AUTO, GraphConfig, section_from_json

log = logging.getLogger(__name__)

GRAPH_SPLIT = "train"  # labels of train speakers only; eval/test never shape the graph
SELECTION_SPLIT = "eval"  # validation speakers choose the graph (issue 8), as they choose epochs
GRAPH_PREFIX = "graph"
GZIP = beam.io.filesystem.CompressionTypes.GZIP


def _row(serialized: bytes) -> tuple[str, dict, str]:
    record = parse_embedding(serialized)
    return record[F.ID], record["vectors"], record.get(F.SPEAKER, "")


def read_records(pattern: str, keep_vectors: bool, fraction: float = 1.0) -> list[dict]:
    """Parsed embedding examples; without vectors (node attributes) or, with them, a share
    `fraction` of the ids chosen by a stable hash (a sample for the selection)."""
    records = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            record = parse_embedding(raw)
            if not keep_vectors:
                record.pop("vectors")
            elif zlib.crc32(record[F.ID].encode()) / 2**32 >= fraction:
                continue
            records.append(record)
    return records


def choose(cfg: GraphConfig, embeddings_uri: str, train_nodes: int) -> tuple[GraphConfig, dict]:
    """With embedding_source "auto": the selection's choice and its table; else cfg as is."""
    if cfg.embedding_source != AUTO:
        return cfg, {}
    limit, seed = cfg.selection_max_nodes, cfg.seed
    validation = read_records(f"{embeddings_uri}/Split-{SELECTION_SPLIT}/*.gz", True)
    train = read_records(
        f"{embeddings_uri}/Split-{GRAPH_SPLIT}/*.gz", True, min(1.0, 1.5 * limit / train_nodes)
    )
    result = selection.select(
        selection.Nodes.from_records(validation, limit, seed),
        selection.Nodes.from_records(train, limit, seed),
        cfg,
    )
    chosen = result["chosen"]
    log.info("graph selection chose %s", chosen)
    return cfg.chosen(chosen["source"], chosen["threshold"], chosen["neighbours"]), result


@component(use_beam=True)
def GraphBuilder(  # noqa: N802
    embeddings: InputArtifact[Embeddings],
    graph: OutputArtifact[SimilarityGraph],
    config: Parameter[str],
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Embeddings -> graph-*.tsv (NSL's format), stats.json, stats.png and, when the source
    was chosen, selection.json (every candidate's homophily)."""
    pattern = f"{embeddings.uri}/Split-{GRAPH_SPLIT}/*.gz"
    nodes = read_records(pattern, keep_vectors=False)
    cfg, chosen = choose(section_from_json(GraphConfig, config), embeddings.uri, len(nodes))
    with beam_pipeline as pipeline:
        rows = (
            pipeline
            | "Read" >> beam.io.ReadFromTFRecord(pattern, compression_type=GZIP)
            | "Parse" >> beam.Map(_row)
        )
        prepared = rows | "Prepare" >> PrepareEmbeddings(
            cfg.embedding_source, cfg.speaker_centre, cfg.speaker_whiten
        )
        if cfg.same_speaker_weight == 1:
            edges = prepared | "Graph" >> BuildSimilarityGraph(cfg)
        else:
            wider = dataclasses.replace(cfg, max_neighbours=OVERFETCH * cfg.max_neighbours)
            speakers = rows | "Speakers" >> beam.MapTuple(lambda i, _, speaker: (i, speaker))
            edges = (
                prepared | "Graph" >> BuildSimilarityGraph(wider),
                speakers,
            ) | "SameSpeaker" >> ReweightSameSpeakerEdges(
                cfg.same_speaker_weight, cfg.max_neighbours
            )
        write_tsv(edges, f"{graph.uri}/{GRAPH_PREFIX}")

    edges = [
        e for path in tf.io.gfile.glob(f"{graph.uri}/{GRAPH_PREFIX}*.tsv") for e in read_tsv(path)
    ]
    stats = graph_statistics(
        edges,
        [n[F.ID] for n in nodes],
        labels={n[F.ID]: n[F.LABEL] for n in nodes},
        speakers={n[F.ID]: n[F.SPEAKER] for n in nodes},
    )
    stats["config"] = dataclasses.asdict(cfg)
    if chosen:
        stats["selection"] = {
            "chosen": chosen["chosen"],
            "best_per_source": selection.best_per_source(chosen),
        }
        with tf.io.gfile.GFile(f"{graph.uri}/selection.json", "w") as f:
            json.dump(chosen, f, indent=2)
    with tf.io.gfile.GFile(f"{graph.uri}/stats.json", "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    plot_graph_statistics(stats, f"{graph.uri}/stats.png")
    log.info("graph: %s", {k: v for k, v in stats.items() if not isinstance(v, (dict, list))})
