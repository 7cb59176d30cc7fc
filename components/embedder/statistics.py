"""Utterance statistics as the graph's embedding: prosody of the raw audio, no teacher needed.

Ten numbers per clip (energy, zero-crossings, spectral centroid, voicing, speaking rate, F0
median/spread/slope), centred per speaker: a graph over them can join clips of the same emotion
more often than one over a teacher trained on another corpus (docs/experiments.md has the
measurements), so they are one of the candidates the GraphBuilder chooses among.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio.descriptors import utterance_features

STATISTICS_DIM = 10


def utterance_statistics(pcm16: bytes, sample_rate: int) -> np.ndarray:
    """float32[10] statistics of one window, with the zero padding of short clips cut off.

    Padding would otherwise count as unvoiced, silent time and dilute voicing and speaking rate.
    """
    audio = np.frombuffer(pcm16, "<i2").astype(np.float64) / 32768.0
    speech = np.trim_zeros(audio)
    if len(speech) < sample_rate // 10:  # all silence: nothing to describe
        return np.zeros(STATISTICS_DIM, np.float32)
    return utterance_features(speech, sample_rate).astype(np.float32)


class StatisticsOf(beam.DoFn):
    """A serialized raw audio example -> (id, {"statistics": its utterance statistics})."""

    def __init__(self, sample_rate: int):
        self._sample_rate = sample_rate

    def process(self, serialized: bytes) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        feats = tf.train.Example.FromString(serialized).features.feature
        vector = utterance_statistics(feats[F.AUDIO].bytes_list.value[0], self._sample_rate)
        yield feats[F.ID].bytes_list.value[0].decode(), {"statistics": vector}
