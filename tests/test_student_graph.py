"""The student's graph regularisation on the logits or on the penultimate embedding."""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import AugmentConfig, StudentConfig
from emograph.components.models import networks, training
from emograph.components.student.trainer import graph_regularised

FRAMES, BANDS, CLASSES, BATCH = 16, 8, 3, 6
NBR = f"{F.NBR_PREFIX}0_{F.LOGMEL}"
WEIGHT = f"{F.NBR_PREFIX}0{F.NBR_WEIGHT_SUFFIX}"


def _student(layer: str, quantization_aware: bool = True):
    cfg = StudentConfig(
        architecture="dscnn",
        filters=(4, 8),
        num_neighbours=1,
        graph_multiplier=0.5,
        regularised_layer=layer,
        augment=AugmentConfig(enabled=False),
        quantization_aware=quantization_aware,
    )
    keras.utils.set_random_seed(0)
    base = networks.build_student(cfg, FRAMES, BANDS, CLASSES)
    return base, graph_regularised(base, cfg)


def _packed_batch():
    rng = np.random.default_rng(0)
    return {
        F.LOGMEL: tf.constant(rng.standard_normal((BATCH, FRAMES * BANDS)), tf.float32),
        NBR: tf.constant(rng.standard_normal((BATCH, FRAMES * BANDS)), tf.float32),
        WEIGHT: tf.ones([BATCH, 1]),
    }


@pytest.mark.parametrize("layer", ["logits", "embedding"])
def test_graph_loss_is_the_l2_distance_of_the_chosen_layer(layer):
    # float: untrained, the fake-quant ranges (+-6) would round these tiny logits all to 0
    base, model = _student(layer, quantization_aware=False)
    inputs = _packed_batch()
    logits = model(inputs, training=False)
    np.testing.assert_allclose(logits, base({F.LOGMEL: inputs[F.LOGMEL]}), atol=1e-6)
    output = base.output if layer == "logits" else base.get_layer(networks.EMBEDDING_LAYER).output
    view = keras.Model(base.input, output)
    sample, neighbour = view({F.LOGMEL: inputs[F.LOGMEL]}), view({F.LOGMEL: inputs[NBR]})
    expected = 0.5 * np.mean(np.sum(np.square(sample - neighbour), axis=-1))
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-4)
    assert expected > 0


@pytest.mark.slow
@pytest.mark.parametrize("quantization_aware", [True, False])
@pytest.mark.parametrize("layer", ["logits", "embedding"])
def test_both_layers_train_with_a_graph_loss(layer, quantization_aware):
    base, model = _student(layer, quantization_aware)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [w.copy() for w in base.get_weights()]
    labels = tf.constant(np.arange(BATCH) % CLASSES)
    ds = tf.data.Dataset.from_tensors((_packed_batch(), labels)).repeat(3)
    history = model.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert history["scaled_graph_loss"][0] > 0
    assert any(not np.allclose(a, b) for a, b in zip(before, base.get_weights(), strict=True))


def test_unknown_regularised_layer_is_refused():
    with pytest.raises(ValueError, match="regularised_layer must be one of"):
        StudentConfig(regularised_layer="conv")


@pytest.mark.parametrize("quantization_aware", [True, False])
def test_mean_max_pooling_doubles_the_embedding_and_regularises_it(quantization_aware):
    cfg = StudentConfig(
        architecture="dscnn",
        filters=(4, 8),
        pooling="mean_max",
        num_neighbours=1,
        regularised_layer="embedding",
        quantization_aware=quantization_aware,
    )
    base = networks.build_student(cfg, FRAMES, BANDS, CLASSES)
    assert base.get_layer(networks.EMBEDDING_LAYER).output.shape[-1] == 2 * 8
    x = np.random.default_rng(1).standard_normal((2, FRAMES * BANDS)).astype(np.float32)
    embedding = keras.Model(base.input, base.get_layer(networks.EMBEDDING_LAYER).output)
    pooled = embedding({F.LOGMEL: x}).numpy()
    assert (pooled[:, 8:] >= pooled[:, :8] - 1e-5).all()  # the max is at least the mean
    model = graph_regularised(base, cfg)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(_packed_batch(), tf.zeros([BATCH], tf.int64), epochs=1, verbose=0)
    assert history.history["scaled_graph_loss"][0] > 0


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        StudentConfig(pooling="attention")


@pytest.mark.parametrize("quantization_aware", [True, False])
def test_tdnn_student_convolves_over_time_only_and_trains_with_the_graph(quantization_aware):
    cfg = StudentConfig(
        architecture="tdnn",
        filters=(4, 6, 8),
        num_neighbours=1,
        quantization_aware=quantization_aware,
    )
    base = networks.build_student(cfg, FRAMES, BANDS, CLASSES)
    stem = base.get_layer("stem_conv")
    stem = getattr(stem, "layer", stem)  # a quantization-aware model wraps its layers
    assert stem.kernel_size == (5, BANDS)  # the first layer spans every band
    assert base.get_layer(networks.EMBEDDING_LAYER).output.shape[-1] == 8
    model = graph_regularised(base, cfg)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    history = model.fit(_packed_batch(), tf.zeros([BATCH], tf.int64), epochs=1, verbose=0)
    assert history.history["scaled_graph_loss"][0] > 0


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture"):
        StudentConfig(architecture="transformer")


def test_missing_neighbours_become_the_sample_with_weight_zero():
    from emograph.components.models.training import pad_missing_neighbours

    sample = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    features = {
        F.LOGMEL: sample,
        f"{F.NBR_PREFIX}0_{F.LOGMEL}": tf.constant([[9.0, 9.0], [0.0, 0.0]]),
        f"{F.NBR_PREFIX}0{F.NBR_WEIGHT_SUFFIX}": tf.constant([[0.7], [0.0]]),
    }
    out = pad_missing_neighbours(features, 1)
    np.testing.assert_array_equal(out[f"{F.NBR_PREFIX}0_{F.LOGMEL}"], [[9.0, 9.0], [3.0, 4.0]])
    assert (
        out[f"{F.NBR_PREFIX}0{F.NBR_WEIGHT_SUFFIX}"]
        is features[f"{F.NBR_PREFIX}0{F.NBR_WEIGHT_SUFFIX}"]
    )


@pytest.mark.parametrize("hidden_units", [(), (6,)])
@pytest.mark.parametrize("quantization_aware", [True, False])
def test_functionals_student_trains_with_the_graph_and_quantises_only_its_dense_layers(
    quantization_aware, hidden_units
):
    cfg = StudentConfig(
        architecture="functionals",
        hidden_units=hidden_units,
        num_neighbours=1,
        regularised_layer="embedding",
        quantization_aware=quantization_aware,
    )
    base = networks.build_student(cfg, FRAMES, BANDS, CLASSES)
    width = frontend.functionals_width(BANDS)
    assert training.model_input(base) == (F.FUNCTIONALS, width)
    embedding = hidden_units[-1] if hidden_units else width
    assert base.get_layer(networks.EMBEDDING_LAYER).output.shape[-1] == embedding
    fake_quantised = {
        layer.name
        for layer in base.layers
        if hasattr(layer, "quantize_config")
        and layer.quantize_config.get_weights_and_quantizers(layer.layer)
    }
    dense = {"logits", networks.EMBEDDING_LAYER} if hidden_units else {"logits"}
    assert fake_quantised == (dense if quantization_aware else set())
    before = [w.copy() for w in base.get_weights()]
    model = graph_regularised(base, cfg)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(0)
    batch = {
        F.FUNCTIONALS: rng.standard_normal((BATCH, width)).astype(np.float32),
        f"{F.NBR_PREFIX}0_{F.FUNCTIONALS}": rng.standard_normal((BATCH, width)).astype(np.float32),
        WEIGHT: np.ones((BATCH, 1), np.float32),
    }
    history = model.fit(batch, np.zeros(BATCH, np.int64), epochs=1, verbose=0)
    assert history.history["scaled_graph_loss"][0] > 0
    assert any(not np.allclose(a, b) for a, b in zip(before, base.get_weights(), strict=True))


def test_functionals_student_refuses_augmentation():
    with pytest.raises(ValueError, match="augment"):
        StudentConfig(architecture="functionals", augment=AugmentConfig(enabled=True))


def _write_examples(path, x: np.ndarray, y: np.ndarray, neighbours: int = 0) -> str:
    """Gzipped tf.Examples of functionals windows (one clip each), with `neighbours` copies of
    another window as neighbours, as the packer writes them."""
    rng = np.random.default_rng(len(x))
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i, (row, label) in enumerate(zip(x, y, strict=True)):
            feature = {
                F.FUNCTIONALS: tf.train.Feature(float_list=tf.train.FloatList(value=row)),
                F.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                F.ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"c{i}:0".encode()])),
            }
            for k in range(neighbours):
                other = x[rng.integers(len(x))]
                feature[f"{F.NBR_PREFIX}{k}_{F.FUNCTIONALS}"] = tf.train.Feature(
                    float_list=tf.train.FloatList(value=other)
                )
                feature[f"{F.NBR_PREFIX}{k}{F.NBR_WEIGHT_SUFFIX}"] = tf.train.Feature(
                    float_list=tf.train.FloatList(value=[1.0])
                )
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return str(path)


@pytest.mark.slow
def test_student_trainer_keeps_the_multiplier_that_validates_best(tmp_path):
    """With graph_multipliers the trainer fits one student per multiplier and exports the one
    with the best validation UAR; training.json's figures say which and why."""
    from emograph.components.config import AudioConfig, FrontendConfig
    from emograph.components.student.trainer import train_student

    audio, front = AudioConfig(window_seconds=1.0), FrontendConfig()
    width = frontend.functionals_width(front.mel_bands)
    rng = np.random.default_rng(0)
    y = np.arange(60) % CLASSES
    x = rng.standard_normal((60, width)).astype(np.float32) + y[:, None] * 0.3
    train = _write_examples(tmp_path / "train.gz", x[:40], y[:40], neighbours=2)
    val = _write_examples(tmp_path / "val.gz", x[40:], y[40:])
    cfg = StudentConfig(
        architecture="functionals",
        epochs=2,
        num_neighbours=2,
        graph_multiplier=3.0,
        graph_multipliers=(0.0, 0.5),
    )
    summary = train_student(
        [train], [val], str(tmp_path / "serving"), "", cfg, audio, front, ("a", "b", "c")
    )
    scores = summary["val_uar_by_multiplier"]
    assert list(scores) == [0.0, 0.5, 3.0]
    smallest_best = max(scores, key=lambda m: (scores[m], -m))
    assert summary["graph_multiplier"] == smallest_best
    assert summary["val_uar"] == scores[smallest_best]
    served = tf.saved_model.load(str(tmp_path / "serving"))
    assert "pcm" in served.signatures


def test_negative_multipliers_are_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        StudentConfig(graph_multipliers=(0.1, -1.0))
