"""The similarity graph: numpy core on hand-made vectors, the Beam transform, statistics."""

import dataclasses
import math

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

import emograph.components.compat  # noqa: F401
from emograph.components.config import GraphConfig
from emograph.components.graph import beam_graph, similarity
from emograph.components.graph.beam_graph import BuildSimilarityGraph, write_tsv
from emograph.components.graph.stats import graph_statistics, plot_graph_statistics

# Unit vectors with pairwise cosine 0.5 (a regular tetrahedron's corner), and one at -0.5..0.
TRIANGLE = np.array(
    [[1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0], [0.5, math.sqrt(3) / 6, math.sqrt(6) / 3]],
    dtype=np.float32,
)


def clustered(n: int, dim: int = 16, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 20, 1), dim))
    emb = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim))
    return [f"n{i:04d}" for i in range(n)], (emb + 0.3).astype(np.float32)


def run_graph(ids, emb, cfg: GraphConfig, tmp_path) -> list[similarity.Edge]:
    with beam.Pipeline() as p:
        edges = p | beam.Create(list(zip(ids, emb, strict=True))) | BuildSimilarityGraph(cfg)
        write_tsv(edges, str(tmp_path / "graph"), num_shards=1)
    return similarity.read_tsv(str(tmp_path / "graph.tsv"))


def as_dict(edges) -> dict[tuple[str, str], float]:
    return {(s, t): w for s, t, w in edges}


# Weights pass through "%f" (6 decimals) on the way to TSV: two roundings of nearly equal
# float32 cosines can differ by one unit in the last place, 1e-6, plus float error.
def assert_same_edges(got, want, atol=1e-6 + 1e-9):
    got, want = as_dict(got), as_dict(want)
    assert got.keys() == want.keys()
    assert max((abs(got[k] - want[k]) for k in got), default=0.0) <= atol


# --- numpy core ---------------------------------------------------------------------------------


def test_normalise_scales_rows_and_keeps_zero_rows_zero():
    x = similarity.normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    assert x.dtype == np.float32
    centred = similarity.normalise(np.array([[2.0, 1.0], [0.0, 1.0]]), mean=np.array([1.0, 1.0]))
    np.testing.assert_allclose(centred, [[1.0, 0.0], [-1.0, 0.0]])


def test_block_similarities_finds_the_known_cosines():
    ids = ["a", "b", "c"]
    edges = similarity.block_similarities(ids, TRIANGLE, ids, TRIANGLE, threshold=0.4)
    assert sorted((s, t) for s, t, _ in edges) == [(s, t) for s in ids for t in ids if s != t]
    np.testing.assert_allclose([w for *_, w in edges], 0.5, atol=1e-6)
    assert similarity.block_similarities(ids, TRIANGLE, ids, TRIANGLE, threshold=0.6) == []


def test_block_similarities_between_two_blocks_gives_both_directions():
    edges = similarity.block_similarities(["a"], TRIANGLE[:1], ["b", "c"], TRIANGLE[1:], 0.5)
    assert sorted((s, t) for s, t, _ in edges) == [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a")]


def test_top_k_edges_dedupes_and_breaks_ties_to_the_larger_id():
    edges = [("a", "b", 0.7), ("a", "b", 0.9), ("a", "c", 0.8), ("a", "d", 0.8), ("b", "a", 0.9)]
    assert similarity.top_k_edges(edges, 2) == [("a", "b", 0.9), ("a", "d", 0.8), ("b", "a", 0.9)]
    assert len(similarity.top_k_edges(edges, 0)) == 4


def as_candidates(edges) -> similarity.Candidates:
    src, tgt, w = zip(*edges, strict=True)
    src, tgt = np.array([s.encode() for s in src]), np.array([t.encode() for t in tgt])
    keys = similarity.node_keys
    return similarity.Candidates(keys(src), keys(tgt), src, tgt, np.array(w))


def as_edges(c: similarity.Candidates):
    return [(s.decode(), t.decode(), w) for s, t, w in zip(c.src, c.tgt, c.w.tolist(), strict=True)]


def test_best_candidates_keeps_ties_until_the_exact_cut():
    edges = [("a", "b", 0.7), ("a", "b", 0.9), ("a", "c", 0.8), ("a", "d", 0.8), ("b", "a", 0.9)]
    kept = as_edges(similarity.best_candidates(as_candidates(edges), 2, exact=False))
    assert sorted(kept) == [("a", "b", 0.9), ("a", "c", 0.8), ("a", "d", 0.8), ("b", "a", 0.9)]
    cut = as_edges(similarity.best_candidates(as_candidates(edges), 2, exact=True))
    assert sorted(cut) == [("a", "b", 0.9), ("a", "d", 0.8), ("b", "a", 0.9)]


@pytest.mark.parametrize("k", [0, 1, 3])
def test_best_candidates_in_pieces_equal_top_k_edges(k):
    rng = np.random.default_rng(k)
    ids = [f"n{i}" for i in range(12)]
    edges = [
        (ids[s], ids[t], float(w))
        for s, t, w in zip(
            rng.integers(0, 12, 400),
            rng.integers(0, 12, 400),
            rng.integers(0, 5, 400) / 4,
            strict=True,
        )
        if s != t
    ]
    pieces = [edges[i : i + 50] for i in range(0, len(edges), 50)]
    compacted = [similarity.best_candidates(as_candidates(p), k, exact=False) for p in pieces]
    merged = similarity.Candidates(*(np.concatenate(col) for col in zip(*compacted, strict=True)))
    got = as_edges(similarity.best_candidates(merged, k, exact=True))
    assert sorted(got) == sorted(similarity.top_k_edges(edges, k))


def test_lsh_buckets_are_sign_bits_of_the_planes():
    planes = np.array([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 0.0]]])
    codes = similarity.lsh_bucket_ids(np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]]), planes)
    np.testing.assert_array_equal(codes, [[3, 0], [2, 1], [1, 0]])


def test_lsh_planes_are_nsl_draws_from_the_seed():
    np.random.seed(7)  # what nsl.tools.build_graph does, then one rand() per round
    nsl = [np.random.rand(3, 5) * 2 - 1 for _ in range(4)]
    np.testing.assert_array_equal(similarity.lsh_planes(7, 3, 4, 5), nsl)


def test_read_tsv_defaults_weight_to_one(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("a\tb\t0.250000\nb\ta\n")
    assert similarity.read_tsv(str(path)) == [("a", "b", 0.25), ("b", "a", 1.0)]


def test_parse_edge_reads_what_write_tsv_writes_and_weightless_lines():
    assert similarity.parse_edge("a\tb\t0.250000\n") == ("a", "b", 0.25)
    assert similarity.parse_edge("a\tb") == ("a", "b", 1.0)


def test_read_tsv_reads_the_shards_of_an_object_store_artifact(ram_dir):
    for shard, text in enumerate(["a\tb\t0.500000\n", "b\ta\t0.500000\nc\ta\n"]):
        with tf.io.gfile.GFile(f"{ram_dir}/graph-{shard:05d}-of-00002.tsv", "w") as f:
            f.write(text)
    assert similarity.read_tsv(f"{ram_dir}/graph-*.tsv") == [
        ("a", "b", 0.5),
        ("b", "a", 0.5),
        ("c", "a", 1.0),
    ]
    assert similarity.read_tsv(f"{ram_dir}/graph-00001-of-00002.tsv")[-1] == ("c", "a", 1.0)


# --- Beam transform -----------------------------------------------------------------------------


def test_beam_exact_graph_equals_brute_force_and_is_symmetric(tmp_path):
    ids, emb = clustered(120)
    cfg = GraphConfig(max_neighbours=0, centre=False, similarity_threshold=0.5)
    got = run_graph(ids, emb, cfg, tmp_path)
    want = similarity.exact_edges(ids, similarity.normalise(emb), 0.5)
    assert_same_edges(got, want)
    edges = as_dict(got)
    assert all((t, s) in edges and edges[(t, s)] == w for (s, t), w in edges.items())
    assert all(s != t for s, t in edges)


def test_beam_splits_a_big_bucket_into_chunks_with_the_same_edges(tmp_path):
    ids, emb = clustered(150)
    whole = run_graph(ids, emb, GraphConfig(max_neighbours=0, max_bucket_size=1000), tmp_path)
    chunked = run_graph(ids, emb, GraphConfig(max_neighbours=0, max_bucket_size=17), tmp_path)
    assert whole and len(as_dict(whole)) == len(whole)
    assert_same_edges(chunked, whole)


def test_beam_top_k_with_centring_equals_brute_force(tmp_path):
    ids, emb = clustered(150)
    cfg = GraphConfig(max_neighbours=3, centre=True, max_bucket_size=40)
    got = run_graph(ids, emb, cfg, tmp_path)
    x = similarity.normalise(emb, emb.astype(np.float64).mean(axis=0))
    assert_same_edges(got, similarity.exact_edges(ids, x, cfg.similarity_threshold, k=3))
    out_degree = np.bincount([ids.index(s) for s, _, _ in got])
    assert out_degree.max() == 3


def test_beam_lsh_edges_are_exact_edges_with_high_recall(tmp_path):
    ids, emb = clustered(200)
    exact = as_dict(run_graph(ids, emb, GraphConfig(max_neighbours=0), tmp_path))
    lsh_cfg = GraphConfig(max_neighbours=0, lsh_splits=3, lsh_rounds=6, max_bucket_size=25)
    lsh = as_dict(run_graph(ids, emb, lsh_cfg, tmp_path))
    assert lsh.keys() <= exact.keys()
    assert len(lsh) / len(exact) > 0.9
    assert all(abs(lsh[k] - exact[k]) <= 1e-6 + 1e-9 for k in lsh)


def lsh_reference(ids, unit, cfg: GraphConfig, shared: int) -> list[similarity.Edge]:
    """Brute force inside every round's buckets, planes shared `shared` bits per shuffle."""
    planes = similarity.lsh_planes(cfg.seed, cfg.lsh_splits, cfg.lsh_rounds, unit.shape[1])
    planes = similarity.share_planes(planes, cfg.lsh_rounds_per_shuffle, shared)
    codes = similarity.lsh_bucket_ids(unit, planes)
    edges = []
    for r in range(cfg.lsh_rounds):
        for bucket in np.unique(codes[:, r]):
            members = np.flatnonzero(codes[:, r] == bucket)
            sub, rows = [ids[i] for i in members], unit[members]
            edges += similarity.block_similarities(sub, rows, sub, rows, cfg.similarity_threshold)
    return similarity.top_k_edges(edges, cfg.max_neighbours)


def test_share_planes_makes_a_shuffles_rounds_agree_on_the_shared_bits():
    planes = similarity.lsh_planes(3, 4, 5, 8)
    assert np.array_equal(similarity.share_planes(planes, 1, 2), planes)
    shared = similarity.share_planes(planes, 2, 2)
    codes = similarity.lsh_bucket_ids(np.random.default_rng(0).standard_normal((50, 8)), shared)
    assert np.array_equal(codes[:, 0] & 3, codes[:, 1] & 3)  # rounds 0, 1: one shuffle
    assert np.array_equal(shared[4], planes[4])  # round 4 starts the third shuffle
    assert np.array_equal(shared[:, 2:], planes[:, 2:])


@pytest.mark.parametrize("group_rows", [10**9, 16])
def test_rounds_run_per_shuffle_equal_brute_force_in_their_buckets(
    group_rows, tmp_path, monkeypatch
):
    ids, emb = clustered(240)
    monkeypatch.setattr(beam_graph, "GROUP_ROWS", group_rows)
    cfg = GraphConfig(
        max_neighbours=4,
        lsh_splits=4,
        lsh_rounds=7,
        lsh_rounds_per_shuffle=3,
        max_bucket_size=10,
        centre=False,
    )
    shared = beam_graph.shared_splits(len(ids), cfg)
    assert shared == (0 if group_rows > len(ids) else 3)  # ceil(log2(240 / 16)), capped at 4 - 1
    want = lsh_reference(ids, similarity.normalise(emb), cfg, shared)
    assert_same_edges(run_graph(ids, emb, cfg, tmp_path), want)
    if not shared:  # nothing shared: the rounds are nsl.tools' rounds, one shuffle each
        one_each = dataclasses.replace(cfg, lsh_rounds_per_shuffle=1)
        assert_same_edges(run_graph(ids, emb, one_each, tmp_path), want)


@pytest.mark.parametrize("n", [0, 1])
def test_beam_empty_input_and_single_node_give_no_edges(n, tmp_path):
    ids, emb = clustered(n) if n else ([], np.zeros((0, 4), np.float32))
    assert run_graph(ids, emb, GraphConfig(), tmp_path) == []


def test_beam_duplicate_ids_fail_naming_the_id(tmp_path):
    ids, emb = clustered(10)
    ids[7] = ids[2]
    with pytest.raises(Exception, match="duplicate id in graph input: 'n0002'"):
        run_graph(ids, emb, GraphConfig(), tmp_path)


def test_two_ids_with_one_key_are_refused_not_merged():
    ids = np.array([b"a", b"b", b"c"])
    keys = np.array([7, 9, 7])  # as if "a" and "c" collided in the 64-bit key
    with pytest.raises(ValueError, match="graph ids 'a' and 'c' share a 64-bit key"):
        beam_graph._fail_on_duplicates((0, [(ids, keys)]))
    beam_graph._fail_on_duplicates((0, [(ids, np.array([7, 9, 8]))]))


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="LSH"):
        BuildSimilarityGraph(GraphConfig(lsh_splits=2, lsh_rounds=0))


# --- statistics ---------------------------------------------------------------------------------


def test_graph_statistics_on_a_hand_made_graph(tmp_path):
    # Undirected a-b (same label), a-c (same speaker), b-c (neither); d is isolated.
    edges = [("a", "b", 0.9), ("b", "a", 0.9), ("a", "c", 0.7), ("c", "b", 0.65)]
    labels = {"a": "sad", "b": "sad", "c": "happy", "d": "happy"}
    speakers = {"a": "s1", "b": "s2", "c": "s1", "d": "s3"}
    stats = graph_statistics(edges, "abcd", labels, speakers)
    assert stats["nodes"] == 4 and stats["edges"] == 3 and stats["isolated_nodes"] == 1
    assert stats["mean_degree"] == pytest.approx(1.5) and stats["median_degree"] == 2
    assert stats["degree_histogram"] == {"0": 1, "2": 3}
    assert sum(stats["weight_histogram"]["counts"]) == 3
    assert stats["label_homophily"] == pytest.approx(1 / 3)
    assert stats["label_chance"] == pytest.approx(0.5)  # two labels, two nodes each
    assert stats["speaker_homophily"] == pytest.approx(1 / 3)
    assert stats["speaker_chance"] == pytest.approx(0.25 + 1 / 16 + 1 / 16)
    plot_graph_statistics(stats, str(tmp_path / "graph.png"))
    assert (tmp_path / "graph.png").stat().st_size > 1000


def test_stats_png_is_written_to_an_object_store(ram_dir):
    stats = graph_statistics([("a", "b", 0.9)], "abc", {"a": "x", "b": "x", "c": "y"})
    plot_graph_statistics(stats, f"{ram_dir}/stats.png")
    with tf.io.gfile.GFile(f"{ram_dir}/stats.png", "rb") as f:
        png = f.read()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_graph_statistics_of_an_empty_graph():
    stats = graph_statistics([], ["a"], labels={"a": "sad"})
    assert stats["edges"] == 0 and stats["isolated_nodes"] == 1
    assert stats["label_homophily"] is None and stats["label_chance"] == 1.0
