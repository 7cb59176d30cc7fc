"""The whole tiny pipeline with its root on a non-local filesystem (TF's ram://, standing in for
gs:// or minio:// on a cluster): every artifact and the push go through tf.io.gfile or Beam's
FileSystems, nothing through local paths."""

import json
import uuid
from pathlib import Path

import pytest
import tensorflow as tf
from tfx import v1 as tfx

from emograph.components.config import CorpusSpec
from emograph.pipeline.config import RunConfig
from emograph.pipeline.local_runner import prepare_synthetic
from emograph.pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e


def test_tiny_pipeline_runs_and_pushes_under_a_ram_root(tmp_path, ram_beam_filesystem, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path mistaken for local ("ram:/...") would appear here
    root = f"ram://emograph-{uuid.uuid4().hex}/run"
    data = tmp_path / "data"  # the corpora are local files, as a cluster's would be in a bucket
    config = RunConfig.tiny(root).replace(
        source=CorpusSpec("synthetic", str(data / "source")),
        target=CorpusSpec("synthetic", str(data / "target")),
    )
    prepare_synthetic(config)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(tmp_path / "metadata.sqlite")
    )
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))

    models = tf.io.gfile.glob(f"{config.push_root}/*/*/model.tflite")
    assert len(models) == 1 and tf.io.gfile.stat(models[0]).length > 10_000
    latest = tf.io.gfile.glob(f"{config.push_root}/*/LATEST*")
    assert latest, tf.io.gfile.listdir(config.push_root)
    reports = tf.io.gfile.glob(
        f"{config.pipeline_root}/target_example_gen/report/*/ingest_report.json"
    )
    assert json.loads(tf.io.gfile.GFile(reports[0]).read())["ingested"] > 0
    stats = tf.io.gfile.glob(f"{config.pipeline_root}/GraphBuilder/graph/*/stats.png")
    assert stats
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["data", "metadata.sqlite"]
