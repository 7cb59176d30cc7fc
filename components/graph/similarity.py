"""The numpy core of the similarity graph: normalisation, LSH buckets, block cosines, top-k.

Kept free of Beam so every piece is unit-tested on hand-made vectors; `beam_graph` only moves
blocks of rows between these functions. Edges are `(source, target, weight)` tuples and
neighbour lists are ordered like `nsl.tools.pack_nbrs` orders them: by weight, then by
target id, both descending.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

Edge = tuple[str, str, float]
# (source rows, target rows, weights): one block's edges by row number.
RowPairs = tuple[np.ndarray, np.ndarray, np.ndarray]


class Candidates(NamedTuple):
    """Edges as arrays: 64-bit node keys to sort and dedupe on, ids for the output and ties."""

    src_key: np.ndarray  # int64
    tgt_key: np.ndarray
    src: np.ndarray  # bytes
    tgt: np.ndarray
    w: np.ndarray  # float32


# nsl.tools.build_graph's floor on the norm: a zero embedding stays zero instead of NaN.
MIN_NORM = 1e-6


def normalise(emb: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows (optionally centred on `mean`) scaled to unit L2 norm, as float32."""
    x = np.asarray(emb, dtype=np.float64)
    if mean is not None:
        x = x - mean
    norms = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), MIN_NORM)
    return (x / norms).astype(np.float32)


def lsh_planes(seed: int, splits: int, rounds: int, dim: int) -> np.ndarray:
    """Hyperplanes [rounds, splits, dim], drawn exactly as nsl.tools.build_graph draws them.

    NSL seeds numpy's global generator once and calls `rand(splits, dim) * 2 - 1` per round;
    one `RandomState(seed).rand(rounds, splits, dim)` consumes the same stream in the same order.
    """
    return np.random.RandomState(seed).rand(rounds, splits, dim) * 2 - 1


def share_planes(planes: np.ndarray, per_shuffle: int, shared: int) -> np.ndarray:
    """Planes where each run of `per_shuffle` rounds uses its first round's first `shared`
    hyperplanes: the rounds of one shuffle then agree on those bits of every row's bucket."""
    planes = planes.copy()
    for first in range(0, len(planes), per_shuffle):
        planes[first : first + per_shuffle, :shared] = planes[first, :shared]
    return planes


def lsh_bucket_ids(emb: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Bucket of every row in every round, int64[n, rounds]: bit i set iff plane i's dot > 0."""
    rounds, splits, dim = planes.shape
    dots = np.asarray(emb, dtype=np.float64) @ planes.reshape(rounds * splits, dim).T
    bits = (dots > 0).reshape(len(emb), rounds, splits).astype(np.int64)
    return bits @ (np.int64(1) << np.arange(splits, dtype=np.int64))


def block_similarities(
    a_ids: Sequence[str],
    a: np.ndarray,
    b_ids: Sequence[str],
    b: np.ndarray,
    threshold: float,
    keep: int = 0,
) -> list[Edge]:
    """Directed edges a→b and b→a with cosine ≥ threshold between two blocks of unit rows.

    Pass the same arrays twice for a block against itself (self-pairs are skipped, each pair is
    emitted once per direction). With `keep` > 0 a source keeps only edges at least as heavy
    as its keep-th best in this block: ties are kept, so the union over blocks still holds
    every node's global top-k.
    """
    ids = list(a_ids) if b is a else [*a_ids, *b_ids]
    src, tgt, w = block_candidates(a, None if b is a else b, threshold, keep)
    return [
        (ids[s], ids[t], w) for s, t, w in zip(src.tolist(), tgt.tolist(), w.tolist(), strict=True)
    ]


def block_candidates(
    a: np.ndarray, b: np.ndarray | None, threshold: float, keep: int = 0
) -> RowPairs:
    """`block_similarities` on row numbers: (source, target, weight) arrays, where rows of `b`
    are numbered after those of `a`; `b=None` compares `a` with itself."""
    sims = a @ (a if b is None else b).T
    if b is None:
        np.fill_diagonal(sims, -np.inf)
    # One scan of the block; flatnonzero is ~3x faster than a 2-D nonzero.
    flat = np.flatnonzero(sims >= threshold)
    rows, cols = np.divmod(flat, sims.shape[1])
    weights = sims.ravel()[flat]
    if b is None:
        return _keep_best(rows, cols, weights, keep)
    src, tgt, w = _keep_best(rows, cols + len(a), weights, keep)
    back_src, back_tgt, back_w = _keep_best(cols + len(a), rows, weights, keep)
    return (
        np.concatenate([src, back_src]),
        np.concatenate([tgt, back_tgt]),
        np.concatenate([w, back_w]),
    )


def _keep_best(src: np.ndarray, tgt: np.ndarray, w: np.ndarray, keep: int) -> RowPairs:
    """With keep > 0, each source's entries at least as heavy as its keep-th (ties kept)."""
    if not keep:
        return src, tgt, w
    order = np.lexsort((-w, src))  # by source, heaviest first
    src, tgt, w = src[order], tgt[order], w[order]
    chosen = w >= _kth_of_group(src, w, keep)
    return src[chosen], tgt[chosen], w[chosen]


def _kth_of_group(groups: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Per element, the k-th weight of its group (-inf for groups smaller than k); elements
    come sorted by group, heaviest first."""
    if not len(groups):
        return weights
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    kth = np.where(
        ends - starts >= k, weights[np.minimum(starts + k - 1, len(groups) - 1)], -np.inf
    )
    return np.repeat(kth, ends - starts)


def node_keys(ids: np.ndarray) -> np.ndarray:
    """A stable 64-bit key per id (bytes), the same in every worker (unlike salted `hash`)."""
    digests = b"".join(hashlib.blake2b(i, digest_size=8).digest() for i in ids.tolist())
    return np.frombuffer(digests, dtype="<i8").astype(np.int64)


def best_candidates(c: Candidates, k: int, exact: bool) -> Candidates:
    """Candidates deduplicated per (source, target) (max weight), then each source's top-k.

    `exact` cuts at exactly k, ties to the larger target id, the order `top_neighbours` gives;
    otherwise every entry tied with the k-th is kept, so a later merge can still cut exactly.
    k = 0 keeps all. Sorting is on the integer keys; only the exact cut compares ids (bytes,
    whose order is UTF-8's code-point order, as Python compares str).
    """
    if not len(c.w):
        return c
    keys = (c.tgt, c.w, c.src_key) if exact else (c.w, c.src_key)
    c = _take(c, np.lexsort(keys)[::-1])  # by source, heaviest (then larger target) first
    # A pair's first position in that order holds its max weight; lexsort is stable, so each
    # run of equal pairs in `by_pair` starts with that position.
    by_pair = np.lexsort((c.tgt_key, c.src_key))
    s, t = c.src_key[by_pair], c.tgt_key[by_pair]
    first = np.zeros(len(c.w), dtype=bool)
    first[by_pair[np.r_[True, (s[1:] != s[:-1]) | (t[1:] != t[:-1])]]] = True
    c = _take(c, first)
    if k:
        s = c.src_key
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        c = _take(c, rank < k if exact else c.w >= _kth_of_group(s, c.w, k))
    return c


def _take(c: Candidates, index: np.ndarray) -> Candidates:
    return Candidates(*(x[index] for x in c))


def top_neighbours(candidates: dict[str, float], k: int) -> list[tuple[float, str]]:
    """The `k` best (weight, target) pairs, heaviest first, ties to the larger id; 0 keeps all."""
    pairs = [(w, t) for t, w in candidates.items()]
    return heapq.nlargest(k, pairs) if k else sorted(pairs, reverse=True)


def top_k_edges(edges: Iterable[Edge], k: int) -> list[Edge]:
    """Deduplicates edges (max weight) and keeps every source's top-k (0 keeps all)."""
    graph: dict[str, dict[str, float]] = {}
    for s, t, w in edges:
        out = graph.setdefault(s, {})
        out[t] = max(w, out.get(t, -np.inf))
    return [(s, t, w) for s, out in graph.items() for w, t in top_neighbours(out, k)]


def exact_edges(ids: Sequence[str], emb: np.ndarray, threshold: float, k: int = 0) -> list[Edge]:
    """Brute-force reference graph of unit rows `emb` (symmetric before the top-k)."""
    return top_k_edges(block_similarities(ids, emb, ids, emb, threshold), k)


def read_tsv(path: str) -> list[Edge]:
    """Reads an NSL TSV graph ("source\\ttarget[\\tweight]", weight 1.0 when absent).

    `path` may be a glob, e.g. `f"{prefix}-*.tsv"` for the shards `write_tsv` wrote, and any
    `tf.io.gfile` path: GraphBuilder reads artifact URIs, object-store paths (gs://) on a cluster.
    """
    import tensorflow as tf  # here, not at the top: the numpy core imports without TensorFlow

    edges = []
    for name in sorted(tf.io.gfile.glob(path)) or [path]:
        with tf.io.gfile.GFile(name) as f:
            edges += [parse_edge(line) for line in f if line.strip()]
    return edges


def parse_edge(line: str) -> Edge:
    """One NSL TSV line ("source\ttarget[\tweight]", weight 1.0 when absent) as an edge."""
    row = line.rstrip("\n").split("\t")
    return row[0], row[1], float(row[2]) if len(row) > 2 else 1.0
