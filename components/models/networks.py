"""The two model families: a larger CNN teacher and tiny students (a depthwise-separable CNN,
convolutions over time, or a linear model on log-mel functionals).

They read the normalised log-mel of one window, flattened as `logmel` [frames * bands] (a
Transform output; the functionals student reads Transform's `functionals` instead), and output
logits. BatchNorm momentum is 0.9: with a few hundred clips the
Keras default (0.99) leaves moving statistics far from the data and small students collapse.

Students are quantization-aware by default (`StudentConfig.quantization_aware`): they train
with int8 fake-quantised weights and activations, so the model the Evaluator scores is the one
the int8 TFLite computes. Post-training quantization of demo students agreed with the float
model on only 79-94% of test windows: their softmax is flat (median top-1 probability 0.21-0.37
over 6 classes), so 8-bit noise flips near-ties.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import StudentConfig, TeacherConfig

EMBEDDING_LAYER = "embedding"
DROPOUT_LAYER = "dropout"
BN_MOMENTUM = 0.9


def _conv_bn_relu(x, filters: int, kernel=3, strides=1, name: str = ""):
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _logmel_input(frames: int, bands: int):
    inputs = keras.Input(shape=(frames * bands,), name=F.LOGMEL)
    return inputs, keras.layers.Reshape((frames, bands, 1), name="spectrogram")(inputs)


def build_teacher(cfg: TeacherConfig, frames: int, bands: int, num_classes: int) -> keras.Model:
    """VGG-style CNN; the `embedding` layer is what the Embedder reads for the graph."""
    inputs, x = _logmel_input(frames, bands)
    for i, filters in enumerate(cfg.filters):
        x = _conv_bn_relu(x, filters, name=f"block{i}")
        x = keras.layers.MaxPooling2D(2 if i < len(cfg.filters) - 1 else 1, name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(cfg.embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(cfg.dropout, name=DROPOUT_LAYER)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model({F.LOGMEL: inputs}, logits, name="teacher")


def build_student(cfg: StudentConfig, frames: int, bands: int, num_classes: int) -> keras.Model:
    """The student: a DS-CNN (Zhang et al., "Hello Edge") or a TDNN body (`cfg.architecture`),
    pooled over time and frequency (`cfg.pooling`), dropout, then linear logits; or a linear
    model on the window's per-speaker log-mel functionals ("functionals", input `functionals`).

    `cfg.filters` is the size knob of the convolutional bodies.
    """
    if cfg.architecture == "functionals":
        return _functionals_student(cfg, frontend.functionals_width(bands), num_classes)
    inputs, x = _logmel_input(frames, bands)
    if cfg.architecture == "tdnn":
        x = _time_convolutions(x, cfg.filters, bands)
    else:
        x = _depthwise_separable(x, cfg.filters)
    # The penultimate embedding (before dropout, so a sample and its neighbours are compared
    # without independent dropout noise) is what `regularised_layer="embedding"` regularises.
    if cfg.pooling == "mean_max":
        pooled = [
            keras.layers.GlobalAveragePooling2D(name="mean_pool")(x),
            keras.layers.GlobalMaxPooling2D(name="max_pool")(x),
        ]
        x = keras.layers.Concatenate(name=EMBEDDING_LAYER)(pooled)
    else:
        x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)
    x = keras.layers.Dropout(cfg.dropout, name=DROPOUT_LAYER)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model({F.LOGMEL: inputs}, logits, name="student")
    return quantization_aware(model) if cfg.quantization_aware else model


def _depthwise_separable(x, filters: tuple[int, ...]):
    """DS-CNN body: a strided 3x3 conv, then depthwise-separable blocks, the first two of
    which halve time and frequency again."""
    x = _conv_bn_relu(x, filters[0], strides=2, name="stem")
    for i, width in enumerate(filters[1:]):
        strides = 2 if i < 2 else 1
        x = keras.layers.DepthwiseConv2D(
            3, strides=strides, padding="same", use_bias=False, name=f"ds{i}_dw"
        )(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"ds{i}_dw_bn")(x)
        x = keras.layers.ReLU(name=f"ds{i}_dw_relu")(x)
        x = _conv_bn_relu(x, width, kernel=1, name=f"ds{i}_pw")
    return x


def _time_convolutions(x, filters: tuple[int, ...], bands: int):
    """TDNN body (x-vector style, convolutions over time only): the first conv spans every
    band and 5 frames (stride 2 in time), the next ones 3 frames of the previous channels
    (the first of them also stride 2), the last is pointwise. Each unit sees the whole
    spectral envelope at once, as utterance-level acoustic features do."""
    x = keras.layers.Conv2D(
        filters[0], (5, bands), strides=(2, 1), use_bias=False, name="stem_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    last = len(filters) - 2
    for i, width in enumerate(filters[1:]):
        kernel = (1, 1) if i == last else (3, 1)
        x = _conv_bn_relu(x, width, kernel=kernel, strides=(2, 1) if i == 0 else 1, name=f"td{i}")
    return x


FUNCTIONALS_L2 = 1e-3  # on the logits' weights: a linear model on 8 x bands inputs overfits


class _FloatQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Keeps a layer float inside a quantization-aware model (nothing fake-quantised)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def _functionals_student(cfg: StudentConfig, width: int, num_classes: int) -> keras.Model:
    """Transform's per-speaker functionals [width] (frontend.functionals), a BatchNorm, the
    `cfg.hidden_units` ReLU layers (each after dropout), dropout, linear logits. The
    `embedding` is the last layer before the logits' dropout (the BatchNorm if none is hidden).

    Quantization-aware training fake-quantises the logits layer only; the standardisation stays
    float. Every layer is annotated, so that quantize_apply clones them all and the `embedding`
    layer's output is the quantised model's own (NSL's embedding regulariser reads it).
    """
    layer = _annotator(cfg.quantization_aware)
    inputs = keras.Input(shape=(width,), name=F.FUNCTIONALS)
    names = [f"hidden{i}" for i in range(len(cfg.hidden_units))]
    names.insert(0, "standardise")
    names[-1] = EMBEDDING_LAYER  # the penultimate layer, what the graph term may regularise
    x = layer(keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=names[0]))(inputs)
    for units, name in zip(cfg.hidden_units, names[1:], strict=True):
        hidden = keras.layers.Dense(units, activation="relu", name=name)
        dropout = keras.layers.Dropout(cfg.dropout, name=f"{name}_dropout")
        x = layer(hidden, keep_float=False)(layer(dropout)(x))
    x = layer(keras.layers.Dropout(cfg.dropout, name=DROPOUT_LAYER))(x)
    logits = keras.layers.Dense(
        num_classes, kernel_regularizer=keras.regularizers.l2(FUNCTIONALS_L2), name="logits"
    )
    model = keras.Model({F.FUNCTIONALS: inputs}, layer(logits, keep_float=False)(x), name="student")
    if not cfg.quantization_aware:
        return model
    with tfmot.quantization.keras.quantize_scope({"_FloatQuantizeConfig": _FloatQuantizeConfig}):
        return tfmot.quantization.keras.quantize_apply(model, quantized_layer_name_prefix="")


def _annotator(quantise: bool) -> Callable[..., keras.layers.Layer]:
    """`layer(built, keep_float=True)`: the layer annotated for quantize_apply (float unless
    `keep_float` is false), or as it is when the model is not quantization-aware."""
    float_config = _FloatQuantizeConfig()

    def layer(built: keras.layers.Layer, keep_float: bool = True) -> keras.layers.Layer:
        if not quantise:
            return built
        return tfmot.quantization.keras.quantize_annotate_layer(
            built, quantize_config=float_config if keep_float else None
        )

    return layer


def quantization_aware(model: keras.Model) -> keras.Model:
    """`model` with int8 fake quantisation (tfmot's default 8-bit scheme, per-channel weights).

    Layers keep their names (no "quant_" prefix): NSL's embedding regulariser looks the
    `embedding` layer up by name.
    """
    return tfmot.quantization.keras.quantize_model(model, quantized_layer_name_prefix="")
