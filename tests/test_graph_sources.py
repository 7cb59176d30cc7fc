"""Graph embedding sources (utterance statistics) and per-speaker centring."""

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from apache_beam.testing.util import assert_that, equal_to

from components import features as F
from components.embedder.embed import parse_embedding
from components.embedder.statistics import (
    STATISTICS_DIM,
    StatisticsExamples,
    utterance_statistics,
)
from components.graph.beam_graph import CentrePerSpeaker
from components.student.trainer import graph_regularised
from pipeline.config import GraphConfig, StudentConfig

RATE = 16000


def _voice(seconds: float = 1.0, f0: float = 140.0) -> np.ndarray:
    """A vowel-like tone with a falling pitch and a syllable-rate envelope, as int16."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 - 0.1 * t)) / RATE
    wave = sum(np.sin(h * phase) / h for h in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (3000 * wave * envelope).astype("<i2")


def _raw_example(pcm: np.ndarray, example_id: str, speaker: str) -> bytes:
    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    feats = {
        F.AUDIO: bytes_feature(pcm.tobytes()),
        F.ID: bytes_feature(example_id.encode()),
        F.LABEL: bytes_feature(b"happy"),
        F.SPEAKER: bytes_feature(speaker.encode()),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_statistics_ignore_the_zero_padding_of_short_clips():
    voice = _voice()
    padded = np.concatenate([np.zeros(8000, "<i2"), voice, np.zeros(16000, "<i2")])
    stats = utterance_statistics(padded.tobytes(), RATE)
    assert stats.shape == (STATISTICS_DIM,) and np.all(np.isfinite(stats))
    np.testing.assert_allclose(stats, utterance_statistics(voice.tobytes(), RATE), rtol=1e-6)


def test_statistics_of_silence_are_zero():
    silence = np.zeros(3 * RATE, "<i2").tobytes()
    np.testing.assert_array_equal(utterance_statistics(silence, RATE), 0.0)


def test_statistics_examples_carry_id_label_and_speaker():
    raw = [_raw_example(_voice(f0=f0), f"c{i}:0", f"s{i}") for i, f0 in enumerate((120, 220))]
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(raw)
            | StatisticsExamples(RATE)
            | beam.Map(parse_embedding)
            | beam.Map(lambda r: (r[F.ID], r[F.LABEL], r[F.SPEAKER], r[F.EMBEDDING].shape))
        )
        assert_that(
            out,
            equal_to(
                [
                    ("c0:0", "happy", "s0", (STATISTICS_DIM,)),
                    ("c1:0", "happy", "s1", (STATISTICS_DIM,)),
                ]
            ),
        )


def test_higher_pitch_gives_higher_f0_median():
    low, high = (utterance_statistics(_voice(f0=f0).tobytes(), RATE) for f0 in (120, 240))
    assert high[7] - low[7] == pytest.approx(12.0, abs=0.5)  # one octave, in semitones


def test_centre_per_speaker_subtracts_each_speakers_mean():
    rows = [
        ("a1", np.array([1.0, 2.0]), "A"),
        ("a2", np.array([3.0, 6.0]), "A"),
        ("b1", np.array([10.0, 0.0]), "B"),
    ]
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(rows)
            | CentrePerSpeaker()
            | beam.MapTuple(lambda i, v: (i, tuple(np.round(v, 6).tolist())))
        )
        assert_that(out, equal_to([("a1", (-1.0, -2.0)), ("a2", (1.0, 2.0)), ("b1", (0.0, 0.0))]))


def test_graph_config_rejects_an_unknown_embedding_source():
    with pytest.raises(ValueError, match="embedding_source"):
        GraphConfig(embedding_source="mfcc")


@pytest.mark.parametrize(
    ("distance", "transform"),
    [("l2", "none"), ("kl_divergence", "softmax"), ("jensen_shannon_divergence", "softmax")],
)
def test_divergences_compare_probabilities_not_logits(distance, transform):
    inputs = keras.Input(shape=(4,), name=F.LOGMEL)
    base = keras.Model({F.LOGMEL: inputs}, keras.layers.Dense(3)(inputs))
    cfg = StudentConfig(graph_multiplier=0.1, distance_type=distance)
    wrapped = graph_regularised(base, cfg)
    assert wrapped.graph_reg_config.distance_config.transform_fn.value == transform
