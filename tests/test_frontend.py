"""The TF log-mel frontend against librosa, its reference."""

import librosa
import numpy as np
import pytest
import tensorflow as tf

import emograph.components.compat  # noqa: F401
from emograph.components.audio import frontend
from emograph.components.config import FrontendConfig

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


def test_mel_segments_are_the_dense_filterbank():
    bins = frontend.num_bins(CFG, SR)
    seg = frontend.mel_segments(CFG, SR, bins)
    sums = np.zeros((2, (CFG.mel_bands + 1) // 2, bins))
    for parity in (0, 1):
        sums[parity, seg.ids[parity], np.arange(bins)] = seg.weights[parity]
    dense = sums.reshape(-1, bins)[seg.order]
    np.testing.assert_array_equal(dense, frontend.mel_filterbank(CFG, SR)[:, :bins])
    assert bins < CFG.fft_length // 2 + 1  # bins above fmax are not computed


@pytest.mark.parametrize("bands", [24, 40, 41])
def test_mel_segments_for_odd_and_even_band_counts(bands):
    cfg = FrontendConfig(mel_bands=bands)
    seg = frontend.mel_segments(cfg, SR, frontend.num_bins(cfg, SR))
    assert sorted(seg.order) == list(range(bands))
    assert np.all(np.diff(seg.ids, axis=1) >= 0)  # SEGMENT_SUM needs sorted ids


@pytest.mark.parametrize("fft_length, frame_length", [(512, 400), (256, 256), (1024, 640)])
@pytest.mark.parametrize("seconds", [1.2, 1.2125])  # > FRAMES_PER_CHUNK frames; ragged tail
def test_four_step_dft_is_the_fft(fft_length, frame_length, seconds):
    """|DFT|^2 of the matmul DFT equals numpy's FFT of the Hann-windowed, padded frames."""
    cfg = FrontendConfig(fft_length=fft_length, frame_length=frame_length)
    bins = fft_length // 2 - 3
    plan = frontend.dft_plan(cfg, bins)
    y = _speechlike(seconds)
    assert frontend.num_frames(len(y), cfg) > frontend.FRAMES_PER_CHUNK
    power = frontend.power_spectrum(y[None], cfg, plan).numpy()[0]
    power = power.reshape(len(power), -1)[:, :bins]
    frames = librosa.util.frame(y, frame_length=frame_length, hop_length=cfg.frame_step).T
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
    ref = np.abs(np.fft.rfft(frames * window, fft_length)) ** 2
    np.testing.assert_allclose(power, ref[:, :bins], rtol=1e-4, atol=1e-5 * ref.max())


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


def test_a_doubled_hop_gives_every_other_frame():
    """`frame_step` = 320 (the 20 ms hop that halves the edge model's cost, README "Edge cost")."""
    y = _speechlike(3.0)[None]
    every = frontend.log_mel(y, CFG, SR).numpy()
    doubled = frontend.log_mel(y, FrontendConfig(frame_step=2 * CFG.frame_step), SR).numpy()
    np.testing.assert_allclose(doubled, every[:, ::2], atol=1e-5)


@pytest.mark.parametrize("value", [0, 1, -1, 32767, -32768])
def test_decode_pcm16_round_trip(value):
    raw = np.full(4, value, "<i2").tobytes()
    out = frontend.decode_pcm16([raw], 4).numpy()
    np.testing.assert_array_equal(out, np.full((1, 4), value / 32768.0, np.float32))


def _numpy_functionals(x: np.ndarray) -> np.ndarray:
    delta = np.diff(x, axis=1)
    loudness = x.mean(axis=2)
    loud = (loudness >= loudness.mean(axis=1, keepdims=True))[..., None]
    count = loud.sum(axis=1)
    loud_mean = (x * loud).sum(axis=1) / count
    loud_std = np.sqrt((np.square(x - loud_mean[:, None]) * loud).sum(axis=1) / count)
    stats = (x.mean(1), x.std(1), x.max(1), x.min(1), np.abs(delta).mean(1), delta.std(1))
    return np.concatenate([*stats, loud_mean, loud_std], axis=1)


def test_band_functionals_are_the_statistics_of_each_band():
    x = np.random.default_rng(2).standard_normal((3, 50, 8)).astype(np.float32)
    x[0, :10] += 3.0  # a loud start: the loud-frame statistics differ from the whole window's
    got = frontend.band_functionals(tf.constant(x)).numpy()
    assert got.shape == (3, frontend.FUNCTIONALS_PER_BAND * 8)
    np.testing.assert_allclose(got, _numpy_functionals(x), atol=1e-3)


def test_functionals_z_scored_per_speaker_ignore_a_per_band_gain():
    """Per-band affine changes of the log-mel (a channel's colour, a speaker's level) move every
    functional affinely, so z-scoring them over a speaker's windows undoes it; this is why
    Transform may compute them from the raw log-mel."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 50, 8)).astype(np.float32)
    x[:, :, :] += rng.uniform(0, 2, (20, 1, 1)).astype(np.float32)  # loudness varies by window
    scaled = 1.7 * x + rng.normal(size=8).astype(np.float32)  # one gain, per-band offsets

    def z(values):
        return (values - values.mean(0)) / values.std(0)

    a, b = (z(frontend.band_functionals(tf.constant(v)).numpy()) for v in (x, scaled))
    np.testing.assert_allclose(a, b, atol=2e-3)


def _harmonic(f0: float, seconds: float = 3.0, gaps: bool = False) -> np.ndarray:
    """A voice-like harmonic series at f0 (1/h amplitudes up to 4 kHz), optionally with the
    middle third silent but for faint noise."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.2 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, int(4000 // f0) + 1))
    if gaps:
        third = len(t) // 3
        x[third : 2 * third] = 1e-3 * np.random.default_rng(0).standard_normal(third)
    return x.astype(np.float32)


def _voice(x: np.ndarray) -> np.ndarray:
    return frontend.log_mel_and_voice(tf.constant(x[np.newaxis]), FrontendConfig(), SR)[1][0]


@pytest.mark.parametrize("f0", [110.0, 180.0, 320.0])
def test_voice_track_finds_the_pitch_of_a_harmonic_voice(f0):
    voice = _voice(_harmonic(f0)).numpy()
    expected = 12 * np.log2(f0 / frontend.PITCH_REFERENCE_HZ)
    assert np.mean(voice[:, 1] > 0) > 0.95  # voiced
    assert np.median(np.abs(voice[:, 0] - expected)) <= 0.55  # the grid is one per semitone


def test_silence_and_noise_are_not_voiced():
    voice = _voice(_harmonic(180.0, gaps=True)).numpy()
    third = len(voice) // 3
    assert np.mean(voice[third + 3 : 2 * third - 3, 1] > 0) < 0.05  # the faint-noise gap
    assert np.mean(voice[: third - 3, 1] > 0) > 0.9
    assert not np.any(_voice(np.zeros(SR, np.float32)).numpy()[:, 1] > 0)


def test_log_mel_and_voice_log_mel_is_log_mel():
    x = _harmonic(150.0, seconds=1.0)[np.newaxis]
    both = frontend.log_mel_and_voice(tf.constant(x), FrontendConfig(), SR)[0]
    np.testing.assert_array_equal(both, frontend.log_mel(tf.constant(x), FrontendConfig(), SR))


def test_pitch_functionals_of_a_known_contour():
    pitch = np.array([[40.0, 41.0, 43.0, 0.0, 42.0, 41.0]], np.float32)
    voiced = np.array([[1, 1, 1, 0, 1, 1]], np.float32)
    voice = tf.constant(np.stack([pitch, 2 * voiced - 1], -1))
    got = frontend.pitch_functionals(voice).numpy()[0]
    on = pitch[0][voiced[0] > 0]
    changes = np.array([1.0, 2.0, -1.0])  # consecutive voiced pairs only
    expected = [on.mean(), on.std(), 43.0, 40.0, 1.0, 1 / 3, changes.std(), 5 / 6]
    np.testing.assert_allclose(got, expected, atol=1e-3)
    unvoiced = frontend.pitch_functionals(tf.constant([[[50.0, -1.0]] * 4])).numpy()
    np.testing.assert_allclose(unvoiced, np.zeros((1, 8)), atol=2e-3)  # sqrt(eps) in the stds


def test_functionals_width():
    x = _harmonic(150.0, seconds=1.0)[np.newaxis]
    logmel, voice = frontend.log_mel_and_voice(tf.constant(x), FrontendConfig(), SR)
    got = frontend.functionals(logmel, voice)
    assert got.shape == (1, frontend.functionals_width(FrontendConfig().mel_bands))


def test_bounded_functionals_are_finite_and_clipped():
    z = tf.constant([[np.nan, np.inf, -np.inf, 1e9, -3.0, 0.5]], tf.float32)
    got = frontend.bounded(z).numpy()
    bound = frontend.FUNCTIONALS_BOUND
    np.testing.assert_array_equal(got, [[0.0, 0.0, 0.0, bound, -3.0, 0.5]])
