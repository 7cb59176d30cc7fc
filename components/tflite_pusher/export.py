"""Edge export: the student's `pcm` signature -> TFLite (float32, float16, int8), checked, pushed.

Full-int8 with the frontend inside needs care: quantizing the power spectrum to 8 bits destroys
the quiet bands (its dynamic range is ~1e12), so ops under the `frontend` name scope stay float32
(TFLite's selective quantization, via QuantizationDebugger's denylist) and everything after the
normalised log-mel runs in int8. Input and output stay float32 PCM / probabilities.

Parity is measured twice: the float TFLite frontend against the TF one it was converted from
(`frontend_max_abs_error`, log-mel units), and every variant against the SavedModel (top-1
agreement, UAR), so a device runs what was evaluated.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from components import features as F
from components.audio import frontend
from components.edge import metadata as edge_metadata
from components.evaluation import metrics
from pipeline.config import FrontendConfig

log = logging.getLogger(__name__)

PCM_SIGNATURE = "pcm"
QUANTIZATIONS = ("float32", "float16", "int8")


def read_windows(pattern: str, classes: Sequence[str], limit: int | None = None):
    """Raw examples -> (float32 PCM [n, samples], label ids [n]) in file order."""
    spec = {
        F.AUDIO: tf.io.FixedLenFeature([], tf.string),
        F.LABEL: tf.io.FixedLenFeature([], tf.string),
    }
    files = sorted(tf.io.gfile.glob(pattern))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").map(
        lambda x: tf.io.parse_single_example(x, spec)
    )
    if limit:
        ds = ds.take(limit)
    pcm, labels = [], []
    for ex in ds.as_numpy_iterator():
        pcm.append(np.frombuffer(ex[F.AUDIO], "<i2").astype(np.float32) / 32768.0)
        labels.append(list(classes).index(ex[F.LABEL].decode()))
    return np.stack(pcm), np.asarray(labels, np.int64)


def _converter(saved_model_dir: str) -> tf.lite.TFLiteConverter:
    return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[PCM_SIGNATURE])


def _float_tensors(float_model: bytes, scopes: Sequence[str]) -> list[str]:
    interpreter = tf.lite.Interpreter(model_content=float_model)
    return [
        t["name"]
        for t in interpreter.get_tensor_details()
        if any(scope in t["name"] for scope in scopes)
    ]


def convert(
    saved_model_dir: str,
    quantization: str,
    representative: np.ndarray,
    float_layers: Sequence[str] = (),
) -> bytes:
    """TFLite bytes of the `pcm` signature; `representative` windows calibrate int8.

    In the int8 variant the frontend and the layers named in `float_layers` stay float32: the
    first conv sees the log-mel directly and is the most sensitive to 8-bit activations (on a
    demo student, keeping only the 216-weight stem float raised int8/float agreement 0.83 -> 0.90
    for +0 KB).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = _converter(saved_model_dir)
    if quantization == "float32":
        return converter.convert()
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return converter.convert()

    def dataset() -> Iterator[list[np.ndarray]]:
        for window in representative:
            yield [window[np.newaxis].astype(np.float32)]

    keep_float = _float_tensors(
        _converter(saved_model_dir).convert(), (frontend.FRONTEND_SCOPE, *float_layers)
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,  # the float frontend (RFFT2D, COMPLEX_ABS, LOG)
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float),
    )
    return debugger.get_nondebug_quantized_model()


def tflite_probabilities(model: bytes, pcm: np.ndarray) -> np.ndarray:
    """Runs a converted model window by window with LiteRT (what devices run), any output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    probs = []
    for window in pcm:
        interpreter.set_tensor(inp["index"], window[np.newaxis].astype(np.float32))
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs)


def frontend_max_abs_error(pcm: np.ndarray, front: FrontendConfig, sample_rate: int) -> float:
    """Max |log-mel| difference between the float TFLite frontend and the TF one, over `pcm`.

    The TFLite kernels (RFFT2D, COMPLEX_ABS, LOG) are not TF's, so the frontend the device runs
    is checked against the one the model was trained on, with the same config.
    """

    @tf.function(input_signature=[tf.TensorSpec([1, pcm.shape[-1]], tf.float32, name="pcm")])
    def log_mel(pcm):
        return frontend.log_mel(pcm, front, sample_rate)

    concrete = log_mel.get_concrete_function()
    model = tf.lite.TFLiteConverter.from_concrete_functions([concrete], log_mel).convert()
    reference = np.stack([concrete(tf.constant(w[np.newaxis]))[0].numpy() for w in pcm])
    return float(np.max(np.abs(tflite_probabilities(model, pcm) - reference)))


def saved_model_probabilities(saved_model_dir: str, pcm: np.ndarray) -> np.ndarray:
    """The same windows through the SavedModel's `pcm` signature (the float reference)."""
    serve = tf.saved_model.load(saved_model_dir).signatures[PCM_SIGNATURE]
    return np.stack(
        [serve(pcm=tf.constant(w[np.newaxis]))["probabilities"].numpy()[0] for w in pcm]
    )


def export_variants(
    saved_model_dir: str,
    representative: np.ndarray,
    test_pcm: np.ndarray,
    test_labels: np.ndarray,
    classes: tuple[str, ...],
    front: FrontendConfig,
    sample_rate: int,
    float_layers: Sequence[str] = (),
) -> dict:
    """Converts every variant and scores each on the test windows against the SavedModel.

    `front` and `sample_rate` must be the model's: they rebuild its frontend for the parity check.
    """
    reference = saved_model_probabilities(saved_model_dir, test_pcm)
    reference_top1 = reference.argmax(-1)
    report: dict = {
        "saved_model": metrics.summary(test_labels, reference_top1, classes),
        "frontend_max_abs_error": frontend_max_abs_error(test_pcm, front, sample_rate),
    }
    log.info("TFLite frontend: max |log-mel error| %.2e", report["frontend_max_abs_error"])
    for quantization in QUANTIZATIONS:
        start = time.time()
        model = convert(saved_model_dir, quantization, representative, float_layers)
        probs = tflite_probabilities(model, test_pcm)
        summary = metrics.summary(test_labels, probs.argmax(-1), classes)
        report[quantization] = {
            **summary,
            "bytes": len(model),
            "uar_drop_from_float": report["saved_model"]["uar"] - summary["uar"],
            "top1_agreement_with_float": float(np.mean(probs.argmax(-1) == reference_top1)),
            "max_abs_prob_error": float(np.max(np.abs(probs - reference))),
            "convert_seconds": round(time.time() - start, 1),
            "model": model,
        }
        log.info(
            "%s: %d bytes, UAR %.3f, agreement %.3f",
            quantization,
            len(model),
            report[quantization]["uar"],
            report[quantization]["top1_agreement_with_float"],
        )
    return report


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def push(
    model_root: str | os.PathLike,
    version: str,
    model: bytes,
    write_contents: Callable[[Path], None],
) -> Path:
    """Writes a complete version directory atomically, then moves LATEST to it.

    Everything is written into `.tmp-<version>`, fsynced and renamed into place: a crash at any
    point leaves either no version or a complete one, and LATEST still names the previous one.
    """
    model_root = Path(model_root)
    final, tmp = model_root / version, model_root / f".tmp-{version}"
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are immutable")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / edge_metadata.MODEL_FILE).write_bytes(model)
        write_contents(tmp)
        _fsync_tree(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    return f"""# {name} {version}

Speech emotion recognition for edge devices, trained by emograph (teacher similarity graph +
NSL graph-regularised student). Pushed variant: **{meta["quantization"]}**.

- Input: float32 [1, {meta["window_samples"]}] mono PCM in [-1, 1] at {meta["sample_rate"]} Hz
  ({meta["window_samples"] / meta["sample_rate"]:.2f} s); the log-mel frontend is inside.
- Output: probabilities over {len(classes)} classes: {", ".join(classes)}.
- Run it: `emograph predict <this directory> audio.wav` (LiteRT, no TensorFlow needed).

## Test split (speakers never seen in training or model selection)

| variant | bytes | UAR | WA | top-1 agreement with float |
|---|---|---|---|---|
{rows}

Per-class recall ({meta["quantization"]}): {recalls}.

TFLite frontend vs the training frontend: max |error| {report["frontend_max_abs_error"]:.1e}
(natural-log mel power).

## Lineage

{chr(10).join(f"- {k}: {v}" for k, v in meta["extra"]["lineage"].items())}

Limitations: trained on acted speech of few speakers; emotion categories are culture- and
corpus-dependent; not for decisions about people.
"""
