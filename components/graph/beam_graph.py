"""The similarity graph as a Beam PTransform: LSH buckets, block matmuls, per-node top-k.

Rows travel in blocks (ids, float32 matrix), never one by one, so the shuffle carries few large
elements. A bucket larger than `max_bucket_size` is cut into sub-blocks by a stable hash of the
id; every sub-block is sent to each (sub-block, sub-block) pair key it belongs to, so one worker
holds at most two sub-blocks and multiplies them in chunks of `max_bucket_size` rows.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np

from components.graph import similarity
from pipeline.config import GraphConfig

Block = tuple[list[str], np.ndarray]
# (round, bucket, sub-block i, sub-block j) with i <= j; side 0 holds rows of i, side 1 of j.
PairKey = tuple[int, int, int, int]
Piece = tuple[int, list[str], np.ndarray]


class BuildSimilarityGraph(beam.PTransform):
    """(id, embedding) pairs -> (source, target, cosine) edges, symmetric before the top-k.

    With `max_neighbours` = 0 the output is the whole thresholded graph, both directions present.
    Otherwise each node keeps its `max_neighbours` heaviest out-edges (ties to the larger target
    id, as nsl.tools.pack_nbrs picks them), so i→j may survive where j→i does not.
    """

    def __init__(self, cfg: GraphConfig):
        super().__init__()
        if cfg.lsh_splits < 0 or (cfg.lsh_splits > 0 and cfg.lsh_rounds < 1):
            raise ValueError(f"invalid LSH settings: {cfg}")
        if cfg.max_bucket_size < 1 or cfg.max_neighbours < 0:
            raise ValueError(f"invalid graph settings: {cfg}")
        self._cfg = cfg

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        cfg = self._cfg
        _ = (
            rows
            | "Ids" >> beam.Map(lambda row: row[0])
            | "CountIds" >> beam.combiners.Count.PerElement()
            | "FailOnDuplicates" >> beam.Map(_fail_on_duplicate)
        )
        blocks = (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=1024, max_batch_size=16384)
            | "ToBlocks" >> beam.Map(_to_block)
        )
        mean = None
        if cfg.centre:
            mean = beam.pvalue.AsSingleton(
                blocks
                | "Sums" >> beam.Map(lambda b: (b[1].sum(axis=0, dtype=np.float64), len(b[0])))
                | "Totals" >> beam.CombineGlobally(_add_sums)
                | "Mean" >> beam.MapTuple(lambda total, count: total / max(count, 1))
            )
        coded = (
            blocks
            | "Normalise" >> beam.Map(lambda b, m: (b[0], similarity.normalise(b[1], m)), mean)
            | "LshBuckets" >> beam.ParDo(_LshBuckets(cfg))
        )
        sizes = (
            coded
            | "BucketCounts" >> beam.FlatMap(_bucket_counts)
            | "BucketSizes" >> beam.CombinePerKey(sum)
        )
        return (
            coded
            | "ToBlockPairs"
            >> beam.FlatMap(_block_pairs, beam.pvalue.AsDict(sizes), cfg.max_bucket_size)
            | "GroupBlockPairs" >> beam.GroupByKey()
            | "Similarities"
            >> beam.FlatMap(
                _pair_candidates, cfg.similarity_threshold, cfg.max_neighbours, cfg.max_bucket_size
            )
            | "DedupeTopK" >> beam.CombinePerKey(_TopNeighbours(cfg.max_neighbours))
            | "ToEdges" >> beam.FlatMap(lambda kv: [(kv[0], t, w) for w, t in kv[1]])
        )


def write_tsv(edges: beam.PCollection, path_prefix: str, num_shards: int = 0) -> beam.PCollection:
    """Writes edges as nsl.tools does ("%s\\t%s\\t%f"); `num_shards=1` writes one `{prefix}.tsv`.

    nsl.tools.pack_nbrs reads a single file, hence the one-shard form.
    """
    return (
        edges
        | "FormatTsv" >> beam.MapTuple(lambda s, t, w: f"{s}\t{t}\t{w:f}")
        | "WriteTsv"
        >> beam.io.WriteToText(
            path_prefix,
            file_name_suffix=".tsv",
            num_shards=num_shards,
            shard_name_template="" if num_shards == 1 else None,
        )
    )


def _fail_on_duplicate(id_count: tuple[str, int]) -> None:
    node_id, count = id_count
    if count > 1:
        raise ValueError(f"duplicate id in graph input: {node_id!r} occurs {count} times")


def _to_block(rows: list[tuple[str, np.ndarray]]) -> Block:
    return [r[0] for r in rows], np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])


def _add_sums(parts: Iterable[tuple[np.ndarray | float, int]]) -> tuple[np.ndarray | float, int]:
    """Adds (sum, count) parts: a combiner whose output has its input's type, as Beam requires."""
    total, count = 0.0, 0
    for s, n in parts:
        total, count = total + s, count + n
    return total, count


class _LshBuckets(beam.DoFn):
    """Adds each row's bucket per round; planes come from the seed, so every worker agrees."""

    def __init__(self, cfg: GraphConfig):
        self._cfg = cfg

    def setup(self) -> None:
        # The dimension is only known from the data, so the draw happens on the first block.
        self._planes: np.ndarray | None = None

    def process(self, block: Block) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        ids, emb = block
        cfg = self._cfg
        if cfg.lsh_splits == 0:
            yield ids, emb, np.zeros((len(ids), 1), dtype=np.int64)
            return
        if self._planes is None:
            self._planes = similarity.lsh_planes(
                cfg.seed, cfg.lsh_splits, cfg.lsh_rounds, emb.shape[1]
            )
        yield ids, emb, similarity.lsh_bucket_ids(emb, self._planes)


def _bucket_counts(coded: tuple[list[str], np.ndarray, np.ndarray]) -> Iterator:
    _, _, codes = coded
    for r in range(codes.shape[1]):
        buckets, counts = np.unique(codes[:, r], return_counts=True)
        yield from (((r, b), c) for b, c in zip(buckets.tolist(), counts.tolist(), strict=True))


def _block_pairs(
    coded: tuple[list[str], np.ndarray, np.ndarray], sizes: dict, max_rows: int
) -> Iterator[tuple[PairKey, Piece]]:
    """Routes rows to every sub-block pair of their bucket, one piece per key and input block."""
    ids, emb, codes = coded
    # crc32, not hash(): Python salts str hashes per process and workers must agree.
    stable = np.array([zlib.crc32(i.encode()) for i in ids], dtype=np.int64)
    for r in range(codes.shape[1]):
        order = np.argsort(codes[:, r], kind="stable")
        buckets, starts = np.unique(codes[order, r], return_index=True)
        for bucket, members in zip(buckets.tolist(), np.split(order, starts[1:]), strict=True):
            n_sub = -(-sizes[(r, bucket)] // max_rows)
            subs = stable[members] % n_sub
            for s in np.unique(subs).tolist():
                rows = members[subs == s]
                piece_ids = [ids[i] for i in rows]
                piece = emb[rows]
                for j in range(n_sub):
                    key = (r, bucket, min(s, j), max(s, j))
                    yield key, (0 if s <= j else 1, piece_ids, piece)


def _pair_candidates(
    item: tuple[PairKey, Iterable[Piece]], threshold: float, keep: int, max_rows: int
) -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """All edges ≥ threshold between two sub-blocks (or one with itself), chunk by chunk."""
    (_, _, i, j), pieces = item
    sides: tuple[list[Piece], list[Piece]] = ([], [])
    for piece in pieces:
        sides[piece[0]].append(piece)
    if not sides[0] or (i != j and not sides[1]):
        return
    a_ids, a = _concat(sides[0])
    b_ids, b = (a_ids, a) if i == j else _concat(sides[1])
    candidates: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for p in range(0, len(a), max_rows):
        ap_ids, ap = a_ids[p : p + max_rows], a[p : p + max_rows]
        # Within one sub-block only chunk pairs p <= q; the same arrays for p == q.
        for q in range(p if i == j else 0, len(b), max_rows):
            bq_ids, bq = (
                (ap_ids, ap)
                if i == j and q == p
                else (b_ids[q : q + max_rows], b[q : q + max_rows])
            )
            for s, t, w in similarity.block_similarities(ap_ids, ap, bq_ids, bq, threshold, keep):
                candidates[s].append((w, t))
    yield from candidates.items()


def _concat(pieces: list[Piece]) -> Block:
    return [x for p in pieces for x in p[1]], np.concatenate([p[2] for p in pieces])


class _TopNeighbours(beam.CombineFn):
    """Per source: dedupes targets across rounds and blocks (max weight), keeps the top-k."""

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self) -> dict[str, float]:
        return {}

    def add_input(self, acc: dict[str, float], cands: list[tuple[float, str]]) -> dict:
        for w, t in cands:
            if w > acc.get(t, -np.inf):
                acc[t] = w
        return self._trim(acc)

    def merge_accumulators(self, accs: Iterable[dict[str, float]]) -> dict[str, float]:
        accs = iter(accs)
        merged = next(accs)
        for acc in accs:
            merged = self.add_input(merged, [(w, t) for t, w in acc.items()])
        return merged

    def extract_output(self, acc: dict[str, float]) -> list[tuple[float, str]]:
        return similarity.top_neighbours(acc, self._k)

    def _trim(self, acc: dict[str, float]) -> dict[str, float]:
        # Trimming only past 2k keeps add_input amortised O(1) per candidate.
        if self._k and len(acc) > 2 * self._k:
            return {t: w for w, t in similarity.top_neighbours(acc, self._k)}
        return acc
