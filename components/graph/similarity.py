"""The numpy core of the similarity graph: normalisation, LSH buckets, block cosines, top-k.

Kept free of Beam so every piece is unit-tested on hand-made vectors; `beam_graph` only moves
blocks of rows between these functions. Edges are `(source, target, weight)` tuples and
neighbour lists are ordered like `nsl.tools.pack_nbrs` orders them: by weight, then by
target id, both descending.
"""

from __future__ import annotations

import glob
import heapq
from collections.abc import Iterable, Sequence

import numpy as np

Edge = tuple[str, str, float]

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
    sims = a @ b.T
    if b is a:
        np.fill_diagonal(sims, -np.inf)
        return _select(a_ids, a_ids, sims, threshold, keep)
    return _select(a_ids, b_ids, sims, threshold, keep) + _select(
        b_ids, a_ids, sims.T, threshold, keep
    )


def _select(
    src_ids: Sequence[str], tgt_ids: Sequence[str], sims: np.ndarray, threshold: float, keep: int
) -> list[Edge]:
    """Row-wise thresholding, then (keep > 0) each row's entries at least as heavy as its keep-th.

    Pruning works on the few entries above the threshold, not on the whole block.
    """
    rows, cols = np.nonzero(sims >= threshold)
    weights = sims[rows, cols]
    if keep:
        order = np.lexsort((-weights, rows))  # by row, heaviest first
        rows, cols, weights = rows[order], cols[order], weights[order]
        kth = np.searchsorted(rows, rows) + keep - 1  # where each row's keep-th entry sits
        in_row = kth < np.searchsorted(rows, rows, side="right")
        floor = np.where(in_row, weights[np.minimum(kth, len(weights) - 1)], -np.inf)
        chosen = weights >= floor
        rows, cols, weights = rows[chosen], cols[chosen], weights[chosen]
    return [
        (src_ids[r], tgt_ids[c], w)
        for r, c, w in zip(rows.tolist(), cols.tolist(), weights.tolist(), strict=True)
    ]


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

    `path` may be a glob, e.g. `f"{prefix}-*.tsv"` for the shards `write_tsv` wrote.
    """
    rows = []
    for name in sorted(glob.glob(path)) or [path]:
        with open(name) as f:
            rows += [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return [(r[0], r[1], float(r[2]) if len(r) > 2 else 1.0) for r in rows]
