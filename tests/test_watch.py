"""Watched ingest: files dropped during the test become numbered spans, each accounted once."""

import json
import os
import threading
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from emograph.components import features
from emograph.components.audio.corpora import Clip, Rejection
from emograph.components.audio.splits import extend_splits
from emograph.components.config import EMOTIONS, AudioConfig, CorpusSpec, SplitConfig
from emograph.components.example_gen.records import SPLITS
from emograph.components.example_gen.spans import (
    latest_spans,
    merge_reports,
    merge_span_reports,
    read_spans,
    resolve_spans,
)
from emograph.components.example_gen.watch import (
    LEDGER,
    new_files,
    watch,
)

AUDIO = AudioConfig(window_seconds=1.0, hop_seconds=0.5, min_seconds=0.5, max_windows_per_clip=2)


def noise(seed: int, seconds: float = 1.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.uniform(-1, 1, int(seconds * 16000))).astype(np.float32)


def ravdess_name(actor: int, emotion: str = "05", statement: int = 1) -> str:
    return f"Actor_{actor:02d}/03-01-{emotion}-01-{statement:02d}-01-{actor:02d}.wav"


def put(root: Path, name: str, data: np.ndarray | bytes | str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, np.ndarray):
        sf.write(path, data, 16000)
    elif isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


# --- pure parts ----------------------------------------------------------------------------------


def test_extend_splits_pins_known_speakers_and_fills_every_split():
    cfg = SplitConfig(seed=1)
    first = extend_splits({}, ["a"], cfg)
    assert first == {"a": "train"}
    grown = extend_splits(first, [f"s{i}" for i in range(11)], cfg)
    assert grown["a"] == "train" and len(grown) == 12
    counts = {name: list(grown.values()).count(name) for name in SPLITS}
    assert counts == {"train": 7, "eval": 2, "test": 3}  # round(.58/.17/.25 * 12)
    assert extend_splits(grown, ["s0", "s1"], cfg) == grown  # nobody moves
    listed = SplitConfig(eval_speakers=("x",), test_speakers=("y", "late"))
    assert extend_splits({}, ["x", "y", "z"], listed) == {"x": "eval", "y": "test", "z": "train"}
    with pytest.raises(ValueError, match="folds"):
        extend_splits({}, ["a"], SplitConfig(folds=3))


def test_watch_refuses_folds_before_waiting_for_files(tmp_path):
    spec = CorpusSpec("ravdess", str(tmp_path))
    with pytest.raises(ValueError, match="folds"):
        watch(spec, EMOTIONS, AUDIO, SplitConfig(folds=3), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_spans_corpus_settings_are_checked():
    assert CorpusSpec.parse("spans:runs/spans") == CorpusSpec("spans", "runs/spans", 0)
    with pytest.raises(ValueError, match=">= 0"):
        CorpusSpec("spans", "x", latest_spans=-1)
    with pytest.raises(ValueError, match="kind 'spans' only"):
        CorpusSpec("ravdess", "x", latest_spans=2)
    with pytest.raises(ValueError, match="no span-N folders"):
        resolve_spans(CorpusSpec("spans", "/nonexistent"))
    assert resolve_spans(CorpusSpec("ravdess", "/nonexistent")) == []


def test_the_watch_command_writes_a_span(tmp_path, capsys):
    from emograph.pipeline import cli

    corpus, out = tmp_path / "incoming", tmp_path / "spans"
    put(corpus, ravdess_name(1), noise(1))
    put(corpus, ravdess_name(2), b"")
    argv = ["ingest", "--watch", "--corpus", f"ravdess:{corpus}", "--out", str(out)]
    assert cli.main([*argv, "--interval", "0.2", "--settle", "0", "--max-spans", "1"]) == 0
    assert "span-1: found 2 = ingested 1 + rejected 1 {'empty': 1}" in capsys.readouterr().out
    assert latest_spans(str(out)) == ["span-1"]


def test_new_files_skips_the_ledger_unsettled_files_and_missing_manifest_rows(tmp_path):
    old, fresh, seen = (put(tmp_path, n, "x") for n in ("old.wav", "fresh.wav", "seen.wav"))
    os.utime(old, (time.time() - 60, time.time() - 60))
    os.utime(seen, (time.time() - 60, time.time() - 60))
    clips = [Clip(p, "happy", "c/s", "c", p) for p in (old, fresh, seen)]
    rejections = [
        Rejection(str(tmp_path / "later.wav"), "missing"),
        Rejection(str(tmp_path / "gone.wav"), "outside_root"),
    ]
    got_clips, got_rejections = new_files(clips, rejections, {seen}, time.time(), 5.0)
    assert [c.path for c in got_clips] == [old]
    assert [r.reason for r in got_rejections] == ["outside_root"]


def test_merge_reports_adds_spans_keeps_notes_and_counts_each_speaker_once():
    def report(found, windows, rejections, notes=()):
        return {
            "found": found,
            "ingested": found - len(rejections),
            "rejections": rejections,
            "notes": list(notes),
            "clips": dict.fromkeys(SPLITS, 1),
            "windows": dict.fromkeys(SPLITS, windows),
            "labels": {name: {"happy": windows} for name in SPLITS},
        }

    clipped = {"path": "c", "kind": "clipped", "detail": "3 samples", "corpus": "ravdess"}
    truncated = {"path": "a", "kind": "truncated", "detail": "0.7 s", "corpus": "ravdess"}
    merged = merge_reports(
        [
            report(4, 2, [{"path": "b", "reason": "empty"}], [clipped]),
            report(3, 1, [], [truncated]),
        ],
        {"s1": "train", "s2": "train", "s3": "test"},
    )
    assert merged["notes"] == [truncated, clipped]  # what ingested files lost, from every span
    assert merged["notes_by_kind"] == {"clipped": 1, "truncated": 1}
    assert merged["found"] == 7 == merged["ingested"] + merged["rejected"]
    assert merged["windows"] == dict.fromkeys(SPLITS, 3)
    assert merged["speakers"] == {"train": 2, "eval": 0, "test": 1}
    assert merged["labels"]["eval"] == {"happy": 3}


# --- the watcher, fed while it runs ---------------------------------------------------------------


def read_windows(pattern: str) -> list[tf.train.Example]:
    files = tf.io.gfile.glob(pattern)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP") if files else []
    return [tf.train.Example.FromString(r.numpy()) for r in ds]


def spans_of(out: Path) -> dict[int, list[dict]]:
    return {
        int(d.name.split("-")[1]): [json.loads(x) for x in (d / LEDGER).read_text().splitlines()]
        for d in out.glob("span-*")
    }


@pytest.mark.slow
def test_watcher_ingests_files_dropped_while_it_runs_exactly_once(tmp_path):
    corpus, out = tmp_path / "incoming", tmp_path / "spans"
    corpus.mkdir()
    expected: dict[str, str] = {}

    def feed() -> None:
        for actor in (1, 2, 3):
            expected[put(corpus, ravdess_name(actor), noise(actor))] = "ingested"
        expected[put(corpus, ravdess_name(1, statement=2), noise(11))] = "ingested"
        expected[put(corpus, ravdess_name(4), b"")] = "empty"  # zero bytes
        expected[put(corpus, ravdess_name(4, statement=2), "not audio\n" * 50)] = "unreadable"
        time.sleep(3.0)
        for actor in (5, 6):
            expected[put(corpus, ravdess_name(actor), noise(actor))] = "ingested"
        expected[put(corpus, ravdess_name(5, "02"), noise(52))] = "unknown_label"  # calm
        expected[put(corpus, "Actor_05/notes.wav", noise(53))] = "bad_name"
        expected[put(corpus, ravdess_name(6, statement=2), noise(1))] = "duplicate"  # span 1's
        time.sleep(2.5)
        expected[put(corpus, ravdess_name(7), noise(7))] = "ingested"

    feeder = threading.Thread(target=feed)
    spec = CorpusSpec("ravdess", str(corpus))
    start = time.monotonic()
    feeder.start()
    spans = watch(
        spec, EMOTIONS, AUDIO, SplitConfig(), str(out), interval=1.0, duration=10.0,
        settle_seconds=0.5,
    )  # fmt: skip
    feeder.join()
    assert time.monotonic() - start < 60  # stopped by itself

    ledgers = spans_of(out)
    assert sorted(ledgers) == list(range(1, len(ledgers) + 1)) and len(ledgers) >= 2
    assert [s["span"] for s in spans] == sorted(ledgers)
    outcomes = [(e["path"], e["outcome"]) for entries in ledgers.values() for e in entries]
    assert sorted(outcomes) == sorted(expected.items())  # every file, exactly once

    speaker_splits: dict[str, str] = {}
    for n, entries in ledgers.items():
        span = out / f"span-{n}"
        report = json.loads((span / "report" / "ingest_report.json").read_text())
        assert report["found"] == len(entries) == report["ingested"] + report["rejected"]
        for name, split in json.loads((span / "report" / "splits.json").read_text()).items():
            assert speaker_splits.setdefault(name, split) == split  # one split per speaker
        for name in SPLITS:
            examples = read_windows(f"{span}/examples/Split-{name}/data_tfrecord-*.gz")
            assert len(examples) == report["windows"][name]
            for example in examples:
                feature = example.features.feature
                assert len(feature[features.AUDIO].bytes_list.value[0]) == 2 * AUDIO.window_samples
                speaker = feature[features.SPEAKER].bytes_list.value[0].decode()
                assert speaker_splits[speaker] == name

    # A restarted watcher continues the numbering and ingests only what is new.
    late = put(corpus, ravdess_name(8), noise(8))
    os.utime(late, (time.time() - 5, time.time() - 5))
    (again,) = watch(spec, EMOTIONS, AUDIO, SplitConfig(), str(out), interval=0.2, max_spans=1)
    last = len(ledgers) + 1
    assert again["span"] == last and again["found"] == again["ingested"] == 1
    assert [e["path"] for e in spans_of(out)[last]] == [late]

    # The pipeline's ExampleGen side: the latest spans, merged into one examples folder.
    assert latest_spans(str(out), 2) == [f"span-{last - 1}", f"span-{last}"]
    names = resolve_spans(CorpusSpec("spans", str(out)))
    assert names == [f"span-{n}" for n in range(1, last + 1)]
    merged_examples = tmp_path / "merged"
    with beam.Pipeline() as pipeline:
        read_spans(pipeline, str(out), names, str(merged_examples))
    merged = merge_span_reports(str(out), names, str(tmp_path / "merged_report"))
    assert merged["ingested"] == sum(v == "ingested" for v in expected.values()) + 1
    for name in SPLITS:
        got = read_windows(f"{merged_examples}/Split-{name}/*.gz")
        assert len(got) == merged["windows"][name] > 0
    with pytest.raises(ValueError, match="hold no"):
        merge_span_reports(str(out), [f"span-{last}"], str(tmp_path / "one_span_report"))


@pytest.mark.e2e
def test_a_scheduled_run_ingests_a_new_span_and_reuses_the_cached_examples(tmp_path):
    """ExampleGen of a spans corpus in TFX: a rerun without a new span is a cache hit, a rerun
    after one ingests again (the span names are its cache key) and records the newest span."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    from emograph.pipeline.config import RunConfig
    from emograph.pipeline.pipeline import _ingest_and_validate, _pipeline
    from emograph.schemas import schema_path

    corpus, out = tmp_path / "incoming", str(tmp_path / "spans")
    for actor in range(1, 5):
        for statement in (1, 2):
            put(corpus, ravdess_name(actor, statement=statement), noise(10 * actor + statement))
    spec = CorpusSpec("ravdess", str(corpus))
    config = RunConfig(
        name="spans-schedule", root=str(tmp_path / "run"), target=CorpusSpec("spans", out)
    ).replace(audio=AUDIO)

    def scheduled_run() -> None:
        schema = tfx.components.ImportSchemaGen(schema_file=str(schema_path("raw_audio")))
        target = (config.target, config.split, schema.outputs["schema"])
        steps, _ = _ingest_and_validate("target", config, *target)
        metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        )
        tfx.orchestration.LocalDagRunner().run(_pipeline(config, [schema, steps[0]], metadata))

    watch(spec, EMOTIONS, AUDIO, SplitConfig(), out, settle_seconds=0.0, max_spans=1)
    scheduled_run()
    scheduled_run()
    put(corpus, ravdess_name(5), noise(50))
    watch(spec, EMOTIONS, AUDIO, SplitConfig(), out, settle_seconds=0.0, max_spans=1)
    scheduled_run()

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    store = metadata_store.MetadataStore(connection)
    (node,) = [c for c in store.get_contexts_by_type("node") if c.name.endswith("example_gen")]
    states = [e.last_known_state for e in store.get_executions_by_context(node.id)]
    State = metadata_store_pb2.Execution.State
    assert states == [State.COMPLETE, State.CACHED, State.COMPLETE]
    examples = sorted(store.get_artifacts_by_type("Examples"), key=lambda a: a.id)
    assert [a.properties["span"].int_value for a in examples] == [1, 2]
    newest = json.loads(
        (
            Path(store.get_artifacts_by_type("emograph.IngestReport")[-1].uri)
            / "ingest_report.json"
        ).read_text()
    )
    assert newest["spans"] == ["span-1", "span-2"] and newest["found"] == 9
    assert sum(len(read_windows(f"{examples[-1].uri}/Split-{n}/*.gz")) for n in SPLITS) == 18
