"""Cheap utterance-level prosodic and spectral descriptors of a clip (numpy only): one of the
Embedder's candidate embeddings (`statistics`), and the check that the synthetic corpus is
learnable but not trivially."""

from __future__ import annotations

import numpy as np


def utterance_features(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Cheap prosodic and spectral descriptors, used to check the corpus is learnable but not
    trivially: log-energy mean/std/range, zero-crossing rate, spectral centroid, voiced fraction,
    voiced onsets per second (speaking rate) and the median, spread and slope of an
    autocorrelation F0."""
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), frame)[::hop]
    energy = np.log(np.mean(frames**2, axis=1) + 1e-10)
    active = energy > energy.max() - 5
    zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=1)), axis=1) / 2
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(frame), n=2 * frame))
    freqs = np.fft.rfftfreq(2 * frame, 1 / sample_rate)
    centroid = spectrum @ freqs / (spectrum.sum(axis=1) + 1e-12)
    # Normalised by the window's own autocorrelation (Boersma 1993), so long lags are not
    # penalised and the median-folding below only has to undo octave errors.
    window = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(frame), n=2 * frame)) ** 2)[:frame]
    autocorr = np.fft.irfft(spectrum**2)[:, :frame] / (window / window[0])
    lo, hi = sample_rate // 500, sample_rate // 60
    lags = lo + np.argmax(autocorr[:, lo:hi], axis=1)
    peak = autocorr[np.arange(len(lags)), lags] / (autocorr[:, 0] + 1e-12)
    voiced = active & (peak > 0.5)
    semitones = 12 * np.log2(sample_rate / lags[voiced])
    if len(semitones) >= 3:  # fold octave errors back to within half an octave of the median
        semitones = (semitones - np.median(semitones) + 6) % 12 - 6 + np.median(semitones)
        times = np.flatnonzero(voiced) * hop / sample_rate
        f0 = [np.median(semitones), np.std(semitones), np.polyfit(times, semitones, 1)[0]]
    else:
        f0 = [0.0, 0.0, 0.0]
    onsets = np.count_nonzero(np.diff(voiced.astype(int)) == 1) * sample_rate / len(audio)
    return np.array(
        [
            energy[active].mean(),
            energy[active].std(),
            np.ptp(energy[active]),
            zcr[active].mean(),
            np.log(centroid[active].mean()),
            voiced.mean(),
            onsets,
            *f0,
        ]
    )
