"""Faults: a run killed mid-way reuses its finished components when started again (TFX cache in
ML Metadata), and runs under different roots do not see each other's artifacts."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from emograph.components.config import CorpusSpec
from emograph.components.example_gen.watch import watch
from emograph.pipeline.config import RunConfig
from emograph.pipeline.local_runner import prepare_synthetic

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
State = metadata_store_pb2.Execution.State


def cheap(root: Path) -> RunConfig:
    """The tiny run with fewer epochs: this test is about orchestration, not accuracy."""
    config = RunConfig.tiny(str(root))
    return config.replace(
        teacher=dataclasses.replace(config.teacher, epochs=2, finetune_epochs=1),
        student=dataclasses.replace(config.student, epochs=2),
    )


def node_states(metadata_path: str) -> dict[str, list[int]]:
    """Node id -> states of its executions, oldest first ({} before the store exists or while
    the running pipeline holds it locked)."""
    if not Path(metadata_path).exists():
        return {}
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    try:
        store = metadata_store.MetadataStore(connection)
        return {
            context.name.split(".", 1)[1]: [
                e.last_known_state
                for e in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
            ]
            for context in store.get_contexts_by_type("node")
        }
    except Exception:  # noqa: BLE001 (sqlite busy while the pipeline writes: ask again)
        return {}


def start_run(config: RunConfig, log: Path) -> subprocess.Popen:
    path = Path(config.root) / "run_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json())
    command = [sys.executable, "-m", "emograph.pipeline.cli", "run", "--config", str(path)]
    return subprocess.Popen(
        command, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def test_a_killed_run_resumes_from_its_finished_components(tmp_path):
    config = cheap(tmp_path / "run")
    log = tmp_path / "run.log"
    first = start_run(config, log)
    deadline = time.monotonic() + 300
    finished: set[str] = set()
    try:
        # Kill once ingest of both corpora and a few more steps are done, mid-pipeline.
        while len(finished) < 5:
            assert first.poll() is None, f"run ended before the kill:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no progress to kill"
            time.sleep(0.5)
            finished = {
                n for n, s in node_states(config.metadata_path).items() if State.COMPLETE in s
            }
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = node_states(config.metadata_path)
    finished = {n for n, s in before.items() if State.COMPLETE in s}
    assert "source_example_gen" in finished and "target_example_gen" in finished
    assert "TFLitePusher" not in before  # it really was killed mid-way

    second = start_run(config, log)
    assert second.wait(timeout=600) == 0, log.read_text()[-5000:]
    after = node_states(config.metadata_path)
    for node in finished:  # reused, not rerun
        assert after[node][len(before[node]) :] == [State.CACHED], (node, after[node])
    assert "TFLitePusher" in after
    for node, states in after.items():
        assert states[-1] in (State.COMPLETE, State.CACHED), (node, states)
        if node not in finished:
            assert State.COMPLETE in states[len(before.get(node, [])) :], (node, states)


INGEST_ONLY = """
import json, sys
from tfx import v1 as tfx
from emograph.pipeline.config import RunConfig
from emograph.pipeline.pipeline import _ingest_and_validate, _pipeline
config = RunConfig.from_json(open(sys.argv[1]).read())
schema = tfx.components.ImportSchemaGen(schema_file=sys.argv[2])
target = (config.target, config.split, schema.outputs["schema"])
steps, _ = _ingest_and_validate("target", config, *target)
metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
tfx.orchestration.LocalDagRunner().run(_pipeline(config, [schema, steps[0]], metadata))
"""


def store_of(metadata_path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    return metadata_store.MetadataStore(connection)


def test_runs_under_different_roots_do_not_interfere(tmp_path):
    """Two ingest-only pipelines at once, one from a corpus and one from the watcher's spans of
    the same corpus: each store holds only its own artifacts, under its own root."""
    from emograph.schemas import schema_path

    corpus_run = cheap(tmp_path / "a")
    prepare_synthetic(corpus_run)
    spans_dir = tmp_path / "spans"
    (span,) = watch(
        corpus_run.target,
        corpus_run.classes,
        corpus_run.audio,
        corpus_run.split,
        str(spans_dir),
        settle_seconds=0.0,
        max_spans=1,
    )
    spans_run = cheap(tmp_path / "b").replace(target=CorpusSpec("spans", str(spans_dir)))
    runs = []
    for config in (corpus_run, spans_run):
        Path(config.root).mkdir(parents=True, exist_ok=True)
        path = Path(config.root) / "run_config.json"
        path.write_text(config.to_json())
        log = (Path(config.root) / "run.log").open("wb")
        command = [sys.executable, "-c", INGEST_ONLY, str(path), str(schema_path("raw_audio"))]
        runs.append((subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log), config))
    for process, config in runs:
        assert process.wait(timeout=300) == 0, (Path(config.root) / "run.log").read_text()[-3000:]

    reports, spans = [], []
    for _, config in runs:
        store = store_of(config.metadata_path)
        root = str(Path(config.root).resolve())
        assert all(a.uri.startswith(root) for a in store.get_artifacts())
        (examples,) = store.get_artifacts_by_type("Examples")
        spans.append(examples.properties["span"].int_value)
        (report,) = store.get_artifacts_by_type("emograph.IngestReport")
        reports.append(json.loads((Path(report.uri) / "ingest_report.json").read_text()))
    from_corpus, from_spans = reports
    assert spans == [0, 1] and from_spans["spans"] == ["span-1"]
    assert from_corpus["found"] == from_spans["found"] == span["found"]
    assert sum(from_corpus["windows"].values()) == sum(from_spans["windows"].values())
