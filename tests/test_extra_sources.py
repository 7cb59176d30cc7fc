"""Several source corpora: the CLI's repeated --source, the pipeline's source ExampleGen only,
synthetic extra sources generated. Building the pipeline object runs nothing."""

import json

import pytest

from emograph.components.config import CorpusSpec
from emograph.pipeline import cli
from emograph.pipeline.config import RunConfig

EXTRA = (CorpusSpec("ravdess", "/data/ravdess16k"), CorpusSpec("crema-d", "/data/crema-d"))


@pytest.mark.parametrize("command", [["run"], ["experiment", "--out", "exp"]])
def test_repeated_source_flags_are_source_then_extra_sources(command):
    args = cli.build_parser().parse_args(
        [
            *command,
            "--source",
            "synthetic:runs/x/data/source",
            "--source",
            "ravdess:/data/ravdess16k",
            "--source",
            "crema-d:/data/crema-d",
            "--target",
            "tess:/data/tess",
        ]
    )
    config = cli._load_config(args)
    assert config.source == CorpusSpec("synthetic", "runs/x/data/source")
    assert config.extra_sources == EXTRA
    assert config.target == CorpusSpec("tess", "/data/tess")


def test_one_source_flag_sets_source_alone(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(RunConfig.tiny(str(tmp_path)).replace(extra_sources=EXTRA).to_json())
    args = cli.build_parser().parse_args(["run", "--config", str(path)])
    assert cli._load_config(args).extra_sources == EXTRA  # the config file's, kept
    args = cli.build_parser().parse_args(["run", "--config", str(path), "--source", "tess:/t"])
    config = cli._load_config(args)
    assert (config.source, config.extra_sources) == (CorpusSpec("tess", "/t"), ())


def test_extra_sources_reach_the_source_example_gen_only(tmp_path):
    from emograph.pipeline.pipeline import create_pipeline

    config = RunConfig.tiny(str(tmp_path)).replace(extra_sources=EXTRA)
    gens = {c.id: c for c in create_pipeline(config).components if c.id.endswith("example_gen")}
    source = gens["source_example_gen"].exec_properties
    assert json.loads(source["extra_corpora"]) == [
        {"kind": "ravdess", "path": "/data/ravdess16k", "latest_spans": 0},
        {"kind": "crema-d", "path": "/data/crema-d", "latest_spans": 0},
    ]
    assert json.loads(source["corpus"])["kind"] == "synthetic"
    assert "extra_corpora" not in gens["target_example_gen"].exec_properties
    plain = create_pipeline(RunConfig.tiny(str(tmp_path))).components
    # Without extra sources the parameter is absent: earlier runs' cached ingest stays valid.
    assert all("extra_corpora" not in c.exec_properties for c in plain)


def test_prepare_synthetic_generates_a_synthetic_extra_source(tmp_path, monkeypatch):
    from emograph.pipeline import local_runner

    written = []
    monkeypatch.setattr(
        local_runner, "write_corpus", lambda domain, path, *_: written.append((domain, path))
    )
    config = RunConfig.tiny(str(tmp_path)).replace(
        source=CorpusSpec("ravdess", "/data/ravdess16k"),
        extra_sources=(CorpusSpec("synthetic", "syn"),),
        target=CorpusSpec("crema-d", "/data/crema-d"),
    )
    local_runner.prepare_synthetic(config)
    assert written == [("source", "syn")]
    local_runner.prepare_synthetic(
        config.replace(source=CorpusSpec("synthetic", "src"), extra_sources=EXTRA)
    )
    assert written[1:] == [("source", "src")]  # a synthetic source, real extra sources
