"""From candidate embeddings to the vectors the graph compares, removing speaker effects first.

A source spec ("statistics+teacher:0.5", components/config.py `parse_source`) names the candidate
embeddings to use. Each is centred (and optionally whitened; expert functionals always) with
its own speaker's statistics, so what is compared is how a clip departs from its speaker's
average; then L2-normalised and scaled by its weight, and the blocks are concatenated: the
cosine of two such vectors is the weight^2-weighted mean of the blocks' cosines. The numpy
functions serve the selection (in memory, small) and the Beam transforms the train graph (any
size), with the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import apache_beam as beam
import numpy as np

from emograph.components.config import parse_source
from emograph.components.graph.similarity import Edge, normalise, top_k_edges

# Per source: (sum, sum of squares, count) of one speaker's vectors.
Moments = dict[str, tuple[np.ndarray, np.ndarray, int]]
# Per source: (mean, std) of one speaker's vectors.
SpeakerStats = dict[str, tuple[np.ndarray, np.ndarray]]
MIN_STD = 1e-6
# openSMILE functionals (components/embedder/expert.py) mix unrelated units (semitones, dB,
# seconds, spectral slopes): unwhitened, their cosine is decided by the few largest.
ALWAYS_WHITENED = frozenset({"egemaps", "compare"})


def check_sources(spec: str, available: Iterable[str]) -> None:
    """Refuses a spec naming an embedding the Embedder did not write."""
    available = sorted(available)
    missing = [name for name, _ in parse_source(spec) if name not in available]
    if missing:
        raise ValueError(f"embedding source {spec!r}: no {missing} embeddings; have {available}")


def moments_of(vectors: Mapping[str, np.ndarray]) -> Moments:
    """Moments of rows [n, d] (or one row [d]) per source."""
    out = {}
    for name, x in vectors.items():
        x = np.atleast_2d(np.asarray(x, np.float64))
        out[name] = (x.sum(0), (x**2).sum(0), len(x))
    return out


def add_moments(parts: Iterable[Moments]) -> Moments:
    total: Moments = {}
    for part in parts:
        for name, (s, sq, n) in part.items():
            if name in total:
                ts, tsq, tn = total[name]
                total[name] = (ts + s, tsq + sq, tn + n)
            else:
                total[name] = (s, sq, n)
    return total


def stats_of(moments: Moments) -> SpeakerStats:
    stats = {}
    for name, (s, sq, n) in moments.items():
        mean = s / n
        stats[name] = (mean, np.sqrt(np.maximum(sq / n - mean**2, 0.0)))
    return stats


def combine(
    vectors: Mapping[str, np.ndarray], stats: SpeakerStats | None, spec: str, whiten: bool
) -> np.ndarray:
    """Rows [n, d_i] per source (one speaker's, or a single row) -> float32 [n, sum d_i]."""
    blocks = []
    for name, weight in parse_source(spec):
        if name not in vectors:
            check_sources(spec, vectors)
        x = np.atleast_2d(np.asarray(vectors[name], np.float64))
        if stats is not None:
            mean, std = stats[name]
            x = x - mean
            if whiten or name in ALWAYS_WHITENED:
                x = x / np.maximum(std, MIN_STD)
        blocks.append(normalise(x) * np.float32(weight))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def prepare(
    vectors: Mapping[str, np.ndarray],
    speakers: np.ndarray,
    spec: str,
    speaker_centre: bool,
    whiten: bool,
) -> np.ndarray:
    """All rows at once (the in-memory path): [n, d_i] per source -> float32 [n, D]."""
    speakers = np.asarray(speakers)
    n = len(speakers)
    out = None
    for speaker in np.unique(speakers) if speaker_centre else [None]:
        mine = speakers == speaker if speaker is not None else np.ones(n, bool)
        part = {name: np.asarray(x)[mine] for name, x in vectors.items()}
        stats = stats_of(moments_of(part)) if speaker is not None else None
        rows = combine(part, stats, spec, whiten)
        if out is None:
            out = np.empty((n, rows.shape[1]), np.float32)
        out[mine] = rows
    return out


# With same-speaker reweighting, each node's OVERFETCH x k nearest are the candidates: scaled
# first, then the top-k kept, so a node loses a same-speaker neighbour to the next other-speaker
# one instead of ending up with none.
OVERFETCH = 3


def reweight_same_speaker(
    edges: Iterable[Edge], speakers: Mapping[str, str], factor: float
) -> list[Edge]:
    """Edges joining one speaker's clips scaled by `factor` (removed when it is 0)."""
    out = []
    for s, t, w in edges:
        if speakers[s] == speakers[t]:
            if factor > 0:
                out.append((s, t, w * factor))
        else:
            out.append((s, t, w))
    return out


class PrepareEmbeddings(beam.PTransform):
    """(id, {source: vector}, speaker) -> (id, combined vector), as `prepare` computes it."""

    def __init__(self, spec: str, speaker_centre: bool, whiten: bool):
        super().__init__()
        self._spec, self._centre, self._whiten = spec, speaker_centre, whiten

    def expand(self, rows):
        if not self._centre:
            return rows | "Combine" >> beam.MapTuple(
                lambda i, v, _: (i, combine(v, None, self._spec, self._whiten)[0])
            )
        stats = (
            rows
            | "BySpeaker" >> beam.MapTuple(lambda _, v, speaker: (speaker, moments_of(v)))
            | "SpeakerMoments" >> beam.CombinePerKey(add_moments)
            | "SpeakerStats" >> beam.MapTuple(lambda speaker, m: (speaker, stats_of(m)))
        )
        return rows | "Combine" >> beam.Map(
            lambda row, by_speaker: (
                row[0],
                combine(row[1], by_speaker[row[2]], self._spec, self._whiten)[0],
            ),
            beam.pvalue.AsDict(stats),
        )


class ReweightSameSpeakerEdges(beam.PTransform):
    """(edges, (id, speaker) pairs) -> edges, same-speaker ones scaled (dropped at 0), then each
    source's top `k` (0 keeps all)."""

    def __init__(self, factor: float, k: int):
        super().__init__()
        self._factor, self._k = factor, k

    def expand(self, pcolls):
        edges, id_speakers = pcolls
        by_source = (
            {"edges": edges | "BySource" >> beam.Map(lambda e: (e[0], e)), "speaker": id_speakers}
            | "JoinSource" >> beam.CoGroupByKey()
            | "SourceSpeaker"
            >> beam.FlatMap(
                lambda kv: [(e[1], (e, s)) for e in kv[1]["edges"] for s in kv[1]["speaker"]]
            )
        )
        return (
            {"edges": by_source, "speaker": id_speakers}
            | "JoinTarget" >> beam.CoGroupByKey()
            | "Reweight" >> beam.FlatMap(_reweight_joined, self._factor)
            | "BySourceAgain" >> beam.Map(lambda e: (e[0], e))
            | "GroupBySource" >> beam.GroupByKey()
            | "TopK" >> beam.FlatMap(lambda kv, k: top_k_edges(kv[1], k), self._k)
        )


def _reweight_joined(item: tuple[str, dict], factor: float) -> list[Edge]:
    """Edges into one target, each with its source's speaker, and the target's speaker."""
    target, joined = item
    edges = [edge for edge, _ in joined["edges"]]
    speakers = {edge[0]: speaker for edge, speaker in joined["edges"]}
    for speaker in joined["speaker"]:
        speakers[target] = speaker
    return reweight_same_speaker(edges, speakers, factor)
