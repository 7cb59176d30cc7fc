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

from components.artifacts import IngestReport
from components.example_gen.ingest import SPLITS, ingest, summarise
from pipeline.config import AudioConfig, CorpusSpec, SplitConfig, section_from_json

log = logging.getLogger(__name__)


@component(use_beam=True)
def AudioExampleGen(  # noqa: N802 (TFX components are named like classes)
    examples: OutputArtifact[Examples],
    report: OutputArtifact[IngestReport],
    corpus: Parameter[str],
    classes: Parameter[str],
    audio: Parameter[str],
    split: Parameter[str],
    beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Audio files -> one tf.Example per window, split by speaker; a report of every file.

    Parameters are JSON of the run config's sections (CorpusSpec, class list, AudioConfig,
    SplitConfig), so changing any of them reruns ingest and nothing else is cached wrongly.
    """
    with beam_pipeline as pipeline:
        ingest(
            pipeline,
            section_from_json(CorpusSpec, corpus),
            json.loads(classes),
            section_from_json(AudioConfig, audio),
            section_from_json(SplitConfig, split),
            examples.uri,
            report.uri,
        )
    summary = summarise(report.uri)
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    log.info(
        "ingest: found %d = ingested %d + rejected %d %s; windows per split %s",
        summary["found"],
        summary["ingested"],
        summary["rejected"],
        summary["rejected_by_reason"],
        summary["windows"],
    )
