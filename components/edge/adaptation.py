"""On-device speaker adaptation: running per-band log-mel statistics of the device's user.

A speaker-normalised model was trained on log-mel z-scored with each speaker's own statistics
(Transform's per-key analyzer over all of that speaker's frames). A device has only its user's
unlabelled audio, so it accumulates the same statistics as it listens: every window the model
runs on returns its `logmel_moments` (frame means of log-mel and of its square), and the mean and
variance over all windows so far are exactly the frame-level ones (every window has the same
number of frames). The functionals student's model returns the moments of its window's
functionals instead, and their statistics are per window, as Transform's. Until `warmup_windows`
windows have been heard, the fallback statistics (pooled over the training speakers, from the
model's metadata) are used instead.

numpy only: this runs on the device.
"""

from __future__ import annotations

import numpy as np


def inverse_std(variance: np.ndarray) -> np.ndarray:
    """1 / std, and 1 where the variance is 0: what `tft.scale_to_z_score_per_key` divides by."""
    variance = np.asarray(variance, np.float64)
    return 1.0 / np.sqrt(np.where(variance > 0, variance, 1.0))


def statistics_from_moments(moments: np.ndarray) -> np.ndarray:
    """[windows, 2, n] per-window moments -> [2, n] (mean; inverse std) over all frames (log-mel
    bands: every window has the same number of frames) or over all windows (functionals)."""
    moments = np.asarray(moments, np.float64)
    mean = moments[:, 0].mean(axis=0)
    variance = moments[:, 1].mean(axis=0) - mean**2
    return np.stack([mean, inverse_std(variance)]).astype(np.float32)


class SpeakerAdaptation:
    """Running statistics of one speaker, with a warm-up and a reset (a new user)."""

    def __init__(self, fallback: np.ndarray, warmup_windows: int) -> None:
        fallback = np.asarray(fallback, np.float32)
        if fallback.ndim != 2 or fallback.shape[0] != 2:
            raise ValueError(f"fallback statistics must be [2, n], got {fallback.shape}")
        if warmup_windows < 1:
            raise ValueError(f"warmup_windows must be at least 1, got {warmup_windows}")
        self.fallback, self.warmup_windows = fallback, warmup_windows
        self.reset()

    def reset(self) -> None:
        """Forgets the user: the next windows use the fallback again until warmed up."""
        self.windows = 0
        self._sums = np.zeros((2, self.fallback.shape[1]), np.float64)

    @property
    def warmed_up(self) -> bool:
        return self.windows >= self.warmup_windows

    def statistics(self) -> np.ndarray:
        """[2, n] (mean; inverse std) to normalise the next window with."""
        if not self.warmed_up:
            return self.fallback
        mean = self._sums[0] / self.windows
        variance = self._sums[1] / self.windows - mean**2
        return np.stack([mean, inverse_std(variance)]).astype(np.float32)

    def update(self, moments: np.ndarray) -> None:
        """Adds one window's [2, n] moments."""
        moments = np.asarray(moments, np.float64)
        if moments.shape != self._sums.shape:
            raise ValueError(f"moments must be {list(self._sums.shape)}, got {list(moments.shape)}")
        self._sums += moments
        self.windows += 1
