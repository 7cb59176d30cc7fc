"""Trainer module of the teacher: a larger CNN fitted on the source corpus.

TFX calls `run_fn`; everything it does is in components.models (shared with the student).
"""

from __future__ import annotations

import json
import logging

import tensorflow as tf
import tf_keras as keras

from components import features as F
from components.models import networks, training
from pipeline.config import AudioConfig, FrontendConfig, TeacherConfig, section_from_json

log = logging.getLogger(__name__)


def embed_signature(model: keras.Model, frames: int, bands: int):
    """`embed`: normalised log-mel [B, frames * bands] -> `embedding` [B, dim]."""
    embedder = keras.Model(model.inputs, model.get_layer(networks.EMBEDDING_LAYER).output)

    @tf.function(input_signature=[tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)])
    def embed(logmel):
        return {F.EMBEDDING: embedder({F.LOGMEL: logmel}, training=False)}

    return embed


def train_teacher(
    train_files,
    eval_files,
    serving_dir: str,
    cfg: TeacherConfig,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
) -> dict:
    """Fits the teacher, keeps the epoch with the best validation UAR, exports it."""
    keras.utils.set_random_seed(0)
    frames, bands = training.input_shape(audio, front)
    model = networks.build_teacher(cfg, frames, bands, len(classes))
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = training.make_dataset(
        train_files, training.feature_spec(frames, bands), cfg.batch_size, shuffle=True
    )
    val_x, val_y = training.load_arrays(eval_files, frames, bands)
    best = training.BestValidationUAR(model, val_x, val_y, classes, patience=4, min_epochs=4)
    model.fit(train, epochs=cfg.epochs, callbacks=[best], verbose=2)
    training.save(
        model,
        serving_dir,
        {
            "serving_default": training.examples_signature(model, frames, bands),
            "embed": embed_signature(model, frames, bands),
        },
    )
    return {
        "best_epoch": best.best_epoch,
        "val_uar": best.best_uar,
        "history": best.history,
        "params": model.count_params(),
    }


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    conf = fn_args.custom_config
    summary = train_teacher(
        fn_args.train_files,
        fn_args.eval_files,
        fn_args.serving_model_dir,
        section_from_json(TeacherConfig, conf["teacher"]),
        section_from_json(AudioConfig, conf["audio"]),
        section_from_json(FrontendConfig, conf["frontend"]),
        tuple(conf["classes"]),
    )
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(f"{fn_args.model_run_dir}/training.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
