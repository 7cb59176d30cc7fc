"""The field's standard "expert" acoustic features: openSMILE utterance functionals.

- eGeMAPSv02 (Eyben et al. 2016): 88 functionals of pitch, loudness, voice quality, formants
  and spectral balance, the minimalistic set recommended for affective computing;
- ComParE_2016 (Schuller et al. 2016): 6373 functionals of a large low-level-descriptor set, the
  Computational Paralinguistics Challenge baseline.

In speaker-independent SER these are only competitive once each speaker's features are
z-scored with that speaker's own statistics (`speaker_normalise`, ~10 UAR points): the voice
moves most functionals more than the emotion does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import opensmile

FEATURE_SETS = ("eGeMAPSv02", "ComParE_2016")
DIMENSIONS = {"eGeMAPSv02": 88, "ComParE_2016": 6373}
MIN_STD = 1e-8
# openSMILE converts the float signal to int16 by scaling with 32768 and a cast that wraps
# around; clipping first keeps an overloaded signal's peaks at full scale instead.
_FULL_SCALE = 32767 / 32768


def _check(feature_set: str) -> str:
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; valid: {FEATURE_SETS}")
    return feature_set


def dimension(feature_set: str) -> int:
    """Number of functionals of `feature_set` (88 for eGeMAPSv02, 6373 for ComParE_2016)."""
    return DIMENSIONS[_check(feature_set)]


def feature_names(feature_set: str) -> tuple[str, ...]:
    """openSMILE's names of the functionals, in the order `functionals` returns them."""
    return tuple(cached_smile(_check(feature_set)).feature_names)


def new_smile(feature_set: str) -> opensmile.Smile:
    """A fresh functionals extractor (a Beam DoFn makes its own in setup())."""
    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, _check(feature_set)),
        feature_level=opensmile.FeatureLevel.Functionals,
    )


@functools.lru_cache(maxsize=len(FEATURE_SETS))
def cached_smile(feature_set: str) -> opensmile.Smile:
    """One extractor per feature set per process (constructing one parses its config)."""
    return new_smile(feature_set)


def extract(smile: opensmile.Smile, signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """float32[d] functionals of one mono signal in [-1, 1] with the given extractor.

    Non-finite values (e.g. every functional of a signal too short for one frame, which
    openSMILE returns as NaN) become 0.
    """
    signal = np.asarray(signal, np.float32)
    if signal.ndim != 1:
        raise ValueError(f"expected a mono signal [samples], got shape {signal.shape}")
    signal = np.clip(signal, -1.0, _FULL_SCALE)
    values = smile.process_signal(signal, sample_rate).to_numpy(np.float64)
    if values.shape[0] != 1:
        raise ValueError(f"openSMILE returned {values.shape[0]} rows, expected one")
    return np.nan_to_num(values[0], nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def functionals(signal: np.ndarray, sample_rate: int, feature_set: str) -> np.ndarray:
    """float32[dimension(feature_set)] utterance functionals of one mono float signal in
    [-1, 1] (samples beyond full scale are clipped); non-finite values become 0."""
    return extract(cached_smile(_check(feature_set)), signal, sample_rate)


def speaker_normalise(x: np.ndarray, speakers: Sequence[str]) -> np.ndarray:
    """Rows [n, d] z-scored with their own speaker's mean and std (float64), as float32.

    A feature that does not vary within a speaker (std below MIN_STD, e.g. a speaker with one
    row) becomes 0 for that speaker.
    """
    x = np.asarray(x, np.float64)
    speakers = np.asarray(speakers)
    if x.ndim != 2:
        raise ValueError(f"expected rows [n, d], got shape {x.shape}")
    if speakers.shape != (len(x),):
        raise ValueError(f"{len(x)} rows but speakers of shape {speakers.shape}")
    out = np.empty(x.shape, np.float32)
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        rows = x[mine]
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        out[mine] = (rows - mean) / np.maximum(std, MIN_STD)
    return out
