"""The device reads audio as ingest did for training: the same windows from the same file, though
the device resamples with scipy (resample_poly) and ingest with soxr (no librosa on a device)."""

import numpy as np
import pytest
import soundfile as sf

from emograph.components.audio.decode import load_audio
from emograph.components.audio.windows import window_clip
from emograph.components.config import AudioConfig
from emograph.components.edge import audio as edge_audio


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 12))
    return (0.2 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize(
    ("rate", "channels", "seconds"), [(44100, 2, 4.3), (8000, 1, 2.2), (16000, 1, 1.1)]
)
def test_device_windows_match_training_windows(tmp_path, rate, channels, seconds):
    cfg = AudioConfig(max_windows_per_clip=100)
    mono = _speechlike(seconds, rate)
    signal = np.stack([mono, 0.8 * mono], axis=1) if channels == 2 else mono
    path = tmp_path / "clip.wav"
    sf.write(path, signal, rate, subtype="FLOAT")

    training = window_clip(load_audio(path, cfg.sample_rate), cfg)
    device = edge_audio.clip_windows(
        edge_audio.load(path, cfg.sample_rate), cfg.window_samples, cfg.hop_samples
    )
    assert device.shape == (len(training), cfg.window_samples)
    for (_, window), on_device in zip(training, device, strict=True):
        # Two resamplers differ by their filters' ripple, far below what the log-mel resolves.
        error = np.sqrt(np.mean((window - on_device) ** 2)) / np.sqrt(np.mean(window**2))
        assert error < 0.01, error
