"""SER metrics: UAR (unweighted average recall = macro recall) first, then WA and macro-F1.

Models score fixed-length windows; a clip's decision averages its windows' probabilities
(`clip_level`), and clip UAR is the headline (a user labels recordings, not windows).

`UnweightedAverageRecall` and `ClassRecall` are Keras metrics over a confusion matrix, so TFMA can
compute them in the Evaluator (its accumulators are summed across batches and workers).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[true, predicted] counts. Refuses a label outside the classes (an unlabelled window,
    label id -1, cannot be scored)."""
    y_true = np.asarray(y_true, np.int64)
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(f"labels must be class indices in [0, {num_classes}), got {y_true.min()}")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def recalls(matrix: np.ndarray) -> np.ndarray:
    """Per-class recall; NaN for a class absent from the labels."""
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(matrix) / support


def summary(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """UAR (mean recall over classes present), WA (accuracy), macro-F1 and per-class recall."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    recall = recalls(matrix)
    predicted = matrix.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, np.diag(matrix) / np.maximum(predicted, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = matrix.sum(axis=1) > 0
    return {
        "uar": float(np.nanmean(recall)) if present.any() else float("nan"),
        "wa": float(np.trace(matrix) / max(1, matrix.sum())),
        "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "recall": {c: float(r) for c, r in zip(classes, recall, strict=True)},
        "confusion": matrix.tolist(),
        "n": int(matrix.sum()),
    }


def clip_of(window_ids: np.ndarray) -> np.ndarray:
    """Clip ids of window ids f"{clip_id}:{window index}" (the ID feature)."""
    return np.array([str(i).rsplit(":", 1)[0] for i in window_ids])


def clip_level(
    probabilities: np.ndarray, labels: np.ndarray, clips: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mean window probabilities [clips, C], label [clips]) per clip, in sorted clip order."""
    unique, index = np.unique(np.asarray(clips), return_inverse=True)
    sums = np.zeros((len(unique), probabilities.shape[1]))
    np.add.at(sums, index, probabilities)
    counts = np.bincount(index, minlength=len(unique))
    clip_labels = np.zeros(len(unique), np.int64)
    clip_labels[index] = labels
    return sums / counts[:, None], clip_labels


def clip_summary(
    probabilities: np.ndarray, labels: np.ndarray, clips: np.ndarray, classes: tuple[str, ...]
) -> dict:
    """`summary` of the clip-level decisions (a clip's window probabilities averaged)."""
    clip_probabilities, clip_labels = clip_level(probabilities, labels, clips)
    return summary(clip_labels, clip_probabilities.argmax(-1), classes)


class _ConfusionMetric(keras.metrics.Metric):
    """Accumulates a confusion matrix from integer labels and class scores (argmax)."""

    def __init__(self, num_classes: int, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_weight(
            name="confusion",
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype=tf.float32,
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.int64), [-1])
        predicted = tf.argmax(tf.reshape(y_pred, [-1, self.num_classes]), axis=-1)
        batch = tf.math.confusion_matrix(labels, predicted, self.num_classes, dtype=tf.float32)
        self.matrix.assign_add(batch)

    def reset_state(self):
        self.matrix.assign(tf.zeros_like(self.matrix))

    def _recalls(self) -> tf.Tensor:
        support = tf.reduce_sum(self.matrix, axis=1)
        return tf.math.divide_no_nan(tf.linalg.diag_part(self.matrix), support), support > 0

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


class UnweightedAverageRecall(_ConfusionMetric):
    """Mean recall over the classes present in the labels (the SER headline metric)."""

    def __init__(self, num_classes: int, name: str = "uar", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        recall, present = self._recalls()
        return tf.reduce_mean(tf.boolean_mask(recall, present))


class ClassRecall(_ConfusionMetric):
    """Recall of one class."""

    def __init__(self, num_classes: int, class_index: int, name: str | None = None, **kwargs):
        super().__init__(num_classes, name=name or f"recall_{class_index}", **kwargs)
        self.class_index = class_index

    def result(self):
        recall, _ = self._recalls()
        return recall[self.class_index]

    def get_config(self):
        return {**super().get_config(), "class_index": self.class_index}
