"""Linear baselines on expert features, with C chosen on the validation speakers.

The features are standardised with the train split's statistics (a StandardScaler inside the
sklearn Pipeline), classes are weighted inversely to their frequency, and C is the value of
`cs` with the best validation UAR (ties to the smaller C, the stronger regulariser). The chosen
model is the one fitted on train: the validation speakers choose C and are not trained on.

Scores and probabilities always have one column per class of the run, also for a class the
train split lacks (its probability is 0, its SVM score -inf): downstream code indexes columns
by class id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from emograph.components.evaluation.metrics import summary

MODELS = ("lr", "svm")
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True)
class LinearBaseline:
    """A fitted linear classifier and how it was chosen.

    Attributes:
      pipeline: the fitted sklearn Pipeline (StandardScaler, then the classifier).
      c: the chosen inverse regularisation strength.
      val_uar: validation UAR of the chosen C.
      model: "lr" (logistic regression) or "svm" (linear SVM).
      num_classes: columns of `scores` and `probabilities`.
      val_uars: (C, validation UAR) of every C tried, in ascending C.
    """

    pipeline: Pipeline
    c: float
    val_uar: float
    model: str
    num_classes: int
    val_uars: tuple[tuple[float, float], ...] = ()

    @property
    def classes(self) -> np.ndarray:
        """Class ids the classifier was trained on (a subset of range(num_classes))."""
        return self.pipeline.classes_

    def scores(self, x: np.ndarray) -> np.ndarray:
        """[n, num_classes]: LR class probabilities (0 for a class absent from training) or
        SVM decision scores (-inf for such a class; a two-class SVM's single margin d becomes
        -d and d, one-vs-rest style)."""
        if self.model == "lr":
            present = self.pipeline.predict_proba(x)
            fill = 0.0
        else:
            present = self.pipeline.decision_function(x)
            if present.ndim == 1:
                present = np.stack([-present, present], axis=1)
            fill = -np.inf
        out = np.full((len(present), self.num_classes), fill, np.float64)
        out[:, self.classes] = present
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids [n]."""
        return self.scores(x).argmax(axis=1)

    def probabilities(self, x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """[n, num_classes] class probabilities to distil a student from: LR's predict_proba
        (tempered as softmax(log p / temperature), which is predict_proba at 1), or the softmax
        of the SVM's decision scores / temperature. A class absent from training gets 0."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        scores = self.scores(x)
        if self.model == "lr":
            if temperature == 1.0:
                return scores
            with np.errstate(divide="ignore"):
                scores = np.log(scores)
        return _softmax(scores / temperature)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pipeline(model: str, c: float, seed: int) -> Pipeline:
    if model == "lr":
        classifier = LogisticRegression(
            C=c, max_iter=2000, class_weight="balanced", random_state=seed
        )
    else:
        classifier = LinearSVC(
            C=c, class_weight="balanced", dual="auto", max_iter=5000, random_state=seed
        )
    return Pipeline([("scale", StandardScaler()), ("classifier", classifier)])


def uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in y_true (components/evaluation/metrics.py)."""
    return summary(y_true, y_pred, tuple(str(i) for i in range(num_classes)))["uar"]


def _labels(y: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids [n], got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} has class ids outside [0, {num_classes})")
    return y


def fit_linear(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    model: str = "lr",
    cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
) -> LinearBaseline:
    """Fits `model` ("lr" or "svm") on train for every C in `cs` and keeps the one with the
    best validation UAR (ties to the smaller C), as fitted on train."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; valid: {MODELS}")
    if not cs or min(cs) <= 0:
        raise ValueError(f"cs must be positive values, got {tuple(cs)}")
    y_train = _labels(y_train, num_classes, "y_train")
    y_val = _labels(y_val, num_classes, "y_val")
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train needs at least two classes")
    if not len(y_val):
        raise ValueError("no validation examples to choose C on")
    best: LinearBaseline | None = None
    tried = []
    for c in sorted(float(c) for c in cs):
        fitted = _pipeline(model, c, seed).fit(x_train, y_train)
        candidate = LinearBaseline(fitted, c, float("nan"), model, num_classes)
        score = uar(y_val, candidate.predict(x_val), num_classes)
        tried.append((c, score))
        if best is None or score > best.val_uar:
            best = LinearBaseline(fitted, c, score, model, num_classes)
    return LinearBaseline(best.pipeline, best.c, best.val_uar, model, num_classes, tuple(tried))
