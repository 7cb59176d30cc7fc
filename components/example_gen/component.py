"""AudioExampleGen: the TFX wrapper around the ingest Beam job (components.example_gen.ingest)."""

import json
import logging

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import (
    BeamComponentParameter,
    OutputArtifact,
    Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples

from emograph.components.artifacts import IngestReport
from emograph.components.config import (
    SPANS_KIND,
    AudioConfig,
    CorpusSpec,
    SplitConfig,
    check_corpora,
    from_dict,
    section_from_json,
)
from emograph.components.example_gen.ingest import check_splits, ingest, summarise
from emograph.components.example_gen.records import SPLITS
from emograph.components.example_gen.spans import SPAN_PREFIX, merge_span_reports, read_spans

log = logging.getLogger(__name__)


@component(use_beam=True)
def AudioExampleGen(  # noqa: N802 (TFX components are named like classes)
    examples: OutputArtifact[Examples],
    report: OutputArtifact[IngestReport],
    corpus: Parameter[str],
    classes: Parameter[str],
    audio: Parameter[str],
    split: Parameter[str],
    spans: Parameter[str] = "[]",
    extra_corpora: Parameter[str] = "[]",
    unlabelled_corpora: Parameter[str] = "[]",
    unlabelled_spans: Parameter[str] = "{}",
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Audio files -> one tf.Example per window, split by speaker; a report of every file.

    Parameters are JSON of the run config's sections (CorpusSpec, class list, AudioConfig,
    SplitConfig), so changing any of them reruns ingest and nothing else is cached wrongly.
    A spans corpus (`emograph ingest --watch` output) is copied, not decoded again: `spans` names
    the span folders resolved when the pipeline was built, so a new span is a new cache key, and
    the artifact's `span` is the newest one read, as TFX's own ExampleGen records it.
    `extra_corpora` (a JSON list of CorpusSpecs) are ingested in the same job as `corpus`;
    `unlabelled_corpora` too, as unlabelled audio of train speakers; `unlabelled_spans` names
    the spans of an unlabelled spans corpus (path -> span names) as `spans` does for `corpus`.
    """
    spec = section_from_json(CorpusSpec, corpus)
    extras = [from_dict(CorpusSpec, data) for data in json.loads(extra_corpora)]
    unlabelled = [from_dict(CorpusSpec, data) for data in json.loads(unlabelled_corpora)]
    check_corpora([spec, *extras], unlabelled)
    span_names = json.loads(spans)
    if spec.kind == SPANS_KIND:  # the merged report first: it refuses spans lacking a split
        summary = merge_span_reports(spec.path, span_names, report.uri)
        examples.span = int(span_names[-1].removeprefix(SPAN_PREFIX))
    with beam_pipeline as pipeline:
        if spec.kind == SPANS_KIND:
            read_spans(pipeline, spec.path, span_names, examples.uri)
        else:
            ingest(
                pipeline,
                spec,
                json.loads(classes),
                section_from_json(AudioConfig, audio),
                section_from_json(SplitConfig, split),
                examples.uri,
                report.uri,
                extras,
                unlabelled,
                json.loads(unlabelled_spans),
            )
    if spec.kind != SPANS_KIND:  # merge_span_reports checked the spans' splits
        summary = summarise(report.uri)
        check_splits(report.uri, summary)
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    log.info(
        "ingest: found %d = ingested %d + rejected %d %s; windows per split %s",
        summary["found"],
        summary["ingested"],
        summary["rejected"],
        summary["rejected_by_reason"],
        summary["windows"],
    )
    for name, part in summary.get("by_corpus", {}).items():
        log.info(
            "ingest %s: found %d = ingested %d + rejected %d %s",
            name,
            part["found"],
            part["ingested"],
            part["rejected"],
            part["rejected_by_reason"],
        )
