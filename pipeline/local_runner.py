"""Runs the pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from tfx import v1 as tfx

from emograph.components.audio.synthetic import write_corpus
from emograph.pipeline.config import RunConfig
from emograph.pipeline.pipeline import create_pipeline

log = logging.getLogger(__name__)


def prepare_synthetic(config: RunConfig) -> None:
    """Generates the synthetic corpora the config points at (idempotent: skipped if present).

    A synthetic extra source is source-domain data like a synthetic `source` (config allows one
    synthetic corpus among the sources).
    """
    sources = [("source", corpus) for corpus in (config.source, *config.extra_sources)]
    for domain, corpus in (*sources, ("target", config.target)):
        if corpus.kind == "synthetic":
            synth = config.synth if domain == "target" else _source_synth(config)
            write_corpus(domain, corpus.path, synth, config.classes, config.audio.sample_rate)


def _source_synth(config: RunConfig):
    """The source corpus is the bigger one (the teacher's data): 1.5x the speakers."""
    return dataclasses.replace(config.synth, speakers=int(config.synth.speakers * 1.5))


def run(config: RunConfig, expect_steps: Callable[[list[str]], None] | None = None) -> None:
    """Prepares data if synthetic, then runs every component not already cached.

    `expect_steps` is told the pipeline's step names before it runs (the CLI's progress).
    """
    Path(config.root).mkdir(parents=True, exist_ok=True)
    (Path(config.root) / "config.json").write_text(config.to_json())
    prepare_synthetic(config)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    pipeline = create_pipeline(config, metadata)
    if expect_steps:
        expect_steps([component.id for component in pipeline.components])
    tfx.orchestration.LocalDagRunner().run(pipeline)
