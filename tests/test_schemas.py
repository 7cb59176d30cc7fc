"""The TFMD schemas in schemas/: they parse, match the features the code writes, and TFDV
accepts real examples against them while flagging broken ones."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from emograph.components import features as F
from emograph.components.audio.corpora import Clip
from emograph.components.audio.frontend import functionals_width, num_frames
from emograph.components.audio.windows import to_pcm16_bytes, window_clip
from emograph.components.config import AudioConfig, FrontendConfig, StudentConfig
from emograph.components.example_gen.ingest import make_example
from emograph.components.neighbours.packing import pack_example

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
TRANSFORMED = (
    F.LOGMEL,
    F.FUNCTIONALS,
    F.LABEL_ID,
    F.LABEL,
    F.ID,
    F.SPEAKER,
    F.CORPUS,
    F.LOGMEL_MEAN,
    F.LOGMEL_INV_STD,
)


def load_schema(name: str) -> schema_pb2.Schema:
    return text_format.Parse((SCHEMAS / name / "schema.pbtxt").read_text(), schema_pb2.Schema())


def anomalies(tmp_path: Path, schema: schema_pb2.Schema, examples: list) -> dict:
    """Feature name -> anomaly description, as ExampleValidator would report them."""
    path = str(tmp_path / f"examples-{len(list(tmp_path.iterdir()))}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(example.SerializeToString())
    stats = tfdv.generate_statistics_from_tfrecord(data_location=path)
    found = tfdv.validate_statistics(stats, schema).anomaly_info
    return {name: info.description for name, info in found.items()}


def ingested_example(seed: int, label: str = "happy") -> tf.train.Example:
    """A window cut and encoded by the ingest code itself."""
    audio = 0.3 * np.random.default_rng(seed).uniform(-1, 1, 40000).astype(np.float32)
    [(start, window)] = window_clip(audio, AudioConfig())
    clip = Clip(f"/c/s{seed}.wav", label, f"c/s{seed % 2}", "c", f"{seed:016x}")
    return make_example(clip, 0, start, to_pcm16_bytes(window))


def transformed_example(seed: int) -> tf.train.Example:
    """What Transform writes for one window in the default configuration."""
    rng = np.random.default_rng(seed)
    size = num_frames(AudioConfig().window_samples, FrontendConfig()) * FrontendConfig().mel_bands
    bands = FrontendConfig().mel_bands

    def floats(n: int) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=rng.normal(size=n)))

    def text(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    feature = {
        F.LOGMEL: floats(size),
        F.FUNCTIONALS: floats(functionals_width(bands)),
        F.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[seed % 6])),
        F.LABEL: text("sad"),
        F.ID: text(f"clip{seed}:0"),
        F.SPEAKER: text("c/s1"),
        F.CORPUS: text("c"),
        F.LOGMEL_MEAN: floats(bands),
        F.LOGMEL_INV_STD: floats(bands),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def test_raw_schema_lists_exactly_what_ingest_writes():
    names = {f.name for f in load_schema("raw_audio").feature}
    assert names == set(ingested_example(0).features.feature)


def test_packed_schema_matches_the_default_config():
    schema = {f.name: f for f in load_schema("packed_examples").feature}
    k = StudentConfig().num_neighbours
    nbr = {f"{F.NBR_PREFIX}{i}_{name}" for i in range(k) for name in TRANSFORMED}
    weights = {f"{F.NBR_PREFIX}{i}{F.NBR_WEIGHT_SUFFIX}" for i in range(k)}
    assert set(schema) == {*TRANSFORMED, *nbr, *weights, F.NUM_NBRS}
    size = num_frames(AudioConfig().window_samples, FrontendConfig()) * FrontendConfig().mel_bands
    assert schema[F.LOGMEL].shape.dim[0].size == size
    assert schema[f"{F.NBR_PREFIX}{k - 1}_{F.LOGMEL}"].value_count.max == size
    assert schema[F.LOGMEL_MEAN].shape.dim[0].size == FrontendConfig().mel_bands
    width = functionals_width(FrontendConfig().mel_bands)
    assert schema[F.FUNCTIONALS].shape.dim[0].size == width
    assert schema[f"{F.NBR_PREFIX}{k - 1}_{F.FUNCTIONALS}"].value_count.max == width


@pytest.mark.slow
def test_tfdv_accepts_ingested_examples_and_flags_a_missing_label(tmp_path):
    schema = load_schema("raw_audio")
    good = [ingested_example(seed) for seed in range(3)]
    assert anomalies(tmp_path, schema, good) == {}
    broken = ingested_example(3)
    del broken.features.feature[F.LABEL]
    assert set(anomalies(tmp_path, schema, [*good, broken])) == {F.LABEL}


@pytest.mark.slow
def test_tfdv_accepts_packed_examples_and_flags_a_wrong_neighbour_size(tmp_path):
    schema = load_schema("packed_examples")
    seeds = [transformed_example(i) for i in range(5)]
    packed = [
        pack_example(seeds[0], [(0.9, seeds[1]), (0.8, seeds[2]), (0.7, seeds[3])]),
        pack_example(seeds[1], [(0.9, seeds[0])]),
        pack_example(seeds[2], []),
        seeds[4],  # an eval example: copied unpacked
    ]
    assert anomalies(tmp_path, schema, packed) == {}
    short = transformed_example(5)
    del short.features.feature[F.LOGMEL].float_list.value[-1]
    bad = pack_example(seeds[3], [(0.5, short)])
    assert set(anomalies(tmp_path, schema, [*packed, bad])) == {f"{F.NBR_PREFIX}0_{F.LOGMEL}"}
