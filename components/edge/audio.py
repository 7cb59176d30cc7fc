"""Audio in, model windows out: numpy, soundfile and scipy only (no librosa on a device).

Windowing follows ingest (pipeline AudioConfig), so the model sees what it was trained on:
a clip shorter than a window is zero-padded, centred; longer audio is cut into sliding windows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from math import gcd
from typing import BinaryIO

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

# Ingest's "silent" threshold (components/audio/decode.py, which a device cannot import): below
# it predict warns that the audio holds nothing audible.
SILENCE_PEAK = 1e-4


class AudioInputError(ValueError):
    """Audio a model cannot be run on; the message names the file."""


def load(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Reads any file soundfile reads as float32 mono at `sample_rate`.

    A missing path, a directory and NaN or Inf samples (which would give a confident-looking
    label of nothing) raise AudioInputError; a file soundfile cannot read, its LibsndfileError.
    """
    if os.path.isdir(path):
        raise AudioInputError(f"{path} is a directory, not an audio file")
    if not os.path.exists(path):
        raise AudioInputError(f"no such file: {path}")
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        raise AudioInputError(f"{path}: holds NaN or Inf samples, which are not audio")
    return resample(data.mean(axis=1), rate, sample_rate)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return samples.astype(np.float32, copy=False)
    g = gcd(rate, target_rate)
    return resample_poly(samples, target_rate // g, rate // g).astype(np.float32)


def pad_centre(samples: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, np.float32)
    start = (length - len(samples)) // 2
    out[start : start + len(samples)] = samples
    return out


def clip_windows(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Windows of one clip, [n, window]: sliding, plus one flush with the end so none is lost."""
    if len(samples) == 0:
        raise ValueError("empty audio")
    if len(samples) <= window:
        return pad_centre(samples, window)[None]
    starts = list(range(0, len(samples) - window + 1, hop))
    if starts[-1] + window < len(samples):
        starts.append(len(samples) - window)
    return np.stack([samples[s : s + window] for s in starts])


def sliding_windows(
    chunks: Iterable[np.ndarray], window: int, hop: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, window) every `hop` samples of a stream of 1-D chunks, as soon as each fills.

    When the stream ends past the last window, one more window flush with its end covers the
    tail: the same windows as `clip_windows` gives the whole audio, so stream and file mode hear
    all of it. A stream shorter than a window gives one centred, padded window. Memory stays
    about a window (or a hop, if longer) plus a chunk, however long the stream.
    """
    buffer = np.zeros(0, np.float32)
    offset = 0  # absolute index of buffer[0]
    start = 0  # absolute index of the next window
    for chunk in chunks:
        chunk = np.asarray(chunk, np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"stream chunks must be 1-D mono, got shape {chunk.shape}")
        buffer = np.concatenate([buffer, chunk])
        while start + window <= offset + len(buffer):
            yield start, start + window, buffer[start - offset : start - offset + window]
            start += hop
        # Keep what the next window needs and the last window's worth for the final flush.
        cut = max(0, min(start - offset, len(buffer) - window))
        buffer, offset = buffer[cut:], offset + cut
    end = offset + len(buffer)
    if start == 0 and len(buffer):
        yield 0, len(buffer), pad_centre(buffer, window)
    elif start and start - hop + window < end:
        yield end - window, end, buffer[len(buffer) - window :]


def read_pcm16(stream: BinaryIO, chunk_samples: int) -> Iterator[np.ndarray]:
    """Raw s16le mono from a byte stream (e.g. stdin) as float32 chunks in [-1, 1]."""
    rest = b""
    while data := stream.read(2 * chunk_samples):
        data = rest + data
        usable = len(data) - len(data) % 2
        rest = data[usable:]
        yield np.frombuffer(data[:usable], "<i2").astype(np.float32) / 32768.0
