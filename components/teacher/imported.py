"""A user-supplied teacher in place of the trained one (`TeacherConfig.model_path`, `--teacher`).

The contract is what the Embedder and the fine-tuned-teacher baseline read:
- a SavedModel directory with an `embed` signature: input `logmel`, float32 [batch, frames *
  bands] (Transform's normalised log-mel, flattened row-major (frame, band)), output
  `embedding`, float32 [batch, dim]; or
- a Keras model (a .keras/.h5 file, or a Keras SavedModel without `embed`) with one input of
  width frames * bands; its layer named `embedding` (else its output) is the embedding, and the
  `embed` signature is built from it.

`stage_teacher` checks the model against the run's frames and bands and writes it as a TFX
Model artifact payload (`<dir>/Format-Serving`), which the pipeline's Importer then imports, so
a wrong model fails before anything runs, with the path and the reason.
"""

from __future__ import annotations

import hashlib
import posixpath

import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.models import networks

EMBED_SIGNATURE = "embed"
SERVING_DIR = "Format-Serving"  # where TFX consumers of a Model artifact look for the SavedModel


class TeacherModelError(ValueError):
    """A user-supplied teacher that does not meet the contract above."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"teacher model {path}: {problem}")


def embedding_model(model: keras.Model) -> keras.Model:
    """The part of `model` up to its `embedding` layer (the whole model if it has none)."""
    names = {layer.name for layer in model.layers}
    if networks.EMBEDDING_LAYER not in names:
        return model
    return keras.Model(model.inputs, model.get_layer(networks.EMBEDDING_LAYER).output)


def embed_signature(model: keras.Model, frames: int, bands: int):
    """`embed`: normalised log-mel [B, frames * bands] -> `embedding` [B, dim]."""
    embedder = embedding_model(model)

    @tf.function(input_signature=[tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)])
    def embed(logmel):
        return {F.EMBEDDING: embedder(logmel, training=False)}

    return embed


def check_embed_signature(model_dir: str, frames: int, bands: int, path: str = "") -> int:
    """The embedding width of the SavedModel at `model_dir`, after checking its `embed`
    signature against the contract; `path` names the model in errors (default model_dir)."""
    path = path or model_dir
    signatures = tf.saved_model.load(model_dir).signatures
    if EMBED_SIGNATURE not in signatures:
        raise TeacherModelError(
            path, f"no {EMBED_SIGNATURE!r} signature (it has {sorted(signatures)})"
        )
    embed = signatures[EMBED_SIGNATURE]
    inputs = embed.structured_input_signature[1]
    if set(inputs) != {F.LOGMEL}:
        raise TeacherModelError(
            path, f"`embed` must take one input {F.LOGMEL!r}, it takes {sorted(inputs)}"
        )
    spec, width = inputs[F.LOGMEL], frames * bands
    if spec.dtype != tf.float32 or spec.shape.rank != 2 or spec.shape[-1] != width:
        raise TeacherModelError(
            path,
            f"`embed` input {F.LOGMEL!r} is {spec.dtype.name} {spec.shape}, expected float32 "
            f"[batch, {width}] ({frames} frames x {bands} mel bands of this run's frontend)",
        )
    outputs = embed.structured_outputs
    if F.EMBEDDING not in outputs:
        raise TeacherModelError(
            path, f"`embed` must return {F.EMBEDDING!r}, it returns {sorted(outputs)}"
        )
    return int(embed(**{F.LOGMEL: tf.zeros([1, width])})[F.EMBEDDING].shape[-1])


def _is_keras(model_dir: str) -> bool:
    return tf.io.gfile.exists(posixpath.join(model_dir, "keras_metadata.pb"))


def _load_keras(path: str) -> keras.Model:
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, ImportError) as e:
        raise TeacherModelError(
            path,
            f"neither a SavedModel with an {EMBED_SIGNATURE!r} signature nor a loadable Keras "
            f"model ({type(e).__name__}: {e})",
        ) from e


def _check_keras_input(model: keras.Model, frames: int, bands: int, path: str) -> None:
    shapes = [tuple(t.shape) for t in model.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][-1] != frames * bands:
        raise TeacherModelError(
            path,
            f"the Keras model's inputs are {shapes}, expected one of shape (None, "
            f"{frames * bands}): {F.LOGMEL!r}, {frames} frames x {bands} mel bands",
        )


def _copy_tree(source: str, target: str) -> None:
    """Recursive copy (any tf.io.gfile filesystem); saved_model.pb last, so a complete copy is
    one whose saved_model.pb exists."""
    last = []
    for directory, _, files in tf.io.gfile.walk(source):
        rel = posixpath.relpath(directory, source)
        tf.io.gfile.makedirs(posixpath.join(target, rel))
        for name in files:
            pair = (posixpath.join(directory, name), posixpath.join(target, rel, name))
            if name == "saved_model.pb" and rel == ".":
                last.append(pair)
            else:
                tf.io.gfile.copy(*pair, overwrite=True)
    for pair in last:
        tf.io.gfile.copy(*pair, overwrite=True)


def fingerprint(path: str) -> str:
    """Short hash of the path and its files' names, sizes and times: same model, same staging
    directory (so TFX's cache holds), changed model, new one."""
    digest = hashlib.sha256(path.encode())
    entries = [path]
    if tf.io.gfile.isdir(path):
        entries = [
            posixpath.join(d, name) for d, _, files in tf.io.gfile.walk(path) for name in files
        ]
    for entry in sorted(entries):
        stat = tf.io.gfile.stat(entry)
        digest.update(f"{entry}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
    return digest.hexdigest()[:16]


def stage_teacher(path: str, staging_root: str, frames: int, bands: int) -> str:
    """Checks the user's teacher and stages it as a Model artifact payload; returns the
    artifact directory (`<staging_root>/<fingerprint>`, holding Format-Serving)."""
    if not tf.io.gfile.exists(path):
        raise TeacherModelError(path, "does not exist")
    artifact_dir = posixpath.join(staging_root, fingerprint(path))
    serving = posixpath.join(artifact_dir, SERVING_DIR)
    if not tf.io.gfile.exists(posixpath.join(serving, "saved_model.pb")):
        signatures = {}
        if tf.io.gfile.exists(posixpath.join(path, "saved_model.pb")):
            signatures = tf.saved_model.load(path).signatures
        if EMBED_SIGNATURE in signatures:
            check_embed_signature(path, frames, bands)
            _copy_tree(path, serving)
        elif signatures and not _is_keras(path):
            raise TeacherModelError(
                path,
                f"no {EMBED_SIGNATURE!r} signature (it has {sorted(signatures)}) and not a Keras "
                "model to build one from",
            )
        else:
            model = _load_keras(path)
            _check_keras_input(model, frames, bands, path)
            signature = embed_signature(model, frames, bands)
            model.save(serving, save_format="tf", signatures={EMBED_SIGNATURE: signature})
    check_embed_signature(serving, frames, bands, path)
    return artifact_dir


class SignatureEmbedding(keras.layers.Layer):
    """A SavedModel's `embed` signature as a frozen Keras layer: the feature extractor of the
    fine-tuned baseline when the teacher is not a Keras model (its weights are not reachable
    as Keras weights, so only the new head trains)."""

    def __init__(self, model_dir: str, **kwargs):
        super().__init__(trainable=False, name=networks.EMBEDDING_LAYER, **kwargs)
        self.loaded = tf.saved_model.load(model_dir)

    def call(self, logmel):
        return self.loaded.signatures[EMBED_SIGNATURE](**{F.LOGMEL: logmel})[F.EMBEDDING]


def finetuning_base(model_dir: str, frames: int, bands: int) -> tuple[list, tf.Tensor, bool]:
    """(inputs, features, has_dropout) for a new classification head on a teacher: emograph's
    own teacher from its dropout layer, another Keras teacher from its embedding (the output of
    a layer named `embedding`, so the fine-tuned model's `embed` stays the embedding), any other
    SavedModel from its frozen `embed` signature."""
    if not _is_keras(model_dir):
        inputs = keras.Input(shape=(frames * bands,), name=F.LOGMEL)
        return [inputs], SignatureEmbedding(model_dir)(inputs), False
    trained = keras.models.load_model(model_dir, compile=False)
    names = {layer.name for layer in trained.layers}
    if networks.DROPOUT_LAYER in names:
        return trained.inputs, trained.get_layer(networks.DROPOUT_LAYER).output, True
    features = embedding_model(trained).output
    if networks.EMBEDDING_LAYER not in names:
        features = keras.layers.Activation("linear", name=networks.EMBEDDING_LAYER)(features)
    return trained.inputs, features, False
