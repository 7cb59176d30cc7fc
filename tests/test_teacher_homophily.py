"""The teacher's own embedding homophily on held-out speakers, written to training.json."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.models import networks
from emograph.components.teacher.trainer import embedding_homophily

FRAMES, BANDS = 4, 3


def _write(path, examples) -> str:
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for logmel, label, speaker in examples:
            feats = {
                F.LOGMEL: tf.train.Feature(float_list=tf.train.FloatList(value=logmel)),
                F.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                F.SPEAKER: tf.train.Feature(bytes_list=tf.train.BytesList(value=[speaker])),
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()
            )
    return str(path)


def _model(weights: np.ndarray) -> keras.Model:
    """An `embedding` layer that reads the first columns: the label code, or noise."""
    inputs = keras.Input(shape=(FRAMES * BANDS,), name=F.LOGMEL)
    dense = keras.layers.Dense(weights.shape[1], use_bias=False, name=networks.EMBEDDING_LAYER)
    out = keras.layers.Dense(2, name="logits")(dense(inputs))
    model = keras.Model({F.LOGMEL: inputs}, out)
    dense.set_weights([weights])
    return model


def test_an_embedding_of_the_label_is_fully_homophilous(tmp_path):
    rng = np.random.default_rng(0)
    examples = []
    for speaker in (b"a", b"b", b"c"):
        for i in range(12):
            label = i % 3
            x = rng.normal(0, 0.01, FRAMES * BANDS)
            x[label] += 1.0  # the label's column lights up
            examples.append((x, label, speaker))
    files = [_write(tmp_path / "eval.gz", examples)]
    picks_label = np.eye(FRAMES * BANDS)[:, :3]
    picks_noise = np.eye(FRAMES * BANDS)[:, 3:6]
    good = embedding_homophily(_model(picks_label), files, FRAMES, BANDS)
    bad = embedding_homophily(_model(picks_noise), files, FRAMES, BANDS)
    assert good["label_homophily"] == 1.0 and good["label_chance"] == 1 / 3
    assert bad["label_homophily"] < 0.7
    assert good["score"] > bad["score"]
