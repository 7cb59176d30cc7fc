"""Trainer module of the teacher: a larger CNN fitted on the source corpus.

TFX calls `run_fn`; everything it does is in components.models (shared with the student). The
same trainer fine-tunes a teacher on the target (the classic-transfer baseline), the trained one
or a user-supplied one (components/teacher/imported.py).
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.config import (
    AudioConfig,
    FrontendConfig,
    GraphConfig,
    TeacherConfig,
    section_from_json,
)
from emograph.components.graph import selection
from emograph.components.models import networks, training
from emograph.components.teacher import imported

log = logging.getLogger(__name__)


def logits_signature(model: keras.Model, frames: int, bands: int):
    """`logits`: normalised log-mel [B, frames * bands] -> `logits` [B, classes]."""

    @tf.function(input_signature=[tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)])
    def logits(logmel):
        return {training.LOGITS_SIGNATURE: model(logmel, training=False)}

    return logits


def load_for_finetuning(
    model_dir: str, num_classes: int, frames: int, bands: int, dropout: float
) -> keras.Model:
    """A teacher with a fresh classification head (classic transfer learning); a new dropout
    layer when the teacher's own is not there to keep."""
    inputs, features, has_dropout = imported.finetuning_base(model_dir, frames, bands)
    if not has_dropout:
        features = keras.layers.Dropout(dropout, name=networks.DROPOUT_LAYER)(features)
    logits = keras.layers.Dense(num_classes, name="target_logits")(features)
    return keras.Model(inputs, logits, name="finetuned_teacher")


def embedding_homophily(model: keras.Model, files, frames: int, bands: int) -> dict:
    """How well the teacher's own embedding joins same-emotion clips of held-out speakers: the
    exact 5-NN graph of its per-speaker-centred `embedding` over `files` (components/graph/
    selection.py). On the source's validation speakers this is the teacher's home ground; the
    GraphBuilder's selection reports the same figures on the target."""
    spec = {
        F.LOGMEL: tf.io.FixedLenFeature([frames * bands], tf.float32),
        F.LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
        F.SPEAKER: tf.io.FixedLenFeature([], tf.string),
    }
    embed = imported.embedding_model(model)
    vectors, labels, speakers = [], [], []
    for features, label in training.make_dataset(files, spec, 256, shuffle=False):
        vectors.append(embed(features[F.LOGMEL], training=False).numpy())
        labels.append(label.numpy())
        speakers.append(features[F.SPEAKER].numpy().astype(str))
    labels, speakers = np.concatenate(labels), np.concatenate(speakers)
    ids = [str(i) for i in range(len(labels))]
    nodes = selection.Nodes(ids, {"teacher": np.concatenate(vectors)}, labels, speakers)
    return selection.measure(nodes, "teacher", 0.0, 5, GraphConfig(embedding_source="teacher"))


def train_teacher(
    train_files,
    eval_files,
    serving_dir: str,
    transform_output: str,
    cfg: TeacherConfig,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
    init_from: str | None = None,
) -> dict:
    """Fits the teacher (or fine-tunes the one at `init_from`), keeps the epoch with the best
    validation UAR, exports it with `serving_default`, `embed`, `logits` and `pcm` signatures."""
    keras.utils.set_random_seed(cfg.seed)
    frames, bands = training.input_shape(audio, front)
    if init_from:
        model = load_for_finetuning(init_from, len(classes), frames, bands, cfg.dropout)
        learning_rate, epochs = cfg.finetune_learning_rate, cfg.finetune_epochs
    else:
        model = networks.build_teacher(cfg, frames, bands, len(classes))
        learning_rate, epochs = cfg.learning_rate, cfg.epochs
    train = training.make_dataset(
        train_files,
        training.feature_spec(F.LOGMEL, frames * bands),
        cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
    )
    train = training.augmented(train, cfg.augment, cfg.seed, transform_output, audio, front)
    best = training.fit(
        model,
        train,
        training.load_arrays(eval_files, F.LOGMEL, frames * bands),
        training.class_weights(train_files, len(classes)),
        classes,
        learning_rate,
        epochs,
        patience=5,
        min_epochs=5,
    )
    baked = training.baked_statistics(transform_output, audio, front)
    training.save(
        model,
        serving_dir,
        {
            "serving_default": training.examples_signature(model),
            "embed": imported.embed_signature(model, frames, bands),
            training.LOGITS_SIGNATURE: logits_signature(model, frames, bands),
            "pcm": training.pcm_signature(model, audio, front, baked),
        },
    )
    return {
        "best_epoch": best.best_epoch,
        "val_uar": best.best_uar,
        "history": best.history,
        "params": model.count_params(),
        "finetuned_from": init_from,
        "validation_homophily": embedding_homophily(model, eval_files, frames, bands),
    }


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    conf = fn_args.custom_config
    summary = train_teacher(
        fn_args.train_files,
        fn_args.eval_files,
        fn_args.serving_model_dir,
        fn_args.transform_output,
        section_from_json(TeacherConfig, conf["teacher"]),
        section_from_json(AudioConfig, conf["audio"]),
        section_from_json(FrontendConfig, conf["frontend"]),
        tuple(conf["classes"]),
        init_from=fn_args.base_model,
    )
    training.write_summary(fn_args.model_run_dir, summary)
