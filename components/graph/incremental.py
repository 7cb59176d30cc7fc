"""New nodes joined to an existing similarity graph, without recomputing old-old pairs.

A node's top-k among the old nodes is already in the old graph, and a new node can only enter
or displace entries of it, so each old node's new neighbour list is the top-k of its old edges
plus its edges to new nodes. Only new-new and new-old cosines are computed: O(new x all) work
instead of O(all^2). The result equals a full exact rebuild on the union (same threshold, top-k,
tie rule) when the rows are normalised the same way; `centre` and speaker centring depend on
the whole node set, so the caller keeps the existing graph's means (a full rebuild recentres).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np

from components.graph import similarity
from components.graph.beam_graph import Block, _to_block, _TopNeighbours
from pipeline.config import GraphConfig

Edge = similarity.Edge


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
    New ids must not be in the old graph (`merge_new_nodes` checks it).
    """

    def __init__(self, cfg: GraphConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        cfg = self._cfg
        new_block = beam.pvalue.AsSingleton(
            inputs["new"]
            | "NewRows" >> beam.combiners.ToList()
            | "NewBlock" >> beam.Map(lambda rows: _to_block(rows) if rows else None)
        )
        old_blocks = (
            inputs["old"]
            | "BatchOld" >> beam.BatchElements(min_batch_size=1024, max_batch_size=16384)
            | "OldBlocks" >> beam.Map(_to_block)
        )
        new_new = (
            inputs["old"].pipeline
            | "Once" >> beam.Create([None])
            | "NewNew" >> beam.FlatMap(lambda _, b: _new_edges(b, b, cfg), new_block)
        )
        new_old = old_blocks | "NewOld" >> beam.FlatMap(
            lambda old, b: _new_edges(b, old, cfg), new_block
        )
        return (
            (inputs["edges"], new_new, new_old)
            | "AllEdges" >> beam.Flatten()
            | "BySource" >> beam.MapTuple(lambda s, t, w: (s, [(w, t)]))
            | "TopK" >> beam.CombinePerKey(_TopNeighbours(cfg.max_neighbours))
            | "ToEdges" >> beam.FlatMap(lambda kv: [(kv[0], t, w) for w, t in kv[1]])
        )


def _new_edges(new: Block | None, other: Block | None, cfg: GraphConfig) -> list[Edge]:
    """Edges between the new block and `other` (the new block itself for new-new pairs)."""
    if new is None or other is None:  # no new nodes: the old graph passes through
        return []
    return similarity.block_similarities(
        new[0], new[1], other[0], other[1], cfg.similarity_threshold, cfg.max_neighbours
    )
