"""Incremental neighbours: new nodes joined to an existing graph equal a full exact rebuild."""

import dataclasses

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

import emograph.components.compat  # noqa: F401
from emograph.components.config import GraphConfig
from emograph.components.graph import incremental, similarity
from emograph.components.graph.incremental import AddNodesToGraph, added_edges, merge_new_nodes

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


# --- between runs: what may be reused ------------------------------------------------------------


def previous_stats(cfg: GraphConfig) -> dict:
    return {"config": dataclasses.asdict(cfg), "build": {"nodes": "nodes/nodes"}}


def test_a_previous_graph_is_extended_only_under_the_same_settings():
    cfg = GraphConfig(embedding_source="statistics", centre=False, incremental=True)
    assert incremental.incompatibility(cfg, previous_stats(cfg)) is None
    assert "no previous graph" in incremental.incompatibility(cfg, None)
    centred = dataclasses.replace(cfg, centre=True)
    assert "centre" in incremental.incompatibility(centred, previous_stats(centred))
    no_table = {"config": dataclasses.asdict(cfg), "build": {"mode": "full"}}
    assert "no node table" in incremental.incompatibility(cfg, no_table)
    # "auto" chose another source or top-k this time: a rebuild, naming what moved
    chosen = cfg.chosen("statistics+teacher", cfg.similarity_threshold, 3)
    reason = incremental.incompatibility(chosen, previous_stats(cfg))
    assert "embedding_source 'statistics' -> 'statistics+teacher'" in reason
    assert "max_neighbours 5 -> 3" in reason
    lsh = dataclasses.replace(cfg, lsh_splits=4)
    assert "lsh_splits" in incremental.incompatibility(lsh, previous_stats(cfg))
    # selection-only settings do not shape the chosen graph
    other_candidates = dataclasses.replace(cfg, candidates=("logmel",), selection_max_nodes=9)
    assert incremental.incompatibility(other_candidates, previous_stats(cfg)) is None


def test_node_status_tolerates_float_noise_only():
    _, emb = unit_rows(3)
    noisy = emb[0] + 1e-7
    assert incremental.node_status(emb[0], noisy) == incremental.UNCHANGED
    assert incremental.node_status(emb[0], emb[1]) == incremental.CHANGED
    assert incremental.node_status(emb[0], emb[0][:-1]) == incremental.CHANGED
    assert incremental.node_status(None, emb[0]) == incremental.NEW
    assert incremental.node_status(emb[0], None) == incremental.REMOVED


def next_run(seed: int = 3):
    """Old and current unit rows: some old nodes removed, some changed (as when their
    speaker's statistics move), some new; the rest are the old vectors plus float noise."""
    ids, emb = unit_rows(200, seed=seed)
    rng = np.random.default_rng(seed)
    old = dict(zip(ids[:170], emb[:170], strict=True))
    current = {i: v + rng.uniform(-1e-7, 1e-7, v.shape) for i, v in old.items()}
    for i in ids[:12]:  # removed
        del current[i]
    for i in ids[12:24]:  # changed
        current[i] = similarity.normalise(current[i][None] + 0.5 * rng.standard_normal(12))[0]
    current.update(zip(ids[170:], emb[170:], strict=True))  # new
    return old, current


def merge_as_planned(old: dict, current: dict, old_edges, k: int, refresh: bool = True):
    statuses = {i: incremental.node_status(old.get(i), current.get(i)) for i in {*old, *current}}
    plan = incremental.plan(statuses, old_edges, k if refresh else 0)
    keep = sorted(plan.keep)
    added = sorted(set(current) - plan.keep)
    kept_edges = [e for e in old_edges if e[0] in plan.keep and e[1] in plan.keep]
    rows = lambda ids: np.stack([current[i] for i in ids])  # noqa: E731
    merged = merge_new_nodes(kept_edges, keep, rows(keep), added, rows(added), THRESHOLD, k)
    return merged, plan


@pytest.mark.parametrize("k", [0, 1, 4])
def test_removed_and_changed_nodes_merge_into_a_full_rebuild(k):
    old, current = next_run()
    old_ids = sorted(old)
    old_edges = similarity.exact_edges(old_ids, np.stack([old[i] for i in old_ids]), THRESHOLD, k)
    merged, plan = merge_as_planned(old, current, old_edges, k)
    ids = sorted(current)
    assert_same_edges(
        merged, similarity.exact_edges(ids, np.stack([current[i] for i in ids]), THRESHOLD, k)
    )
    counts = plan.counts
    assert (counts["removed"], counts["changed"], counts["new"]) == (12, 12, 30)
    assert counts["unchanged"] == 146 and len(plan.keep) == 146 - counts["refreshed"]
    assert (counts["refreshed"] > 0) == (k > 0) and len(plan.keep) >= 80


def test_without_refreshing_lists_that_lost_a_neighbour_the_merge_is_wrong():
    """Why `plan` re-adds them: the old graph never kept their next-best neighbour."""
    old, current = next_run()
    old_ids = sorted(old)
    old_edges = similarity.exact_edges(old_ids, np.stack([old[i] for i in old_ids]), THRESHOLD, 4)
    naive, _ = merge_as_planned(old, current, old_edges, 4, refresh=False)
    ids = sorted(current)
    want = similarity.exact_edges(ids, np.stack([current[i] for i in ids]), THRESHOLD, 4)
    assert as_dict(naive).keys() != as_dict(want).keys()


def lsh_edges(ids, emb, threshold, k, planes) -> list:
    """Reference LSH graph: exact within each bucket of each round, then every node's top-k."""
    codes = similarity.lsh_bucket_ids(emb, planes)
    edges = []
    for r in range(codes.shape[1]):
        for bucket in np.unique(codes[:, r]):
            members = np.flatnonzero(codes[:, r] == bucket)
            block = emb[members]
            edges += similarity.block_similarities(
                [ids[m] for m in members], block, [ids[m] for m in members], block, threshold
            )
    return similarity.top_k_edges(edges, k)


def test_with_lsh_every_neighbour_is_at_least_as_heavy_as_an_lsh_rebuilds():
    old, current = next_run(seed=5)
    planes = similarity.lsh_planes(0, 2, 1, 12)
    old_ids = sorted(old)
    old_edges = lsh_edges(old_ids, np.stack([old[i] for i in old_ids]), THRESHOLD, 4, planes)
    merged, _ = merge_as_planned(old, current, old_edges, 4)
    ids = sorted(current)
    rebuilt = lsh_edges(ids, np.stack([current[i] for i in ids]), THRESHOLD, 4, planes)

    def lists(edges):
        out = {}
        for s, _, w in edges:
            out.setdefault(s, []).append(w)
        return {s: sorted(ws, reverse=True) for s, ws in out.items()}

    got, lsh = lists(merged), lists(rebuilt)
    for node, weights in lsh.items():
        mine = got.get(node, [])
        assert len(mine) >= len(weights)
        assert all(a >= b - 1e-6 for a, b in zip(mine, weights, strict=False))
    assert got != lsh  # new pairs are exact: some nodes found better neighbours than LSH
