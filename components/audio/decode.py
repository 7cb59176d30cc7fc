"""Decodes any audio file into the 16 kHz mono float32 the pipeline works in.

Corpora arrive in every format and rate, with the odd broken file; each failure is an `AudioError`
with a short reason code, so ingest can reject that one file and count rejections by cause.
"""

from __future__ import annotations

import os

import audioread
import numpy as np
import soundfile as sf
import soxr

MIN_RATE, MAX_RATE = 8000, 96000
SILENCE_PEAK = 1e-4  # about -80 dBFS, below one 16-bit step: nothing audible in the file


class AudioError(ValueError):
    """A file that cannot become training audio; `reason` is a machine-readable code.

    Reasons: "unreadable", "empty", "nan_or_inf", "silent", "unsupported_rate" (from
    `load_audio`) and "too_short" (from `windows.window_clip`).
    """

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        super().__init__(path, reason, detail)  # keeps the exception picklable
        self.path, self.reason, self.detail = str(path), reason, detail

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Reads `path` as float32 mono at `sample_rate` (stereo is averaged, other rates resampled)."""
    path = str(path)
    try:
        if os.path.getsize(path) == 0:
            raise AudioError(path, "empty", "zero bytes")
    except OSError as e:
        raise AudioError(path, "unreadable", str(e)) from e
    data, rate = _read(path)
    if data.size == 0:
        raise AudioError(path, "empty", "no samples")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(path, "unsupported_rate", f"{rate} Hz")
    audio = data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise AudioError(path, "nan_or_inf")
    if np.abs(audio).max() < SILENCE_PEAK:
        raise AudioError(path, "silent")
    if rate != sample_rate:
        # soxr (librosa's default resampler) is ~4x faster than resample_poly at equal quality.
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return audio.astype(np.float32, copy=False)


def _read(path: str) -> tuple[np.ndarray, int]:
    """[frames, channels] float32 and the rate; libsndfile detects the format from the content."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, rate
    except Exception as first:
        try:
            return _read_audioread(path)
        except Exception:
            raise AudioError(path, "unreadable", str(first)) from first


def _read_audioread(path: str) -> tuple[np.ndarray, int]:
    """Fallback for what libsndfile lacks (e.g. AAC/M4A, through ffmpeg or GStreamer if present)."""
    with audioread.audio_open(path) as f:
        rate, channels = f.samplerate, f.channels
        pcm = b"".join(f)
    data = np.frombuffer(pcm, dtype=np.int16).reshape(-1, channels)
    return data.astype(np.float32) / 32768.0, rate
