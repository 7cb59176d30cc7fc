"""Training-batch augmentation of normalised log-mel features (configured by AugmentConfig).

The trainers see Transform's normalised log-mel [batch, frames * bands], never audio, so each
perturbation is the log-mel counterpart of its audio version: a level change is an offset, a
time shift rolls frames, noise is Gaussian in the normalised feature domain, and SpecAugment
masks set time or frequency spans to 0 (the band mean after normalisation). Every example
draws its own values from stateless random ops, so a batch is a pure function of (features,
seed): reproducible, and different in every epoch when the seed is.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.config import AugmentConfig

NEPERS_PER_DB = math.log(10.0) / 10.0  # +1 dB of power adds this to the natural-log mel


def db_to_normalised(inv_std: np.ndarray) -> np.ndarray:
    """Per-band offset of the normalised log-mel for +1 dB, given Transform's inverse std."""
    return (NEPERS_PER_DB * np.asarray(inv_std, np.float64)).astype(np.float32)


def span_mask(length: int, starts: tf.Tensor, widths: tf.Tensor) -> tf.Tensor:
    """float [batch, length]: 0 inside any span [start, start + width) of the example, else 1.

    starts, widths: int32 [batch, spans]; overlapping spans zero their union.
    """
    positions = tf.range(length)[tf.newaxis, tf.newaxis, :]
    inside = (positions >= starts[..., tf.newaxis]) & (
        positions < (starts + widths)[..., tf.newaxis]
    )
    return 1.0 - tf.cast(tf.reduce_any(inside, axis=1), tf.float32)


def _random_spans(batch: tf.Tensor, spans: int, widest: int, length: int, seed: tf.Tensor):
    """SpecAugment's draw: width uniform in [0, widest], start uniform where the span fits."""
    width_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    widest = min(widest, length)
    widths = tf.random.stateless_uniform(
        [batch, spans], width_seed, minval=0, maxval=widest + 1, dtype=tf.int32
    )
    room = tf.cast(length - widths + 1, tf.float32)
    starts = tf.cast(tf.random.stateless_uniform([batch, spans], start_seed) * room, tf.int32)
    return starts, widths


def roll_frames(x: tf.Tensor, shifts: tf.Tensor) -> tf.Tensor:
    """Circular shift of each example's frames: x [batch, frames, bands], shifts int32 [batch]."""
    frames = tf.shape(x)[1]
    source = tf.math.floormod(tf.range(frames)[tf.newaxis, :] - shifts[:, tf.newaxis], frames)
    return tf.gather(x, source, axis=1, batch_dims=1)


def augment(
    logmel: tf.Tensor,
    frames: int,
    bands: int,
    cfg: AugmentConfig,
    seed: tf.Tensor,
    db_scale: np.ndarray | float = 1.0,
) -> tf.Tensor:
    """Augmented copy of logmel [batch, frames * bands] (the identity when cfg is off).

    Order: gain, time shift, noise, then the masks, so masked cells are exactly 0.
    seed: int [2] (stateless op seed); db_scale: normalised offset per dB, per band or scalar
    (`db_to_normalised`).
    """
    if not cfg.enabled:
        return logmel
    batch = tf.shape(logmel)[0]
    x = tf.reshape(logmel, [batch, frames, bands])
    gain_seed, shift_seed, noise_seed, time_seed, freq_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    )
    if cfg.gain_db > 0:
        gain = tf.random.stateless_uniform(
            [batch, 1, 1], gain_seed, minval=-cfg.gain_db, maxval=cfg.gain_db
        )
        x = x + gain * tf.reshape(tf.constant(db_scale, tf.float32), [1, 1, -1])
    if cfg.max_shift_frames > 0:
        shifts = tf.random.stateless_uniform(
            [batch],
            shift_seed,
            minval=-cfg.max_shift_frames,
            maxval=cfg.max_shift_frames + 1,
            dtype=tf.int32,
        )
        x = roll_frames(x, shifts)
    if cfg.noise_std > 0:
        x = x + cfg.noise_std * tf.random.stateless_normal(tf.shape(x), noise_seed)
    if cfg.time_masks > 0 and cfg.time_mask_frames > 0:
        starts, widths = _random_spans(
            batch, cfg.time_masks, cfg.time_mask_frames, frames, time_seed
        )
        x = x * span_mask(frames, starts, widths)[:, :, tf.newaxis]
    if cfg.freq_masks > 0 and cfg.freq_mask_bands > 0:
        starts, widths = _random_spans(batch, cfg.freq_masks, cfg.freq_mask_bands, bands, freq_seed)
        x = x * span_mask(bands, starts, widths)[:, tf.newaxis, :]
    return tf.reshape(x, [batch, frames * bands])


def augment_dataset(
    ds: tf.data.Dataset,
    frames: int,
    bands: int,
    cfg: AugmentConfig,
    seed: int,
    db_scale: np.ndarray | float = 1.0,
) -> tf.data.Dataset:
    """Augments the `logmel` of every (features, label) batch; other features (NSL's NL_nbr_*
    neighbours, weights) pass unchanged. New draws each epoch, reproducible from `seed`."""
    if not cfg.enabled:
        return ds
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def apply(batch, op_seed):
        features, label = batch
        features = dict(features)
        features[F.LOGMEL] = augment(features[F.LOGMEL], frames, bands, cfg, op_seed, db_scale)
        return features, label

    return tf.data.Dataset.zip((ds, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE)
