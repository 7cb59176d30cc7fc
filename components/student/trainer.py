"""Trainer module of the student: a tiny DS-CNN, graph-regularised with NSL.

The same `train_student` with `graph_multiplier == 0` is the speech-only baseline: same model,
data, schedule and checkpoint rule, with no graph term (the NSL wrapper is then left out, since
with a zero multiplier it would only add neighbour forward passes).
"""

from __future__ import annotations

import logging

import neural_structured_learning as nsl
import tf_keras as keras

from components.models import networks, training
from pipeline.config import AudioConfig, FrontendConfig, StudentConfig, section_from_json

log = logging.getLogger(__name__)

# Distances between distributions: NSL must softmax the student's logits before them.
DIVERGENCES = ("kl_divergence", "jensen_shannon_divergence")


def graph_regularised(base: keras.Model, cfg: StudentConfig) -> keras.Model:
    """Wraps `base` in NSL's GraphRegularization (neighbours read from NL_nbr_* features)."""
    config = nsl.configs.make_graph_reg_config(
        max_neighbors=cfg.num_neighbours,
        multiplier=cfg.graph_multiplier,
        distance_type=cfg.distance_type,
        sum_over_axis=-1,
        transform_fn="softmax" if cfg.distance_type in DIVERGENCES else "none",
    )
    return nsl.keras.GraphRegularization(base, config)


def train_student(
    train_files,
    eval_files,
    serving_dir: str,
    transform_output: str,
    cfg: StudentConfig,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
) -> dict:
    """Fits the student (NSL when the multiplier is positive), exports the base model."""
    keras.utils.set_random_seed(cfg.seed)
    frames, bands = training.input_shape(audio, front)
    base = networks.build_student(cfg, frames, bands, len(classes))
    use_graph = cfg.graph_multiplier > 0
    model = graph_regularised(base, cfg) if use_graph else base
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    spec = training.feature_spec(frames, bands, cfg.num_neighbours if use_graph else 0)
    train = training.make_dataset(train_files, spec, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_x, val_y = training.load_arrays(eval_files, frames, bands)
    best = training.BestValidationUAR(base, val_x, val_y, classes, patience=8, min_epochs=10)
    weights = training.class_weights(train_files, len(classes))
    model.fit(train, epochs=cfg.epochs, callbacks=[best], class_weight=weights, verbose=2)
    mean, inv_std = training.normalisation_constants(transform_output, audio)
    training.save(
        base,
        serving_dir,
        {
            "serving_default": training.examples_signature(base, frames, bands),
            "pcm": training.pcm_signature(base, audio, front, mean, inv_std),
        },
    )
    return {
        "best_epoch": best.best_epoch,
        "val_uar": best.best_uar,
        "history": best.history,
        "params": base.count_params(),
        "graph_multiplier": cfg.graph_multiplier,
    }


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    conf = fn_args.custom_config
    summary = train_student(
        fn_args.train_files,
        fn_args.eval_files,
        fn_args.serving_model_dir,
        fn_args.transform_output,
        section_from_json(StudentConfig, conf["student"]),
        section_from_json(AudioConfig, conf["audio"]),
        section_from_json(FrontendConfig, conf["frontend"]),
        tuple(conf["classes"]),
    )
    training.write_summary(fn_args.model_run_dir, summary)
