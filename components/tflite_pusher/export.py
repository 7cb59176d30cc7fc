"""Edge export: the student's `pcm` signature -> TFLite (float32, float16, int8), checked, pushed.

Full-int8 with the frontend inside needs care: quantizing the power spectrum to 8 bits destroys
the quiet bands (its dynamic range is ~1e12), so the frontend stays float32 and everything after
the normalised log-mel runs in int8. Input and output stay float32 PCM / probabilities.

A quantization-aware student (the default, `StudentConfig.quantization_aware`) carries its own
int8 ranges as fake-quant ops; the converter quantises exactly those and leaves the frontend
float, so no calibration is needed and the int8 model computes what was evaluated. Any other
model is quantised after training: calibrated on representative windows, with ops under the
`frontend` name scope kept float32 by TFLite's selective quantization (QuantizationDebugger's
denylist; `without_float_round_trips` then removes the 8-bit rounding it still leaves on the
PCM). The float16 variant is the float32 model with the classifier's constants stored float16.

Parity is measured twice: the float TFLite frontend against the TF one it was converted from
(`frontend_max_abs_error`, log-mel units), and every variant against the SavedModel (top-1
agreement, UAR), so a device runs what was evaluated.

A speaker-normalised model is fed each window's speaker statistics (`Normalisation`): for
calibration the representative windows' own speakers', for scoring the test speakers' (the
"adaptive" mode the model is judged in), besides the "online" (a device's running statistics)
and "strict" (fallback only) modes.
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
