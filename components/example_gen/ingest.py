"""The ingest Beam job behind AudioExampleGen: corpus files -> windowed tf.Examples per split.

Listing and the speaker split run in the launching process (a file listing is small); decoding,
deduplication and serialisation run in Beam, so the same job scales from DirectRunner to
Dataflow. Every file found ends up exactly once in the report, as ingested or rejected with a
reason: a bad file is reported, never fatal. What an ingested file lost on the way (a WAV cut
short, clipped samples) is a note in the report, so nothing is lost silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from emograph.components import features
from emograph.components.audio.corpora import Clip, Rejection, list_clips, strip_labels
from emograph.components.audio.decode import AudioError, Note, read_audio
from emograph.components.audio.splits import SplitError, assign_speakers
from emograph.components.audio.windows import to_pcm16_bytes, window_clip
from emograph.components.config import (
    SPANS_KIND,
    AudioConfig,
    CorpusSpec,
    SplitConfig,
    check_corpora,
    check_labelled,
)
from emograph.components.example_gen.records import (
    SPLITS,
    GzipTFRecordSink,
    Windows,
    read_json,
    read_jsonl,
    write_json,
)
from emograph.components.example_gen.spans import SpanAudio, read_span_audio, span_audio

REJECTED = "rejected"
METRICS = "emograph.ingest"


def ingest(
    pipeline: beam.Pipeline,
    corpus: CorpusSpec,
    classes: Sequence[str],
    audio: AudioConfig,
    split: SplitConfig,
    examples_uri: str,
    report_uri: str,
    extra_corpora: Sequence[CorpusSpec] = (),
    unlabelled_corpora: Sequence[CorpusSpec] = (),
    unlabelled_spans: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Adds the ingest job of a whole corpus, or of several together, to `pipeline`.

    Each corpus is listed by its own adapter; the speakers of all of them are split as one set
    and every clip goes through one `ingest_clips`, so audio found in two corpora is a duplicate
    as within one. `unlabelled_corpora` join the train split as unlabelled audio (any labels
    their names carry are dropped), and `split.labelled_fraction` < 1 drops the labels of the
    other train clips (`keep_labels`). An unlabelled spans corpus is read back from its
    examples (`spans.span_audio`); `unlabelled_spans` maps its path to the span names to read
    (those resolved when the pipeline was built; default: its spans now). The caller runs the
    pipeline.
    """
    corpora = (corpus, *extra_corpora)
    check_corpora(corpora, unlabelled_corpora)
    check_labelled(corpora)
    listed = [_listed(spec, classes) for spec in corpora]
    clips = [clip for found, _ in listed for clip in found]
    listing_rejections = [r for _, rejected in listed for r in rejected]
    try:
        splits = assign_speakers((clip.speaker for clip in clips), split)
    except SplitError as e:
        raise SplitError(f"{_names(corpora)}: {e}") from None
    clips = keep_labels(clips, splits, split.labelled_fraction, split.seed)
    pooled: list[SpanAudio] = []
    for spec in unlabelled_corpora:  # any label their names carry is dropped
        if spec.kind == SPANS_KIND:
            pooled.append(span_audio(spec, (unlabelled_spans or {}).get(spec.path)))
            continue
        found, rejected = _listed(spec, None)
        clips += strip_labels(found)
        listing_rejections += rejected
        splits.update({clip.speaker: "train" for clip in found})
    kinds = {spec.kind for spec in (*corpora, *unlabelled_corpora)}
    for spans in pooled:
        if spans.kind in kinds:  # their speakers could merge with another corpus's
            raise ValueError(
                f"{SPANS_KIND}:{spans.path} was written from an {spans.kind} corpus, a kind "
                "this run reads: one corpus per kind"
            )
        listing_rejections += spans.rejections
        splits.update({clip.speaker: "train" for clip, _, _ in spans.clips.values()})
    ingest_clips(
        pipeline,
        clips,
        listing_rejections,
        splits,
        audio,
        examples_uri,
        report_uri,
        {
            **dataclasses.asdict(corpus),
            "extra_corpora": [dataclasses.asdict(spec) for spec in extra_corpora],
            "unlabelled_corpora": [dataclasses.asdict(spec) for spec in unlabelled_corpora],
            "labelled_fraction": split.labelled_fraction,
            "unlabelled_spans": {spans.path: list(spans.names) for spans in pooled},
        },
        spans=pooled,
    )


def _listed(spec: CorpusSpec, classes: Sequence[str] | None) -> tuple[list[Clip], list[Rejection]]:
    listed, rejected = list_clips(spec, classes)
    if not listed:
        wanted = f" for classes {list(classes)}" if classes is not None else ""
        raise ValueError(f"no usable clips in {spec.kind}:{spec.path}{wanted}")
    return listed, rejected


def keep_labels(
    clips: Sequence[Clip], splits: Mapping[str, str], fraction: float, seed: int
) -> list[Clip]:
    """`clips` with the label kept on a seeded `fraction` of each train speaker's clips (at
    least one) and dropped on the others (they stay as unlabelled audio). The choice depends
    only on the seed and the clips' ids, so every run and fold with the same speakers keeps the
    same labels; other splits keep every label."""
    if fraction >= 1:
        return list(clips)
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        if splits[clip.speaker] == "train":
            by_speaker[clip.speaker].append(clip)
    kept: set[str] = set()
    for own in by_speaker.values():
        own.sort(key=lambda c: hashlib.sha1(f"{seed}:{c.clip_id}".encode()).hexdigest())
        kept.update(c.clip_id for c in own[: max(1, round(fraction * len(own)))])
    return [
        clip
        if splits[clip.speaker] != "train" or clip.clip_id in kept
        else dataclasses.replace(clip, label=features.UNLABELLED)
        for clip in clips
    ]


def ingest_clips(
    pipeline: beam.Pipeline,
    clips: Sequence[Clip],
    listing_rejections: Sequence[Rejection],
    splits: Mapping[str, str],
    audio: AudioConfig,
    examples_uri: str,
    report_uri: str,
    listing: Mapping[str, Any],
    known_content: Mapping[str, str] | None = None,
    spans: Sequence[SpanAudio] = (),
) -> None:
    """Adds the ingest job of already listed clips to `pipeline` (the caller runs it).

    The one decode/dedupe/write path of both the batch ingest and the watcher's spans. Writes
    examples_uri/Split-<split>/data_tfrecord-*.gz (TFX's ExampleGen layout) and, under
    report_uri, splits.json and listing.json (`listing` plus "found" and "found_by_corpus") now,
    rejections-*.jsonl and ingested-*.jsonl when the pipeline runs (`summarise` merges them).
    `splits` maps every clip's speaker to its split. `known_content` (sha1 of decoded PCM ->
    path) holds audio ingested earlier: a clip with the same audio is rejected as a duplicate.
    `spans` are clips ingested before into spans (their speakers in `splits`), read back from
    their examples into the same dedupe. Refuses to write over an earlier ingest's files.
    """
    leftovers = FileSystems.match([f"{examples_uri}/Split-*/*", f"{report_uri}/*"])
    if any(result.metadata_list for result in leftovers):
        raise ValueError(f"{examples_uri} or {report_uri} already holds ingest output")
    splits = dict(splits)
    span_clips = [clip for audio_ in spans for clip, _, _ in audio_.clips.values()]
    found = len(clips) + len(span_clips) + len(listing_rejections)
    by_corpus = Counter(c.corpus for c in (*clips, *span_clips)) + Counter(
        r.corpus for r in listing_rejections
    )
    write_json(f"{report_uri}/splits.json", dict(sorted(splits.items())))
    write_json(
        f"{report_uri}/listing.json",
        {**listing, "found": found, "found_by_corpus": dict(sorted(by_corpus.items()))},
    )

    decoded = (
        pipeline
        | "ListClips" >> beam.Create(clips)
        | "Reshuffle" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(DecodeClip(audio)).with_outputs(REJECTED, main="decoded")
    )
    read_back = [
        read_span_audio(pipeline, audio_, audio.window_samples, str(n))
        for n, audio_ in enumerate(spans)
    ]
    kept = (
        (decoded.decoded, *read_back)
        | "AllDecoded" >> beam.Flatten()
        | "GroupByContent" >> beam.GroupByKey()
        | "Dedupe"
        >> beam.FlatMap(_keep_one, dict(known_content or {})).with_outputs(REJECTED, main="kept")
    )
    by_split = (
        kept.kept
        | "ToExamples" >> beam.FlatMap(_to_examples, splits)
        | "BySplit" >> beam.Partition(lambda item, _: SPLITS.index(item[0]), len(SPLITS))
    )
    for name, examples in zip(SPLITS, by_split, strict=True):
        _ = (
            examples
            | f"Serialized[{name}]" >> beam.Map(lambda item: item[1])
            | f"Write[{name}]"
            >> beam.io.Write(GzipTFRecordSink(f"{examples_uri}/Split-{name}/data_tfrecord"))
        )
    _ = (
        (
            pipeline | "ListingRejections" >> beam.Create(listing_rejections),
            decoded[REJECTED],
            kept[REJECTED],
        )
        | "AllRejections" >> beam.Flatten()
        | "RejectionJson" >> beam.Map(lambda r: json.dumps(dataclasses.asdict(r), sort_keys=True))
        | "WriteRejections" >> beam.io.WriteToText(f"{report_uri}/rejections", ".jsonl")
    )
    _ = (
        kept.kept
        | "IngestedJson" >> beam.Map(_ingested_record, splits)
        | "WriteIngested" >> beam.io.WriteToText(f"{report_uri}/ingested", ".jsonl")
    )


class DecodeClip(beam.DoFn):
    """Clip -> (sha1 of its decoded PCM, (clip, windows, notes)), or a tagged Rejection.

    A rejection for a clip too short to window names what decoding lost (a WAV cut short)."""

    def __init__(self, audio: AudioConfig) -> None:
        self._audio = audio
        self._clips = beam.metrics.Metrics.counter(METRICS, "clips_decoded")
        self._windows = beam.metrics.Metrics.counter(METRICS, "windows")
        self._rejected = beam.metrics.Metrics.counter(METRICS, "clips_rejected")

    def process(self, clip: Clip) -> Iterator[Any]:
        notes: list[Note] = []
        try:
            samples, notes = read_audio(clip.path, self._audio.sample_rate)
            windows = window_clip(samples, self._audio, clip.path)
        except AudioError as e:
            lost = (f"{note.kind}: {note.detail}" for note in notes)
            detail = "; ".join(filter(None, [e.detail, *lost]))
            rejection = Rejection(clip.path, e.reason, detail, clip.corpus)
        except Exception as e:  # a file that breaks a decoder must not break the job
            rejection = Rejection(clip.path, "error", f"{type(e).__name__}: {e}", clip.corpus)
        else:
            self._clips.inc()
            self._windows.inc(len(windows))
            digest = hashlib.sha1(to_pcm16_bytes(samples)).hexdigest()
            yield digest, (clip, [(start, to_pcm16_bytes(w)) for start, w in windows], notes)
            return
        self._rejected.inc()
        beam.metrics.Metrics.counter(METRICS, f"rejected_{rejection.reason}").inc()
        yield TaggedOutput(REJECTED, rejection)


def copy_key(digest: str, clip: Clip) -> tuple[bool, str, str]:
    """The order among copies of one audio (`digest`); the least is kept.

    A labelled copy before an unlabelled one (unlabelled audio must never displace a labelled
    clip, nor move a test clip into train); then a hash of the audio's digest and the copy's own
    label, speaker and clip id (corpus and path inside the corpus), then the path: the same files
    keep the same copy wherever the corpora are mounted and in whatever order they are listed or
    grouped, and no corpus, folder, speaker or label wins every tie as the alphabetically first
    path would.
    """
    own = "\0".join((digest, clip.label, clip.speaker, clip.clip_id))
    return clip.label == features.UNLABELLED, hashlib.sha1(own.encode()).hexdigest(), clip.path


def _keep_one(item: tuple[str, Iterable[Windows]], known: dict[str, str]) -> Iterator[Any]:
    """Identical audio under several names: the copy first by `copy_key` is kept, the others are
    duplicates, each rejection naming the kept copy and the label or speaker it contradicts.

    Audio already in `known` (ingested by an earlier span) has no winner: every copy is a
    duplicate. Kept clips travel with their digest, which the ingested records carry.
    """
    digest, copies = item
    copies = sorted(copies, key=lambda copy: copy_key(digest, copy[0]))
    if digest in known:
        for clip, *_ in copies:
            yield TaggedOutput(REJECTED, _duplicate(clip, f"same audio as {known[digest]}"))
        return
    first, *others = copies
    yield digest, first
    kept = first[0]
    for clip, *_ in others:
        conflicts = [
            f"conflicting {name}: {ours!r} here, {theirs!r} kept"
            for name, ours, theirs in (
                ("label", clip.label, kept.label),
                ("speaker", clip.speaker, kept.speaker),
            )
            if ours != theirs
        ]
        yield TaggedOutput(
            REJECTED, _duplicate(clip, "; ".join([f"same audio as {kept.path}", *conflicts]))
        )


def _duplicate(clip: Clip, detail: str) -> Rejection:
    return Rejection(clip.path, "duplicate", detail, clip.corpus)


def _to_examples(item: tuple[str, Windows], splits: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    """One serialised tf.Example per window, keyed by the speaker's split."""
    _, (clip, windows, _) = item
    for index, (start, pcm) in enumerate(windows):
        yield splits[clip.speaker], make_example(clip, index, start, pcm).SerializeToString()


def make_example(clip: Clip, index: int, start: float, pcm: bytes) -> tf.train.Example:
    """The raw-audio example of components/features.py."""

    def text(value: str | bytes) -> tf.train.Feature:
        data = value.encode() if isinstance(value, str) else value
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.AUDIO: text(pcm),
                features.LABEL: text(clip.label),
                features.SPEAKER: text(clip.speaker),
                features.CLIP: text(clip.clip_id),
                features.ID: text(f"{clip.clip_id}:{index}"),
                features.CORPUS: text(clip.corpus),
                features.START: tf.train.Feature(float_list=tf.train.FloatList(value=[start])),
            }
        )
    )


def _ingested_record(item: tuple[str, Windows], splits: dict[str, str]) -> str:
    digest, (clip, windows, notes) = item
    record = {
        **dataclasses.asdict(clip),
        "split": splits[clip.speaker],
        "windows": len(windows),
        "sha1": digest,
        "notes": [dataclasses.asdict(note) for note in notes],
    }
    return json.dumps(record, sort_keys=True)


def summarise(report_uri: str) -> dict:
    """Merges the report shards into report_uri/ingest_report.json and returns it.

    Raises AssertionError unless every file found was either ingested or rejected, exactly once,
    overall and within each corpus ("by_corpus": the same accounting per corpus kind). "notes"
    lists what ingested files lost in decoding, as "rejections" lists the files left out: path,
    kind ("truncated", "clipped"), detail, corpus; "notes_by_kind" counts them.
    """
    listing = read_json(f"{report_uri}/listing.json")
    found = listing["found"]
    ingested = read_jsonl(f"{report_uri}/ingested-*.jsonl")
    rejections = sorted(
        read_jsonl(f"{report_uri}/rejections-*.jsonl"), key=lambda r: (r["path"], r["reason"])
    )
    notes = sorted(
        (
            {"path": record["path"], "corpus": record["corpus"], **note}
            for record in ingested
            for note in record["notes"]
        ),
        key=lambda n: (n["path"], n["kind"]),
    )
    if found != len(ingested) + len(rejections):
        raise AssertionError(
            f"found {found} files but ingested {len(ingested)} + rejected {len(rejections)}"
        )
    windows: Counter[str] = Counter()
    clips: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    speakers: dict[str, set[str]] = defaultdict(set)
    for record in ingested:
        name = record["split"]
        windows[name] += record["windows"]
        clips[name] += 1
        labels[name][record["label"] or features.UNLABELLED_NAME] += record["windows"]
        speakers[name].add(record["speaker"])
    report = {
        "found": found,
        "ingested": len(ingested),
        "rejected": len(rejections),
        "rejected_by_reason": _count(rejections, "reason"),
        "rejections": rejections,
        "notes_by_kind": _count(notes, "kind"),
        "notes": notes,
        "clips": {name: clips[name] for name in SPLITS},
        "windows": {name: windows[name] for name in SPLITS},
        "speakers": {name: len(speakers[name]) for name in SPLITS},
        "labels": {name: dict(sorted(labels[name].items())) for name in SPLITS},
        "by_corpus": _by_corpus(listing["found_by_corpus"], ingested, rejections, notes),
    }
    write_json(f"{report_uri}/ingest_report.json", report)
    return report


def check_splits(report_uri: str, report: Mapping[str, Any]) -> None:
    """Refuses an ingest whose train, eval or test split ended with no windows, or whose train
    split has no labelled window (SplitError).

    Speakers are split before their files are decoded, so a split whose speakers' files were all
    rejected ends empty; every model step needs all three splits, and a run without test data
    would report a score of nothing. `report` is `summarise`'s.
    """
    labelled = report["windows"]["train"] - report["labels"]["train"].get(
        features.UNLABELLED_NAME, 0
    )
    if report["windows"]["train"] and not labelled:
        raise SplitError(
            f"{report_uri}: every train window is unlabelled (the clips chosen to keep their "
            "labels were rejected, or the labelled corpus has no train speakers): raise "
            "split.labelled_fraction or fix the rejected files"
        )
    empty = [name for name in SPLITS if not report["windows"][name]]
    if not empty:
        return
    listing = read_json(f"{report_uri}/listing.json")
    listed = (listing, *listing.get("extra_corpora", []))
    corpora = [CorpusSpec(c["kind"], c["path"]) for c in listed]
    splits = read_json(f"{report_uri}/splits.json")
    lost = "; ".join(
        f"{name} (speakers {', '.join(sorted(s for s, n in splits.items() if n == name))})"
        for name in empty
    )
    raise SplitError(
        f"{_names(corpora)}: no windows in split {lost}: every file of those speakers was "
        f"rejected ({report['rejected_by_reason']}, each file named in "
        f"{report_uri}/ingest_report.json); fix those files or choose other speakers for the "
        "split (split.eval_speakers, split.test_speakers)"
    )


def _names(corpora: Iterable[CorpusSpec]) -> str:
    """KIND:PATH of each corpus, joined by " + "."""
    return " + ".join(f"{spec.kind}:{spec.path}" for spec in corpora)


def _count(records: Iterable[dict], key: str) -> dict[str, int]:
    """How many records have each value of `key`, sorted by value."""
    return dict(sorted(Counter(r[key] for r in records).items()))


def _by_corpus(
    found: Mapping[str, int], ingested: list[dict], rejections: list[dict], notes: list[dict]
) -> dict:
    """Per corpus: found = ingested + rejected (else AssertionError), reasons, notes, windows,
    speakers.

    With several source corpora, this shows what each one brought to the teacher's data.
    """
    breakdown = {}
    for corpus, count in sorted(found.items()):
        kept = [r for r in ingested if r["corpus"] == corpus]
        rejected = [r for r in rejections if r["corpus"] == corpus]
        if count != len(kept) + len(rejected):
            raise AssertionError(
                f"{corpus}: found {count} files but ingested {len(kept)} + rejected {len(rejected)}"
            )
        breakdown[corpus] = {
            "found": count,
            "ingested": len(kept),
            "rejected": len(rejected),
            "rejected_by_reason": _count(rejected, "reason"),
            "notes_by_kind": _count((n for n in notes if n["corpus"] == corpus), "kind"),
            "windows": {n: sum(r["windows"] for r in kept if r["split"] == n) for n in SPLITS},
            "speakers": {n: len({r["speaker"] for r in kept if r["split"] == n}) for n in SPLITS},
        }
    return breakdown


def run_ingest(
    corpus: CorpusSpec,
    classes: Sequence[str],
    audio: AudioConfig,
    split: SplitConfig,
    out_dir: str,
    beam_args: Sequence[str] = (),
    unlabelled: Sequence[CorpusSpec] = (),
) -> dict:
    """Runs ingest as its own Beam job (`emograph ingest`): out_dir/examples and out_dir/report.

    Refuses (SplitError, after writing the report) a split that ended with no windows."""
    report_uri = f"{out_dir}/report"
    examples_uri = f"{out_dir}/examples"
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        ingest(
            pipeline,
            corpus,
            classes,
            audio,
            split,
            examples_uri,
            report_uri,
            unlabelled_corpora=unlabelled,
        )
    report = summarise(report_uri)
    check_splits(report_uri, report)
    return report
