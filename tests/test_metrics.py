"""SER metrics against sklearn, and the Keras metrics TFMA runs against the numpy ones."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score

import emograph.components.compat  # noqa: F401
from emograph.components.evaluation import metrics

CLASSES = ("a", "b", "c", "d")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
    s = metrics.summary(y_true, y_pred, CLASSES)
    assert s["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["wa"] == pytest.approx(np.mean(y_true == y_pred))
    assert s["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    np.testing.assert_allclose(
        list(s["recall"].values()), recall_score(y_true, y_pred, average=None)
    )


def test_uar_ignores_classes_absent_from_labels():
    s = metrics.summary(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), CLASSES)
    assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert np.isnan(s["recall"]["c"])


def test_keras_metrics_equal_numpy_over_batches():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 90)
    scores = rng.random((90, 4)).astype(np.float32)
    uar = metrics.UnweightedAverageRecall(num_classes=4)
    recall_b = metrics.ClassRecall(num_classes=4, class_index=1)
    for start in range(0, 90, 32):  # accumulate over batches, as TFMA does
        uar.update_state(y_true[start : start + 32], scores[start : start + 32])
        recall_b.update_state(y_true[start : start + 32], scores[start : start + 32])
    s = metrics.summary(y_true, scores.argmax(-1), CLASSES)
    assert float(uar.result()) == pytest.approx(s["uar"], abs=1e-6)
    assert float(recall_b.result()) == pytest.approx(s["recall"]["b"], abs=1e-6)
    clone = metrics.ClassRecall.from_config(recall_b.get_config())
    assert clone.class_index == 1


def test_class_weights_are_inverse_frequency(tmp_path):
    import tensorflow as tf

    from emograph.components import features as F
    from emograph.components.models import training

    path = tmp_path / "data.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for label in [0] * 6 + [1] * 3 + [2] * 3:
            feature = {F.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    weights = training.class_weights([str(path)], num_classes=4)
    assert weights == pytest.approx({0: 12 / 18, 1: 12 / 9, 2: 12 / 9, 3: 0.0})
    counts = [6, 3, 3, 0]
    assert sum(w * n for w, n in zip(weights.values(), counts, strict=True)) == pytest.approx(12)


def test_clip_level_averages_window_probabilities():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    clips = metrics.clip_of(np.array(["a:0", "a:1", "b:0", "b:1"]))
    mean, clip_labels = metrics.clip_level(probabilities, labels, clips)
    np.testing.assert_allclose(mean, [[0.55, 0.45], [0.45, 0.55]])
    np.testing.assert_array_equal(clip_labels, [0, 1])
    # Window UAR is 0.5 (one window of each clip wrong); both clips are right.
    assert metrics.summary(labels, probabilities.argmax(-1), ("x", "y"))["uar"] == 0.5
    assert metrics.clip_summary(probabilities, labels, clips, ("x", "y"))["uar"] == 1.0


def test_clip_of_keeps_colons_inside_clip_ids():
    np.testing.assert_array_equal(metrics.clip_of(np.array(["c:d:3", "e:0"])), ["c:d", "e"])
