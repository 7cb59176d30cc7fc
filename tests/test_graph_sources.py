"""Graph embedding candidates (teacher outputs, log-mel and utterance statistics), their
combination and per-speaker centring/whitening, and same-speaker edge weighting."""

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from apache_beam.testing.util import assert_that, equal_to

from emograph.components import features as F
from emograph.components.config import GraphConfig, StudentConfig
from emograph.components.embedder.embed import (
    EMBED_SIGNATURE,
    EmbedExamples,
    _merge,
    logmel_statistics,
    parse_embedding,
)
from emograph.components.embedder.statistics import STATISTICS_DIM, utterance_statistics
from emograph.components.graph import prepare
from emograph.components.student.trainer import graph_regularised

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


def _transformed_example(example_id: str, speaker: str, frames: int, bands: int) -> bytes:
    def bytes_feature(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    logmel = np.random.default_rng(len(example_id)).normal(size=frames * bands)
    feats = {
        F.LOGMEL: tf.train.Feature(float_list=tf.train.FloatList(value=logmel)),
        F.ID: bytes_feature(example_id),
        F.LABEL: bytes_feature("happy"),
        F.SPEAKER: bytes_feature(speaker),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_embedder_joins_every_candidate_of_each_window(tmp_path):
    frames, bands = 6, 4
    module = tf.Module()
    module.w = tf.Variable(np.ones((frames * bands, 3), np.float32))
    spec = tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)
    module.embed = tf.function(
        lambda logmel: {F.EMBEDDING: logmel @ module.w, "pooled": logmel[:, :2]}, [spec]
    )
    tf.saved_model.save(module, str(tmp_path), signatures={EMBED_SIGNATURE: module.embed})
    ids = [("c0:0", "s0", 120), ("c1:0", "s1", 220)]
    raw = [_raw_example(_voice(f0=f0), i, spk) for i, spk, f0 in ids]
    transformed = [_transformed_example(i, spk, frames, bands) for i, spk, _ in ids]
    with beam.Pipeline() as p:
        out = (
            (p | "T" >> beam.Create(transformed), p | "R" >> beam.Create(raw))
            | EmbedExamples(str(tmp_path), bands, RATE)
            | beam.Map(parse_embedding)
            | beam.Map(
                lambda r: (
                    r[F.ID],
                    r[F.LABEL],
                    r[F.SPEAKER],
                    tuple(sorted((k, v.shape) for k, v in r["vectors"].items())),
                )
            )
        )
        shapes = (
            ("logmel", (3 * bands,)),
            ("statistics", (STATISTICS_DIM,)),
            ("teacher", (3,)),
            ("teacher_pooled", (2,)),
        )
        assert_that(out, equal_to([(i, "happy", spk, shapes) for i, spk, _ in ids]))


def test_embedder_refuses_a_window_missing_from_one_input(tmp_path):
    with pytest.raises(ValueError, match="0 transformed and 1 raw"):
        list(_merge(("c0:0", {"transformed": [], "raw": [{"statistics": np.zeros(2)}]})))


def test_logmel_statistics_are_mean_std_and_mean_absolute_delta():
    logmel = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    np.testing.assert_allclose(
        logmel_statistics(logmel), [2.0, 1.0, np.std([0, 2, 4]), 0.0, 2.0, 0.0]
    )


def test_higher_pitch_gives_higher_f0_median():
    low, high = (utterance_statistics(_voice(f0=f0).tobytes(), RATE) for f0 in (120, 240))
    assert high[7] - low[7] == pytest.approx(12.0, abs=0.5)  # one octave, in semitones


def _rows():
    return [
        ("a1", {"x": np.array([1.0, 2.0])}, "A"),
        ("a2", {"x": np.array([3.0, 6.0])}, "A"),
        ("b1", {"x": np.array([10.0, 0.0])}, "B"),
        ("b2", {"x": np.array([10.0, 4.0])}, "B"),
    ]


def test_prepare_centres_each_speaker_then_normalises():
    rows = _rows()
    vectors = {"x": np.stack([v["x"] for _, v, _ in rows])}
    speakers = np.array([s for _, _, s in rows])
    out = prepare.prepare(vectors, speakers, "x", speaker_centre=True, whiten=False)
    s = 1 / np.sqrt(5)
    np.testing.assert_allclose(out, [[-s, -2 * s], [s, 2 * s], [0, -1], [0, 1]], atol=1e-6)


def test_prepare_weights_each_block_of_a_combination():
    vectors = {"a": np.array([[3.0, 4.0]]), "b": np.array([[2.0]])}
    out = prepare.prepare(vectors, np.array(["s"]), "a+b:0.5", speaker_centre=False, whiten=False)
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.5]], atol=1e-6)


def test_prepare_whitens_with_each_speakers_std():
    vectors = {"x": np.array([[0.0, 0.0], [2.0, 20.0]])}
    out = prepare.prepare(vectors, np.array(["s", "s"]), "x", True, whiten=True)
    np.testing.assert_allclose(np.abs(out), np.sqrt(0.5), atol=1e-6)  # both dims now equal


def test_expert_functionals_are_whitened_even_when_the_rest_is_not():
    from emograph.components.embedder.expert import EXPERT_CANDIDATES

    assert prepare.ALWAYS_WHITENED == set(EXPERT_CANDIDATES)
    x = np.array([[0.0, 0.0], [2.0, 20.0]])
    speakers = np.array(["s", "s"])
    out = prepare.prepare({"egemaps": x, "x": x}, speakers, "egemaps+x", True, whiten=False)
    np.testing.assert_allclose(np.abs(out[:, :2]), np.sqrt(0.5), atol=1e-6)  # whitened
    assert abs(out[0, 3]) > 5 * abs(out[0, 2])  # "x" only centred: its large dimension rules


def test_beam_prepare_equals_the_in_memory_one():
    rows = _rows()
    vectors = {"x": np.stack([v["x"] for _, v, _ in rows])}
    expected = prepare.prepare(vectors, np.array([s for *_, s in rows]), "x", True, True)
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(rows)
            | prepare.PrepareEmbeddings("x", speaker_centre=True, whiten=True)
            | beam.MapTuple(lambda i, v: (i, tuple(np.round(v, 5).tolist())))
        )
        assert_that(
            out,
            equal_to(
                [
                    (r[0], tuple(np.round(e, 5).tolist()))
                    for r, e in zip(rows, expected, strict=True)
                ]
            ),
        )


def test_unknown_source_is_refused_by_name():
    with pytest.raises(ValueError, match=r"no \['teacher'\] embeddings"):
        prepare.combine({"x": np.ones((1, 2))}, None, "x+teacher", whiten=False)


def test_same_speaker_edges_reweighted_or_removed():
    edges = [("a1", "a2", 0.9), ("a1", "b1", 0.5)]
    speakers = {"a1": "A", "a2": "A", "b1": "B"}
    assert prepare.reweight_same_speaker(edges, speakers, 0.5) == [
        ("a1", "a2", 0.45),
        ("a1", "b1", 0.5),
    ]
    assert prepare.reweight_same_speaker(edges, speakers, 0.0) == [("a1", "b1", 0.5)]
    with beam.Pipeline() as p:
        out = (
            p | "E" >> beam.Create(edges),
            p | "S" >> beam.Create(list(speakers.items())),
        ) | prepare.ReweightSameSpeakerEdges(0.0, 1)
        assert_that(out, equal_to([("a1", "b1", 0.5)]))


@pytest.mark.parametrize("spec", ["mfcc:0", "a+a", "a:x", ""])
def test_graph_config_rejects_a_malformed_source(spec):
    with pytest.raises(ValueError, match="embedding source"):
        GraphConfig(embedding_source=spec)


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
