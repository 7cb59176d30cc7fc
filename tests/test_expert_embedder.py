"""Expert-feature graph candidates ("egemaps", "compare") in the Embedder's Beam job."""

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from emograph.components import features as F
from emograph.components.embedder.embed import (
    EMBED_SIGNATURE,
    EmbedExamples,
    _merge,
    parse_embedding,
)
from emograph.components.embedder.expert import (
    ExpertFunctionalsOf,
    expert_sources,
    parse_expert,
)
from emograph.components.expert.functionals import functionals

RATE = 16000


def _voice(seconds: float = 1.0, f0: float = 140.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / RATE
    wave = sum(np.sin(h * phase) / h for h in range(1, 6))
    return (3000 * wave * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)).astype("<i2")


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _raw_example(pcm: np.ndarray, example_id: str, speaker: str = "s0") -> bytes:
    feats = {
        F.AUDIO: _bytes(pcm.tobytes()),
        F.ID: _bytes(example_id.encode()),
        F.LABEL: _bytes(b"happy"),
        F.SPEAKER: _bytes(speaker.encode()),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_expert_dofn_trims_the_padding_and_describes_silence_by_zeros():
    voice = _voice()[1:]  # starts on a non-zero sample, so trimming leaves it whole
    padded = np.concatenate([np.zeros(4000, "<i2"), voice, np.zeros(20000, "<i2")])
    dofn = ExpertFunctionalsOf(RATE, ("egemaps", "compare"))
    dofn.setup()
    out = dict(
        kv
        for example in (
            _raw_example(voice, "c0:0"),
            _raw_example(padded, "c1:0"),
            _raw_example(np.zeros(3 * RATE, "<i2"), "c2:0"),
        )
        for kv in dofn.process(example)
    )
    assert sorted(out) == ["c0:0", "c1:0", "c2:0"]
    for name, feature_set, dim in (
        ("egemaps", "eGeMAPSv02", 88),
        ("compare", "ComParE_2016", 6373),
    ):
        expected = functionals(voice / 32768.0, RATE, feature_set)
        assert out["c0:0"][name].shape == (dim,) and out["c0:0"][name].dtype == np.float32
        np.testing.assert_array_equal(out["c0:0"][name], expected)
        np.testing.assert_array_equal(out["c1:0"][name], expected)  # padding trimmed
        np.testing.assert_array_equal(out["c2:0"][name], np.zeros(dim, np.float32))


def test_embedder_adds_the_expert_candidates_it_is_asked_for(tmp_path):
    frames, bands = 5, 4
    module = tf.Module()
    spec = tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)
    module.embed = tf.function(lambda logmel: {F.EMBEDDING: logmel[:, :3]}, [spec])
    tf.saved_model.save(module, str(tmp_path), signatures={EMBED_SIGNATURE: module.embed})

    def transformed(example_id: str) -> bytes:
        feats = {
            F.LOGMEL: tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * 20)),
            F.ID: _bytes(example_id.encode()),
            F.LABEL: _bytes(b"happy"),
            F.SPEAKER: _bytes(b"s0"),
        }
        return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()

    ids = ("c0:0", "c1:0")
    with beam.Pipeline() as p:
        out = (
            (
                p | "T" >> beam.Create([transformed(i) for i in ids]),
                p
                | "R"
                >> beam.Create(
                    [_raw_example(_voice(f0=150 + 50 * n), i) for n, i in enumerate(ids)]
                ),
            )
            | EmbedExamples(str(tmp_path), bands, RATE, expert=("egemaps",))
            | beam.Map(parse_embedding)
            | beam.Map(lambda r: (r[F.ID], sorted((k, len(v)) for k, v in r["vectors"].items())))
        )
        shapes = [("egemaps", 88), ("logmel", 12), ("statistics", 10), ("teacher", 3)]
        assert_that(out, equal_to([(i, shapes) for i in ids]))


def test_merge_refuses_a_window_missing_from_the_expert_input():
    joined = {
        "transformed": [({"teacher": np.zeros(2)}, {F.LABEL: b"a", F.SPEAKER: b"s"})],
        "raw": [{"statistics": np.zeros(2)}],
        "expert": [],
    }
    with pytest.raises(ValueError, match="1 transformed and 1 raw and 0 expert"):
        list(_merge(("c0:0", joined)))
    joined["expert"] = [{"egemaps": np.ones(3)}]
    (merged,) = _merge(("c0:0", joined))
    assert sorted(parse_embedding(merged)["vectors"]) == ["egemaps", "statistics", "teacher"]


def test_expert_sources_are_the_expert_names_a_graph_config_uses():
    specs = ("auto", "statistics", "compare:0.5+statistics", "egemaps+teacher", "logmel")
    assert expert_sources(specs) == ("egemaps", "compare")
    assert expert_sources(("statistics", "teacher")) == ()
    assert parse_expert(" egemaps, compare ") == ("egemaps", "compare")
    assert parse_expert("") == ()
    with pytest.raises(ValueError, match="unknown expert candidates"):
        parse_expert("egemaps,gemaps")
    with pytest.raises(ValueError, match="unknown expert candidates"):
        EmbedExamples("unused", 4, RATE, expert=("mfcc",))
