"""Cuts a decoded clip into the fixed-length windows the models take."""

from __future__ import annotations

import numpy as np

from emograph.components.audio.decode import AudioError
from emograph.components.config import AudioConfig


def window_clip(
    audio: np.ndarray, cfg: AudioConfig, path: str = "<audio>"
) -> list[tuple[float, np.ndarray]]:
    """(start seconds, exactly `cfg.window_samples` samples) for each window of `audio`.

    A clip shorter than a window is zero-padded on both sides (start 0.0) so its speech stays in
    the middle; a longer one gives windows every hop plus one aligned to its end, so no tail is
    lost, thinned evenly to `cfg.max_windows_per_clip`. Raises AudioError "too_short" below
    `cfg.min_seconds`; `path` only names the clip in that error.
    """
    n, size, rate = len(audio), cfg.window_samples, cfg.sample_rate
    if n < cfg.min_seconds * rate:
        raise AudioError(path, "too_short", f"{n / rate:.2f} s < {cfg.min_seconds} s")
    if n <= size:
        left = (size - n) // 2
        return [(0.0, np.pad(audio, (left, size - n - left)))]
    starts = list(range(0, n - size + 1, cfg.hop_samples))
    if starts[-1] != n - size:
        starts.append(n - size)
    if len(starts) > cfg.max_windows_per_clip:
        keep = np.linspace(0, len(starts) - 1, cfg.max_windows_per_clip).round().astype(int)
        starts = [starts[i] for i in keep]
    return [(start / rate, audio[start : start + size]) for start in starts]


def to_pcm16_bytes(x: np.ndarray) -> bytes:
    """Float audio -> little-endian int16 PCM bytes (the AUDIO feature), clipping to [-1, 1]."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
