"""TF Transform preprocessing: raw PCM windows -> normalised log-mel features.

Two normalisations (FrontendConfig.normalisation), both per mel band over every frame:
- "global": mean and inverse std of the analysis set (the train split), also emitted as features
  (`logmel_mean`, `logmel_inv_std`, 2 x 40 floats per example) so the trainers can put the exact
  same normalisation inside the edge model;
- "speaker": each speaker's own mean and std (a per-key TFT analyzer keyed by speaker), the
  ~10-UAR-point lever of speaker-independent SER. It needs the unlabelled audio of every speaker,
  so the pipeline analyses all splits in this mode; the edge model then takes the statistics as
  an input and the device accumulates them from its user's audio (components/edge/adaptation.py
  computes the same mean and variance online).

Besides the log-mel it emits `functionals` (frontend.functionals of the raw log-mel, 8 per band),
z-scored per speaker, or globally: the functionals student's input (which needs the speaker
mode: components/config.py).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import AudioConfig, FrontendConfig, section_from_json


def label_ids(labels: tf.Tensor, classes: tuple[str, ...]) -> tf.Tensor:
    """Label strings [B] -> int64 index in `classes`, F.UNLABELLED_ID for an unlabelled clip
    (ingest already rejected unknown labels)."""
    matches = tf.equal(tf.expand_dims(labels, -1), tf.constant(classes)[tf.newaxis, :])
    index = tf.argmax(tf.cast(matches, tf.int64), axis=-1)
    return tf.where(tf.reduce_any(matches, axis=-1), index, tf.constant(F.UNLABELLED_ID, tf.int64))


def preprocessing_fn(inputs: dict[str, tf.Tensor], custom_config: dict[str, Any]) -> dict:
    audio = section_from_json(AudioConfig, custom_config["audio"])
    front = section_from_json(FrontendConfig, custom_config["frontend"])
    classes = tuple(custom_config["classes"])

    pcm = frontend.decode_pcm16(tf.reshape(inputs[F.AUDIO], [-1]), audio.window_samples)
    logmel, voice = frontend.log_mel_and_voice(pcm, front, audio.sample_rate)  # [B, T, M|2]
    frames = tf.reshape(logmel, [-1, front.mel_bands])  # analyzers reduce over every frame
    mean = tft.mean(frames, reduce_instance_dims=False)
    inv_std = tf.math.rsqrt(tft.var(frames, reduce_instance_dims=False) + 1e-6)
    batch = tf.shape(logmel)[0]
    frames_per_window = frontend.num_frames(audio.window_samples, front)
    label = tf.reshape(inputs[F.LABEL], [-1])
    speaker = tf.reshape(inputs[F.SPEAKER], [-1])
    stats = frontend.functionals(logmel, voice)  # of the raw log-mel: see frontend.functionals
    if front.normalisation == "speaker":
        frame_speakers = tf.repeat(speaker, frames_per_window)  # frames are window-major
        normalised = tft.scale_to_z_score_per_key(frames, frame_speakers, elementwise=True)
        functionals = tft.scale_to_z_score_per_key(stats, speaker, elementwise=True)
    else:
        normalised = (frames - mean) * inv_std
        functionals = tft.scale_to_z_score(stats, elementwise=True)
    return {
        F.LOGMEL: tf.reshape(normalised, [-1, frames_per_window * front.mel_bands]),
        F.FUNCTIONALS: frontend.bounded(functionals),
        F.LABEL_ID: label_ids(label, classes),
        F.LABEL: label,
        F.ID: tf.reshape(inputs[F.ID], [-1]),
        F.SPEAKER: speaker,
        F.CORPUS: tf.reshape(inputs[F.CORPUS], [-1]),
        F.LOGMEL_MEAN: tf.broadcast_to(mean, [batch, front.mel_bands]),
        F.LOGMEL_INV_STD: tf.broadcast_to(inv_std, [batch, front.mel_bands]),
    }
