"""New nodes joined to an existing similarity graph, without recomputing old-old pairs.

A node's top-k among the old nodes is already in the old graph, and a new node can only enter
or displace entries of it, so each old node's new neighbour list is the top-k of its old edges
plus its edges to new nodes. Only new-new and new-old cosines are computed: O(new x all) work
instead of O(all^2). The result equals a full exact rebuild on the union (same threshold, top-k,
tie rule) when the rows are normalised the same way. Global `centre` depends on the whole node
set, so a graph with it is always rebuilt; speaker centring depends on each speaker's nodes,
so a speaker's nodes change when its clips do.

Between runs (`plan`): an old node is reusable only if its prepared unit vector is unchanged.
A node that disappeared or whose vector changed (e.g. its speaker's centring statistics moved)
is *gone*; a changed one comes back as a new node. An old node whose top-k held a gone node has
lost a neighbour whose replacement the old graph never kept, so its list is recomputed too
(it is re-added with its unchanged vector). Every other old node's list is the top-k over its
kept old edges plus its edges to the re-added and new nodes: the same as a full rebuild. One
level suffices: a re-added node keeps its vector, so edges to it are recomputed unchanged.
With LSH the old lists are LSH lists and all new pairs are exact, so every node's candidates
are a superset of an LSH rebuild's: its i-th neighbour is at least as heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from emograph.components import features as F
from emograph.components.config import GraphConfig
from emograph.components.embedder.embed import embedding_example, parse_embedding
from emograph.components.graph import similarity
from emograph.components.graph.beam_graph import (
    NODES_PER_PARTITION,
    Block,
    MergeCandidates,
    candidates_by_partition,
    to_block,
)
from emograph.components.graph.prepare import PrepareEmbeddings
from emograph.components.graph.similarity import Candidates

Edge = similarity.Edge

# Settings that shape the graph once the source, threshold and top-k are chosen; a previous
# graph built with others is rebuilt. (Selection settings only matter through the choice.)
COMPARED = (
    "embedding_source",
    "similarity_threshold",
    "max_neighbours",
    "speaker_centre",
    "speaker_whiten",
    "same_speaker_weight",
    "centre",
    "lsh_splits",
    "lsh_rounds",
    "lsh_rounds_per_shuffle",
    "seed",
)
# Largest |difference| per component of a unit vector still counted unchanged: re-embedding
# the same audio in other batches, or summing a speaker's moments in another order, moves
# float32 values by ~1e-7; a real change (new teacher, new clip of the speaker) by far more.
TOLERANCE = 1e-6
NEW, REMOVED, CHANGED, UNCHANGED = "new", "removed", "changed", "unchanged"
UNIT = "unit"  # the node table's vector: the prepared, L2-normalised row the graph compared


def incompatibility(cfg: GraphConfig, previous: Mapping | None) -> str | None:
    """Why the previous graph (its stats.json) cannot be extended under `cfg`; None if it can,
    node by node (`plan` then checks each node's vector)."""
    if previous is None:
        return "no previous graph"
    if cfg.centre:
        return "centre is on: the mean embedding moves with every node, so every cosine does"
    if "nodes" not in previous.get("build", {}):
        return "the previous graph has no node table (built with incremental off)"
    old = previous.get("config", {})
    changed = [
        f"{f} {old.get(f)!r} -> {getattr(cfg, f)!r}"
        for f in COMPARED
        if old.get(f) != getattr(cfg, f)
    ]
    return f"graph settings changed: {', '.join(changed)}" if changed else None


def node_status(previous: np.ndarray | None, current: np.ndarray | None) -> str:
    """One id's fate between the previous graph's node table and this run's."""
    if previous is None:
        return NEW
    if current is None:
        return REMOVED
    same = previous.shape == current.shape and np.abs(previous - current).max() <= TOLERANCE
    return UNCHANGED if same else CHANGED


@dataclass(frozen=True)
class Plan:
    """Which old nodes keep their edges among themselves; every other node is (re-)added."""

    keep: frozenset[str]
    counts: dict[str, int]  # status -> nodes, plus "refreshed": unchanged, list recomputed


def plan(statuses: Mapping[str, str], old_edges: Iterable[Edge], k: int) -> Plan:
    """From each id's status and the previous graph's edges (the lists merged on), the nodes
    whose lists are reused. With k = 0 lists are complete, so losing a neighbour loses nothing
    else."""
    gone = {i for i, s in statuses.items() if s in (REMOVED, CHANGED)}
    unchanged = {i for i, s in statuses.items() if s == UNCHANGED}
    refreshed = {s for s, t, _ in old_edges if t in gone and s in unchanged} if k else set()
    counts = {s: 0 for s in (NEW, REMOVED, CHANGED, UNCHANGED)}
    for s in statuses.values():
        counts[s] += 1
    counts["refreshed"] = len(refreshed)
    return Plan(frozenset(unchanged - refreshed), counts)


def added_edges(
    old_ids: Sequence[str],
    old: np.ndarray,
    new_ids: Sequence[str],
    new: np.ndarray,
    threshold: float,
    k: int = 0,
    max_rows: int = 4096,
) -> list[Edge]:
    """Every edge (both directions) with cosine >= threshold that touches a new node.

    Rows are unit vectors; old rows are compared `max_rows` at a time, so memory stays
    O(new x max_rows) however big the graph is.
    """
    clash = set(old_ids) & set(new_ids)
    if clash:
        raise ValueError(f"new nodes already in the graph: {sorted(clash)[:5]}")
    edges = similarity.block_similarities(new_ids, new, new_ids, new, threshold, k)
    for start in range(0, len(old_ids), max_rows):
        chunk_ids, chunk = old_ids[start : start + max_rows], old[start : start + max_rows]
        edges += similarity.block_similarities(new_ids, new, chunk_ids, chunk, threshold, k)
    return edges


def merge_new_nodes(
    old_edges: Iterable[Edge],
    old_ids: Sequence[str],
    old: np.ndarray,
    new_ids: Sequence[str],
    new: np.ndarray,
    threshold: float,
    k: int = 0,
) -> list[Edge]:
    """The old graph's edges with the new nodes added: every node's top-k over the union."""
    fresh = added_edges(old_ids, old, new_ids, new, threshold, k)
    return similarity.top_k_edges([*old_edges, *fresh], k)


class AddNodesToGraph(beam.PTransform):
    """{"old": (id, unit row), "new": (id, unit row), "edges": (source, target, weight)} ->
    the merged graph's edges, as `merge_new_nodes` computes them.

    The new nodes (one span's worth, small beside the graph) reach every worker as one side
    input block; old rows stream past them in blocks, so the old graph is never held whole.
    Old edges and new pairs meet in the full build's top-k merge (`MergeCandidates`). New ids
    must not be in the old graph (`merge_new_nodes` checks it).
    """

    def __init__(self, cfg: GraphConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        cfg = self._cfg
        partitions = beam.pvalue.AsSingleton(
            inputs["old"]
            | "OldNodes" >> beam.combiners.Count.Globally()
            | "Partitions" >> beam.Map(lambda n: max(1, -(-n // NODES_PER_PARTITION)))
        )
        new_block = beam.pvalue.AsSingleton(
            inputs["new"]
            | "NewRows" >> beam.combiners.ToList()
            | "NewBlock" >> beam.Map(lambda rows: to_block(rows) if rows else None)
        )
        old_blocks = (
            inputs["old"]
            | "BatchOld" >> beam.BatchElements(min_batch_size=1024, max_batch_size=16384)
            | "OldBlocks" >> beam.Map(to_block)
        )
        new_new = (
            inputs["old"].pipeline
            | "Once" >> beam.Create([None])
            | "NewNew"
            >> beam.FlatMap(lambda _, b, p: _new_pairs(b, b, cfg, p), new_block, partitions)
        )
        new_old = old_blocks | "NewOld" >> beam.FlatMap(
            lambda old, b, p: _new_pairs(b, old, cfg, p), new_block, partitions
        )
        old_edges = (
            inputs["edges"]
            | "BatchEdges" >> beam.BatchElements(min_batch_size=4096, max_batch_size=65536)
            | "EdgeCandidates" >> beam.FlatMap(_edge_candidates, partitions)
        )
        return (
            (old_edges, new_new, new_old)
            | "AllCandidates" >> beam.Flatten()
            | "TopK" >> MergeCandidates(cfg.max_neighbours)
        )


def _new_pairs(
    new: Block | None, other: Block | None, cfg: GraphConfig, partitions: int
) -> Iterator[tuple[int, Candidates]]:
    """Candidates between the new block and `other` (the new block itself for new-new pairs)."""
    if new is None or other is None:  # no new nodes: the old graph passes through
        return
    same = other is new
    pairs = similarity.block_candidates(
        new[2], None if same else other[2], cfg.similarity_threshold, cfg.max_neighbours
    )
    ids, keys = (new[0], new[1]) if same else (np.concatenate([new[i], other[i]]) for i in (0, 1))
    yield from candidates_by_partition(ids, keys, pairs, partitions)


def _edge_candidates(edges: list[Edge], partitions: int) -> Iterator[tuple[int, Candidates]]:
    """A batch of the old graph's edges as candidates (rows: sources, then targets)."""
    ids = np.array([e[i].encode() for i in (0, 1) for e in edges])
    n = len(edges)
    pairs = (np.arange(n), np.arange(n, 2 * n), np.array([e[2] for e in edges], np.float32))
    yield from candidates_by_partition(ids, similarity.node_keys(ids), pairs, partitions)


class UnitRows(beam.PTransform):
    """(id, {source: vector}, speaker) -> (id, unit row): what the graph compares
    (PrepareEmbeddings, then L2 normalisation; no global centring, see `incompatibility`)."""

    def __init__(self, cfg: GraphConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, rows):
        cfg = self._cfg
        return (
            rows
            | "Prepare"
            >> PrepareEmbeddings(cfg.embedding_source, cfg.speaker_centre, cfg.speaker_whiten)
            | "Unit" >> beam.MapTuple(lambda i, row: (i, similarity.normalise(row[None])[0]))
        )


def node_example(node: tuple[str, np.ndarray]) -> bytes:
    """One row of the node table, kept in the graph artifact for the next run."""
    return embedding_example(node[0].encode(), {UNIT: node[1]}, {})


def parse_node(serialized: bytes) -> tuple[str, np.ndarray]:
    record = parse_embedding(serialized)
    return record[F.ID], record["vectors"][UNIT]


class NodeStatuses(beam.PTransform):
    """{"previous": (id, unit row), "current": (id, unit row)} -> (id, status) for every id."""

    def expand(self, tables):
        return tables | "JoinNodes" >> beam.CoGroupByKey() | "Status" >> beam.MapTuple(_status)


def _status(node_id: str, joined: dict[str, Iterable[np.ndarray]]) -> tuple[str, str]:
    previous, current = list(joined["previous"]), list(joined["current"])
    if len(previous) > 1 or len(current) > 1:
        raise ValueError(f"node {node_id!r} occurs twice in a node table")
    return node_id, node_status(*(rows[0] if rows else None for rows in (previous, current)))
