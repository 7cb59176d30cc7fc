"""The log-mel frontend, written once in TensorFlow ops.

Transform, both trainers, the Embedder and the exported TFLite model all call `log_mel`, so
training and serving compute the same features by construction. It uses only ops that the TFLite
converter maps to builtins (RFFT2D, COMPLEX_ABS, GATHER, MUL, SUM, LOG), so the frontend lives
inside the edge model. librosa is the reference it is tested against (tests/test_frontend.py).

The mel projection is *banded*: each mel filter is non-zero on a short run of FFT bins, so instead
of a dense [257, 40] matrix (41 KB of float constants in a 64 KB model) we gather each band's bins
and weight them ([40, W] indices and weights, ~10 KB), with the same result and ~8x fewer MACs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipeline.config import FrontendConfig

FRONTEND_SCOPE = "frontend"  # the exporter keeps ops under this name scope in float32


def num_frames(samples: int, cfg: FrontendConfig) -> int:
    """Frames `log_mel` yields for `samples` samples (no padding at either end)."""
    return 1 + (samples - cfg.frame_length) // cfg.frame_step


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontendConfig, sample_rate: int) -> np.ndarray:
    """[mel_bands, fft_length // 2 + 1] HTK-scale triangles, linear in Hz, peak 1.

    Identical to `librosa.filters.mel(htk=True, norm=None)`.
    """
    bins = np.linspace(0.0, sample_rate / 2.0, cfg.fft_length // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.mel_bands + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def banded_filterbank(cfg: FrontendConfig, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The filterbank as ([bands, width] bin indices, [bands, width] weights), zero-padded."""
    bank = mel_filterbank(cfg, sample_rate)
    support = [np.flatnonzero(row) for row in bank]
    width = max(1, max(len(s) for s in support))
    indices = np.zeros((len(bank), width), np.int32)
    weights = np.zeros((len(bank), width), np.float32)
    for band, bins in enumerate(support):
        indices[band, : len(bins)] = bins
        weights[band, : len(bins)] = bank[band, bins]
    return indices, weights


def log_mel(pcm: tf.Tensor, cfg: FrontendConfig, sample_rate: int = 16000) -> tf.Tensor:
    """Natural-log mel power spectrogram.

    Args:
      pcm: float32 [..., samples] mono audio in [-1, 1].
    Returns:
      float32 [..., frames, mel_bands], frames = `num_frames(samples, cfg)`.
    """
    indices, weights = banded_filterbank(cfg, sample_rate)
    with tf.name_scope(FRONTEND_SCOPE):
        stft = tf.signal.stft(
            pcm,
            frame_length=cfg.frame_length,
            frame_step=cfg.frame_step,
            fft_length=cfg.fft_length,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        power = tf.square(tf.abs(stft))
        banded = tf.gather(power, tf.constant(indices), axis=-1)  # [..., frames, bands, width]
        mel = tf.reduce_sum(banded * tf.constant(weights), axis=-1)
        return tf.math.log(mel + cfg.log_offset)


def pcm16_to_float(pcm16: tf.Tensor) -> tf.Tensor:
    """int16 PCM -> float32 in [-1, 1)."""
    return tf.cast(pcm16, tf.float32) / 32768.0


def decode_pcm16(raw: tf.Tensor, samples: int) -> tf.Tensor:
    """Serialized little-endian int16 PCM bytes [batch] -> float32 [batch, samples]."""
    pcm = tf.io.decode_raw(raw, tf.int16, little_endian=True)
    return tf.reshape(pcm16_to_float(pcm), [-1, samples])
