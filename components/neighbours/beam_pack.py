"""PackNeighbours: nsl.tools.pack_nbrs as a Beam join, without holding the corpus anywhere.

Two CoGroupByKeys: edges keyed by target meet the neighbour example (edges to unknown ids are
dropped, as pack_nbrs drops them before choosing the top-k), then keyed by source they meet the
seed. Examples travel serialized, and are parsed only where they are merged.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import tensorflow as tf

from emograph.components.neighbours.packing import example_id, pack_example, select_neighbours

_MISSING = beam.metrics.Metrics.counter("PackNeighbours", "edges_to_unknown_ids")


class PackNeighbours(beam.PTransform):
    """(examples, edges) -> every example with its top-`max_neighbours` neighbours (0 = all)."""

    def __init__(
        self, max_neighbours: int, id_feature: str = "id", add_undirected_edges: bool = False
    ):
        super().__init__()
        if max_neighbours < 0:
            raise ValueError(f"max_neighbours must be >= 0, got {max_neighbours}")
        self._max_neighbours = max_neighbours
        self._id_feature = id_feature
        self._undirected = add_undirected_edges

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        examples, edges = inputs
        id_feature = self._id_feature
        by_id = examples | "KeyById" >> beam.Map(
            lambda ex: (example_id(ex, id_feature), ex.SerializeToString())
        )
        if self._undirected:
            edges = edges | "AddReverse" >> beam.FlatMap(lambda e: [e, (e[1], e[0], e[2])])
        by_target = (
            edges
            | "KeyByPair" >> beam.Map(lambda e: ((e[0], e[1]), e[2]))
            # pack_nbrs keeps the heaviest of repeated (and, when undirected, reversed) edges.
            | "DedupeEdges" >> beam.CombinePerKey(max)
            | "KeyByTarget" >> beam.MapTuple(lambda st, w: (st[1], (st[0], w)))
        )
        nbrs_by_source = (
            {"example": by_id, "in_edges": by_target}
            | "JoinTargets" >> beam.CoGroupByKey()
            | "AttachNeighbour" >> beam.FlatMap(_attach_neighbour)
        )
        return (
            {"seed": by_id, "nbrs": nbrs_by_source}
            | "JoinSources" >> beam.CoGroupByKey()
            | "Pack" >> beam.FlatMap(_pack, self._max_neighbours)
        )


def _attach_neighbour(item: tuple[str, dict]) -> Iterator[tuple[str, tuple[float, str, bytes]]]:
    target, joined = item
    examples = list(joined["example"])
    if not examples:
        _MISSING.inc(len(list(joined["in_edges"])))
        return
    _unique(target, examples)
    for source, weight in joined["in_edges"]:
        yield source, (weight, target, examples[0])


def _pack(item: tuple[str, dict], max_neighbours: int) -> Iterator[tf.train.Example]:
    seed_id, joined = item
    seeds = list(joined["seed"])
    if not seeds:  # edges from an id that is not an example: nothing to pack
        return
    _unique(seed_id, seeds)
    chosen = select_neighbours(joined["nbrs"], max_neighbours)
    nbrs = [(w, tf.train.Example.FromString(ex)) for w, _, ex in chosen]
    yield pack_example(tf.train.Example.FromString(seeds[0]), nbrs)


def _unique(node_id: str, examples: list[bytes]) -> None:
    if len(examples) > 1:
        raise ValueError(f"duplicate example id {node_id!r}: {len(examples)} examples")
