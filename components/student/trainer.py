"""Trainer module of the student: a tiny DS-CNN, graph-regularised with NSL.

The same `train_student` with `graph_multiplier == 0` is the speech-only baseline: same model,
data, augmentation, schedule and checkpoint rule, with no graph term (the NSL wrapper is then
left out, since with a zero multiplier it would only add neighbour forward passes). Given a
teacher (TFX's `base_model`), it is the distilled student: speech only, plus the teacher's
softened probabilities as a second target.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import neural_structured_learning as nsl
import numpy as np
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.config import AudioConfig, FrontendConfig, StudentConfig, section_from_json
from emograph.components.evaluation import metrics
from emograph.components.models import networks, propagation, training

log = logging.getLogger(__name__)

# Distances between distributions: NSL must softmax the student's logits before them.
DIVERGENCES = ("kl_divergence", "jensen_shannon_divergence")


class EmbeddingGraphRegularization(nsl.keras.GraphRegularization):
    """GraphRegularization with the neighbour loss on a hidden layer instead of the logits.

    NSL 1.4 regularises the base model's output only; the paper's code patched NSL to compare
    an intermediate layer instead. This does the same as a subclass: a two-output view of the
    base model (shared layers, no new weights) gives logits for the supervised loss and the
    `layer` activations of the sample and its neighbours for NSL's own distance and weights.
    Only `base_model` is saved, so the exported model is the plain student.
    """

    def __init__(self, base_model: keras.Model, graph_reg_config, layer: str):
        super().__init__(base_model, graph_reg_config)
        hidden = base_model.get_layer(layer).output
        self.with_hidden = keras.Model(base_model.input, [base_model.output, hidden])

    def call(self, inputs, training=False, **kwargs):
        sample, neighbours, weights = self.nbr_features_layer.call(inputs)
        logits, hidden = self.with_hidden(sample, training=training, **kwargs)
        if weights is not None and neighbours and self.graph_reg_config.multiplier > 0:
            _, neighbour_hidden = self.with_hidden(neighbours, training=training, **kwargs)
            graph_loss = self.regularizer(sources=hidden, targets=neighbour_hidden, weights=weights)
        else:
            graph_loss = tf.constant(0, dtype=tf.float32)
        scaled = self.graph_reg_config.multiplier * graph_loss
        self.add_metric(scaled, name="scaled_graph_loss", aggregation="mean")
        self.add_loss(scaled)
        return logits


def graph_regularised(base: keras.Model, cfg: StudentConfig) -> keras.Model:
    """Wraps `base` in NSL graph regularisation (neighbours read from NL_nbr_* features), on
    the logits (NSL's GraphRegularization) or on the penultimate embedding."""
    config = nsl.configs.make_graph_reg_config(
        max_neighbors=cfg.num_neighbours,
        multiplier=cfg.graph_multiplier,
        distance_type=cfg.distance_type,
        sum_over_axis=-1,
        transform_fn="softmax" if cfg.distance_type in DIVERGENCES else "none",
    )
    if cfg.regularised_layer == "embedding":
        return EmbeddingGraphRegularization(base, config, networks.EMBEDDING_LAYER)
    return nsl.keras.GraphRegularization(base, config)


TEACHER_PROBABILITIES = "teacher_probabilities"  # a distilled student's second target


class Distiller(keras.Model):
    """Fits `student` to (1 - weight) x the compiled loss on the labels + weight x T^2 x
    KL(teacher || student) at temperature T (+ the student's own losses, e.g. NSL's graph
    term); the batches carry the teacher's probabilities (already softened by T) as
    TEACHER_PROBABILITIES. Only the base student is exported."""

    def __init__(self, student: keras.Model, weight: float, temperature: float):
        super().__init__(name="distiller")
        self.student, self.weight, self.temperature = student, weight, temperature
        self.distillation_loss = keras.metrics.Mean(name="distillation_loss")

    def call(self, inputs, training=False):
        # Everything but the soft target: an NSL-wrapped student also reads its neighbours.
        features = {k: v for k, v in inputs.items() if k != TEACHER_PROBABILITIES}
        return self.student(features, training=training)

    def soft_loss(self, teacher: tf.Tensor, logits: tf.Tensor, sample_weight=None) -> tf.Tensor:
        """T^2 x KL(teacher || softmax(logits / T)), averaged over the batch (class-weighted)."""
        log_student = tf.nn.log_softmax(logits / self.temperature)
        kl = tf.reduce_sum(tf.math.xlogy(teacher, teacher) - teacher * log_student, axis=-1)
        if sample_weight is not None:
            kl = kl * tf.reshape(tf.cast(sample_weight, kl.dtype), [-1])
        return self.temperature**2 * tf.reduce_mean(kl)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            hard = self.compiled_loss(y, logits, sample_weight, regularization_losses=self.losses)
            soft = self.soft_loss(x[TEACHER_PROBABILITIES], logits, sample_weight)
            loss = (1.0 - self.weight) * hard + self.weight * soft
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        self.compiled_metrics.update_state(y, logits, sample_weight)
        self.distillation_loss.update_state(soft)
        return {m.name: m.result() for m in self.metrics}


def with_teacher_probabilities(
    ds: tf.data.Dataset, teacher_dir: str, temperature: float
) -> tf.data.Dataset:
    """Adds the teacher's softmax(logits / T) of each batch's (clean) log-mel to its features."""
    teacher = tf.saved_model.load(teacher_dir)
    if training.LOGITS_SIGNATURE not in teacher.signatures:
        raise ValueError(
            f"teacher {teacher_dir} has no {training.LOGITS_SIGNATURE!r} signature to distil"
        )

    def add(features, label):
        logits = teacher.signatures[training.LOGITS_SIGNATURE](**{F.LOGMEL: features[F.LOGMEL]})
        probabilities = tf.nn.softmax(logits[training.LOGITS_SIGNATURE] / temperature)
        return {**features, TEACHER_PROBABILITIES: probabilities}, label

    return ds.map(add)


def train_student(
    train_files,
    eval_files,
    serving_dir: str,
    transform_output: str,
    cfg: StudentConfig,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
    teacher_dir: str | None = None,
) -> dict:
    """Fits the student (NSL when the multiplier is positive, distilled from the teacher at
    `teacher_dir` when one is given), exports the base model. With `cfg.graph_multipliers`
    it fits one student per multiplier and exports the one with the best validation UAR (the
    smaller multiplier on ties): a graph that does not help on the validation speakers is not
    used."""
    if (teacher_dir or cfg.self_training) and (cfg.graph_multiplier > 0 or cfg.graph_multipliers):
        raise ValueError(
            "a distilled or self-trained student is trained without the graph (multiplier 0)"
        )
    frames, bands = training.input_shape(audio, front)
    name, width = training.model_input(networks.build_student(cfg, frames, bands, len(classes)))
    validation = training.load_arrays(eval_files, name, width)  # read once for every fit
    multipliers = sorted({cfg.graph_multiplier, *cfg.graph_multipliers})
    label_sets: dict[str, dict[str, int] | None] = {"labels": None}
    if cfg.label_propagation and max(multipliers) > 0:
        graph = packed_graph(train_files, cfg.num_neighbours)
        propagated = propagated_labels(graph, len(classes))
        if propagated:
            label_sets["labels+propagated"] = propagated

    def fit(candidate: StudentConfig, pseudo: dict[str, int] | None, weights=None, teacher=None):
        """`_fit` on the labels plus `pseudo` labels (class `weights` counted if not given)."""
        if weights is None:
            weights = training.class_weights(train_files, len(classes), pseudo)
        return _fit(
            candidate,
            train_files,
            validation,
            weights,
            transform_output,
            audio,
            front,
            classes,
            teacher,
            pseudo,
        )

    choices = {}
    base, best = None, None
    for labels, pseudo in label_sets.items():
        weights = training.class_weights(train_files, len(classes), pseudo)
        for multiplier in multipliers:
            candidate = dataclasses.replace(cfg, graph_multiplier=multiplier, graph_multipliers=())
            model, fitted = fit(candidate, pseudo, weights, teacher_dir)
            choices.setdefault(labels, {})[multiplier] = fitted.best_uar
            # ties: the labels alone, then the smaller multiplier
            if best is None or fitted.best_uar > best.best_uar:
                base, best, chosen, chosen_labels = model, fitted, multiplier, labels
    smoothing = {}
    if "labels+propagated" in label_sets:  # one round of self-training, through the graph
        smoothed = smoothed_labels(base, train_files, graph, len(classes), cfg.smoothed_label_share)
        smoothing = {"smoothed_clips": len(smoothed), "used": False}
        if smoothed:
            candidate = dataclasses.replace(cfg, graph_multiplier=chosen, graph_multipliers=())
            model, fitted = fit(candidate, smoothed)
            smoothing["val_uar"] = fitted.best_uar
            if fitted.best_uar > best.best_uar:
                base, best, chosen_labels = model, fitted, "labels+smoothed"
                smoothing["used"] = True
    self_trained = {}
    if cfg.self_training:
        pseudo = pseudo_labels(base, train_files, cfg.pseudo_label_confidence)
        self_trained = {
            "pseudo_labelled_clips": len(pseudo),
            "val_uar_before": best.best_uar,
            "kept": "first",  # the fit on the labels alone, unless the refit beats it
        }
        if pseudo:
            model, fitted = fit(cfg, pseudo)
            self_trained["val_uar_after"] = fitted.best_uar
            if fitted.best_uar > best.best_uar:
                base, best = model, fitted
                self_trained["kept"] = "refitted"
    baked = training.baked_statistics(transform_output, audio, front)
    training.save(
        base,
        serving_dir,
        {
            "serving_default": training.examples_signature(base),
            "pcm": training.pcm_signature(base, audio, front, baked),
        },
    )
    return {
        "best_epoch": best.best_epoch,
        "val_uar": best.best_uar,
        "history": best.history,
        "params": base.count_params(),
        "graph_multiplier": chosen,
        "val_uar_by_multiplier": choices["labels"],
        **(
            {
                "label_propagation": {
                    "propagated_clips": len(label_sets["labels+propagated"]),
                    "val_uar_by_multiplier": choices["labels+propagated"],
                    "used": chosen_labels == "labels+propagated",
                },
                "graph_self_training": smoothing,
            }
            if "labels+propagated" in label_sets
            else {}
        ),
        "architecture": cfg.architecture,
        "regularised_layer": cfg.regularised_layer,
        "augment": cfg.augment.enabled,
        "distilled_from": teacher_dir,
        **({"self_training": self_trained} if cfg.self_training else {}),
    }


Graph = tuple[dict[str, int], list[tuple[str, str, float]]]  # labels by window id, edges


def propagated_labels(graph: Graph, classes: int) -> dict[str, int]:
    """Clip id -> class for the unlabelled train clips the graph reaches: label propagation
    (models.propagation) over the packed graph (`packed_graph`), the graph the NSL student is
    regularised with."""
    labels, edges = graph
    if all(label != F.UNLABELLED_ID for label in labels.values()):
        return {}
    scores = propagation.propagate(edges, labels, classes)
    clips = dict(zip(labels, metrics.clip_of(list(labels)), strict=True))
    chosen = propagation.clip_labels(scores, labels, clips)
    log.info("label propagation: %d unlabelled clips labelled by the graph", len(chosen))
    return chosen


def smoothed_labels(
    model: keras.Model,
    train_files: Sequence[str],
    graph: Graph,
    classes: int,
    share: float,
) -> dict[str, int]:
    """Clip id -> class for the `share` of unlabelled train clips whose class is the most
    certain when `model`'s predictions (seeding the unlabelled windows) and the labels are
    propagated over the packed graph (`packed_graph`): the model's guesses, smoothed by their
    neighbours (self-training through the graph; models.propagation.clip_labels)."""
    labels, edges = graph
    priors = window_probabilities(model, train_files)
    scores = propagation.propagate(edges, labels, classes, priors=priors)
    clips = dict(zip(labels, metrics.clip_of(list(labels)), strict=True))
    chosen = propagation.clip_labels(scores, labels, clips, share)
    unlabelled = len(set(metrics.clip_of(list(priors))))
    log.info("graph self-training: %d of %d unlabelled clips labelled", len(chosen), unlabelled)
    return chosen


def packed_graph(train_files: Sequence[str], num_neighbours: int) -> Graph:
    """The packed train examples' labels (window id -> class or UNLABELLED_ID) and their
    first `num_neighbours` neighbour edges (id, neighbour id, weight)."""
    spec = {F.ID: tf.io.FixedLenFeature([], tf.string)}
    for i in range(num_neighbours):
        prefix = f"{F.NBR_PREFIX}{i}"
        spec[f"{prefix}_{F.ID}"] = tf.io.FixedLenFeature([], tf.string, default_value="")
        spec[prefix + F.NBR_WEIGHT_SUFFIX] = tf.io.FixedLenFeature([1], tf.float32, [0.0])
    labels: dict[str, int] = {}
    edges: list[tuple[str, str, float]] = []
    batches = training.make_dataset(train_files, spec, 4096, shuffle=False, labelled=False)
    for features, label in batches:
        ids = features[F.ID].numpy().astype(str)
        labels.update(zip(ids, label.numpy().tolist(), strict=True))
        for i in range(num_neighbours):
            prefix = f"{F.NBR_PREFIX}{i}"
            targets = features[f"{prefix}_{F.ID}"].numpy().astype(str)
            weights = features[prefix + F.NBR_WEIGHT_SUFFIX].numpy()[:, 0]
            edges += [(s, t, float(w)) for s, t, w in zip(ids, targets, weights, strict=True) if t]
    return labels, edges


def window_probabilities(model: keras.Model, train_files: Sequence[str]) -> dict[str, np.ndarray]:
    """Window id -> `model`'s class probabilities, for every unlabelled train window (the
    train split streamed batch by batch)."""
    name, width = training.model_input(model)
    spec = {**training.feature_spec(name, width), F.ID: tf.io.FixedLenFeature([], tf.string)}
    probabilities: dict[str, np.ndarray] = {}
    batches = training.make_dataset(train_files, spec, 512, shuffle=False, labelled=False)
    for features, labels in batches:
        unlabelled = labels.numpy() == F.UNLABELLED_ID
        if not unlabelled.any():
            continue
        logits = model({name: features[name].numpy()[unlabelled]}, training=False)
        ids = features[F.ID].numpy()[unlabelled].astype(str)
        probabilities.update(zip(ids, tf.nn.softmax(logits).numpy(), strict=True))
    return probabilities


def pseudo_labels(
    model: keras.Model, train_files: Sequence[str], confidence: float
) -> dict[str, int]:
    """Clip id -> the class `model` gives each unlabelled train clip whose clip-level
    confidence (its windows' mean probability of the top class) is at least `confidence`."""
    probabilities = window_probabilities(model, train_files)
    clips = dict(zip(probabilities, metrics.clip_of(list(probabilities)), strict=True))
    chosen = propagation.confident_clips(probabilities, clips, confidence)
    unlabelled = len(set(clips.values()))
    log.info("self-training: %d of %d unlabelled clips pseudo-labelled", len(chosen), unlabelled)
    return chosen


def _fit(
    cfg: StudentConfig,
    train_files,
    validation: tuple[dict, np.ndarray, np.ndarray],
    weights: dict[int, float],
    transform_output: str,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
    teacher_dir: str | None,
    pseudo: dict[str, int] | None = None,
) -> tuple[keras.Model, training.BestValidationUAR]:
    """One student fitted with `cfg.graph_multiplier` and class `weights` (on the labels and
    `pseudo` labels), its epoch chosen on `validation` (`training.load_arrays`); its weights
    are the best epoch's."""
    keras.utils.set_random_seed(cfg.seed)
    frames, bands = training.input_shape(audio, front)
    base = networks.build_student(cfg, frames, bands, len(classes))
    use_graph = cfg.graph_multiplier > 0
    if teacher_dir:
        model = Distiller(base, cfg.distillation_weight, cfg.distillation_temperature)
    else:
        model = graph_regularised(base, cfg) if use_graph else base
    name, width = training.model_input(base)
    spec = training.feature_spec(name, width, cfg.num_neighbours if use_graph else 0)
    if teacher_dir:  # the teacher reads the log-mel, whatever the student reads
        spec.update(training.feature_spec(F.LOGMEL, frames * bands))
    train = training.make_dataset(
        train_files, spec, cfg.batch_size, shuffle=True, seed=cfg.seed, pseudo_labels=pseudo
    )
    if use_graph:
        k = cfg.num_neighbours
        train = train.map(lambda f, y: (training.pad_missing_neighbours(f, k, name), y))
    if teacher_dir:
        train = with_teacher_probabilities(train, teacher_dir, cfg.distillation_temperature)
        if name != F.LOGMEL:
            train = train.map(lambda f, y: ({n: v for n, v in f.items() if n != F.LOGMEL}, y))
    train = training.augmented(train, cfg.augment, cfg.seed, transform_output, audio, front)
    best = training.fit(
        model,
        train,
        validation,
        weights,
        classes,
        cfg.learning_rate,
        cfg.epochs,
        patience=8,
        min_epochs=10,
        scored=base,
    )
    return base, best


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
        teacher_dir=fn_args.base_model,
    )
    training.write_summary(fn_args.model_run_dir, summary)
