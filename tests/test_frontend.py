"""The TF log-mel frontend against librosa, its reference."""

import librosa
import numpy as np
import pytest

import components  # noqa: F401
from components.audio import frontend
from pipeline.config import FrontendConfig

CFG = FrontendConfig()
SR = 16000


def _speechlike(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voiced = 0.3 * np.sign(np.sin(2 * np.pi * 140 * t)) * np.abs(np.sin(2 * np.pi * 3 * t))
    return (voiced + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def test_filterbank_equals_librosa_htk():
    ours = frontend.mel_filterbank(CFG, SR)
    ref = librosa.filters.mel(
        sr=SR,
        n_fft=CFG.fft_length,
        n_mels=CFG.mel_bands,
        fmin=CFG.fmin,
        fmax=CFG.fmax,
        htk=True,
        norm=None,
    )
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_banded_filterbank_is_the_dense_one():
    indices, weights = frontend.banded_filterbank(CFG, SR)
    dense = np.zeros_like(frontend.mel_filterbank(CFG, SR))
    for band in range(CFG.mel_bands):
        np.add.at(dense[band], indices[band], weights[band])
    np.testing.assert_allclose(dense, frontend.mel_filterbank(CFG, SR), atol=0)
    assert indices.shape[1] < 40  # the point of banding: far narrower than 257 bins


def test_log_mel_matches_librosa_within_1e_3():
    """Max |difference| of natural-log mel power, on bands with real energy, is below 1e-3."""
    y = _speechlike()
    # librosa centres the 400-sample window inside its 512-sample frame: shift by the offset.
    offset = (CFG.fft_length - CFG.frame_length) // 2
    ref = librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=CFG.fft_length,
        hop_length=CFG.frame_step,
        win_length=CFG.frame_length,
        window="hann",
        center=False,
        power=2.0,
        n_mels=CFG.mel_bands,
        fmin=CFG.fmin,
        fmax=CFG.fmax,
        htk=True,
        norm=None,
    ).T
    ours = frontend.log_mel(y[offset:][None], CFG, SR).numpy()[0]
    frames = min(len(ref), len(ours))
    np.testing.assert_allclose(ours[:frames], np.log(ref[:frames] + CFG.log_offset), atol=1e-3)


def test_shape_and_frame_count():
    y = np.zeros((2, 24000), np.float32)
    out = frontend.log_mel(y, CFG, SR)
    assert out.shape == (2, frontend.num_frames(24000, CFG), CFG.mel_bands)


@pytest.mark.parametrize("value", [0, 1, -1, 32767, -32768])
def test_decode_pcm16_round_trip(value):
    raw = np.full(4, value, "<i2").tobytes()
    out = frontend.decode_pcm16([raw], 4).numpy()
    np.testing.assert_array_equal(out, np.full((1, 4), value / 32768.0, np.float32))
