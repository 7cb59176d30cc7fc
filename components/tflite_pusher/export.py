"""Edge export: the student's `pcm` signature -> TFLite variants (float32, float16, int8), each
checked against the SavedModel it came from, so a device runs what was evaluated.

Parity is measured twice: the float TFLite frontend against the TF one it was converted from
(`score.frontend_max_abs_error`, log-mel units), and every variant against the SavedModel
(top-1 agreement, UAR). Conversion: `convert`; flatbuffer rewrites: `flatbuffer`; scoring in
the adaptive, online and strict normalisation modes: `score`; the push: `push`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from emograph.components.config import FrontendConfig
from emograph.components.evaluation import metrics
from emograph.components.tflite_pusher.convert import QUANTIZATIONS, convert
from emograph.components.tflite_pusher.score import (
    Windows,
    frontend_max_abs_error,
    normalisation_for,
    primary_mode,
    saved_model_outputs,
    score_tflite,
)

log = logging.getLogger(__name__)


def export_variants(
    saved_model_dir: str,
    representative: Windows,
    test: Windows,
    classes: tuple[str, ...],
    front: FrontendConfig,
    sample_rate: int,
    float_layers: Sequence[str] = (),
    warmup_windows: int = 8,
) -> dict:
    """Converts every variant and scores each on the test windows against the SavedModel.

    `front` and `sample_rate` must be the model's: they rebuild its frontend for the parity
    check and say how it normalises.
    """
    norm = normalisation_for(saved_model_dir, front, representative, test)
    primary = primary_mode(norm)
    reference = saved_model_outputs(saved_model_dir, test.pcm, norm.test_stats)[0]
    reference_top1 = reference.argmax(-1)
    report: dict = {
        "normalisation": front.normalisation,
        "primary_mode": primary,
        "saved_model": metrics.summary(test.labels, reference_top1, classes),
        "frontend_max_abs_error": frontend_max_abs_error(test.pcm, front, sample_rate),
    }
    if norm.fallback is not None:
        report["adaptation"] = {
            "warmup_windows": warmup_windows,
            "fallback": norm.fallback.tolist(),
        }
    log.info("TFLite frontend: max |log-mel error| %.2e", report["frontend_max_abs_error"])
    for quantization in QUANTIZATIONS:
        start = time.time()
        model = convert(
            saved_model_dir,
            quantization,
            representative.pcm,
            float_layers,
            norm.representative_stats,
        )
        scores = score_tflite(model, test, norm, classes, warmup_windows)
        probs = scores[primary].pop("probabilities")
        report[quantization] = {
            **scores[primary],
            "modes": {
                mode: {k: v for k, v in s.items() if k != "probabilities"}
                for mode, s in scores.items()
            },
            "bytes": len(model),
            "uar_drop_from_float": report["saved_model"]["uar"] - scores[primary]["uar"],
            "top1_agreement_with_float": float(np.mean(probs.argmax(-1) == reference_top1)),
            "max_abs_prob_error": float(np.max(np.abs(probs - reference))),
            "convert_seconds": round(time.time() - start, 1),
            "model": model,
        }
        log.info(
            "%s: %d bytes, UAR %.3f (%s), agreement %.3f",
            quantization,
            len(model),
            report[quantization]["uar"],
            primary,
            report[quantization]["top1_agreement_with_float"],
        )
    return report
