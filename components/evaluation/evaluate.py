"""Scores an exported model on a split of transformed examples (what experiments report).

It runs the model's `serving_default` signature, the same one TFMA's Evaluator uses, and
computes the same metrics as `metrics.summary` over windows, the clip-level ones (`clip`,
`clip_uar`: a clip's window probabilities averaged) and per-speaker UAR.
"""

from __future__ import annotations

from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from emograph.components import features as F  # noqa: E402
from emograph.components.evaluation import metrics  # noqa: E402
from emograph.components.evaluation.figures import save_figure  # noqa: E402


def predict_split(model_dir: str, pattern: str, batch_size: int = 256) -> dict[str, np.ndarray]:
    """{probabilities [n, C], label_id [n], speaker [n], id [n]} over every example matching
    `pattern`."""
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    spec = {
        F.LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
        F.SPEAKER: tf.io.FixedLenFeature([], tf.string),
        F.ID: tf.io.FixedLenFeature([], tf.string),
    }
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no examples match {pattern}")
    out = defaultdict(list)
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size):
        parsed = tf.io.parse_example(batch, spec)
        out["probabilities"].append(serve(examples=batch)["probabilities"].numpy())
        out[F.LABEL_ID].append(parsed[F.LABEL_ID].numpy())
        out[F.SPEAKER].append(parsed[F.SPEAKER].numpy().astype(str))
        out[F.ID].append(parsed[F.ID].numpy().astype(str))
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(model_dir: str, pattern: str, classes: tuple[str, ...]) -> dict:
    """metrics.summary of the model on the split's windows, of its clips, per-speaker UAR."""
    pred = predict_split(model_dir, pattern)
    predicted = pred["probabilities"].argmax(-1)
    result = metrics.summary(pred[F.LABEL_ID], predicted, classes)
    clips = metrics.clip_of(pred[F.ID])
    result["clip"] = metrics.clip_summary(pred["probabilities"], pred[F.LABEL_ID], clips, classes)
    result["clip_uar"] = result["clip"]["uar"]
    result["uar_by_speaker"] = {
        speaker: metrics.summary(pred[F.LABEL_ID][mask], predicted[mask], classes)["uar"]
        for speaker in sorted(set(pred[F.SPEAKER]))
        for mask in [pred[F.SPEAKER] == speaker]
    }
    return result


def plot_confusion(matrix: np.ndarray, classes: tuple[str, ...], title: str, path: str) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) as a PNG at `path` (any
    tf.io.gfile path)."""
    matrix = np.asarray(matrix, float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
    for (i, j), value in np.ndenumerate(normalised):
        ax.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            color="white" if value > 0.5 else "black",
            fontsize=8,
        )
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
