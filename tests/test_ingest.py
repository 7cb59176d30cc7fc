"""The ingest Beam job on DirectRunner: every file ingested or rejected once, TFX-layout output."""

import json
import shutil
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from emograph.components import features
from emograph.components.audio.splits import assign_speakers
from emograph.components.audio.synthetic import write_corpus
from emograph.components.config import EMOTIONS, AudioConfig, CorpusSpec, SplitConfig, SynthConfig
from emograph.components.example_gen.ingest import ingest, run_ingest, summarise
from emograph.components.example_gen.records import SPLITS

AUDIO = AudioConfig(window_seconds=1.0, hop_seconds=0.5, min_seconds=0.5, max_windows_per_clip=2)


def noise(seed: int, seconds: float = 1.2, rate: int = 16000) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * rate))).astype(
        np.float32
    )


def build_corpus(root: Path) -> list[tuple[str, str]]:
    """Four speakers of good clips plus one file per failure mode -> sorted (path, outcome)."""
    rows, expected = [], []

    def add(name: str, speaker: str, outcome: str, label: str = "happy") -> None:
        rows.append(f"{name},{label},{speaker}")
        expected.append((str(root / name), outcome))

    for s in range(4):
        for e, label in enumerate(EMOTIONS[:3]):
            sf.write(root / f"s{s}_{e}.wav", noise(10 * s + e), 16000)
            add(f"s{s}_{e}.wav", f"s{s}", "ingested", label)
    sf.write(root / "ok.flac", noise(101), 16000)
    flac = (root / "ok.flac").read_bytes()
    (root / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (root / "ok.flac").unlink()
    add("truncated.flac", "s0", "unreadable")
    (root / "zero.wav").write_bytes(b"")
    add("zero.wav", "s0", "empty")
    bad = noise(102)
    bad[5] = np.inf
    sf.write(root / "nan.wav", bad, 16000, subtype="FLOAT")
    add("nan.wav", "s0", "nan_or_inf")
    (root / "text.wav").write_text("hello\n" * 100)
    add("text.wav", "s1", "unreadable")
    sf.write(root / "aiff.wav", noise(103), 16000, format="AIFF")
    add("aiff.wav", "s1", "ingested")
    sf.write(root / "96k.wav", noise(104, rate=96000), 96000)
    add("96k.wav", "s1", "ingested")
    sf.write(root / "8k.wav", noise(105, rate=8000), 8000)
    add("8k.wav", "s2", "ingested")
    sf.write(root / "stereo.wav", np.stack([noise(106), noise(107)], axis=1), 16000)
    add("stereo.wav", "s2", "ingested")
    sf.write(root / "short.wav", noise(108, seconds=0.1), 16000)
    add("short.wav", "s2", "too_short")
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    add("silent.wav", "s2", "silent")
    sf.write(root / "ünïcødé 😀.wav", noise(109, seconds=3.0), 16000)  # 5 windows, capped to 2
    add("ünïcødé 😀.wav", "s3", "ingested")
    pcm = (noise(111) * 32767).astype(np.int16)  # int16 input: both encoders are lossless
    sf.write(root / "copy_a.wav", pcm, 16000)
    sf.write(root / "copy_b.flac", pcm, 16000)  # same audio, other name and format
    add("copy_a.wav", "s3", "ingested")
    add("copy_b.flac", "s0", "duplicate")
    sf.write(root.parent / "outside.wav", noise(112), 16000)
    rows.append("../outside.wav,sad,s3")
    expected.append((str(root.parent / "outside.wav"), "outside_root"))
    add("s0_0.wav", "s0", "duplicate")  # listed twice
    (root / "manifest.csv").write_text(
        "path,label,speaker\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return sorted(expected)


def read_examples(pattern: str) -> list[dict]:
    files = tf.io.gfile.glob(pattern)
    assert files and all(f.endswith(".gz") for f in files)
    examples = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        example = {k: v.bytes_list.value[0] for k, v in feature.items() if k != features.START}
        example[features.START] = feature[features.START].float_list.value[0]
        examples.append(example)
    return examples


def test_ingest_accounts_for_every_file(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    expected = build_corpus(root)
    examples_uri, report_uri = str(tmp_path / "examples"), str(tmp_path / "report")
    args = (CorpusSpec("synthetic", str(root)), EMOTIONS, AUDIO, SplitConfig(seed=3))
    with beam.Pipeline() as pipeline:
        ingest(pipeline, *args, examples_uri, report_uri)
    report = summarise(report_uri)

    ingested = [
        json.loads(line)
        for f in (tmp_path / "report").glob("ingested-*.jsonl")
        for line in f.open()
    ]
    outcomes = [(r["path"], r["reason"]) for r in report["rejections"]]
    assert sorted(outcomes + [(r["path"], "ingested") for r in ingested]) == expected
    assert report["found"] == len(expected) == report["ingested"] + report["rejected"]
    assert report["rejected_by_reason"]["duplicate"] == 2
    details = {Path(r["path"]).name: r["detail"] for r in report["rejections"]}
    assert details["copy_b.flac"] == (
        f"same audio as {root / 'copy_a.wav'}; conflicting speaker: 'synthetic/s0' here, "
        "'synthetic/s3' kept"
    )
    assert (tmp_path / "report" / "ingest_report.json").is_file()

    splits = json.loads((tmp_path / "report" / "splits.json").read_text())
    assert sorted(splits) == [f"synthetic/s{i}" for i in range(4)]
    total = 0
    for name in SPLITS:
        examples = read_examples(f"{examples_uri}/Split-{name}/data_tfrecord-*.gz")
        total += len(examples)
        assert len(examples) == report["windows"][name]
        for example in examples:
            assert set(example) == {
                features.AUDIO,
                features.LABEL,
                features.SPEAKER,
                features.CLIP,
                features.ID,
                features.CORPUS,
                features.START,
            }
            assert len(example[features.AUDIO]) == 2 * AUDIO.window_samples
            assert splits[example[features.SPEAKER].decode()] == name
            assert example[features.CORPUS] == b"synthetic"
            assert example[features.ID].startswith(example[features.CLIP] + b":")
            assert example[features.LABEL].decode() in EMOTIONS
    assert total == sum(r["windows"] for r in ingested) == 2 * 18  # 1.2 s and capped clips: 2 each
    by_name = {Path(r["path"]).name: r for r in ingested}
    assert by_name["ünïcødé 😀.wav"]["windows"] == 2

    with pytest.raises(ValueError, match="already holds"):
        ingest(beam.Pipeline(), *args, examples_uri, report_uri)


def test_run_ingest_on_a_named_corpus(tmp_path):
    root = tmp_path / "crema"
    root.mkdir()
    for s, speaker in enumerate(["1001", "1002", "1003"]):
        for e, emotion in enumerate(["ANG", "SAD", "HAP"]):
            sf.write(root / f"{speaker}_DFA_{emotion}_XX.wav", noise(10 * s + e), 16000)
    report = run_ingest(
        CorpusSpec("crema-d", str(root)),
        ("angry", "sad"),
        AUDIO,
        SplitConfig(),
        str(tmp_path / "out"),
    )
    assert (report["found"], report["ingested"], report["rejected_by_reason"]) == (
        9,
        6,
        {"unknown_label": 3},
    )
    assert report["speakers"] == {"train": 1, "eval": 1, "test": 1}
    assert sum(report["windows"].values()) == 12
    assert len(read_examples(f"{tmp_path}/out/examples/Split-train/data_tfrecord-*.gz")) > 0


def test_two_corpora_are_ingested_as_one_dataset(tmp_path):
    """A synthetic and a RAVDESS-named corpus in one job: one split over the union of their
    speakers, one dedupe (a RAVDESS file holding a synthetic clip's audio is a duplicate), and
    found = ingested + rejected within each corpus."""
    classes = ("happy", "sad")
    manifest = write_corpus("source", tmp_path / "synth", SynthConfig(3, 1), classes)
    synth_clip = sorted((tmp_path / "synth" / "wav").rglob("*.wav"))[0]
    ravdess = tmp_path / "ravdess"
    for actor in ("01", "02"):
        (ravdess / f"Actor_{actor}").mkdir(parents=True)
        for emotion in ("03", "04", "02"):  # happy, sad, calm (not in the classes)
            name = f"Actor_{actor}/03-01-{emotion}-01-01-01-{actor}.wav"
            sf.write(ravdess / name, noise(int(actor + emotion)), 16000)
    copy = ravdess / "Actor_02" / "03-01-03-02-01-01-02.wav"
    shutil.copy(synth_clip, copy)  # same audio as a synthetic clip, in the other corpus
    examples_uri, report_uri = str(tmp_path / "examples"), str(tmp_path / "report")
    with beam.Pipeline() as pipeline:
        ingest(
            pipeline,
            CorpusSpec("synthetic", str(manifest.parent)),
            classes,
            AUDIO,
            SplitConfig(seed=1),
            examples_uri,
            report_uri,
            [CorpusSpec("ravdess", str(ravdess))],
        )
    report = summarise(report_uri)

    splits = json.loads((tmp_path / "report" / "splits.json").read_text())
    assert sorted(splits) == [
        "ravdess/Actor_01",
        "ravdess/Actor_02",
        "synthetic/src_spk00",
        "synthetic/src_spk01",
        "synthetic/src_spk02",
    ]
    assert splits == assign_speakers(splits, SplitConfig(seed=1))  # one split of the union
    assert set(splits.values()) == set(SPLITS)
    (duplicate,) = [r for r in report["rejections"] if r["reason"] == "duplicate"]
    kept, conflict = duplicate["detail"].removeprefix("same audio as ").split("; ")
    assert {duplicate["path"], kept} == {str(copy), str(synth_clip)}
    assert conflict.startswith("conflicting speaker: ")  # both copies say happy
    assert report["found"] == 6 + 7 == report["ingested"] + report["rejected"]
    by_corpus = report["by_corpus"]
    assert {name: part["found"] for name, part in by_corpus.items()} == {
        "ravdess": 7,
        "synthetic": 6,
    }
    loser = duplicate["corpus"]
    assert by_corpus["ravdess"]["rejected_by_reason"] == {
        "unknown_label": 2,
        **({"duplicate": 1} if loser == "ravdess" else {}),
    }
    assert by_corpus["synthetic"]["rejected_by_reason"] == (
        {"duplicate": 1} if loser == "synthetic" else {}
    )
    for part in by_corpus.values():
        assert part["found"] == part["ingested"] + part["rejected"]
    listing = json.loads((tmp_path / "report" / "listing.json").read_text())
    assert listing["found_by_corpus"] == {"ravdess": 7, "synthetic": 6}
    assert listing["extra_corpora"] == [
        {"kind": "ravdess", "path": str(ravdess), "latest_spans": 0}
    ]

    corpora = set()
    for name in SPLITS:
        for example in read_examples(f"{examples_uri}/Split-{name}/data_tfrecord-*.gz"):
            assert splits[example[features.SPEAKER].decode()] == name
            corpora.add(example[features.CORPUS])
    assert corpora == {b"synthetic", b"ravdess"}
