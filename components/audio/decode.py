"""Decodes any audio file into the 16 kHz mono float32 the pipeline works in.

Corpora arrive in every format and rate, with the odd broken file; each failure is an `AudioError`
with a short reason code, so ingest can reject that one file and count rejections by cause. What
a kept file lost on the way (a WAV cut short, samples clipped) is a `Note`, so it is reported too.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import audioread
import numpy as np
import soundfile as sf
import soxr

MIN_RATE, MAX_RATE = 8000, 96000
SILENCE_PEAK = 1e-4  # about -80 dBFS, below one 16-bit step: nothing audible in the file
# A WAV data size this large is a streaming writer's placeholder for "unknown length".
WAV_UNKNOWN_SIZE = 0x7FFFF000


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


@dataclass(frozen=True)
class Note:
    """What decoding lost of a usable file: `kind` a code, `detail` for people.

    Kinds: "truncated" (a WAV holding fewer frames than its header promises: the part read is
    kept) and "clipped" (float samples beyond +-1, clipped to +-1 as 16-bit PCM must be).
    """

    kind: str
    detail: str


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Reads `path` as float32 mono at `sample_rate` (stereo is averaged, other rates resampled)."""
    return read_audio(path, sample_rate)[0]


def read_audio(path: str | os.PathLike, sample_rate: int = 16000) -> tuple[np.ndarray, list[Note]]:
    """`load_audio` with the `Note`s of what the file lost, for ingest's report.

    Samples beyond +-1 are clipped per channel before the channels are averaged.
    """
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
    if not np.isfinite(data).all():
        raise AudioError(path, "nan_or_inf")
    notes = []
    promised = _wav_promised_frames(path)
    if promised is not None and promised > len(data):
        notes.append(
            Note(
                "truncated",
                f"{len(data) / rate:.2f} s read of the {promised / rate:.2f} s its header "
                "promises (the file was cut short)",
            )
        )
    beyond = np.abs(data) > 1.0
    if beyond.any():
        notes.append(
            Note(
                "clipped",
                f"{beyond.mean():.2%} of samples beyond +-1 (peak {np.abs(data).max():.2f}) "
                "clipped to +-1",
            )
        )
        data = np.clip(data, -1.0, 1.0)
    audio = data.mean(axis=1, dtype=np.float32)
    if np.abs(audio).max() < SILENCE_PEAK:
        raise AudioError(path, "silent")
    if rate != sample_rate:
        # soxr (librosa's default resampler) is ~4x faster than resample_poly at equal quality.
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return audio.astype(np.float32, copy=False), notes


def _wav_promised_frames(path: str) -> int | None:
    """The frames a RIFF/WAVE header says its data chunk holds, if the file holds fewer bytes
    than that (None for other formats, a whole file or an unknown length)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        riff = f.read(12)
        if riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
            return None
        block_align = 0
        while len(header := f.read(8)) == 8:
            chunk, length = struct.unpack("<4sI", header)
            if chunk == b"fmt " and length >= 16:
                block_align = struct.unpack("<12xH", f.read(14))[0]
                f.seek(length - 14 + length % 2, os.SEEK_CUR)
            elif chunk == b"data":
                whole = f.tell() + length <= size or length >= WAV_UNKNOWN_SIZE
                return None if whole or not block_align else length // block_align
            else:
                f.seek(length + length % 2, os.SEEK_CUR)
    return None


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
