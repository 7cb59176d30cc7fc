"""Spans (`emograph ingest --watch` output) read back: as a labelled corpus, or as unlabelled audio.

A span folder holds the batch ingest's layout (examples/Split-*/data_tfrecord-*.gz, report/).
As the labelled corpus (`--target spans:DIR`) its examples are copied as they are, split as
they were written. As unlabelled audio (`--unlabelled spans:DIR`) its clips are read back from
their examples, labels dropped, and enter the ingest's dedupe beside freshly decoded clips, so
a span clip that copies a labelled clip is a duplicate as in any ingest; the files the watcher
rejected are accounted for in the run's report too.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes

from emograph.components import features
from emograph.components.audio.corpora import Clip, Rejection, strip_labels
from emograph.components.audio.decode import Note
from emograph.components.config import SPANS_KIND, CorpusSpec
from emograph.components.example_gen.records import (
    SPLITS,
    GzipTFRecordSink,
    Windows,
    read_json,
    read_jsonl,
    write_json,
)

SPAN_PREFIX = "span-"
_SPAN_NAME = re.compile(rf"{SPAN_PREFIX}(\d+)")


def span_numbers(out_dir: str) -> list[int]:
    """Numbers of the complete spans under out_dir, ascending (temporary folders excluded)."""
    root = Path(out_dir)
    if not root.is_dir():
        return []
    matches = (_SPAN_NAME.fullmatch(p.name) for p in root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in matches if m)


def latest_spans(out_dir: str, count: int = 0) -> list[str]:
    """Names of the newest `count` spans (0: all), oldest first."""
    numbers = span_numbers(out_dir)
    return [f"{SPAN_PREFIX}{n}" for n in (numbers[-count:] if count else numbers)]


def resolve_spans(corpus: CorpusSpec) -> list[str]:
    """The spans a pipeline built now reads from `corpus` ([] unless it is a spans corpus)."""
    if corpus.kind != SPANS_KIND:
        return []
    names = latest_spans(corpus.path, corpus.latest_spans)
    if not names:
        raise ValueError(f"no {SPAN_PREFIX}N folders in {corpus.path} (emograph ingest --watch)")
    return names


def read_spans(
    pipeline: beam.Pipeline, out_dir: str, names: Sequence[str], examples_uri: str
) -> None:
    """Adds to `pipeline` a copy of the spans' examples into one ExampleGen output, per split."""
    for name in SPLITS:
        patterns = [f"{out_dir}/{span}/examples/Split-{name}/*.gz" for span in names]
        _ = (
            pipeline
            | f"Patterns[{name}]" >> beam.Create(patterns)
            | f"Read[{name}]"
            >> beam.io.ReadAllFromTFRecord(
                compression_type=CompressionTypes.GZIP, with_filename=False
            )
            | f"Write[{name}]"
            >> beam.io.Write(GzipTFRecordSink(f"{examples_uri}/Split-{name}/data_tfrecord"))
        )


def merge_span_reports(out_dir: str, names: Sequence[str], report_uri: str) -> dict:
    """One ingest report (and splits.json) for the spans read; refuses a split with no data.

    Every model step needs train, eval and test examples, so reading too few spans fails here
    with the spans named rather than later inside Transform or a trainer.
    """
    reports = [read_json(f"{out_dir}/{span}/report/ingest_report.json") for span in names]
    splits: dict[str, str] = {}
    for span in names:
        splits.update(read_json(f"{out_dir}/{span}/report/splits.json"))
    merged = merge_reports(reports, splits)
    if set(merged["labels"]["train"]) == {features.UNLABELLED_NAME}:
        raise ValueError(
            f"spans {list(names)} of {out_dir} hold unlabelled audio only: give them as "
            f"--unlabelled {SPANS_KIND}:{out_dir} beside a labelled target"
        )
    empty = [name for name in SPLITS if not merged["windows"][name]]
    if empty:
        raise ValueError(
            f"spans {list(names)} of {out_dir} hold no {empty} examples: read more spans "
            "(latest_spans=0 reads all) or wait for speakers of those splits"
        )
    merged["spans"] = list(names)
    write_json(f"{report_uri}/splits.json", dict(sorted(splits.items())))
    write_json(f"{report_uri}/ingest_report.json", merged)
    return merged


def merge_reports(reports: Sequence[dict], splits: Mapping[str, str]) -> dict:
    """The ingest report of several spans together (`summarise`'s format).

    Speaker counts come from `splits` (speaker -> split over all the spans), since one speaker
    can appear in several spans.
    """
    rejections = sorted(
        (r for report in reports for r in report["rejections"]),
        key=lambda r: (r["path"], r["reason"]),
    )
    notes = sorted(
        (n for report in reports for n in report.get("notes", [])),
        key=lambda n: (n["path"], n["kind"]),
    )
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for report in reports:
        for name in SPLITS:
            labels[name].update(report["labels"][name])
    return {
        "found": sum(r["found"] for r in reports),
        "ingested": sum(r["ingested"] for r in reports),
        "rejected": len(rejections),
        "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejections).items())),
        "rejections": rejections,
        "notes_by_kind": dict(sorted(Counter(n["kind"] for n in notes).items())),
        "notes": notes,
        "clips": {name: sum(r["clips"][name] for r in reports) for name in SPLITS},
        "windows": {name: sum(r["windows"][name] for r in reports) for name in SPLITS},
        "speakers": {name: sum(s == name for s in splits.values()) for name in SPLITS},
        "labels": {name: dict(sorted(labels[name].items())) for name in SPLITS},
    }


@dataclasses.dataclass(frozen=True)
class SpanAudio:
    """The clips of a spans folder as unlabelled audio (`--unlabelled spans:DIR`).

    `clips` maps each ingested clip's id to the clip (label dropped), the sha1 of its decoded
    audio (the dedupe key of every ingest) and what decoding lost; `rejections` are the files
    the watcher rejected, which the report of an ingest reading the spans accounts for too.
    """

    path: str
    names: tuple[str, ...]
    kind: str  # the corpus kind the spans were written from
    clips: Mapping[str, tuple[Clip, str, list[Note]]]
    rejections: tuple[Rejection, ...]


def span_audio(corpus: CorpusSpec, names: Sequence[str] | None = None) -> SpanAudio:
    """The clips and rejections of `names` (default: the spans `resolve_spans` picks now)."""
    names = tuple(names) if names is not None else tuple(resolve_spans(corpus))
    clips: dict[str, tuple[Clip, str, list[Note]]] = {}
    rejections: list[Rejection] = []
    kinds: set[str] = set()
    for span in names:
        report = f"{corpus.path}/{span}/report"
        kinds.add(read_json(f"{report}/listing.json")["kind"])
        for record in read_jsonl(f"{report}/ingested-*.jsonl"):
            (clip,) = strip_labels([Clip(**{f.name: record[f.name] for f in _CLIP_FIELDS})])
            clips[clip.clip_id] = (clip, record["sha1"], [Note(**n) for n in record["notes"]])
        rejected = read_json(f"{report}/ingest_report.json")["rejections"]
        rejections += [Rejection(**r) for r in rejected]
    if len(kinds) != 1:
        raise ValueError(
            f"{SPANS_KIND}:{corpus.path}: spans {list(names)} were written from corpus kinds "
            f"{sorted(kinds)}: one watch folder per corpus"
        )
    return SpanAudio(corpus.path, names, kinds.pop(), clips, tuple(rejections))


_CLIP_FIELDS = dataclasses.fields(Clip)


def read_span_audio(
    pipeline: beam.Pipeline, audio: SpanAudio, window_samples: int, label: str
) -> beam.PCollection:
    """The span clips of `audio` as decoded clips: (sha1, (clip, windows, notes)), as the
    ingest's decoder yields them. Refuses windows of another length than the run's."""
    patterns = [f"{audio.path}/{span}/examples/Split-*/*.gz" for span in audio.names]
    return (
        pipeline
        | f"SpanPatterns[{label}]" >> beam.Create(patterns)
        | f"ReadSpans[{label}]"
        >> beam.io.ReadAllFromTFRecord(compression_type=CompressionTypes.GZIP, with_filename=False)
        | f"SpanWindow[{label}]" >> beam.Map(_span_window, window_samples, audio.path)
        | f"GroupSpanClips[{label}]" >> beam.GroupByKey()
        | f"SpanClip[{label}]" >> beam.Map(_span_clip, audio.clips)
    )


def _span_window(serialized: bytes, window_samples: int, path: str) -> tuple[str, tuple]:
    """A span example -> (clip id, (start seconds, pcm16 bytes))."""
    feature = tf.train.Example.FromString(serialized).features.feature
    pcm = feature[features.AUDIO].bytes_list.value[0]
    if len(pcm) != 2 * window_samples:
        raise ValueError(
            f"{SPANS_KIND}:{path} holds windows of {len(pcm) // 2} samples, this run's are "
            f"{window_samples}: read spans written with the run's audio settings"
        )
    clip = feature[features.CLIP].bytes_list.value[0].decode()
    return clip, (feature[features.START].float_list.value[0], pcm)


def _span_clip(item: tuple[str, Iterable], clips: Mapping[str, tuple]) -> tuple[str, Windows]:
    clip_id, windows = item
    clip, digest, notes = clips[clip_id]
    return digest, (clip, sorted(windows), notes)
