"""The versioned, atomic push of a model directory (the version, then LATEST) and its model card."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import tensorflow as tf

from emograph.components.edge import metadata as edge_metadata
from emograph.components.tflite_pusher.convert import QUANTIZATIONS

VERSION_FORMAT = "%Y%m%dT%H%M%S"  # UTC, to the second: "20261124T113344"


def new_version(model_root: str | os.PathLike, now: time.struct_time | None = None) -> str:
    """A version name not yet under `model_root`: the UTC second of `now` (default: the
    current time), with "-1", "-2", ... appended when that second already has a push, so a
    second push (or a retry) within one second gets its own version instead of failing."""
    root = os.fspath(model_root)
    base = time.strftime(VERSION_FORMAT, now or time.gmtime())
    version, n = base, 0
    while tf.io.gfile.exists(f"{root}/{version}"):
        n += 1
        version = f"{base}-{n}"
    return version


def _fsync_tree(root: str) -> None:
    """Flushes a local staging directory's files to disk before the rename publishes them."""
    for path in Path(root).rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _discard(path: str) -> None:
    """Removes a partial version, best effort: the error that stopped the push is the one to see."""
    with contextlib.suppress(tf.errors.OpError):
        tf.io.gfile.rmtree(path)


def push(
    model_root: str | os.PathLike,
    version: str,
    model: bytes,
    write_contents: Callable[[str], None],
) -> str:
    """Writes the version directory `<model_root>/<version>`, then moves LATEST to it.

    `model_root` is any `tf.io.gfile` path; `write_contents` gets the directory to write into
    (through `tf.io.gfile`). On a local filesystem everything is written into `.tmp-<version>`,
    fsynced and renamed into place: a crash leaves either no version or a complete one. Object
    stores (gs://) cannot rename a directory atomically, so there the files are written in
    place, each object atomically. Either way LATEST moves last and still names the previous
    version if the push fails; a push that raises removes what it wrote.
    """
    model_root = os.fspath(model_root)
    final = f"{model_root}/{version}"
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} already exists; versions are immutable")
    local = "://" not in model_root
    staging = f"{model_root}/.tmp-{version}" if local else final
    if local:
        _discard(staging)  # left by a crashed push of this version
    tf.io.gfile.makedirs(staging)
    try:
        with tf.io.gfile.GFile(f"{staging}/{edge_metadata.MODEL_FILE}", "wb") as f:
            f.write(model)
        write_contents(staging)
        if local:
            _fsync_tree(staging)
            tf.io.gfile.rename(staging, final)
    except BaseException:
        _discard(staging)
        raise
    edge_metadata.write_latest(model_root, version)
    return final


def model_card(name: str, version: str, meta: dict, report: dict, classes: Sequence[str]) -> str:
    """MODEL_CARD.md: what the model is, what it expects, how well it does, where it came from."""
    rows = "\n".join(
        f"| {q} | {report[q]['bytes']:,} | {report[q]['uar']:.3f} | {report[q]['wa']:.3f} | "
        f"{report[q]['top1_agreement_with_float']:.3f} |"
        for q in QUANTIZATIONS
    )
    recalls = ", ".join(f"{c} {r:.2f}" for c, r in report[meta["quantization"]]["recall"].items())
    pushed = report[meta["quantization"]]
    modes = ", ".join(f"{mode} {s['uar']:.3f}" for mode, s in pushed["modes"].items())
    if meta["normalisation"] == "speaker":
        normalisation = (
            "- Normalisation: per speaker. The model also takes `speaker_stats` [2, n] "
            "(mean; inverse std of its user's log-mel bands, or of its functionals for the "
            "functionals student) and returns `logmel_moments`; "
            "the predictor accumulates them, using `adaptation.fallback` for the first "
            f"{meta['adaptation']['warmup_windows']} windows (see metadata.json)."
        )
    else:
        normalisation = "- Normalisation: global statistics of the train split, inside the model."
    return f"""# {name} {version}

Speech emotion recognition for edge devices, trained by emograph (teacher similarity graph +
NSL graph-regularised student). Pushed variant: **{meta["quantization"]}**.

- Input: float32 [1, {meta["window_samples"]}] mono PCM in [-1, 1] at {meta["sample_rate"]} Hz
  ({meta["window_samples"] / meta["sample_rate"]:.2f} s); the log-mel frontend is inside.
- Output: probabilities over {len(classes)} classes: {", ".join(classes)}.
{normalisation}
- Run it: `emograph predict <this directory> audio.wav` (LiteRT, no TensorFlow needed).

## Test split (speakers never seen in training or model selection)

| variant | bytes | UAR | WA | top-1 agreement with float |
|---|---|---|---|---|
{rows}

Per-class recall ({meta["quantization"]}): {recalls}.
Test UAR of the pushed variant by normalisation mode (adaptive: each speaker's statistics over
all their audio; online: a device's running statistics with warm-up; strict: fallback only):
{modes}.

TFLite frontend vs the training frontend: max |error| {report["frontend_max_abs_error"]:.1e}
(natural-log mel power).

## Lineage

{chr(10).join(f"- {k}: {v}" for k, v in meta["extra"]["lineage"].items())}

Limitations: trained on acted speech of few speakers; emotion categories are culture- and
corpus-dependent; not for decisions about people.
"""
