"""The push directory contract shared by the Pusher (writer) and the edge predictor (reader).

Layout written by the Pusher::

    <push_root>/<model_name>/LATEST             the newest version name, one line
    <push_root>/<model_name>/<version>/
        model.tflite      input float32 [1, window_samples] mono PCM in [-1, 1] at sample_rate
                          (the log-mel frontend is inside); output float32 [1, len(classes)]
                          probabilities. Quantized int8/int16 I/O is accepted too.
        labels.txt        the classes, one per line, in output order
        metadata.json     a `ModelMetadata`, see below
        MODEL_CARD.md     human-readable summary

metadata.json (format "emograph-edge/1") holds:

    format          "emograph-edge/1"; readers refuse any other value
    model_file      file name of the model, "model.tflite"
    sha256          hex SHA-256 of model_file; the predictor refuses a mismatch
    sample_rate     Hz the model expects
    window_samples  samples per model input (window seconds * sample_rate)
    hop_samples     default step between windows of long audio
    classes         output order; labels.txt must list the same
    quantization    "int8" | "float16" | "float32": how the weights are stored
    normalisation   "global" (statistics inside the model; absent in older pushes) or "speaker":
                    the model also takes `speaker_stats` [2, n] and returns
                    `logmel_moments` [2, n]; the device accumulates its user's statistics
                    (components/edge/adaptation.py); n = mel bands, or 8 x bands for the
                    functionals student (statistics of its functionals)
    adaptation      for "speaker": {"warmup_windows": N, "fallback": [[mean...], [inv_std...]]},
                    the statistics to use until N windows of the user have been heard
    extra           free-form (metrics, sizes, parity figures, lineage), written by the Pusher

The Pusher writes it with `write_metadata` (which hashes the model, so the two cannot drift) and
then points LATEST at the version with `write_latest`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

FORMAT = "emograph-edge/1"
MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.txt"
LATEST_FILE = "LATEST"
QUANTIZATIONS = ("int8", "float16", "float32")
# The model's I/O: `pcm` -> `probabilities`; a speaker-normalised model also takes
# `speaker_stats` [2, n] (mean; inverse std) and returns `logmel_moments` [2, n] (the window's
# means of its features and of their squares): per log-mel band, or per functional (n = 8 x bands)
# for the functionals student.
PCM_INPUT = "pcm"
STATS_INPUT = "speaker_stats"
PROBABILITIES = "probabilities"
MOMENTS_OUTPUT = "logmel_moments"
NORMALISATIONS = ("global", "speaker")


class ModelError(ValueError):
    """A model directory that the predictor refuses to run (the message names file and reason)."""


@dataclass(frozen=True)
class ModelMetadata:
    """What a pushed model needs beside its weights to be run correctly on a device."""

    format: str
    model_file: str
    sha256: str
    sample_rate: int
    window_samples: int
    hop_samples: int
    classes: tuple[str, ...]
    quantization: str
    normalisation: str = "global"
    adaptation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Validating here means a bad value fails when the Pusher writes it, not on a device.
        if self.format != FORMAT:
            raise ModelError(f"format is {self.format!r}, this predictor reads {FORMAT!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ModelError(f"quantization {self.quantization!r} is not one of {QUANTIZATIONS}")
        for name in ("sample_rate", "window_samples", "hop_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelError(f"{name} must be a positive integer, got {value!r}")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ModelError(f"classes must be non-empty and distinct, got {list(self.classes)}")
        if not all(c and c.strip() == c and "\n" not in c for c in self.classes):
            raise ModelError(f"class names must be non-empty single-line words: {self.classes}")
        if self.normalisation not in NORMALISATIONS:
            raise ModelError(f"normalisation {self.normalisation!r} is not one of {NORMALISATIONS}")
        if self.normalisation == "speaker":
            warmup = self.adaptation.get("warmup_windows")
            fallback = self.adaptation.get("fallback")
            if not isinstance(warmup, int) or warmup < 1:
                raise ModelError(f"adaptation.warmup_windows must be >= 1, got {warmup!r}")
            if (
                not isinstance(fallback, list)
                or len(fallback) != 2
                or len({len(row) for row in fallback}) != 1
            ):
                raise ModelError("adaptation.fallback must be two equal rows: [mean, inv_std]")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"not valid JSON ({e})") from e
        if not isinstance(data, dict):
            raise ModelError("not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - {"normalisation", "adaptation", "extra"} - set(data)
        if missing:
            raise ModelError(f"missing fields {sorted(missing)}")
        if set(data) - names:
            raise ModelError(f"unknown fields {sorted(set(data) - names)}")
        return cls(**{**data, "classes": tuple(data["classes"])})


def _gfile() -> ModuleType:
    """`tf.io.gfile`, imported by the writers only: the Pusher writes to a push root that may be
    an object store (gs://), while the predictor reads local files and never imports TensorFlow."""
    import tensorflow as tf

    return tf.io.gfile


def sha256_file(path: str | os.PathLike) -> str:
    with _gfile().GFile(os.fspath(path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_metadata(
    model_dir: str | os.PathLike,
    *,
    sample_rate: int,
    window_samples: int,
    hop_samples: int,
    classes: tuple[str, ...] | list[str],
    quantization: str,
    normalisation: str = "global",
    adaptation: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelMetadata:
    """Hashes `model_dir/model.tflite` and writes metadata.json and labels.txt beside it
    (`model_dir` is any `tf.io.gfile` path)."""
    model_dir = os.fspath(model_dir)
    metadata = ModelMetadata(
        format=FORMAT,
        model_file=MODEL_FILE,
        sha256=sha256_file(f"{model_dir}/{MODEL_FILE}"),
        sample_rate=sample_rate,
        window_samples=window_samples,
        hop_samples=hop_samples,
        classes=tuple(classes),
        quantization=quantization,
        normalisation=normalisation,
        adaptation=dict(adaptation or {}),
        extra=dict(extra or {}),
    )
    gfile = _gfile()
    with gfile.GFile(f"{model_dir}/{METADATA_FILE}", "w") as f:
        f.write(metadata.to_json())
    with gfile.GFile(f"{model_dir}/{LABELS_FILE}", "w") as f:
        f.write("".join(f"{c}\n" for c in metadata.classes))
    return metadata


def write_latest(model_root: str | os.PathLike, version: str) -> None:
    """Points `model_root/LATEST` (any `tf.io.gfile` path) at a complete version.

    The name goes to a temporary file that is renamed over LATEST: atomic on a local
    filesystem, and on an object store (gs://) the rename writes LATEST as one object, which
    is atomic too. Either way a reader sees the old name or the new one, never half of one.
    """
    gfile, model_root = _gfile(), os.fspath(model_root)
    if not gfile.exists(f"{model_root}/{version}/{METADATA_FILE}"):
        raise ModelError(f"{model_root}/{version}: no {METADATA_FILE}; write it before LATEST")
    tmp = f"{model_root}/.{LATEST_FILE}.{version}.tmp"  # per version: concurrent pushes differ
    with gfile.GFile(tmp, "w") as f:
        f.write(f"{version}\n")
    gfile.rename(tmp, f"{model_root}/{LATEST_FILE}", overwrite=True)
