"""The bar every student must clear: openSMILE functionals of each clip + a linear model.

What a speech-emotion engineer runs first (../REFERENCE protocol): eGeMAPSv02 or ComParE_2016
utterance functionals of the whole clip, standardised with the train split's statistics
("raw") or z-scored with each speaker's own statistics ("spk", unlabelled audio of that speaker
only), then logistic regression or a linear SVM with C chosen on the validation speakers.
Scored per clip, so it compares with the students' clip UAR.

The clips are rebuilt from the pipeline's raw windows (each window's samples placed at its
start), so the baselines see exactly the audio the students saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.evaluation.metrics import summary
from emograph.components.expert.functionals import functionals, speaker_normalise
from emograph.components.expert.linear import MODELS, fit_linear

# Name -> openSMILE feature set.
FEATURE_SETS = {"egemaps": "eGeMAPSv02", "compare": "ComParE_2016"}
NORMALISATIONS = ("raw", "spk")
BASELINES = tuple(
    f"{features}_{model}_{norm}"
    for features in FEATURE_SETS
    for model in MODELS
    for norm in NORMALISATIONS
)


@dataclass(frozen=True)
class Clips:
    """Whole clips of one split: audio, label id, speaker, id."""

    ids: list[str]
    audio: list[np.ndarray]
    labels: np.ndarray
    speakers: np.ndarray


def clips_from_windows(
    windows: Iterable[tuple[str, float, np.ndarray, int, str]], sample_rate: int
) -> Clips:
    """(clip id, start seconds, float pcm, label id, speaker) per window -> whole clips, each
    window's samples at its start, trailing zero padding (a short clip's last window) cut."""
    parts: dict[str, list] = {}
    meta: dict[str, tuple[int, str]] = {}
    for clip, start, pcm, label, speaker in windows:
        parts.setdefault(clip, []).append((int(round(start * sample_rate)), pcm))
        meta[clip] = (label, speaker)
    ids = sorted(parts)
    audio = []
    for clip in ids:
        length = max(offset + len(pcm) for offset, pcm in parts[clip])
        signal = np.zeros(length, np.float32)
        for offset, pcm in parts[clip]:
            signal[offset : offset + len(pcm)] = pcm
        audio.append(np.trim_zeros(signal, "b"))
    labels = np.asarray([meta[c][0] for c in ids], np.int64)
    speakers = np.asarray([meta[c][1] for c in ids])
    return Clips(ids, audio, labels, speakers)


def clip_functionals(
    clips: Clips, feature_set: str, sample_rate: int, cache: MutableMapping | None = None
) -> np.ndarray:
    """[n, d] functionals of each clip; `cache` (keyed by (feature set, clip id)) lets the
    folds of an experiment, which share their clips, compute each clip once."""
    cache = {} if cache is None else cache
    rows = []
    for clip, audio in zip(clips.ids, clips.audio, strict=True):
        key = (feature_set, clip)
        if key not in cache:
            cache[key] = functionals(audio, sample_rate, FEATURE_SETS[feature_set])
        rows.append(cache[key])
    return np.stack(rows)


def score_baselines(
    splits: Mapping[str, Clips],
    classes: tuple[str, ...],
    sample_rate: int,
    names: Iterable[str] = BASELINES,
    cache: MutableMapping | None = None,
) -> dict[str, dict]:
    """Each baseline (e.g. "compare_lr_spk") fitted on splits["train"]'s labelled clips, C chosen on
    splits["eval"], scored on splits["test"]: clip UAR, recall per class, C and its
    validation UAR."""
    results = {}
    for name in names:
        features, model, norm = name.split("_")
        if features not in FEATURE_SETS or model not in MODELS or norm not in NORMALISATIONS:
            raise ValueError(f"unknown baseline {name!r}; valid: {BASELINES}")
        x = {
            split: clip_functionals(clips, features, sample_rate, cache)
            for split, clips in splits.items()
        }
        if norm == "spk":  # a speaker's statistics from all of their clips, labelled or not
            x = {split: speaker_normalise(x[split], splits[split].speakers) for split in x}
        labelled = splits["train"].labels != F.UNLABELLED_ID
        fitted = fit_linear(
            x["train"][labelled],
            splits["train"].labels[labelled],
            x["eval"],
            splits["eval"].labels,
            len(classes),
            model,
        )
        scored = summary(splits["test"].labels, fitted.predict(x["test"]), classes)
        results[name] = {
            "clip_uar": scored["uar"],
            "recall": scored["recall"],
            "c": fitted.c,
            "val_uar": fitted.val_uar,
        }
    return results


def read_clips(pattern: str, classes: tuple[str, ...], sample_rate: int) -> Clips:
    """The clips of one split of raw examples (AudioExampleGen's output files matching
    `pattern`, gzipped TFRecords on any tf.io.gfile filesystem)."""
    spec = {
        F.AUDIO: tf.io.FixedLenFeature([], tf.string),
        F.LABEL: tf.io.FixedLenFeature([], tf.string),
        F.SPEAKER: tf.io.FixedLenFeature([], tf.string),
        F.CLIP: tf.io.FixedLenFeature([], tf.string),
        F.START: tf.io.FixedLenFeature([], tf.float32),
    }
    files = sorted(tf.io.gfile.glob(pattern))
    examples = tf.data.TFRecordDataset(files, compression_type="GZIP").map(
        lambda x: tf.io.parse_single_example(x, spec)
    )
    return clips_from_windows(
        (
            (
                ex[F.CLIP].decode(),
                float(ex[F.START]),
                np.frombuffer(ex[F.AUDIO], "<i2").astype(np.float32) / 32768.0,
                F.label_id(ex[F.LABEL].decode(), classes),
                ex[F.SPEAKER].decode(),
            )
            for ex in examples.as_numpy_iterator()
        ),
        sample_rate,
    )
