"""Unlabelled audio: the "audio" corpus kind, the labelled share of train clips, and that no
unlabelled clip ever reaches a supervised loss."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio.corpora import Clip, list_clips
from emograph.components.config import EMOTIONS, AudioConfig, CorpusSpec, SplitConfig
from emograph.components.example_gen.ingest import keep_labels, run_ingest
from emograph.components.features import UNLABELLED_NAME
from emograph.components.models import training
from emograph.components.transform.preprocessing import label_ids

AUDIO = AudioConfig(window_seconds=1.0, hop_seconds=1.0, min_seconds=0.5, max_windows_per_clip=2)


def tone(seed: int, seconds: float = 1.2) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * 16000))).astype(
        np.float32
    )


def test_audio_folder_has_one_pseudo_speaker_per_sub_folder(tmp_path):
    for i, name in enumerate(["alice/a.wav", "alice/deep/b.flac", "bob/c.wav", "top.wav"]):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / name, tone(i), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    clips, rejected = list_clips(CorpusSpec("audio", str(tmp_path)), EMOTIONS)
    found = {Path(c.path).name: (c.label, c.speaker) for c in clips}
    assert found == {
        "a.wav": ("", "audio/alice"),
        "b.flac": ("", "audio/alice"),
        "c.wav": ("", "audio/bob"),
        "top.wav": ("", f"audio/{tmp_path.name}"),
    }
    assert rejected == []


def test_audio_csv_names_speakers_and_ignores_labels(tmp_path):
    sf.write(tmp_path / "x.wav", tone(0), 16000)
    sf.write(tmp_path / "y.wav", tone(1), 16000)
    (tmp_path / "pool.csv").write_text("path,speaker,label\nx.wav,caller1,angry\ny.wav,,\n")
    clips, rejected = list_clips(CorpusSpec("audio", str(tmp_path / "pool.csv")), EMOTIONS)
    assert [(Path(c.path).name, c.label, c.speaker) for c in clips] == [
        ("x.wav", "", "audio/caller1")
    ]
    assert [(Path(r.path).name, r.reason) for r in rejected] == [("y.wav", "no_speaker")]


def test_a_labelled_manifest_does_not_take_an_empty_label(tmp_path):
    sf.write(tmp_path / "x.wav", tone(0), 16000)
    (tmp_path / "m.csv").write_text("path,label,speaker\nx.wav,,s1\n")
    clips, rejected = list_clips(CorpusSpec("manifest", str(tmp_path / "m.csv")), EMOTIONS)
    assert clips == [] and [r.reason for r in rejected] == ["unknown_label"]


def _clips(speakers: int, per_speaker: int) -> list[Clip]:
    return [
        Clip(f"/c/{s}_{i}.wav", EMOTIONS[i % 6], f"x/s{s}", "x", f"id{s}_{i}")
        for s in range(speakers)
        for i in range(per_speaker)
    ]


def test_keep_labels_keeps_a_seeded_share_of_each_train_speaker():
    clips = _clips(4, 20)
    splits = {"x/s0": "train", "x/s1": "train", "x/s2": "eval", "x/s3": "test"}
    kept = keep_labels(clips, splits, 0.1, seed=0)
    assert [c.clip_id for c in kept] == [c.clip_id for c in clips]  # same clips, same order
    for speaker, split in splits.items():
        labels = [c.label for c in kept if c.speaker == speaker]
        expected = 2 if split == "train" else 20
        assert sum(label != F.UNLABELLED for label in labels) == expected, speaker
    assert keep_labels(clips, splits, 0.1, seed=0) == kept  # deterministic
    assert keep_labels(clips, splits, 0.1, seed=1) != kept  # the seed chooses
    tiny = keep_labels(clips, splits, 0.001, seed=0)  # at least one clip per speaker
    assert sum(c.label != F.UNLABELLED for c in tiny if c.speaker == "x/s0") == 1
    assert keep_labels(clips, splits, 1.0, seed=0) == clips


def test_labelled_fraction_is_validated():
    with pytest.raises(ValueError, match="labelled_fraction"):
        SplitConfig(labelled_fraction=0.0)
    with pytest.raises(ValueError, match="labelled_fraction"):
        SplitConfig(labelled_fraction=1.5)


def test_ingest_accounts_for_unlabelled_audio(tmp_path):
    """A labelled corpus at half its labels plus an unlabelled folder: every file is accounted
    for, unlabelled clips are train only and carry the empty label."""
    root = tmp_path / "corpus"
    root.mkdir()
    rows = ["path,label,speaker"]
    for s in range(5):
        for e in range(4):
            sf.write(root / f"s{s}_{e}.wav", tone(10 * s + e), 16000)
            rows.append(f"s{s}_{e}.wav,{EMOTIONS[e]},s{s}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    pool = tmp_path / "pool"
    for i in range(3):
        (pool / f"room{i % 2}").mkdir(parents=True, exist_ok=True)
        sf.write(pool / f"room{i % 2}/{i}.wav", tone(100 + i), 16000)
    (pool / "room0" / "broken.wav").write_bytes(b"")
    (pool / "room1" / "copy.wav").write_bytes((root / "s4_0.wav").read_bytes())  # a test clip
    split = SplitConfig(
        eval_speakers=("manifest/s3",), test_speakers=("manifest/s4",), labelled_fraction=0.5
    )
    report = run_ingest(
        CorpusSpec("manifest", str(root / "m.csv")),
        EMOTIONS,
        AUDIO,
        split,
        str(tmp_path / "out"),
        unlabelled=(CorpusSpec("audio", str(pool)),),
    )
    assert report["found"] == 20 + 5 == report["ingested"] + report["rejected"]
    assert report["rejected_by_reason"] == {"duplicate": 1, "empty": 1}
    (duplicate,) = [r for r in report["rejections"] if r["reason"] == "duplicate"]
    assert duplicate["path"].endswith("copy.wav")  # the labelled test clip is kept, in test
    assert report["clips"]["test"] == 4
    assert report["by_corpus"]["audio"]["ingested"] == 3
    windows = 2  # per 1.2 s clip: a 1 s window at 0 s and one aligned to its end
    assert report["labels"]["train"][UNLABELLED_NAME] == (3 * 4 // 2 + 3) * windows
    assert UNLABELLED_NAME not in report["labels"]["eval"]
    assert UNLABELLED_NAME not in report["labels"]["test"]
    assert report["speakers"]["train"] == 3 + 2  # s0-s2 and two rooms
    listing = json.loads((tmp_path / "out/report/listing.json").read_text())
    assert listing["labelled_fraction"] == 0.5
    assert listing["unlabelled_corpora"] == [
        {"kind": "audio", "path": str(pool), "latest_spans": 0}
    ]


def test_transform_label_id_of_an_unlabelled_window_is_reserved():
    ids = label_ids(tf.constant([b"sad", b"", b"neutral"]), EMOTIONS)
    assert ids.numpy().tolist() == [2, F.UNLABELLED_ID, 0]


def _write_transformed(path: Path, rows: list[tuple[str, int]]) -> None:
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for window_id, label in rows:
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        F.FUNCTIONALS: tf.train.Feature(
                            float_list=tf.train.FloatList(value=[float(label)] * 4)
                        ),
                        F.LABEL_ID: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                        F.ID: tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[window_id.encode()])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())


def test_training_reads_labelled_windows_and_pseudo_labels_only(tmp_path):
    rows = [("a:0", 1), ("a:1", 1), ("u:0", -1), ("u:1", -1), ("v:0", -1), ("b:0", 3)]
    _write_transformed(tmp_path / "data.gz", rows)
    pattern = [str(tmp_path / "*.gz")]
    spec = training.feature_spec(F.FUNCTIONALS, 4)

    def labels(**kwargs) -> list[int]:
        batches = training.make_dataset(pattern, spec, 16, shuffle=False, **kwargs)
        out = []
        for features, label in batches:
            assert set(features) == {F.FUNCTIONALS}  # no label or id among the inputs
            out += label.numpy().tolist()
        return out

    assert labels() == [1, 1, 3]
    assert labels(labelled=False) == [1, 1, -1, -1, -1, 3]
    assert labels(pseudo_labels={"u": 5}) == [1, 1, 5, 5, 3]  # v has no pseudo label
    assert training.class_weights(pattern, 6)[5] == 0.0
    assert training.class_weights(pattern, 6, {"u": 5})[5] > 0
    _, window_labels, clips = training.load_arrays(pattern, F.FUNCTIONALS, 4, labelled=False)
    assert clips[window_labels == F.UNLABELLED_ID].tolist() == ["u", "u", "v"]


def test_unlabelled_audio_is_refused_where_labels_are_needed(tmp_path):
    from emograph.pipeline.config import RunConfig

    with pytest.raises(ValueError, match="holds no labels"):
        RunConfig(target=CorpusSpec("audio", str(tmp_path)))
    with pytest.raises(ValueError, match="synthetic"):
        RunConfig(unlabelled=(CorpusSpec("synthetic", str(tmp_path)),))
    with pytest.raises(ValueError, match="holds no labels"):
        run_ingest(CorpusSpec("audio", str(tmp_path)), EMOTIONS, AUDIO, SplitConfig(), "out")


def test_unlabelled_corpora_are_listed_whatever_their_labels(tmp_path):
    sf.write(tmp_path / "x.wav", tone(0), 16000)
    (tmp_path / "m.csv").write_text("path,label,speaker\nx.wav,calm,s1\n")
    clips, rejected = list_clips(CorpusSpec("manifest", str(tmp_path / "m.csv")), None)
    assert [c.label for c in clips] == ["calm"] and rejected == []


def test_a_train_split_without_a_labelled_window_is_refused():
    from emograph.components.audio.splits import SplitError
    from emograph.components.example_gen.ingest import check_splits

    report = {
        "windows": {"train": 6, "eval": 2, "test": 2},
        "labels": {"train": {UNLABELLED_NAME: 6}, "eval": {"sad": 2}, "test": {"sad": 2}},
    }
    with pytest.raises(SplitError, match="every train window is unlabelled"):
        check_splits("report", report)
    report["labels"]["train"] = {UNLABELLED_NAME: 5, "sad": 1}
    check_splits("report", report)


def test_self_training_is_a_student_without_the_graph():
    from emograph.components.config import StudentConfig

    with pytest.raises(ValueError, match="self_training"):
        StudentConfig(self_training=True)
    StudentConfig(self_training=True, graph_multiplier=0.0, graph_multipliers=())


def test_an_unlabelled_window_cannot_be_scored():
    from emograph.components.evaluation.metrics import confusion_matrix

    with pytest.raises(ValueError, match="class indices"):
        confusion_matrix(np.array([0, -1]), np.array([0, 1]), 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--watch", "--unlabelled", "audio:{pool}"], "--watch writes spans of --corpus alone"),
        (["--labelled-fraction", "0.5", "--watch"], "--watch writes spans of --corpus alone"),
        (["--unlabelled", "synthetic:{pool}"], "cannot be unlabelled audio"),
        (["--labelled-fraction", "0"], "must be in (0, 1]"),
    ],
)
def test_cli_refuses_unlabelled_mistakes_in_one_line(tmp_path, capsys, extra, message):
    from emograph.pipeline import cli

    pool = tmp_path / "pool"
    pool.mkdir()
    sf.write(tmp_path / "x.wav", tone(0), 16000)
    (tmp_path / "m.csv").write_text("path,label,speaker\nx.wav,sad,s1\n")
    args = ["ingest", "--corpus", f"manifest:{tmp_path / 'm.csv'}", "--out", str(tmp_path / "o")]
    try:
        status = cli.main(args + [e.format(pool=pool) for e in extra])
    except SystemExit as e:  # argparse's own refusals
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1


def test_cli_refuses_plain_audio_as_the_corpus_to_label(tmp_path, capsys):
    from emograph.pipeline import cli

    status = cli.main(["ingest", "--corpus", f"audio:{tmp_path}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2 and "holds no labels" in err and err.count("\n") == 1


def _labelled_corpus(root: Path, speakers: int = 5, emotions: int = 4) -> Path:
    """A manifest corpus: `speakers` speakers with one clip of each of `emotions` emotions."""
    root.mkdir()
    rows = ["path,label,speaker"]
    for s in range(speakers):
        for e in range(emotions):
            sf.write(root / f"s{s}_{e}.wav", tone(10 * s + e), 16000)
            rows.append(f"s{s}_{e}.wav,{EMOTIONS[e]},s{s}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    return root / "m.csv"


def _watched_pool(tmp_path: Path, labelled: Path) -> Path:
    """Spans of a watched folder of plain audio: three clips, an empty file and a copy of a
    labelled test clip."""
    from emograph.components.example_gen.watch import watch

    pool = tmp_path / "pool"
    for i in range(3):
        (pool / f"room{i % 2}").mkdir(parents=True, exist_ok=True)
        sf.write(pool / f"room{i % 2}/{i}.wav", tone(100 + i), 16000)
    (pool / "room0" / "broken.wav").write_bytes(b"")
    (pool / "room1" / "copy.wav").write_bytes((labelled.parent / "s4_0.wav").read_bytes())
    spans = tmp_path / "spans"
    written = watch(
        CorpusSpec("audio", str(pool)), EMOTIONS, AUDIO, SplitConfig(folds=3), str(spans),
        interval=0.1, max_spans=1, settle_seconds=0,
    )  # fmt: skip
    assert [w["span"] for w in written] == [1]
    assert written[0]["clips"] == {"train": 4, "eval": 0, "test": 0}  # unlabelled: train only
    assert written[0]["labels"]["train"] == {UNLABELLED_NAME: 4 * 2}
    return spans


def test_watched_unlabelled_audio_feeds_the_unlabelled_pool(tmp_path):
    """`ingest --watch --corpus audio:DIR` spans read as `--unlabelled spans:OUT`: their clips
    join train without labels, the watcher's rejections are in the run's accounting, and a span
    clip that copies a labelled test clip is a duplicate (the labelled copy stays in test)."""
    manifest = _labelled_corpus(tmp_path / "corpus")
    spans = _watched_pool(tmp_path, manifest)
    split = SplitConfig(eval_speakers=("manifest/s3",), test_speakers=("manifest/s4",))
    out = tmp_path / "out"
    report = run_ingest(
        CorpusSpec("manifest", str(manifest)), EMOTIONS, AUDIO, split, str(out),
        unlabelled=(CorpusSpec("spans", str(spans)),),
    )  # fmt: skip
    assert report["found"] == 20 + 5 == report["ingested"] + report["rejected"]
    assert report["rejected_by_reason"] == {"duplicate": 1, "empty": 1}
    (duplicate,) = [r for r in report["rejections"] if r["reason"] == "duplicate"]
    assert duplicate["path"].endswith("copy.wav") and "s4_0.wav" in duplicate["detail"]
    assert report["clips"] == {"train": 12 + 3, "eval": 4, "test": 4}
    assert report["by_corpus"]["audio"]["found"] == 5
    assert report["by_corpus"]["audio"]["ingested"] == 3
    assert report["labels"]["train"][UNLABELLED_NAME] == 3 * 2
    listing = json.loads((out / "report/listing.json").read_text())
    assert listing["unlabelled_spans"] == {str(spans): ["span-1"]}
    rows = []
    for path in (out / "examples/Split-train").glob("*.gz"):
        for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append((feature[F.SPEAKER].bytes_list.value[0].decode(),
                         feature[F.LABEL].bytes_list.value[0].decode(),
                         len(feature[F.AUDIO].bytes_list.value[0])))  # fmt: skip
    pooled = [(label, size) for speaker, label, size in rows if speaker.startswith("audio/")]
    assert pooled == [("", 2 * 16000)] * 6  # every window of the pool, unlabelled, whole


def test_unlabelled_spans_are_checked_against_the_run(tmp_path):
    """Spans windowed otherwise than the run, or of a corpus kind the run already reads, are
    refused with the spans named."""
    manifest = _labelled_corpus(tmp_path / "corpus")
    spans = CorpusSpec("spans", str(_watched_pool(tmp_path, manifest)))
    split = SplitConfig(eval_speakers=("manifest/s3",), test_speakers=("manifest/s4",))
    longer = AudioConfig(window_seconds=0.5, hop_seconds=0.5, min_seconds=0.5)
    with pytest.raises(Exception, match="holds windows of 16000 samples, this run's are 8000"):
        run_ingest(CorpusSpec("manifest", str(manifest)), EMOTIONS, longer, split,
                   str(tmp_path / "o1"), unlabelled=(spans,))  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    sf.write(other / "x.wav", tone(7), 16000)
    from emograph.components.example_gen.spans import merge_span_reports

    with pytest.raises(ValueError, match="hold unlabelled audio only: give them as --unlabelled"):
        merge_span_reports(spans.path, ["span-1"], str(tmp_path / "report"))
    both = (spans, CorpusSpec("audio", str(other)))
    with pytest.raises(ValueError, match="written from an audio corpus, a kind this run reads"):
        run_ingest(CorpusSpec("manifest", str(manifest)), EMOTIONS, AUDIO, split,
                   str(tmp_path / "o2"), unlabelled=both)  # fmt: skip


def test_the_watch_command_takes_plain_audio_and_names_the_flag_to_read_it(tmp_path, capsys):
    from emograph.pipeline import cli

    pool, out = tmp_path / "pool", tmp_path / "spans"
    pool.mkdir()
    sf.write(pool / "x.wav", tone(0), 16000)
    argv = ["ingest", "--watch", "--corpus", f"audio:{pool}", "--out", str(out)]
    assert cli.main([*argv, "--interval", "0.2", "--settle", "0", "--max-spans", "1"]) == 0
    assert f"train on them with --unlabelled spans:{out}" in capsys.readouterr().out


def test_a_run_reads_the_unlabelled_spans_present_when_it_was_built(tmp_path):
    """The span names are part of the target ingest's parameters: a new span is a new cache
    key, and a run without unlabelled spans keeps its earlier parameters (and cache)."""
    from emograph.pipeline.config import RunConfig
    from emograph.pipeline.pipeline import create_pipeline

    spans = tmp_path / "spans"
    for n in (1, 2):
        (spans / f"span-{n}").mkdir(parents=True)
    config = RunConfig.tiny(str(tmp_path)).replace(unlabelled=(CorpusSpec("spans", str(spans)),))

    def target_gen(config: RunConfig) -> dict:
        (gen,) = [c for c in create_pipeline(config).components if c.id == "target_example_gen"]
        return gen.exec_properties

    assert json.loads(target_gen(config)["unlabelled_spans"]) == {str(spans): ["span-1", "span-2"]}
    assert "unlabelled_spans" not in target_gen(RunConfig.tiny(str(tmp_path)))
