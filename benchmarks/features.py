"""Which features carry a corpus: a per-speaker linear model on each feature group.

The students' harness (benchmarks/students.py) compares models; this compares what they read.
Per fold (test speakers = one fold, validation = the next, train = the rest, as the harness),
logistic regression with C chosen on the validation speakers, clip-level UAR, on:
- eGeMAPSv02 per clip, per-speaker z-scored: all 88, each group alone and all but each group
  (pitch, loudness, spectral balance, MFCC, formants, voice quality, temporal);
- the student's own functionals (`frontend.functionals`: log-mel band statistics + pitch
  statistics) per window, z-scored per speaker as Transform does, a clip's window probabilities
  averaged: all, bands alone, pitch alone.
A gap between a student and eGeMAPS + LR that shows up here too is in the features, not in the
student's training or its graph.

    .venv/bin/python -m benchmarks.features --corpus emovo:../shared/data/emovo16k \
        --folds f1+m1,f2+m2,f3+m3 --out docs/results/features-emovo.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import emograph.components.compat  # noqa: F401  (before TensorFlow)
from benchmarks.students import clip_functionals, corpus_and_folds, speaker_functionals

# eGeMAPSv02 feature-name patterns of each group (Eyben et al., 2016, table 1).
EGEMAPS_GROUPS = {
    "pitch": ("F0semitone",),
    "loudness": ("loudness_sma3",),
    "spectral balance": ("alphaRatio", "hammarberg", "slopeV", "slopeUV", "spectralFlux"),
    "mfcc": ("mfcc",),
    "formants": ("F1", "F2", "F3"),
    "voice quality": ("jitter", "shimmer", "HNR", "logRelF0"),
    "temporal": (
        "loudnessPeaksPerSec",
        "VoicedSegmentsPerSec",
        "MeanVoiced",
        "StddevVoiced",
        "MeanUnvoiced",
        "StddevUnvoiced",
        "equivalentSound",
    ),
}


def egemaps_groups() -> dict[str, list[int]]:
    """Column indices of each eGeMAPS group (every column in exactly one group)."""
    import opensmile

    names = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02).feature_names
    groups = {
        g: [i for i, n in enumerate(names) if n.startswith(p)] for g, p in EGEMAPS_GROUPS.items()
    }
    covered = sorted(i for cols in groups.values() for i in cols)
    if covered != list(range(len(names))):
        raise AssertionError("eGeMAPS groups must cover every feature once")
    return groups


def fold_uars(x, label, speaker, clip, folds, classes) -> list[float]:
    """Clip UAR per fold of LR on rows `x` (windows or clips; a clip's rows' probabilities are
    averaged), C chosen on the validation fold."""
    from emograph.components.evaluation import metrics
    from emograph.components.expert.linear import fit_linear

    ids, inverse = np.unique(clip, return_inverse=True)
    first = np.unique(inverse, return_index=True)[1]
    uars = []
    for f, test_speakers in enumerate(folds):
        val_speakers = folds[(f + 1) % len(folds)]
        train = ~np.isin(speaker, test_speakers + val_speakers)
        val, test = np.isin(speaker, val_speakers), np.isin(speaker, test_speakers)
        fitted = fit_linear(x[train], label[train], x[val], label[val], len(classes), "lr")
        probs = np.zeros((len(ids), len(classes)))
        np.add.at(probs, inverse[test], fitted.pipeline.predict_proba(x[test]))
        tested = np.isin(speaker[first], test_speakers)
        summary = metrics.summary(label[first][tested], probs[tested].argmax(1), classes)
        uars.append(summary["uar"])
    return uars


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="KIND:PATH")
    p.add_argument("--folds", required=True, help="speakers of each fold: a+b,c+d,...")
    p.add_argument("--out", default="")
    args = p.parse_args()
    from emograph.components.audio import frontend

    spec, corpus, folds = corpus_and_folds(args.corpus, args.folds)
    classes = corpus.classes
    rows = {}

    one_row = np.unique(corpus.clip, return_index=True)[1]  # a clip's first window

    def score(name: str, x: np.ndarray, rows_of: np.ndarray = slice(None)) -> None:
        label, speaker, clip = corpus.label[rows_of], corpus.speaker[rows_of], corpus.clip[rows_of]
        uars = fold_uars(x[rows_of], label, speaker, clip, folds, classes)
        rows[name] = {"clip_uar": float(np.mean(uars)), "std": float(np.std(uars)), "folds": uars}
        print(
            f"{name:40s} {np.mean(uars):.3f} ± {np.std(uars):.3f}  ({x.shape[1]} features)",
            flush=True,
        )

    egemaps = clip_functionals(spec, classes, corpus, "eGeMAPSv02", True)  # per window
    score("egemaps all", egemaps, one_row)
    for group, cols in egemaps_groups().items():
        score(f"egemaps {group} alone", egemaps[:, cols], one_row)
        score(f"egemaps all but {group}", np.delete(egemaps, cols, axis=1), one_row)
    student = speaker_functionals(corpus)
    bands = frontend.FUNCTIONALS_PER_BAND * corpus.logmel.shape[-1]
    score("student functionals all", student)
    score("student functionals bands alone", student[:, :bands])
    score("student functionals pitch alone", student[:, bands:])
    if args.out:
        report = {
            "corpus": args.corpus,
            "folds": args.folds,
            "classes": list(classes),
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
