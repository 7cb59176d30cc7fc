"""Incremental neighbours: new nodes joined to an existing graph equal a full exact rebuild."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

import components  # noqa: F401
from components.graph import similarity
from components.graph.incremental import AddNodesToGraph, added_edges, merge_new_nodes
from pipeline.config import GraphConfig

THRESHOLD = 0.3


def unit_rows(n: int, dim: int = 12, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, dim))
    emb = centres[rng.integers(0, 6, n)] + 0.7 * rng.standard_normal((n, dim))
    return [f"n{i:03d}" for i in range(n)], similarity.normalise(emb)


def as_dict(edges) -> dict[tuple[str, str], float]:
    return {(s, t): w for s, t, w in edges}


def assert_same_edges(got, want) -> None:
    got, want = as_dict(got), as_dict(want)
    assert got.keys() == want.keys()
    assert max(abs(got[e] - want[e]) for e in got) <= 1e-6


@pytest.mark.parametrize("k", [0, 1, 4])
def test_merged_graph_equals_a_full_rebuild_on_the_union(k):
    ids, emb = unit_rows(160)
    old_ids, old, new_ids, new = ids[:130], emb[:130], ids[130:], emb[130:]
    old_edges = similarity.exact_edges(old_ids, old, THRESHOLD, k)
    merged = merge_new_nodes(old_edges, old_ids, old, new_ids, new, THRESHOLD, k)
    assert_same_edges(merged, similarity.exact_edges(ids, emb, THRESHOLD, k))
    if k:  # new nodes displaced some old neighbours
        assert not as_dict(old_edges).keys() <= as_dict(merged).keys()


def test_only_pairs_with_a_new_node_are_computed():
    ids, emb = unit_rows(90, seed=1)
    old_ids, new_ids = set(ids[:80]), ids[80:]
    edges = added_edges(ids[:80], emb[:80], new_ids, emb[80:], THRESHOLD, max_rows=7)
    assert edges and all(not (s in old_ids and t in old_ids) for s, t, _ in edges)
    with pytest.raises(ValueError, match="already in the graph"):
        added_edges(ids[:80], emb[:80], ids[79:], emb[79:], THRESHOLD)


def test_beam_transform_matches_the_function():
    ids, emb = unit_rows(120, seed=2)
    cfg = GraphConfig(similarity_threshold=THRESHOLD, max_neighbours=3)
    old_edges = similarity.exact_edges(ids[:100], emb[:100], THRESHOLD, 3)
    want = as_dict(similarity.exact_edges(ids, emb, THRESHOLD, 3))

    def check(got):
        got = as_dict(got)
        assert got.keys() == want.keys()
        assert max(abs(got[e] - want[e]) for e in got) <= 1e-6

    rows = list(zip(ids, emb, strict=True))
    with beam.Pipeline() as p:
        merged = {
            "old": p | "Old" >> beam.Create(rows[:100]),
            "new": p | "New" >> beam.Create(rows[100:]),
            "edges": p | "Edges" >> beam.Create(old_edges),
        } | AddNodesToGraph(cfg)
        assert_that(merged, check)
