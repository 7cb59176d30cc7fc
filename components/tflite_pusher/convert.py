"""SavedModel `pcm` signature -> TFLite bytes (float32, float16, int8), the frontend float32.

Full-int8 with the frontend inside needs care: quantizing the power spectrum to 8 bits destroys
the quiet bands (its dynamic range is ~1e12), so the frontend stays float32 and everything after
the normalised log-mel runs in int8. Input and output stay float32 PCM / probabilities.

A quantization-aware student (the default, `StudentConfig.quantization_aware`) carries its own
int8 ranges as fake-quant ops; the converter quantises exactly those and leaves the frontend
float, so no calibration is needed and the int8 model computes what was evaluated. Any other
model is quantised after training: calibrated on representative windows (a speaker-normalised
model with each window's own speaker statistics), with ops under the `frontend` name scope kept
float32 by TFLite's selective quantization (QuantizationDebugger's denylist;
`flatbuffer.without_float_round_trips` then removes the 8-bit rounding it still leaves on the
PCM). The float16 variant is the float32 model with the classifier's constants stored float16.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from emograph.components.audio import frontend
from emograph.components.edge import metadata as edge_metadata
from emograph.components.tflite_pusher.flatbuffer import (
    with_float16_constants,
    without_float_round_trips,
)

PCM_SIGNATURE = "pcm"


QUANTIZATIONS = ("float32", "float16", "int8")


def _converter(saved_model_dir: str) -> tf.lite.TFLiteConverter:
    return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[PCM_SIGNATURE])


def is_quantization_aware(saved_model_dir: str) -> bool:
    """Whether the `pcm` signature holds fake-quant ops (a quantization-aware student)."""
    graph = tf.saved_model.load(saved_model_dir).signatures[PCM_SIGNATURE].graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return any(n.op.startswith("FakeQuantWithMinMaxVars") for n in nodes)


def _float_tensors(float_model: bytes, scopes: Sequence[str]) -> list[str]:
    """Tensors to keep float32: those named under `scopes`, and the `logmel_moments` output,
    which a device sums into variances (E[x^2] - E[x]^2 of log-mel ~ -10: 8-bit moments would
    cancel to noise), whatever name the converter gave its last op."""
    interpreter = tf.lite.Interpreter(model_content=float_model)
    outputs = interpreter.get_signature_runner(PCM_SIGNATURE).get_output_details()
    moments = outputs.get(edge_metadata.MOMENTS_OUTPUT, {}).get("name")
    return [
        t["name"]
        for t in interpreter.get_tensor_details()
        if any(scope in t["name"] for scope in scopes) or t["name"] == moments
    ]


def model_inputs(pcm: np.ndarray, stats: np.ndarray | None) -> Iterator[dict[str, np.ndarray]]:
    """One input dict per window, as the `pcm` signature takes it."""
    for i, window in enumerate(pcm):
        inputs = {edge_metadata.PCM_INPUT: window[np.newaxis].astype(np.float32)}
        if stats is not None:
            inputs[edge_metadata.STATS_INPUT] = stats[i].astype(np.float32)
        yield inputs


def convert(
    saved_model_dir: str,
    quantization: str,
    representative: np.ndarray,
    float_layers: Sequence[str] = (),
    representative_stats: np.ndarray | None = None,
) -> bytes:
    """TFLite bytes of the `pcm` signature; `representative` windows calibrate int8
    (with their speakers' statistics, `representative_stats`, for a speaker-normalised model).

    In the int8 variant of a post-training-quantised model the frontend and the layers named in
    `float_layers` stay float32: the first conv sees the log-mel directly and is the most
    sensitive to 8-bit activations (on a demo student, keeping only the 216-weight stem float
    raised int8/float agreement 0.83 -> 0.90 for +0 KB). A quantization-aware model ignores
    `representative` and `float_layers`: it is int8 where it was trained to be.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = _converter(saved_model_dir)
    if quantization == "float32":
        return converter.convert()
    if quantization == "int8" and is_quantization_aware(saved_model_dir):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # the model's own ranges
        return converter.convert()
    if quantization == "float16":
        return with_float16_constants(converter.convert())

    def dataset() -> Iterator[dict[str, np.ndarray]]:
        return model_inputs(representative, representative_stats)

    keep_float = _float_tensors(
        _converter(saved_model_dir).convert(), (frontend.FRONTEND_SCOPE, *float_layers)
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,  # the float frontend (DFT matmuls, SEGMENT_SUM, LOG)
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float),
    )
    return without_float_round_trips(debugger.get_nondebug_quantized_model())
