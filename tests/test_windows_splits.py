"""Windowing of short and long clips, PCM encoding, and speaker-independent splits."""

import numpy as np
import pytest

from emograph.components.audio.decode import AudioError
from emograph.components.audio.splits import assign_speakers, extend_splits, speaker_folds
from emograph.components.audio.windows import to_pcm16_bytes, window_clip
from emograph.components.config import AudioConfig, SplitConfig, section_from_json, section_to_json
from emograph.pipeline.config import RunConfig

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


SPEAKERS = [f"c/s{i:02d}" for i in range(12)]


def test_fixed_lists_put_unlisted_speakers_in_train():
    cfg = SplitConfig(eval_speakers=("c/s01",), test_speakers=("c/s02", "c/s03"))
    split = assign_speakers(SPEAKERS, cfg)
    assert split["c/s01"] == "eval" and split["c/s02"] == split["c/s03"] == "test"
    train = {s for s, name in split.items() if name == "train"}
    assert train == set(SPEAKERS) - {"c/s01", "c/s02", "c/s03"}
    full = SplitConfig(
        train_speakers=("c/s00",), eval_speakers=("c/s01",), test_speakers=("c/s02",)
    )
    assert assign_speakers(SPEAKERS[:3], full) == {
        "c/s00": "train",
        "c/s01": "eval",
        "c/s02": "test",
    }


def test_fixed_lists_name_unknown_speakers():
    cfg = SplitConfig(eval_speakers=("c/s01", "c/nobody"), test_speakers=("s02",))
    with pytest.raises(ValueError, match=r"not in the corpus: \['c/nobody', 's02'\]"):
        assign_speakers(SPEAKERS, cfg)


def test_fixed_lists_must_fill_every_split():
    with pytest.raises(ValueError, match=r"leaves \['eval'\] without speakers"):
        assign_speakers(SPEAKERS, SplitConfig(test_speakers=("c/s02",)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eval_speakers": ("a",), "test_speakers": ("a",)}, "listed twice"),
        ({"test_speakers": ("a",), "folds": 3}, "not both"),
        ({"folds": 1}, "folds must be"),
        ({"folds": 3, "fold": 3}, "fold must be"),
        ({"fold": 1}, "fold must be"),
        ({"fold_speakers": (("a",), ("b",)), "folds": 3}, "folds must be 0 or the 2"),
        ({"fold_speakers": (("a",), ("b",)), "fold": 2}, "fold must be"),
        ({"fold_speakers": (("a",), ("a", "b"))}, "several fold_speakers folds"),
        ({"fold_speakers": (("a",),)}, ">= 2 non-empty"),
        ({"fold_speakers": (("a",), ())}, ">= 2 non-empty"),
        ({"fold_speakers": (("a",), ("b",)), "test_speakers": ("c",)}, "not both"),
    ],
)
def test_contradictory_split_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SplitConfig(**kwargs)


def test_folds_cover_every_speaker_once_as_test():
    folds = speaker_folds(SPEAKERS, 4, seed=5)
    tests = []
    for fold in range(4):
        cfg = SplitConfig(eval_fraction=0.25, folds=4, fold=fold, seed=5)
        split = assign_speakers(SPEAKERS, cfg)
        assert split == assign_speakers(reversed(SPEAKERS), cfg)
        by_name = {
            n: sorted(s for s, v in split.items() if v == n) for n in ("train", "eval", "test")
        }
        assert by_name["test"] == folds[fold]
        assert len(by_name["eval"]) == 2 and len(by_name["train"]) == 7  # 0.25 * 9 others
        tests += by_name["test"]
    assert sorted(tests) == SPEAKERS
    other_seed = SplitConfig(eval_fraction=0.25, folds=4, fold=0, seed=6)
    assert assign_speakers(SPEAKERS, other_seed) != assign_speakers(
        SPEAKERS, SplitConfig(eval_fraction=0.25, folds=4, fold=0, seed=5)
    )


def test_folds_leave_eval_and_train_at_least_one_speaker():
    split = assign_speakers(SPEAKERS[:3], SplitConfig(eval_fraction=0.0, folds=3, fold=1))
    assert sorted(split.values()) == ["eval", "test", "train"]
    with pytest.raises(ValueError, match="without speakers"):
        assign_speakers(SPEAKERS[:3], SplitConfig(folds=2))  # a 2-speaker test fold


def test_split_policies_round_trip_through_json():
    for split in (
        SplitConfig(eval_speakers=("c/s01",), test_speakers=("c/s02", "c/s03"), seed=4),
        SplitConfig(folds=6, fold=5, eval_fraction=0.2),
    ):
        config = RunConfig().replace(split=split)
        assert RunConfig.from_json(config.to_json()) == config
        assert section_from_json(SplitConfig, section_to_json(split)) == split


def by_split(split: dict[str, str]) -> dict[str, list[str]]:
    return {n: sorted(s for s, v in split.items() if v == n) for n in ("train", "eval", "test")}


EMOVO = [f"emovo/{sex}{i}" for sex in "fm" for i in (1, 2, 3)]


def test_eval_gets_two_speakers_while_train_keeps_one():
    """Selection on validation needs more than one voice to see speaker effects."""
    for fold in range(3):  # EMOVO's 6 speakers in 3 seeded folds: 2 test, 2 eval, 2 train
        split = by_split(assign_speakers(EMOVO, SplitConfig(folds=3, fold=fold)))
        assert [len(split[n]) for n in ("test", "eval", "train")] == [2, 2, 2]
    fractions = by_split(assign_speakers(EMOVO, SplitConfig()))  # 0.17 * 6 rounds to 1
    assert [len(fractions[n]) for n in ("test", "eval", "train")] == [2, 2, 2]
    four = by_split(assign_speakers(SPEAKERS[:4], SplitConfig(eval_fraction=0.0, folds=4)))
    assert [len(four[n]) for n in ("test", "eval", "train")] == [1, 2, 1]


def test_explicit_folds_are_the_test_speakers():
    folds = (("emovo/f1", "emovo/m1"), ("emovo/f2", "emovo/m2"), ("emovo/f3", "emovo/m3"))
    for count in (0, 3):  # folds 0 means len(fold_speakers)
        for fold, listed in enumerate(folds):
            cfg = SplitConfig(fold_speakers=folds, folds=count, fold=fold)
            split = by_split(assign_speakers(EMOVO, cfg))
            assert split["test"] == sorted(listed)
            assert len(split["eval"]) == 2 and len(split["train"]) == 2
            assert split == by_split(assign_speakers(reversed(EMOVO), cfg))
    actors = [f"ravdess/Actor_{i:02d}" for i in range(1, 25)]
    six = tuple(tuple(actors[i : i + 4]) for i in range(0, 24, 4))  # 1-4, 5-8, ...
    split = by_split(assign_speakers(actors, SplitConfig(fold_speakers=six, fold=5)))
    assert split["test"] == actors[20:] and len(split["eval"]) == 3  # 0.17 * 20 others


def test_explicit_folds_name_unknown_speakers():
    cfg = SplitConfig(fold_speakers=(("emovo/f1", "emovo/m1"), ("f2", "emovo/x9")))
    with pytest.raises(ValueError, match=r"not in the corpus: \['emovo/x9', 'f2'\]"):
        assign_speakers(EMOVO, cfg)  # fold 0 is fine: every fold is checked
    with pytest.raises(ValueError, match="folds"):
        extend_splits({}, EMOVO, SplitConfig(fold_speakers=(("emovo/f1",), ("emovo/m1",))))


def test_fold_speakers_load_from_json_lists_as_tuples():
    text = '{"fold_speakers": [["emovo/f1", "emovo/m1"], ["emovo/f2", "emovo/m2"]], "fold": 1}'
    split = section_from_json(SplitConfig, text)
    assert split.fold_speakers == (("emovo/f1", "emovo/m1"), ("emovo/f2", "emovo/m2"))
    assert split.n_folds == 2 and hash(split)
    config = RunConfig().replace(split=split)
    assert RunConfig.from_json(config.to_json()) == config


def test_experiment_runs_the_listed_folds():
    from emograph.pipeline import cli, experiment

    base = RunConfig().replace(split=SplitConfig(fold_speakers=(("a",), ("b",), ("c",))))
    assert cli.build_parser().parse_args(["experiment", "--out", "x"]).folds is None
    assert experiment.fold_count(base, None) == experiment.fold_count(base, 3) == 3
    with pytest.raises(ValueError, match="lists 3 folds, but 6"):
        experiment.fold_count(base, 6)
    assert experiment.fold_count(RunConfig(), None) == experiment.DEFAULT_FOLDS
    assert experiment.fold_count(RunConfig(), 1) == 1
    configs = [experiment.fold_config(base, "out", 3, fold).split for fold in range(3)]
    assert [(c.n_folds, c.fold, c.fold_speakers) for c in configs] == [
        (3, fold, base.split.fold_speakers) for fold in range(3)
    ]
