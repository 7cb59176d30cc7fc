"""A tiny but real emograph-edge model, so tests and the benchmark need no pipeline run.

It keeps the production contract (float32 [1, window] PCM in, [1, classes] probabilities out)
with a trivial body: per-frame log energy, a fixed dense layer, softmax. TensorFlow is imported
inside the functions, so importing this module (or `components.edge`) never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from emograph.components.edge.metadata import (
    MODEL_FILE,
    MOMENTS_OUTPUT,
    PCM_INPUT,
    PROBABILITIES,
    STATS_INPUT,
    ModelMetadata,
    write_metadata,
)

CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgust")
FRAME = 800
# variant -> (weights as stored, tensor type of input, of output); None keeps float32.
VARIANTS = {
    "float32": ("float32", None, None),
    "int8": ("int8", None, None),  # full int8 inside, float I/O: what the Pusher emits
    "int8-io": ("int8", "int8", "int8"),
    "int16-input": ("float32", "int16", None),  # takes s16 PCM as plain int16
}


def tiny_function(window_samples: int, num_classes: int = len(CLASSES), seed: int = 0) -> Any:
    """The model as a tf.function on float32 [1, window_samples]: the reference for parity."""
    import tensorflow as tf

    if window_samples % FRAME:
        raise ValueError(f"window_samples must be a multiple of {FRAME}")
    frames = window_samples // FRAME
    rng = np.random.default_rng(seed)
    weights = tf.constant(rng.normal(0, 0.5, (frames, num_classes)), tf.float32)
    bias = tf.constant(rng.normal(0, 0.5, num_classes), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, window_samples], tf.float32)])
    def model(pcm):
        energy = tf.reduce_mean(tf.square(tf.reshape(pcm, [1, frames, FRAME])), axis=-1)
        return tf.nn.softmax(tf.matmul(tf.math.log(energy + 1e-4) / 4.0, weights) + bias)

    return model


BANDS = 4  # the adaptive tiny model's "log-mel": log energy of 4 sub-blocks of each frame


def tiny_features(pcm: np.ndarray, window_samples: int) -> np.ndarray:
    """[windows, frames, BANDS] features of the adaptive tiny model, in numpy (the reference)."""
    blocks = np.asarray(pcm, np.float64).reshape(len(pcm), window_samples // FRAME, BANDS, -1)
    return np.log(np.mean(blocks**2, axis=-1) + 1e-4)


def tiny_adaptive_function(window_samples: int, num_classes: int = len(CLASSES), seed: int = 0):
    """A speaker-normalised model: (pcm, speaker_stats) -> probabilities, logmel_moments."""
    import tensorflow as tf

    frames = window_samples // FRAME
    rng = np.random.default_rng(seed)
    weights = tf.constant(rng.normal(0, 0.5, (frames * BANDS, num_classes)), tf.float32)

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, window_samples], tf.float32, name=PCM_INPUT),
            tf.TensorSpec([2, BANDS], tf.float32, name=STATS_INPUT),
        ]
    )
    def model(pcm, speaker_stats):
        blocks = tf.reshape(pcm, [1, frames, BANDS, FRAME // BANDS])
        features = tf.math.log(tf.reduce_mean(tf.square(blocks), axis=-1) + 1e-4)
        moments = tf.stack(
            [tf.reduce_mean(features, axis=1)[0], tf.reduce_mean(tf.square(features), axis=1)[0]]
        )
        normalised = tf.reshape((features - speaker_stats[0]) * speaker_stats[1], [1, -1])
        return {PROBABILITIES: tf.nn.softmax(normalised @ weights), MOMENTS_OUTPUT: moments}

    return model


def convert(window_samples: int, variant: str = "float32", seed: int = 0) -> bytes:
    """The .tflite bytes of `tiny_function` in one of `VARIANTS`."""
    import tensorflow as tf

    if variant == "adaptive":  # through a SavedModel, so the TFLite keeps its named signature
        import tempfile

        module = tf.Module()
        module.pcm = tiny_adaptive_function(window_samples, seed=seed)
        with tempfile.TemporaryDirectory() as saved:
            tf.saved_model.save(module, saved, signatures={"pcm": module.pcm})
            return tf.lite.TFLiteConverter.from_saved_model(saved, ["pcm"]).convert()
    weights, input_type, output_type = VARIANTS[variant]
    model = tiny_function(window_samples, seed=seed)
    if input_type == "int16":
        float_model = model

        @tf.function(input_signature=[tf.TensorSpec([1, window_samples], tf.int16)])
        def model(pcm):
            return float_model(tf.cast(pcm, tf.float32) / 32768.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [model.get_concrete_function()], model
    )
    if weights == "int8":
        rng = np.random.default_rng(seed + 1)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: (
            [(rng.uniform(-1, 1, (1, window_samples)) * rng.uniform(0.01, 1)).astype(np.float32)]
            for _ in range(64)
        )
        if input_type:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter.convert()


def build_tiny_model(
    model_dir: str | os.PathLike,
    variant: str = "float32",
    sample_rate: int = 16000,
    window_samples: int = 24000,
    hop_samples: int = 16000,
) -> ModelMetadata:
    """Writes a complete model dir (model.tflite, metadata.json, labels.txt) for `variant`
    (one of `VARIANTS`, or "adaptive": the speaker-normalised float model, warm-up 2 windows)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MODEL_FILE).write_bytes(convert(window_samples, variant))
    adaptive = variant == "adaptive"
    fallback = [[0.0] * BANDS, [1.0] * BANDS]
    return write_metadata(
        model_dir,
        sample_rate=sample_rate,
        window_samples=window_samples,
        hop_samples=hop_samples,
        classes=CLASSES,
        quantization="float32" if adaptive else VARIANTS[variant][0],
        normalisation="speaker" if adaptive else "global",
        adaptation={"warmup_windows": 2, "fallback": fallback} if adaptive else None,
        extra={"tiny_test_model": variant},
    )


def truncate_model(directory: str | os.PathLike, keep: int) -> None:
    """Cuts `directory`'s model file to its first `keep` bytes and rewrites the metadata's
    sha256 to match: a damaged model that only the model file itself can give away."""
    model = Path(directory) / MODEL_FILE
    model.write_bytes(model.read_bytes()[:keep])
    metadata = ModelMetadata.from_json((Path(directory) / "metadata.json").read_text())
    write_metadata(
        directory,
        sample_rate=metadata.sample_rate,
        window_samples=metadata.window_samples,
        hop_samples=metadata.hop_samples,
        classes=metadata.classes,
        quantization=metadata.quantization,
    )
