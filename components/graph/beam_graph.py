"""The similarity graph as a Beam PTransform: LSH buckets, block matmuls, per-node top-k.

Rows travel in blocks (ids, 64-bit keys, float32 matrix) and edges in arrays, never one by
one, so the shuffle carries few large elements and Python runs per block, not per node. A
bucket larger than `max_bucket_size` is cut into sub-blocks by a stable hash of the id; every
sub-block is sent to each (sub-block, sub-block) pair key it belongs to, so one worker holds at
most two sub-blocks and multiplies them in chunks of `max_bucket_size` rows.

LSH rounds run one after another (each round waits for the previous one's edges), so a runner
with an in-memory shuffle, the DirectRunner, holds one round's rows at a time rather than all
of them; candidates of all rounds meet in one top-k merge, split by source into partitions of
about `NODES_PER_PARTITION` nodes.

Each round moves every row through a shuffle, which is most of the DirectRunner's time at 1M
nodes. With `lsh_rounds_per_shuffle` L > 1 the rows move once per L rounds instead: those
rounds share their first `shared_splits` hyperplanes, the shuffle groups rows by those bits
(groups of about GROUP_ROWS rows), and one worker runs the L rounds on its group.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np

from emograph.components.config import GraphConfig
from emograph.components.graph import similarity
from emograph.components.graph.similarity import Candidates

# ids (numpy bytes), their `similarity.node_keys`, float32 rows
Block = tuple[np.ndarray, np.ndarray, np.ndarray]
# (bucket, sub-block i, sub-block j) with i <= j; side 0 holds rows of i, side 1 of j.
PairKey = tuple[int, int, int]
Piece = tuple[int, np.ndarray, np.ndarray, np.ndarray]

NODES_PER_PARTITION = 100_000
# Fewer pending candidates than this are never worth a compaction.
COMPACT_AT = 100_000
# Rows a worker holds to run a shuffle's LSH rounds locally (128 MB of 256-d float32 rows).
GROUP_ROWS = 131_072


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
        if cfg.lsh_rounds_per_shuffle < 1:
            raise ValueError(f"lsh_rounds_per_shuffle must be >= 1: {cfg}")
        if cfg.max_bucket_size < 1 or cfg.max_neighbours < 0:
            raise ValueError(f"invalid graph settings: {cfg}")
        self._cfg = cfg

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        cfg = self._cfg
        blocks = (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=4096, max_batch_size=65536)
            | "ToBlocks" >> beam.Map(to_block)
        )
        nodes = (
            blocks
            | "BlockSizes" >> beam.Map(lambda b: len(b[0]))
            | "Nodes" >> beam.CombineGlobally(sum)
        )
        partitions = beam.pvalue.AsSingleton(
            nodes | "Partitions" >> beam.Map(lambda n: max(1, -(-n // NODES_PER_PARTITION)))
        )
        shared = beam.pvalue.AsSingleton(nodes | "SharedSplits" >> beam.Map(shared_splits, cfg))
        _ = (
            blocks
            | "IdsByPartition" >> beam.FlatMap(_ids_by_partition, partitions)
            | "GroupIds" >> beam.GroupByKey()
            | "FailOnDuplicates" >> beam.Map(_fail_on_duplicates)
        )
        mean = None
        if cfg.centre:
            mean = beam.pvalue.AsSingleton(
                blocks
                | "Sums" >> beam.Map(lambda b: (b[2].sum(axis=0, dtype=np.float64), len(b[0])))
                | "Totals" >> beam.CombineGlobally(_add_sums)
                | "Mean" >> beam.MapTuple(lambda total, count: total / max(count, 1))
            )
        coded = (
            blocks
            | "Normalise"
            >> beam.Map(lambda b, m: (b[0], b[1], similarity.normalise(b[2], m)), mean)
            | "LshBuckets" >> beam.ParDo(_LshBuckets(cfg), shared)
        )
        rounds = cfg.lsh_rounds if cfg.lsh_splits else 1
        per_shuffle = cfg.lsh_rounds_per_shuffle if cfg.lsh_splits else 1
        similarities = (
            cfg.similarity_threshold,
            cfg.max_neighbours,
            cfg.max_bucket_size,
            partitions,
        )
        if per_shuffle == 1:
            sizes = beam.pvalue.AsDict(
                coded
                | "BucketCounts" >> beam.FlatMap(_bucket_counts)
                | "BucketSizes" >> beam.CombinePerKey(sum)
            )
        found, after = [], []
        for first in range(0, rounds, per_shuffle):
            if per_shuffle == 1:
                name = f"Round{first}"
                routed = coded | f"{name}/ToBlockPairs" >> beam.FlatMap(
                    _block_pairs, first, sizes, cfg.max_bucket_size, *after
                )
                compare = _pair_candidates
            else:
                name = f"Rounds{first}-{min(first + per_shuffle, rounds) - 1}"
                routed = coded | f"{name}/ToGroups" >> beam.FlatMap(
                    _group_rows, first, per_shuffle, shared, *after
                )
                compare = _local_candidates
            candidates = (
                routed
                | f"{name}/Group" >> beam.GroupByKey()
                | f"{name}/Similarities" >> beam.FlatMap(compare, *similarities)
            )
            found.append(candidates)
            after = [
                beam.pvalue.AsSingleton(
                    candidates | f"{name}/Done" >> beam.combiners.Count.Globally()
                )
            ]
        return found | "AllRounds" >> beam.Flatten() | MergeCandidates(cfg.max_neighbours)


def shared_splits(nodes: int, cfg: GraphConfig) -> int:
    """Hyperplanes each shuffle's rounds share: enough for groups of ~GROUP_ROWS rows, and
    fewer than lsh_splits, so every round keeps a bit of its own. 0 with one round a shuffle."""
    if cfg.lsh_rounds_per_shuffle == 1 or cfg.lsh_splits == 0:
        return 0
    if nodes <= GROUP_ROWS:
        return 0
    return min(cfg.lsh_splits - 1, math.ceil(math.log2(nodes / GROUP_ROWS)))


class MergeCandidates(beam.PTransform):
    """(partition, Candidates) -> (source, target, weight) edges: per source, its candidates
    from every input deduplicated (max weight) and cut to the top `k` (0 keeps all), ties to
    the larger target id. Partitions come from `candidates_by_partition`."""

    def __init__(self, k: int):
        super().__init__()
        self._k = k

    def expand(self, candidates: beam.PCollection) -> beam.PCollection:
        return (
            candidates
            | "DedupeTopK" >> beam.CombinePerKey(_BestCandidates(self._k))
            | "ToEdges" >> beam.FlatMap(_edges)
        )


def candidates_by_partition(
    ids: np.ndarray, keys: np.ndarray, pairs: similarity.RowPairs, partitions: int
) -> Iterator[tuple[int, Candidates]]:
    """Row-number pairs over rows with these ids and keys, as candidates keyed by the
    partition of their source (`keys % partitions`)."""
    src, tgt, w = pairs
    part = keys[src] % partitions
    for n in np.unique(part).tolist():
        chosen = part == n
        s, t = src[chosen], tgt[chosen]
        yield n, Candidates(keys[s], keys[t], ids[s], ids[t], w[chosen])


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


def to_block(rows: list[tuple[str, np.ndarray]]) -> Block:
    ids = np.array([r[0].encode() for r in rows])
    return (
        ids,
        similarity.node_keys(ids),
        np.stack([np.asarray(r[1], dtype=np.float32) for r in rows]),
    )


def _ids_by_partition(block: Block, partitions: int) -> Iterator[tuple[int, tuple]]:
    ids, keys, _ = block
    part = keys % partitions
    for p in np.unique(part).tolist():
        yield p, (ids[part == p], keys[part == p])


def _fail_on_duplicates(part_ids: tuple[int, Iterable[tuple[np.ndarray, np.ndarray]]]) -> None:
    """Duplicate ids are an input error; two ids with one key (odds ~n^2 / 2^65) would merge."""
    pieces = list(part_ids[1])
    ids, first, counts = np.unique(
        np.concatenate([p[0] for p in pieces]), return_index=True, return_counts=True
    )
    if (counts > 1).any():
        dup = int(np.argmax(counts > 1))
        raise ValueError(
            f"duplicate id in graph input: {ids[dup].decode()!r} occurs {counts[dup]} times"
        )
    keys = np.concatenate([p[1] for p in pieces])[first]
    order = np.argsort(keys, kind="stable")
    clash = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if len(clash):
        a, b = (ids[order[clash[0] + i]].decode() for i in (0, 1))
        raise ValueError(f"graph ids {a!r} and {b!r} share a 64-bit key; rename one")


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

    def process(
        self, block: Block, shared: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        ids, keys, emb = block
        cfg = self._cfg
        if cfg.lsh_splits == 0:
            yield ids, keys, emb, np.zeros((len(ids), 1), dtype=np.int64)
            return
        if self._planes is None:
            planes = similarity.lsh_planes(cfg.seed, cfg.lsh_splits, cfg.lsh_rounds, emb.shape[1])
            self._planes = similarity.share_planes(planes, cfg.lsh_rounds_per_shuffle, shared)
        yield ids, keys, emb, similarity.lsh_bucket_ids(emb, self._planes)


def _bucket_counts(coded: tuple[np.ndarray, ...]) -> Iterator[tuple[tuple[int, int], int]]:
    codes = coded[3]
    for r in range(codes.shape[1]):
        buckets, counts = np.unique(codes[:, r], return_counts=True)
        yield from (((r, b), c) for b, c in zip(buckets.tolist(), counts.tolist(), strict=True))


def _block_pairs(
    coded: tuple[np.ndarray, ...], r: int, sizes: dict, max_rows: int, _after: int = 0
) -> Iterator[tuple[PairKey, Piece]]:
    """Routes round `r`'s rows to every sub-block pair of their bucket, one piece per key and
    input block. `_after`, the previous round's output count, only orders the rounds."""
    ids, keys, emb, codes = coded
    order = np.argsort(codes[:, r], kind="stable")
    buckets, starts = np.unique(codes[order, r], return_index=True)
    for bucket, members in zip(buckets.tolist(), np.split(order, starts[1:]), strict=True):
        n_sub = -(-sizes[(r, bucket)] // max_rows)
        subs = keys[members] % n_sub
        for s in np.unique(subs).tolist():
            rows = members[subs == s]
            piece = (ids[rows], keys[rows], emb[rows])
            for j in range(n_sub):
                yield (bucket, min(s, j), max(s, j)), (0 if s <= j else 1, *piece)


def _group_rows(
    coded: tuple[np.ndarray, ...], first: int, per_shuffle: int, shared: int, _after: int = 0
) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """Routes rows by the `shared` bits rounds first.. first + per_shuffle - 1 agree on, with
    those rounds' buckets. `_after` only orders the shuffles, as in `_block_pairs`."""
    ids, keys, emb, codes = coded
    groups = codes[:, first] & ((1 << shared) - 1)
    own = codes[:, first : first + per_shuffle]
    for g in np.unique(groups).tolist():
        rows = groups == g
        yield g, (ids[rows], keys[rows], emb[rows], own[rows])


def _local_candidates(
    item: tuple[int, Iterable[tuple[np.ndarray, ...]]],
    threshold: float,
    keep: int,
    max_rows: int,
    partitions: int,
) -> Iterator[tuple[int, Candidates]]:
    """Every round of one shuffle over one group's rows: each bucket against itself."""
    pieces = list(item[1])
    ids, keys, emb, codes = (np.concatenate([p[n] for p in pieces]) for n in range(4))
    found: dict[int, list[Candidates]] = defaultdict(list)
    for r in range(codes.shape[1]):
        order = np.argsort(codes[:, r], kind="stable")
        _, starts = np.unique(codes[order, r], return_index=True)
        for members in np.split(order, starts[1:]):
            bucket = (ids[members], keys[members], emb[members])
            _add_candidates(found, bucket, None, threshold, keep, max_rows, partitions)
    yield from _merge_found(found, keep)


def _pair_candidates(
    item: tuple[PairKey, Iterable[Piece]],
    threshold: float,
    keep: int,
    max_rows: int,
    partitions: int,
) -> Iterator[tuple[int, Candidates]]:
    """All edges ≥ threshold between two sub-blocks (or one with itself), as (partition of the
    source, candidate arrays) with each source's best `keep` (ties kept)."""
    (_, i, j), pieces = item
    sides: tuple[list[Piece], list[Piece]] = ([], [])
    for piece in pieces:
        sides[piece[0]].append(piece)
    if not sides[0] or (i != j and not sides[1]):
        return
    found: dict[int, list[Candidates]] = defaultdict(list)
    other = None if i == j else _concat(sides[1])
    _add_candidates(found, _concat(sides[0]), other, threshold, keep, max_rows, partitions)
    yield from _merge_found(found, keep)


def _add_candidates(
    found: dict[int, list[Candidates]],
    a: Block,
    b: Block | None,
    threshold: float,
    keep: int,
    max_rows: int,
    partitions: int,
) -> None:
    """Appends to `found`, by partition, the candidates between blocks `a` and `b` (`a` with
    itself if None), computed `max_rows` rows against `max_rows` at a time."""
    other = a if b is None else b
    for p in range(0, len(a[0]), max_rows):
        ap = tuple(x[p : p + max_rows] for x in a)
        # Within one block only chunk pairs p <= q; the chunk against itself for p == q.
        for q in range(p if b is None else 0, len(other[0]), max_rows):
            same = b is None and q == p
            bq = ap if same else tuple(x[q : q + max_rows] for x in other)
            pairs = similarity.block_candidates(ap[2], None if same else bq[2], threshold, keep)
            ids = ap[0] if same else np.concatenate([ap[0], bq[0]])
            keys = ap[1] if same else np.concatenate([ap[1], bq[1]])
            for n, c in candidates_by_partition(ids, keys, pairs, partitions):
                found[n].append(c)


def _merge_found(found: dict[int, list[Candidates]], keep: int) -> Iterator[tuple[int, Candidates]]:
    for n, parts in found.items():
        if len(parts) > 1:  # one chunk pair's candidates are already unique and cut per source
            parts = [similarity.best_candidates(_stack(parts), keep, exact=False)]
        yield n, parts[0]


def _concat(pieces: list[Piece]) -> Block:
    return tuple(np.concatenate([p[n] for p in pieces]) for n in (1, 2, 3))


def _stack(parts: list[Candidates]) -> Candidates:
    return Candidates(*(np.concatenate(column) for column in zip(*parts, strict=True)))


@dataclass
class _Merge:
    """A top-k accumulator: the compacted candidates so far and arrays not yet merged in."""

    head: Candidates | None = None
    pending: list[Candidates] = field(default_factory=list)
    pending_size: int = 0

    def parts(self) -> list[Candidates]:
        return ([] if self.head is None else [self.head]) + self.pending


class _BestCandidates(beam.CombineFn):
    """Per partition: dedupes (source, target) across rounds and blocks (max weight) and keeps
    each source's top-k, ties kept until the end. Pending arrays are merged into the head once
    they outweigh it four times (and reach COMPACT_AT), so the merge sorts each round's
    candidates about twice, not once per input."""

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self) -> _Merge:
        return _Merge()

    def add_input(self, acc: _Merge, candidates: Candidates) -> _Merge:
        acc.pending.append(candidates)
        acc.pending_size += len(candidates.w)
        head_size = 0 if acc.head is None else len(acc.head.w)
        return self._compact([acc]) if acc.pending_size >= max(COMPACT_AT, 4 * head_size) else acc

    def merge_accumulators(self, accs: Iterable[_Merge]) -> _Merge:
        return self._compact(accs)

    def extract_output(self, acc: _Merge) -> Candidates | None:
        parts = acc.parts()
        return similarity.best_candidates(_stack(parts), self._k, exact=True) if parts else None

    def _compact(self, accs: Iterable[_Merge]) -> _Merge:
        parts = [c for acc in accs for c in acc.parts()]
        if not parts:
            return _Merge()
        return _Merge(similarity.best_candidates(_stack(parts), self._k, exact=False))


def _edges(part_candidates: tuple[int, Candidates | None]) -> Iterator[similarity.Edge]:
    c = part_candidates[1]
    if c is not None:
        for s, t, w in zip(c.src.tolist(), c.tgt.tolist(), c.w.tolist(), strict=True):
            yield s.decode(), t.decode(), w
