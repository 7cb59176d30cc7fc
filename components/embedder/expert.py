"""Expert-feature candidates of the graph: openSMILE functionals of each window's raw audio.

- `egemaps`: the 88 eGeMAPSv02 functionals;
- `compare`: the 6373 ComParE_2016 functionals.

Computed like the utterance `statistics` (components/embedder/statistics.py): from the raw
example's pcm16 window with the zero padding of short clips cut off. Their functionals live on
very different scales (F0 in semitones beside loudness, durations, spectral slopes...), so in a
graph they are only meaningful per-speaker whitened (`GraphConfig.speaker_whiten`), otherwise
the cosine is decided by the few largest functionals.

Opt-in: the Embedder computes only the names it is given (`expert_sources` of the graph's
source specs), since ComParE adds 6373 floats to every embedding example.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.config import AUTO, parse_source
from emograph.components.expert.functionals import dimension, extract, new_smile

# Candidate name -> openSMILE feature set.
EXPERT_CANDIDATES = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}


def check_expert(names: Iterable[str]) -> tuple[str, ...]:
    """The names, refusing any that is not an expert candidate."""
    names = tuple(names)
    unknown = [n for n in names if n not in EXPERT_CANDIDATES]
    if unknown:
        raise ValueError(f"unknown expert candidates {unknown}; valid: {tuple(EXPERT_CANDIDATES)}")
    return names


def expert_sources(specs: Iterable[str]) -> tuple[str, ...]:
    """Expert candidates named by any of these source specs ("auto" is skipped), in
    EXPERT_CANDIDATES order: what the Embedder must compute for them."""
    named = {name for spec in specs if spec != AUTO for name, _ in parse_source(spec)}
    return tuple(name for name in EXPERT_CANDIDATES if name in named)


def parse_expert(value: str) -> tuple[str, ...]:
    """The Embedder's `expert_features` parameter, "egemaps,compare" (or "") -> names."""
    return check_expert(part.strip() for part in value.split(",") if part.strip())


def window_speech(pcm16: bytes) -> np.ndarray:
    """float32 [-1, 1) audio of one window with its zero padding trimmed off both ends."""
    return np.trim_zeros(np.frombuffer(pcm16, "<i2")).astype(np.float32) / 32768.0


class ExpertFunctionalsOf(beam.DoFn):
    """A serialized raw audio example -> (id, {name: float32 functionals} for each expert
    candidate in `names`). One openSMILE extractor per feature set per DoFn instance."""

    def __init__(self, sample_rate: int, names: Sequence[str]):
        self._sample_rate, self._names = sample_rate, check_expert(names)

    def setup(self):
        self._smiles = {name: new_smile(EXPERT_CANDIDATES[name]) for name in self._names}

    def process(self, serialized: bytes) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        feats = tf.train.Example.FromString(serialized).features.feature
        speech = window_speech(feats[F.AUDIO].bytes_list.value[0])
        vectors = {}
        for name, smile in self._smiles.items():
            if len(speech) < self._sample_rate // 10:  # all silence: nothing to describe
                vectors[name] = np.zeros(dimension(EXPERT_CANDIDATES[name]), np.float32)
            else:
                vectors[name] = extract(smile, speech, self._sample_rate)
        beam.metrics.Metrics.counter("emograph.embedder", "expert_windows").inc()
        yield feats[F.ID].bytes_list.value[0].decode(), vectors
