"""GraphBuilder: the similarity graph over embeddings of the target train split.

With `embedding_source="auto"` it first chooses the source, threshold and top-k on the
validation speakers (components/graph/selection.py), then builds the train graph with them.
With `incremental` it also keeps a node table (each node's prepared unit vector) and, given the
previous run's graph, extends that graph when `incremental.incompatibility` and `plan` allow,
else rebuilds it; stats.json "build" says which and why.
"""

import dataclasses
import json
import logging
import zlib

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    InputArtifact,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component

from emograph.components import features as F
from emograph.components.artifacts import Embeddings, SimilarityGraph
from emograph.components.config import AUTO, GraphConfig, section_from_json
from emograph.components.embedder.embed import parse_embedding
from emograph.components.graph import incremental, selection
from emograph.components.graph.beam_graph import BuildSimilarityGraph, write_tsv
from emograph.components.graph.prepare import OVERFETCH, PrepareEmbeddings, ReweightSameSpeakerEdges
from emograph.components.graph.similarity import parse_edge, read_tsv
from emograph.components.graph.stats import graph_statistics, plot_graph_statistics

log = logging.getLogger(__name__)

GRAPH_SPLIT = "train"  # labels of train speakers only; eval/test never shape the graph
SELECTION_SPLIT = "eval"  # validation speakers choose the graph, as they choose epochs
GRAPH_PREFIX = "graph"
# With same-speaker reweighting, the cosine lists before it (top OVERFETCH x k), which the next
# incremental run merges on: the reweighted graph alone does not hold them.
CANDIDATES_PREFIX = "candidates"
NODES = "nodes/nodes"  # the node table: each node's prepared unit vector (incremental runs)
STATUS = "node_status"  # each id's status against the previous graph's node table
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


def merged_on(cfg: GraphConfig) -> str:
    """The edge files an incremental run extends: the lists before any reweighting."""
    return GRAPH_PREFIX if cfg.same_speaker_weight == 1 else CANDIDATES_PREFIX


def read_edges(uri: str, prefix: str) -> list:
    return [e for path in tf.io.gfile.glob(f"{uri}/{prefix}*.tsv") for e in read_tsv(path)]


def _previous_stats(previous_uri: str | None) -> dict | None:
    path = f"{previous_uri}/stats.json" if previous_uri is not None else None
    if path is None or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _read_statuses(uri: str) -> dict[str, str]:
    statuses = {}
    for path in tf.io.gfile.glob(f"{uri}/{STATUS}*.tsv"):
        with tf.io.gfile.GFile(path) as f:
            statuses.update(line.rstrip("\n").split("\t") for line in f if line.strip())
    return statuses


@beam.ptransform_fn
def _WriteTsv(edges, prefix: str):  # noqa: N802 (a labelled write_tsv, usable twice in one job)
    return write_tsv(edges, prefix)


def _read_rows(pipeline, pattern: str):
    return (
        pipeline
        | "Read" >> beam.io.ReadFromTFRecord(pattern, compression_type=GZIP)
        | "Parse" >> beam.Map(_row)
    )


def write_node_table(
    pipeline, cfg: GraphConfig, pattern: str, uri: str, previous_uri: str | None
) -> None:
    """Writes this run's node table and, with a previous one to compare, each id's status."""
    units = _read_rows(pipeline, pattern) | "Units" >> incremental.UnitRows(cfg)
    _ = (
        units
        | "NodeExamples" >> beam.Map(incremental.node_example)
        | "WriteNodes"
        >> beam.io.WriteToTFRecord(f"{uri}/{NODES}", file_name_suffix=".gz", compression_type=GZIP)
    )
    if previous_uri is None:
        return
    previous = (
        pipeline
        | "ReadPrevious"
        >> beam.io.ReadFromTFRecord(f"{previous_uri}/{NODES}*.gz", compression_type=GZIP)
        | "ParsePrevious" >> beam.Map(incremental.parse_node)
    )
    _ = (
        {"previous": previous, "current": units}
        | "Statuses" >> incremental.NodeStatuses()
        | "FormatStatus" >> beam.MapTuple(lambda i, status: f"{i}\t{status}")
        | "WriteStatus" >> beam.io.WriteToText(f"{uri}/{STATUS}", file_name_suffix=".tsv")
    )


def extend_previous(pipeline, uri: str, previous_uri: str, keep: frozenset[str], cfg: GraphConfig):
    """The previous graph's lists (`merged_on`) among `keep`, extended by every other node of
    this run's node table: the edges a full build of `cfg` would give (before reweighting)."""
    units = (
        pipeline
        | "ReadNodes" >> beam.io.ReadFromTFRecord(f"{uri}/{NODES}*.gz", compression_type=GZIP)
        | "ParseNodes" >> beam.Map(incremental.parse_node)
    )
    kept_edges = (
        pipeline
        | "ReadOldEdges" >> beam.io.ReadFromText(f"{previous_uri}/{merged_on(cfg)}*.tsv")
        | "ParseOldEdges" >> beam.Map(parse_edge)
        | "KeptEdges" >> beam.Filter(lambda e: e[0] in keep and e[1] in keep)
    )
    return {
        "old": units | "Kept" >> beam.Filter(lambda row: row[0] in keep),
        "new": units | "Added" >> beam.Filter(lambda row: row[0] not in keep),
        "edges": kept_edges,
    } | "Merge" >> incremental.AddNodesToGraph(cfg)


def build_graph(
    embeddings_uri: str,
    graph_uri: str,
    cfg: GraphConfig,
    previous_uri: str | None = None,
    options: PipelineOptions | None = None,
) -> dict:
    """Embeddings (and, with `incremental`, the graph at `previous_uri`) -> graph_uri/graph-*.tsv
    (NSL's format), stats.json, stats.png and, when the source was chosen, selection.json
    (every candidate's homophily). Returns the statistics. Beam jobs run with `options`."""
    pattern = f"{embeddings_uri}/Split-{GRAPH_SPLIT}/*.gz"
    nodes = read_records(pattern, keep_vectors=False)
    cfg, chosen = choose(cfg, embeddings_uri, len(nodes))
    wider = cfg
    if cfg.same_speaker_weight != 1:
        wider = dataclasses.replace(cfg, max_neighbours=OVERFETCH * cfg.max_neighbours)
    reason = "incremental is off"
    if cfg.incremental:
        reason = incremental.incompatibility(cfg, _previous_stats(previous_uri))
        compared = previous_uri if reason is None else None
        with beam.Pipeline(options=options) as pipeline:
            write_node_table(pipeline, cfg, pattern, graph_uri, compared)
    plan = None
    if reason is None:
        plan = incremental.plan(
            _read_statuses(graph_uri),
            read_edges(previous_uri, merged_on(cfg)),
            wider.max_neighbours,
        )
        if not plan.keep:
            reason = f"no old node's vector and neighbours are reusable: {plan.counts}"
    with beam.Pipeline(options=options) as pipeline:
        if reason is None:
            raw = extend_previous(pipeline, graph_uri, previous_uri, plan.keep, wider)
            if cfg.same_speaker_weight != 1:
                speakers = pipeline | "Speakers" >> beam.Create(
                    [(n[F.ID], n[F.SPEAKER]) for n in nodes]
                )
        else:
            rows = _read_rows(pipeline, pattern)
            prepared = rows | "Prepare" >> PrepareEmbeddings(
                cfg.embedding_source, cfg.speaker_centre, cfg.speaker_whiten
            )
            raw = prepared | "Graph" >> BuildSimilarityGraph(wider)
            speakers = rows | "Speakers" >> beam.MapTuple(lambda i, _, speaker: (i, speaker))
        edges = raw
        if cfg.same_speaker_weight != 1:
            if cfg.incremental:
                _ = raw | "WriteCandidates" >> _WriteTsv(f"{graph_uri}/{CANDIDATES_PREFIX}")
            edges = (raw, speakers) | "SameSpeaker" >> ReweightSameSpeakerEdges(
                cfg.same_speaker_weight, cfg.max_neighbours
            )
        write_tsv(edges, f"{graph_uri}/{GRAPH_PREFIX}")

    stats = graph_statistics(
        read_edges(graph_uri, GRAPH_PREFIX),
        [n[F.ID] for n in nodes],
        labels={n[F.ID]: n[F.LABEL] for n in nodes},
        speakers={n[F.ID]: n[F.SPEAKER] for n in nodes},
    )
    stats["config"] = dataclasses.asdict(cfg)
    stats["build"] = build_record(reason, plan, len(nodes), previous_uri, cfg.incremental)
    log.info("graph build: %s", stats["build"])
    if chosen:
        stats["selection"] = {
            "chosen": chosen["chosen"],
            "best_per_source": selection.best_per_source(chosen),
        }
        with tf.io.gfile.GFile(f"{graph_uri}/selection.json", "w") as f:
            json.dump(chosen, f, indent=2)
    with tf.io.gfile.GFile(f"{graph_uri}/stats.json", "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    plot_graph_statistics(stats, f"{graph_uri}/stats.png")
    log.info("graph: %s", {k: v for k, v in stats.items() if not isinstance(v, (dict, list))})
    return stats


@component(use_beam=True)
def GraphBuilder(  # noqa: N802
    embeddings: InputArtifact[Embeddings],
    graph: OutputArtifact[SimilarityGraph],
    config: Parameter[str],
    previous: InputArtifact[SimilarityGraph] = None,
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """The TFX wrapper of `build_graph`; `previous` is the last run's graph (incremental)."""
    build_graph(
        embeddings.uri,
        graph.uri,
        section_from_json(GraphConfig, config),
        previous.uri if previous is not None else None,
        beam_pipeline.options,
    )


def build_record(
    reason: str | None,
    plan: incremental.Plan | None,
    n: int,
    previous_uri: str | None,
    with_table: bool,
) -> dict:
    """stats.json "build": the mode, why, and what was reused. A full build computes every
    node ("new"); an incremental one reuses the edges among `reused_nodes`, recomputes the
    lists of changed nodes and of "refreshed" ones (they had a removed or changed neighbour)."""
    record: dict = {"previous_graph": previous_uri}
    if reason is None:
        counts = plan.counts
        record.update(
            mode="incremental",
            reason="previous graph extended: same settings, old vectors unchanged",
            reused_nodes=len(plan.keep),
            new_nodes=counts[incremental.NEW],
            removed_nodes=counts[incremental.REMOVED],
            changed_nodes=counts[incremental.CHANGED],
            refreshed_nodes=counts["refreshed"],
        )
    else:
        record.update(mode="full", reason=reason, reused_nodes=0, new_nodes=n, removed_nodes=0)
    if with_table:
        record["nodes"] = NODES
    return record
