"""Windowing of short and long clips, PCM encoding, and speaker-independent splits."""

import numpy as np
import pytest

from components.audio.decode import AudioError
from components.audio.splits import assign_speakers, speaker_folds
from components.audio.windows import to_pcm16_bytes, window_clip
from pipeline.config import AudioConfig, SplitConfig

CFG = AudioConfig(window_seconds=3.0, hop_seconds=1.5, min_seconds=0.5, max_windows_per_clip=8)


def test_short_clip_is_centred_in_one_padded_window():
    audio = np.ones(16000, np.float32)
    [(start, window)] = window_clip(audio, CFG)
    assert start == 0.0 and len(window) == 48000
    assert window[:16000].sum() == 0 and window[32000:].sum() == 0 and window[16000:32000].all()


def test_exact_window_is_unchanged():
    audio = np.random.default_rng(0).normal(size=48000).astype(np.float32)
    [(start, window)] = window_clip(audio, CFG)
    assert start == 0.0 and np.array_equal(window, audio)


def test_too_short_is_rejected():
    with pytest.raises(AudioError) as info:
        window_clip(np.ones(7999, np.float32), CFG, "clip.wav")
    assert info.value.reason == "too_short" and "clip.wav" in str(info.value)
    assert len(window_clip(np.ones(8000, np.float32), CFG)) == 1


def test_long_clip_windows_at_hop_with_the_last_aligned_to_the_end():
    audio = np.arange(160000, dtype=np.float32)  # 10 s
    windows = window_clip(audio, CFG)
    assert [start for start, _ in windows] == [0.0, 1.5, 3.0, 4.5, 6.0, 7.0]
    assert all(len(w) == 48000 and w[0] == start * 16000 for start, w in windows)
    assert windows[-1][1][-1] == 159999


def test_long_clip_is_capped_evenly():
    audio = np.zeros(60 * 16000, np.float32) + 0.1  # 39 windows before the cap
    starts = [start for start, _ in window_clip(audio, CFG)]
    assert len(starts) == 8 and starts[0] == 0.0 and starts[-1] == 57.0
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1.5


def test_pcm16_bytes_clip_and_are_little_endian():
    raw = to_pcm16_bytes(np.array([0.0, 0.5, -2.0, 2.0], np.float32))
    assert np.frombuffer(raw, "<i2").tolist() == [0, 16384, -32767, 32767]


def test_split_is_deterministic_disjoint_and_complete():
    speakers = [f"c/s{i:02d}" for i in range(12)]
    cfg = SplitConfig(eval_fraction=0.17, test_fraction=0.25, seed=0)
    split = assign_speakers(speakers * 3, cfg)
    assert split == assign_speakers(reversed(speakers), cfg)
    assert set(split) == set(speakers)
    counts = {name: list(split.values()).count(name) for name in ("train", "eval", "test")}
    assert counts == {"train": 7, "eval": 2, "test": 3}
    assert split != assign_speakers(speakers, SplitConfig(seed=1))


@pytest.mark.parametrize("n, fractions", [(3, (0.17, 0.25)), (4, (0.0, 0.0)), (5, (0.5, 0.5))])
def test_every_split_gets_a_speaker(n, fractions):
    split = assign_speakers([f"s{i}" for i in range(n)], SplitConfig(*fractions))
    assert set(split.values()) == {"train", "eval", "test"}


def test_split_needs_three_speakers():
    with pytest.raises(ValueError, match=">= 3 speakers"):
        assign_speakers(["a", "b", "a"], SplitConfig())


def test_speaker_folds():
    speakers = [f"s{i}" for i in range(10)]
    folds = speaker_folds(speakers, 3, seed=0)
    assert sorted(s for fold in folds for s in fold) == sorted(speakers)
    assert sorted(len(fold) for fold in folds) == [3, 3, 4]
    assert folds == speaker_folds(reversed(speakers), 3, seed=0)
    with pytest.raises(ValueError):
        speaker_folds(speakers, 11, seed=0)
