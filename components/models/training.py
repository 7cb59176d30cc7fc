"""What both trainers share: reading transformed examples, fitting with checkpoint choice on
validation speakers, and exporting a SavedModel with the signatures downstream steps need.

Signatures of every exported model:
- `serving_default`: serialized tf.Examples (`examples`) -> `probabilities` (TFMA's input).
- extras added by each trainer: `embed` (teacher: log-mel -> embedding, for the Embedder) and
  `pcm` (student: raw PCM -> probabilities, frontend inside, what the Pusher converts).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import AudioConfig, AugmentConfig, FrontendConfig
from emograph.components.edge import metadata as edge_metadata
from emograph.components.evaluation import metrics
from emograph.components.models import augment

log = logging.getLogger(__name__)

LOGITS_SIGNATURE = "logits"  # a teacher's extra signature: what a distilled student reads


def input_shape(audio: AudioConfig, front: FrontendConfig) -> tuple[int, int]:
    """(frames, bands) of one window's log-mel."""
    return frontend.num_frames(audio.window_samples, front), front.mel_bands


def model_input(model: keras.Model) -> tuple[str, int]:
    """(name, width) of the one transformed feature `model` reads: `logmel` [frames * bands],
    or `functionals` for the functionals student."""
    names = model.input_names
    if len(names) != 1:
        raise ValueError(f"expected a model with one input, {model.name} has {names}")
    return names[0], int(model.inputs[0].shape[-1])


def feature_spec(name: str, width: int, num_neighbours: int = 0) -> dict:
    """Parsing spec of (packed) transformed examples: the model input `name` [width], the label,
    neighbours."""
    spec = {
        name: tf.io.FixedLenFeature([width], tf.float32),
        F.LABEL_ID: tf.io.FixedLenFeature([], tf.int64),
    }
    for i in range(num_neighbours):
        prefix = f"{F.NBR_PREFIX}{i}_"
        spec[prefix + name] = tf.io.FixedLenFeature(
            [width], tf.float32, default_value=[0.0] * width
        )
        spec[prefix.rstrip("_") + F.NBR_WEIGHT_SUFFIX] = tf.io.FixedLenFeature(
            [1], tf.float32, default_value=[0.0]
        )
    return spec


def pad_missing_neighbours(features: dict, num_neighbours: int, name: str = F.LOGMEL) -> dict:
    """A batch's missing neighbours (weight 0, parsed as all-zero inputs `name`) replaced by the
    sample itself, still with weight 0: NSL runs every neighbour slot through the student in
    training mode, and zero spectrograms in those batches would skew BatchNorm's batch and
    moving statistics away from real speech. The graph loss is unchanged (weight 0)."""
    out = dict(features)
    for i in range(num_neighbours):
        key = f"{F.NBR_PREFIX}{i}_{name}"
        present = features[f"{F.NBR_PREFIX}{i}{F.NBR_WEIGHT_SUFFIX}"] > 0  # [batch, 1]
        out[key] = tf.where(present, features[key], features[name])
    return out


PARSE_BATCH = 256  # records parsed per call


def make_dataset(
    file_patterns: Sequence[str],
    spec: dict,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    labelled: bool = True,
    pseudo_labels: Mapping[str, int] | None = None,
) -> tf.data.Dataset:
    """(features, label_id) batches from gzipped TFRecords. Only the features in `spec` are
    parsed, once: they are cached in memory, so later epochs neither decompress nor parse the
    records (a packed example carries every neighbour's log-mel, mostly unread).

    `labelled` keeps only examples with a label: an unlabelled clip (F.UNLABELLED_ID) never
    reaches a supervised loss; `pseudo_labels` (clip id -> class index) first gives some
    unlabelled clips a label (self-training). With `labelled=False` every example is kept."""
    files = tf.io.gfile.glob(list(file_patterns)) if file_patterns else []
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {list(file_patterns)}")
    unasked = [F.ID] if pseudo_labels and F.ID not in spec else []  # read for the pseudo labels
    spec = {**spec, F.LABEL_ID: tf.io.FixedLenFeature([], tf.int64)}
    spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in unasked})
    ds = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
    ds = ds.batch(PARSE_BATCH).map(
        lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE
    )
    if pseudo_labels:
        ds = ds.map(_with_pseudo_labels(pseudo_labels))
    ds = ds.unbatch()
    if labelled:
        ds = ds.filter(lambda f: f[F.LABEL_ID] != F.UNLABELLED_ID)
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda f: ({k: v for k, v in f.items() if k not in (F.LABEL_ID, *unasked)}, f[F.LABEL_ID])
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_pseudo_labels(pseudo_labels: Mapping[str, int]) -> Callable[[dict], dict]:
    """Parsed batch -> the same with an unlabelled window's label taken from its clip's pseudo
    label (window ids are "<clip id>:<index>"), if it has one."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(pseudo_labels)), tf.constant(list(pseudo_labels.values()), tf.int64)
        ),
        default_value=F.UNLABELLED_ID,
    )

    def relabel(features: dict) -> dict:
        clips = tf.strings.regex_replace(features[F.ID], ":[0-9]+$", "")
        label = features[F.LABEL_ID]
        pseudo = table.lookup(clips)
        return {**features, F.LABEL_ID: tf.where(label == F.UNLABELLED_ID, pseudo, label)}

    return relabel


def load_arrays(
    file_patterns: Sequence[str], name: str, width: int, labelled: bool = True
) -> tuple[dict, np.ndarray, np.ndarray]:
    """A whole (small) split's input `name` in memory, e.g. the validation set scored after
    every epoch: (features, labels, clip id of each window); with `labelled=False` the
    unlabelled windows too (label F.UNLABELLED_ID)."""
    spec = {**feature_spec(name, width), F.ID: tf.io.FixedLenFeature([], tf.string)}
    feats, labels, ids = [], [], []
    for f, y in make_dataset(file_patterns, spec, 256, shuffle=False, labelled=labelled):
        feats.append(f[name].numpy())
        labels.append(y.numpy())
        ids.append(f[F.ID].numpy().astype(str))
    clips = metrics.clip_of(np.concatenate(ids))
    return {name: np.concatenate(feats)}, np.concatenate(labels), clips


def class_weights(
    file_patterns: Sequence[str], num_classes: int, pseudo_labels: Mapping[str, int] | None = None
) -> dict[int, float]:
    """Inverse-frequency weights (1.0 on average over examples) from the train split's labels
    (and `pseudo_labels`, as make_dataset reads them), so a class that is rarer in a corpus
    (RAVDESS has half as much neutral) is not given up."""
    spec = {F.LABEL_ID: tf.io.FixedLenFeature([], tf.int64)}
    counts = np.zeros(num_classes)
    batches = make_dataset(file_patterns, spec, 1024, shuffle=False, pseudo_labels=pseudo_labels)
    for _, labels in batches:
        counts += np.bincount(labels.numpy(), minlength=num_classes)[:num_classes]
    present = counts > 0
    weights = np.where(present, counts.sum() / (present.sum() * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


class BestValidationUAR(keras.callbacks.Callback):
    """Scores `scored` on validation speakers each epoch by clip UAR (the headline metric),
    keeps the best weights, stops early.

    `scored` is the model that is exported (for NSL, the base model inside the wrapper).
    """

    def __init__(
        self,
        scored: keras.Model,
        features: dict,
        labels: np.ndarray,
        clips: np.ndarray,
        classes: tuple[str, ...],
        patience: int,
        min_epochs: int,
    ):
        super().__init__()
        self.scored, self.features, self.labels, self.clips = scored, features, labels, clips
        self.classes, self.patience, self.min_epochs = classes, patience, min_epochs
        self.best_uar, self.best_epoch, self.best_weights = -1.0, -1, None
        self.history: list[dict] = []
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logits = self.scored.predict(self.features, verbose=0, batch_size=256)
        probabilities = tf.nn.softmax(logits).numpy()
        uar = metrics.clip_summary(probabilities, self.labels, self.clips, self.classes)["uar"]
        self.history.append({"epoch": epoch + 1, "val_uar": uar, **(logs or {})})
        if uar > self.best_uar:
            self.best_uar, self.best_epoch = uar, epoch + 1
            self.best_weights = self.scored.get_weights()
        log.info(
            "epoch %d  loss %.4f  val UAR %.3f (best %.3f @ %d)  %.0fs",
            epoch + 1,
            (logs or {}).get("loss", float("nan")),
            uar,
            self.best_uar,
            self.best_epoch,
            time.time() - self._start,
        )
        if epoch + 1 >= self.min_epochs and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.scored.set_weights(self.best_weights)


def augmented(
    train: tf.data.Dataset,
    cfg: AugmentConfig,
    seed: int,
    transform_output: str,
    audio: AudioConfig,
    front: FrontendConfig,
) -> tf.data.Dataset:
    """`train` with log-mel batch augmentation when `cfg.enabled` (dB settings become normalised
    units through Transform's per-band inverse std)."""
    if not cfg.enabled:
        return train
    _, inv_std = normalisation_constants(transform_output, audio)
    frames, bands = input_shape(audio, front)
    db_scale = augment.db_to_normalised(inv_std)
    return augment.augment_dataset(train, frames, bands, cfg, seed, db_scale)


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tuple[dict, np.ndarray, np.ndarray],
    weights: dict[int, float],
    classes: tuple[str, ...],
    learning_rate: float,
    epochs: int,
    patience: int,
    min_epochs: int,
    scored: keras.Model | None = None,
) -> BestValidationUAR:
    """The one training loop of every model: Adam on cross-entropy with the logits (plus the
    model's own losses: NSL's graph term, a distiller's soft targets), class `weights`, and the
    epoch with the best clip UAR on the validation speakers (`load_arrays`) kept, with early
    stopping. `scored` is the model validated and kept (default `model`; for a wrapper, the
    base model inside it). Returns the callback, which holds the history."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    best = BestValidationUAR(
        scored or model, *validation, classes, patience=patience, min_epochs=min_epochs
    )
    model.fit(train, epochs=epochs, callbacks=[best], class_weight=weights, verbose=2)
    return best


def normalisation_constants(transform_output: str, audio: AudioConfig) -> tuple[np.ndarray, ...]:
    """The per-band (mean, inverse std) that Transform computed, read back through its graph."""
    tft_output = tft.TFTransformOutput(transform_output)
    silence = np.zeros(audio.window_samples, "<i2").tobytes()
    raw = {name: tf.constant([[b""]]) for name in (F.LABEL, F.ID, F.SPEAKER, F.CORPUS, F.CLIP)}
    raw[F.AUDIO] = tf.constant([[silence]])
    raw_spec = tft_output.raw_feature_spec()
    raw = {k: v for k, v in raw.items() if k in raw_spec}
    out = tft_output.transform_raw_features(raw, drop_unused_features=True)
    return out[F.LOGMEL_MEAN].numpy()[0], out[F.LOGMEL_INV_STD].numpy()[0]


def examples_signature(model: keras.Model) -> Callable:
    """`serving_default`: serialized transformed tf.Examples -> class probabilities."""
    name, width = model_input(model)
    spec = {name: tf.io.FixedLenFeature([width], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        parsed = tf.io.parse_example(examples, spec)
        return {"probabilities": tf.nn.softmax(model(parsed, training=False))}

    return serve


def baked_statistics(
    transform_output: str, audio: AudioConfig, front: FrontendConfig
) -> np.ndarray | None:
    """[2, bands] (mean; inverse std) to bake into a globally normalised model, else None."""
    if front.normalisation != "global":
        return None
    return np.stack(normalisation_constants(transform_output, audio))


def pcm_signature(
    model: keras.Model, audio: AudioConfig, front: FrontendConfig, baked: np.ndarray | None
) -> Callable:
    """`pcm`: one window of float PCM [1, samples] -> probabilities, frontend inside.

    Global normalisation bakes `baked` (Transform's constants) in. Speaker normalisation takes
    the speaker's statistics as a second input, `speaker_stats` [2, n] (mean; inverse std),
    and also returns the window's `logmel_moments` [2, n] (means over the window of the
    features and of their squares), from which a device accumulates those statistics
    (components/edge/adaptation.py). The features are the log-mel frames (n = bands) or, for
    the functionals student, the window's functionals (n = 8 x bands; they are computed from the
    raw log-mel, so their moments do not depend on `speaker_stats` either).
    """
    pcm_spec = tf.TensorSpec([1, audio.window_samples], tf.float32, name=edge_metadata.PCM_INPUT)
    name, width = model_input(model)

    def probabilities(normalised: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(model({name: tf.reshape(normalised, [1, -1])}, training=False))

    if (front.normalisation == "global") != (baked is not None):
        raise ValueError("a globally normalised model needs its statistics, a speaker one none")
    if name == F.FUNCTIONALS and baked is not None:
        raise ValueError("the functionals student is built for speaker normalisation only")
    if baked is not None:
        mean_t, inv_std_t = tf.constant(baked[0], tf.float32), tf.constant(baked[1], tf.float32)

        @tf.function(input_signature=[pcm_spec])
        def serve(pcm):
            logmel = frontend.log_mel(pcm, front, audio.sample_rate)
            with tf.name_scope(frontend.FRONTEND_SCOPE):
                normalised = (logmel - mean_t) * inv_std_t
            return {edge_metadata.PROBABILITIES: probabilities(normalised)}

        return serve

    stats_width = width if name == F.FUNCTIONALS else front.mel_bands
    stats_spec = tf.TensorSpec([2, stats_width], tf.float32, name=edge_metadata.STATS_INPUT)

    @tf.function(input_signature=[pcm_spec, stats_spec])
    def serve_adaptive(pcm, speaker_stats):
        functionals = name == F.FUNCTIONALS
        logmel, voice = frontend.log_mel_and_voice(pcm, front, audio.sample_rate, functionals)
        with tf.name_scope(frontend.FRONTEND_SCOPE):
            # [1, rows, n]: the log-mel frames, or the window's functionals as one row
            features = logmel
            if functionals:
                features = frontend.functionals(logmel, voice)[:, tf.newaxis]
            moments = tf.stack(
                [
                    tf.reduce_mean(features, axis=-2)[0],
                    tf.reduce_mean(tf.square(features), axis=-2)[0],
                ]
            )
            normalised = (features - speaker_stats[0]) * speaker_stats[1]
            if name == F.FUNCTIONALS:
                normalised = frontend.bounded(normalised)
        return {
            edge_metadata.PROBABILITIES: probabilities(normalised),
            edge_metadata.MOMENTS_OUTPUT: moments,
        }

    return serve_adaptive


def save(model: keras.Model, serving_dir: str, signatures: dict[str, Callable]) -> None:
    """Exports `model` with the given signatures (tf_keras SavedModel format)."""
    model.save(serving_dir, save_format="tf", signatures=signatures)
    log.info("saved %s with signatures %s", serving_dir, sorted(signatures))


def write_summary(model_run_dir: str, summary: dict) -> None:
    """training.json beside the Trainer's logs: best epoch, validation UAR per epoch, size."""
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(f"{model_run_dir}/training.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
