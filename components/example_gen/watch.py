"""Watched ingest (`emograph ingest --watch`): new audio in a corpus folder becomes new TFX spans.

This is a polling loop, not a streaming Beam pipeline. On Beam 2.67's Python DirectRunner with
`--streaming`, `fileio.MatchContinuously` + `FixedWindows` + `GroupByKey` emitted every window
only when the stop timestamp was reached (the watermark held until then), and a processing-time
trigger (`Repeatedly(AfterProcessingTime)`) failed inside the runner's trigger driver, so a
streaming job could not write a span while files were still arriving. Instead, every `interval`
seconds the corpus adapter lists the folder (labels and speakers come from it, as in the batch
ingest), files not yet in the ledger whose last write is `settle_seconds` old are taken, and the
batch ingest PTransform (`ingest_clips`: the same decoding, windowing, rejection and dedupe
rules) runs once on them as its own Beam job, writing `OUT/span-{N}/` with the batch layout:
`examples/Split-*/data_tfrecord-*.gz` and `report/` (ingest_report.json with found = ingested +
rejected, splits.json). Each span is written under a temporary name and renamed into place, with
its `ledger.jsonl` (one line per file: outcome, sha1 of ingested audio) inside it, so a span and
its ledger entries exist together or not at all: a killed watcher restarts where it stopped and
never ingests a file twice. The ledger (the union of the spans' ledgers) also pins each
speaker's split and rejects audio already ingested under another name. A folder of plain audio
(`audio:DIR`) is watched the same way: its spans hold unlabelled train audio, read by a run as
`--unlabelled spans:OUT` (components.example_gen.spans).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from emograph.components.audio.corpora import Clip, Rejection, list_clips
from emograph.components.audio.splits import extend_splits
from emograph.components.config import UNLABELLED_KIND, AudioConfig, CorpusSpec, SplitConfig
from emograph.components.example_gen.ingest import ingest_clips, summarise
from emograph.components.example_gen.records import read_jsonl
from emograph.components.example_gen.spans import SPAN_PREFIX, span_numbers

log = logging.getLogger(__name__)

LEDGER = "ledger.jsonl"


@dataclass
class Ledger:
    """Every file the spans of one out folder account for, and what they pinned."""

    paths: set[str] = field(default_factory=set)
    content: dict[str, str] = field(default_factory=dict)  # sha1 of decoded PCM -> path
    splits: dict[str, str] = field(default_factory=dict)  # speaker -> split
    last_span: int = 0

    def add(self, span: int, entries: Sequence[dict], splits: Mapping[str, str]) -> None:
        self.paths.update(e["path"] for e in entries)
        self.content.update({e["sha1"]: e["path"] for e in entries if e.get("sha1")})
        self.splits.update(splits)
        self.last_span = max(self.last_span, span)


def load_ledger(out_dir: str) -> Ledger:
    """The ledger of every complete span under out_dir."""
    ledger = Ledger()
    for n in span_numbers(out_dir):
        span = Path(out_dir) / f"{SPAN_PREFIX}{n}"
        lines = (span / LEDGER).read_text().splitlines()
        splits = json.loads((span / "report" / "splits.json").read_text())
        ledger.add(n, [json.loads(line) for line in lines if line], splits)
    return ledger


def new_files(
    clips: Sequence[Clip],
    rejections: Sequence[Rejection],
    seen: set[str],
    now: float,
    settle_seconds: float,
) -> tuple[list[Clip], list[Rejection]]:
    """The listed files a new span takes: not in the ledger and not written to for a while.

    A manifest row whose file has not arrived yet ("missing") waits for it instead of being
    rejected for good; a path that no longer exists (outside_root...) has nothing to wait for.
    """

    def ready(path: str) -> bool:
        try:
            return now - os.stat(path).st_mtime >= settle_seconds
        except OSError:
            return True

    fresh_clips = [c for c in clips if c.path not in seen and ready(c.path)]
    fresh_rejections = [
        r for r in rejections if r.path not in seen and r.reason != "missing" and ready(r.path)
    ]
    return fresh_clips, fresh_rejections


def write_span(
    out_dir: str,
    span: int,
    clips: Sequence[Clip],
    rejections: Sequence[Rejection],
    ledger: Ledger,
    corpus: CorpusSpec,
    audio: AudioConfig,
    split: SplitConfig,
    beam_args: Sequence[str] = (),
) -> dict:
    """Ingests one span's files as one Beam job, then renames it into place; returns its report.

    The ledger is updated only after the rename, so it never claims a span that does not exist.
    """
    final = Path(out_dir) / f"{SPAN_PREFIX}{span}"
    partial = Path(out_dir) / f".{SPAN_PREFIX}{span}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # a span a killed watcher left half-written
    if corpus.kind == UNLABELLED_KIND:  # unlabelled audio is train audio only
        span_splits = {c.speaker: "train" for c in clips}
    else:
        splits = extend_splits(ledger.splits, (c.speaker for c in clips), split)
        span_splits = {c.speaker: splits[c.speaker] for c in clips}
    report_uri = str(partial / "report")
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as pipeline:
        ingest_clips(
            pipeline,
            clips,
            rejections,
            span_splits,
            audio,
            str(partial / "examples"),
            report_uri,
            {**asdict(corpus), "span": span},
            ledger.content,
        )
    report = summarise(report_uri)
    entries = [
        {"path": r["path"], "outcome": "ingested", "sha1": r["sha1"], "span": span}
        for r in read_jsonl(f"{report_uri}/ingested-*.jsonl")
    ] + [{"path": r["path"], "outcome": r["reason"], "span": span} for r in report["rejections"]]
    (partial / LEDGER).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    os.replace(partial, final)
    ledger.add(span, entries, span_splits)
    return report


def watch(
    corpus: CorpusSpec,
    classes: Sequence[str],
    audio: AudioConfig,
    split: SplitConfig,
    out_dir: str,
    interval: float = 10.0,
    duration: float = 0.0,
    max_spans: int = 0,
    settle_seconds: float = 2.0,
    beam_args: Sequence[str] = (),
) -> list[dict]:
    """Polls `corpus` every `interval` seconds and writes each poll's new files as a span.

    Stops after `duration` seconds (with one last poll at the deadline) or `max_spans` new
    spans, whichever comes first; both 0 watches until interrupted. Returns the new spans'
    reports (each with its "span" number).
    """
    if interval <= 0 or duration < 0 or max_spans < 0 or settle_seconds < 0:
        raise ValueError("interval must be > 0; duration, max_spans, settle_seconds >= 0")
    unlabelled = corpus.kind == UNLABELLED_KIND
    if not unlabelled:
        extend_splits({}, [], split)  # refuses a split policy it cannot grow, before waiting
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    ledger = load_ledger(out_dir)
    deadline = time.monotonic() + duration if duration else None
    written: list[dict] = []
    while True:
        polled_at = time.monotonic()
        clips, rejections = new_files(
            *list_clips(corpus, None if unlabelled else classes),
            ledger.paths,
            time.time(),
            settle_seconds,
        )
        if clips or rejections:
            span = ledger.last_span + 1
            report = write_span(
                out_dir, span, clips, rejections, ledger, corpus, audio, split, beam_args
            )
            written.append({**report, "span": span})
            log.info(
                "span %d: found %d = ingested %d + rejected %d %s",
                span,
                report["found"],
                report["ingested"],
                report["rejected"],
                report["rejected_by_reason"],
            )
        if max_spans and len(written) >= max_spans:
            break
        if deadline is not None and polled_at >= deadline:
            break
        left = interval if deadline is None else deadline - time.monotonic()
        time.sleep(max(0.0, min(interval, left)))
    return written
