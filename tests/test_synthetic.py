"""The synthetic corpus: deterministic, well-formed, emotional enough to learn but not trivially."""

from __future__ import annotations

import csv
import filecmp

import numpy as np
import pytest
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from emograph.components.audio.descriptors import utterance_features
from emograph.components.audio.synthetic import (
    DOMAINS,
    generate_corpus,
    make_speakers,
    synthesize_utterance,
    write_corpus,
)
from emograph.components.config import EMOTIONS, SynthConfig

SR = 16000


def _utterance(seed: int, domain: str = "source", emotion: str = "happy") -> np.ndarray:
    speaker = make_speakers(domain, 2, seed=0)[1]
    return synthesize_utterance(np.random.default_rng(seed), speaker, emotion, DOMAINS[domain])


def test_same_seed_same_samples_and_different_seeds_differ():
    np.testing.assert_array_equal(_utterance(7), _utterance(7))
    a, b = _utterance(7), _utterance(8)
    assert len(a) != len(b) or not np.array_equal(a, b)


@pytest.mark.parametrize("domain", sorted(DOMAINS))
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_utterance_is_float32_mono_in_range_and_long_enough(domain, emotion):
    audio = _utterance(3, domain, emotion)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.2 * SR <= len(audio) <= 2.8 * SR
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 1e-3  # not silent


def test_unknown_emotion_is_rejected():
    with pytest.raises(ValueError, match="bored"):
        _utterance(0, emotion="bored")


def test_speaker_ids_are_distinct_across_domains():
    source = {s.id for s in make_speakers("source", 10, seed=0)}
    target = {s.id for s in make_speakers("target", 10, seed=0)}
    assert len(source) == len(target) == 10 and not source & target


def test_speakers_do_not_depend_on_how_many_are_made():
    assert make_speakers("target", 3, seed=1) == make_speakers("target", 5, seed=1)[:3]


def test_write_corpus_files_match_config_and_are_reproducible(tmp_path):
    cfg = SynthConfig(speakers=2, utterances_per_emotion=2, seed=5)
    classes = ("neutral", "angry", "sad")
    manifest = write_corpus("target", tmp_path / "a", cfg, classes)

    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "label", "speaker"]
    assert len(rows) == cfg.speakers * len(classes) * cfg.utterances_per_emotion
    assert {r["label"] for r in rows} == set(classes)
    assert {r["speaker"] for r in rows} == {"tgt_spk00", "tgt_spk01"}
    for row in rows:
        info = sf.info(str(tmp_path / "a" / row["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert row["path"].startswith(f"wav/{row['speaker']}/{row['speaker']}_{row['label']}_")

    again = write_corpus("target", tmp_path / "b", cfg, classes)
    assert filecmp.cmp(manifest, again, shallow=False)
    for row in rows:
        assert filecmp.cmp(tmp_path / "a" / row["path"], tmp_path / "b" / row["path"], False)


def test_write_corpus_skips_when_done_and_redoes_when_config_changes(tmp_path):
    cfg = SynthConfig(speakers=1, utterances_per_emotion=1, seed=0)
    manifest = write_corpus("source", tmp_path, cfg, ("sad",))
    written = manifest.stat().st_mtime_ns
    assert write_corpus("source", tmp_path, cfg, ("sad",)).stat().st_mtime_ns == written

    write_corpus("source", tmp_path, cfg, ("happy",))
    assert manifest.read_text().splitlines()[1:] == [
        "wav/src_spk00/src_spk00_happy_0.wav,happy,src_spk00"
    ]
    assert not (tmp_path / "wav" / "src_spk00" / "src_spk00_sad_0.wav").exists()


def test_emotion_is_learnable_across_speakers_but_not_trivially():
    cfg = SynthConfig(speakers=8, utterances_per_emotion=3, seed=0)
    rows = [(utterance_features(a), e, s.id) for s, e, _, a in generate_corpus("source", cfg)]
    x, y, speakers = (np.array(column) for column in zip(*rows, strict=True))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    accuracy = cross_val_score(model, x, y, groups=speakers, cv=GroupKFold(4)).mean()
    assert 0.45 < accuracy < 0.98, accuracy  # chance is 1/6
