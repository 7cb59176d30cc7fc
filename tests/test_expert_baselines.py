"""The openSMILE + linear baselines of `emograph experiment`: clips rebuilt from the pipeline's
windows, and per-split fitting that learns a pitch-coded emotion."""

import numpy as np
import pytest

from emograph.components.expert.baselines import (
    BASELINES,
    Clips,
    clips_from_windows,
    score_baselines,
)

RATE = 16000


def test_clips_are_rebuilt_from_overlapping_windows_without_the_padding():
    signal = np.arange(1, 2 * RATE + 1, dtype=np.float32) / (2 * RATE)
    # windows of 1 s with a 0.5 s hop; the last one zero-padded to its full length
    windows = []
    for start in (0.0, 0.5, 1.0, 1.5):
        pcm = np.zeros(RATE, np.float32)
        piece = signal[int(start * RATE) : int(start * RATE) + RATE]
        pcm[: len(piece)] = piece
        windows.append(("c1", start, pcm, 2, "s1"))
    windows.append(("c0", 0.0, np.ones(RATE // 2, np.float32), 1, "s2"))
    clips = clips_from_windows(reversed(windows), RATE)
    assert clips.ids == ["c0", "c1"]
    np.testing.assert_array_equal(clips.audio[1], signal)
    assert list(clips.labels) == [1, 2] and list(clips.speakers) == ["s2", "s1"]


def _tone(f0: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(1.2 * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))
    return (0.1 * wave + 0.003 * rng.normal(size=len(t))).astype(np.float32)


def _split(speakers: list[str], voice: dict[str, float], rng) -> Clips:
    """Two 'emotions' a fifth apart above each speaker's own voice."""
    ids, audio, labels, spk = [], [], [], []
    for s in speakers:
        for i in range(6):
            label = i % 2
            ids.append(f"{s}-{i}")
            audio.append(_tone(voice[s] * (1.5 if label else 1.0), rng))
            labels.append(label)
            spk.append(s)
    return Clips(ids, audio, np.asarray(labels), np.asarray(spk))


def test_baselines_learn_an_emotion_coded_in_pitch_relative_to_the_speaker():
    rng = np.random.default_rng(0)
    voice = {"a": 110.0, "b": 140.0, "c": 180.0, "d": 125.0, "e": 160.0}
    splits = {
        "train": _split(["a", "b", "c"], voice, rng),
        "eval": _split(["d"], voice, rng),
        "test": _split(["e"], voice, rng),
    }
    cache = {}
    results = score_baselines(
        splits, ("calm", "excited"), RATE, ["egemaps_lr_spk", "egemaps_svm_raw"], cache
    )
    assert results["egemaps_lr_spk"]["clip_uar"] == 1.0
    assert set(results["egemaps_svm_raw"]) == {"clip_uar", "recall", "c", "val_uar"}
    assert len(cache) == 30  # each clip's functionals computed once, shared by both baselines


def test_an_unknown_baseline_is_refused():
    assert "compare_lr_spk" in BASELINES and len(BASELINES) == 8
    with pytest.raises(ValueError, match="unknown baseline"):
        score_baselines({}, ("a",), RATE, ["mfcc_lr_spk"])


def test_nsl_differences_pair_by_fold_and_seed_and_baselines_by_fold():
    from emograph.pipeline.experiment import nsl_differences

    def row(variant, seed, uar):
        return {"variant": variant, "seed": seed, "int8_clip_uar": uar}

    folds = [
        {
            "fold": 0,
            "rows": [row("nsl_student", 0, 0.6), row("nsl_student", 1, 0.4)]
            + [row("speech_only", 0, 0.5), row("speech_only", 1, 0.5)],
            "baselines": {"compare_lr_spk": {"clip_uar": 0.45}},
        },
        {
            "fold": 1,
            "rows": [row("nsl_student", 0, 0.7), row("speech_only", 0, 0.4)],
            "baselines": {"compare_lr_spk": {"clip_uar": 0.8}},
        },
    ]
    d = nsl_differences(folds)
    assert d["speech_only"]["pairs"] == 3
    assert d["speech_only"]["mean"] == pytest.approx((0.1 - 0.1 + 0.3) / 3)
    assert d["compare_lr_spk"]["pairs"] == 3
    assert d["compare_lr_spk"]["mean"] == pytest.approx((0.15 - 0.05 - 0.1) / 3)
