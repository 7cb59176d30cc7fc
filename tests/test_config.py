"""The typed run configuration: JSON round trips, strict parsing, presets."""

import pytest

from emograph.components.config import (
    AudioConfig,
    CorpusSpec,
    GraphConfig,
    section_from_json,
    section_to_json,
)
from emograph.pipeline.config import BeamConfig, RunConfig


def test_run_config_round_trips_through_json():
    config = RunConfig.tiny("/tmp/x").replace(beam=BeamConfig(runner="direct-multiprocess"))
    assert RunConfig.from_json(config.to_json()) == config


def test_section_round_trip():
    graph = GraphConfig(similarity_threshold=0.7, lsh_splits=8)
    assert section_from_json(GraphConfig, section_to_json(graph)) == graph


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="window: unknown AudioConfig setting"):
        section_from_json(AudioConfig, '{"window": 3}')


@pytest.mark.parametrize("text", ["ravdess", ":path", "ravdess:"])
def test_corpus_spec_needs_kind_and_path(text):
    with pytest.raises(ValueError, match="KIND:PATH"):
        CorpusSpec.parse(text)


def test_corpus_spec_parse():
    assert CorpusSpec.parse("RAVDESS:/data/r:1") == CorpusSpec("ravdess", "/data/r:1")


def test_window_samples():
    assert AudioConfig(window_seconds=1.5).window_samples == 24000


def test_extra_sources_round_trip_as_corpus_specs():
    config = RunConfig.tiny("/tmp/x").replace(
        extra_sources=(CorpusSpec("ravdess", "/data/r"), CorpusSpec("crema-d", "/data/c"))
    )
    loaded = RunConfig.from_json(config.to_json())
    assert loaded == config
    assert all(isinstance(spec, CorpusSpec) for spec in loaded.extra_sources)


@pytest.mark.parametrize(
    "extra, error",
    [
        ((CorpusSpec("synthetic", "/elsewhere"),), "one corpus per kind"),
        ((CorpusSpec("spans", "/watched"),), "already ingested"),
    ],
)
def test_sources_that_cannot_be_ingested_together_are_refused(extra, error):
    with pytest.raises(ValueError, match=error):
        RunConfig.tiny("/tmp/x").replace(extra_sources=extra)


def test_experiment_variants_keep_the_nsl_student_and_the_distilled_students_teacher():
    from emograph.pipeline.config import check_variants

    assert check_variants(["speech_only", "nsl_student"]) == ("nsl_student", "speech_only")
    with pytest.raises(ValueError, match="must include 'nsl_student'"):
        check_variants(["speech_only"])
    with pytest.raises(ValueError, match="distilled from 'finetuned_teacher'"):
        check_variants(["nsl_student", "distilled_student"])
    with pytest.raises(ValueError, match="unknown variants"):
        check_variants(["nsl_student", "teacher"])
