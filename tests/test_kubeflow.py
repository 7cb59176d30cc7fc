"""Kubeflow: the compiled KFP v2 spec (offline) and the kfp SDK calls of `schedule`."""

import dataclasses
import json
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml

from emograph.pipeline import cli
from emograph.pipeline.config import BeamConfig, RunConfig
from emograph.pipeline.kubeflow_runner import (
    IMAGE_PACKAGE_DIR,
    compile_pipeline,
    kfp_cron,
    schedule,
)

REPO = Path(__file__).resolve().parent.parent
IMAGE = "europe-docker.pkg.dev/p/emograph/emograph:0.1.0"
DATAFLOW = BeamConfig(
    runner="dataflow",
    project="p",
    region="europe-west4",
    temp_location="gs://bucket/tmp",
    sdk_container_image=IMAGE,
)
TFX_LAUNCHER = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The demo pipeline with Dataflow Beam args, compiled to YAML once for the module."""
    root = tmp_path_factory.mktemp("kfp")
    config = RunConfig.demo(str(root / "run")).replace(beam=DATAFLOW)
    out = compile_pipeline(config, IMAGE, str(root / "spec" / "emograph.yaml"))
    return config, out, yaml.safe_load(Path(out).read_text())


def _executors(spec: dict) -> dict:
    return {
        name.removesuffix("_executor"): executor["container"]
        for name, executor in spec["deploymentSpec"]["executors"].items()
    }


def test_spec_loads_with_the_kfp_sdk(compiled):
    from kfp.components import load_component_from_file

    _, out, _ = compiled
    component = load_component_from_file(out)
    assert component.name == "emograph"


def test_every_component_is_a_task(compiled):
    from emograph.pipeline.pipeline import create_pipeline

    config, _, spec = compiled
    ids = {component.id for component in create_pipeline(config).components}
    assert len(ids) == 17
    assert set(spec["root"]["dag"]["tasks"]) == ids
    assert set(_executors(spec)) == ids


def test_every_executor_runs_the_image_with_the_tfx_launcher(compiled):
    _, _, spec = compiled
    for name, container in _executors(spec).items():
        assert container["image"] == IMAGE, name
        assert container["command"] == TFX_LAUNCHER, name


def test_beam_components_get_the_dataflow_args(compiled):
    from tfx.dsl.components.base.executor_spec import BeamExecutorSpec

    from emograph.pipeline.pipeline import create_pipeline

    config, _, spec = compiled
    beam_ids = {
        c.id
        for c in create_pipeline(config).components
        if isinstance(c.executor_spec, BeamExecutorSpec)
    }
    assert {"source_example_gen", "Embedder", "GraphBuilder", "NeighbourPacker"} <= beam_ids
    executors = _executors(spec)
    for name in beam_ids:
        args = executors[name]["args"]
        assert args[-len(DATAFLOW.pipeline_args()) :] == DATAFLOW.pipeline_args(), name


def test_schema_is_read_from_the_package_installed_in_the_image(compiled):
    _, _, spec = compiled
    parameters = spec["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]
    path = parameters["schema_file"]["runtimeValue"]["constantValue"]["stringValue"]
    assert path == f"{IMAGE_PACKAGE_DIR}/schemas/raw_audio/schema.pbtxt"
    assert (REPO / path.removeprefix(IMAGE_PACKAGE_DIR + "/")).is_file()


def test_dockerfile_matches_the_compiled_spec():
    """No Docker engine here: check the Dockerfile's fixed path and that it keeps `python` free."""
    dockerfile = (REPO / "deployment" / "Dockerfile").read_text()
    assert "COPY --chown" not in dockerfile  # the package, schemas included, is installed
    assert "ARG PYTHON_IMAGE=python:3.10-slim\n" in dockerfile
    assert re.search(r"^USER 1000$", dockerfile, re.M)
    assert "-c /tmp/constraints.txt" in dockerfile
    assert "schemas" not in (REPO / ".dockerignore").read_text()


def test_json_output_is_a_vertex_pipeline_job(tmp_path):
    config = RunConfig.demo(str(tmp_path / "run"))
    out = compile_pipeline(config, IMAGE, str(tmp_path / "job.json"))
    job = json.loads(Path(out).read_text())
    assert job["runtimeConfig"]["gcsOutputDirectory"] == config.pipeline_root
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "emograph"


def test_remote_root_is_kept(tmp_path):
    config = RunConfig.demo("gs://bucket/emograph")
    out = compile_pipeline(config, IMAGE, str(tmp_path / "job.json"))
    job = json.loads(Path(out).read_text())
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    push_root = tasks["TFLitePusher"]["inputs"]["parameters"]["push_root"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/emograph/pipeline"
    assert (
        push_root["runtimeValue"]["constantValue"]["stringValue"] == "gs://bucket/emograph/pushed"
    )


@pytest.mark.parametrize("name", ["emograph_tiny", "Emograph", "-emograph"])
def test_illegal_pipeline_names_are_refused(tmp_path, name):
    config = RunConfig.demo(str(tmp_path)).replace(name=name)
    with pytest.raises(ValueError, match="Kubeflow pipeline names must match"):
        compile_pipeline(config, IMAGE, str(tmp_path / "p.yaml"))


def test_cli_compile(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["compile", "--target", "kubeflow", "--image", IMAGE, "--out", str(out)]
    assert cli.main([*argv, "--root", str(tmp_path / "run")]) == 0
    assert yaml.safe_load(out.read_text())["pipelineInfo"]["name"] == "emograph"
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "emograph.yaml"
    path.write_text("# PIPELINE DEFINITION\npipelineInfo:\n  name: emograph\nroot: {}\n")
    return str(path)


def test_schedule_uploads_a_new_pipeline_and_creates_a_recurring_run(spec_file):
    with mock.patch("kfp.Client") as client_cls:
        client = client_cls.return_value
        client.get_pipeline_id.return_value = None
        client.upload_pipeline.return_value.pipeline_id = "pid"
        versions = client.list_pipeline_versions.return_value
        versions.pipeline_versions = [mock.Mock(pipeline_version_id="vid")]
        client.create_experiment.return_value.experiment_id = "eid"
        client.create_recurring_run.return_value.recurring_run_id = "rid"

        run_id = schedule(
            spec_file, "http://kfp:8080", "0 3 * * *", "nightly", pipeline_root="gs://b/root"
        )

    assert run_id == "rid"
    client_cls.assert_called_once_with(host="http://kfp:8080")
    client.get_pipeline_id.assert_called_once_with("emograph")
    client.upload_pipeline.assert_called_once_with(spec_file, pipeline_name="emograph")
    client.list_pipeline_versions.assert_called_once_with("pid", page_size=1)
    client.upload_pipeline_version.assert_not_called()
    client.create_experiment.assert_called_once_with("nightly")
    client.create_recurring_run.assert_called_once_with(
        experiment_id="eid",
        job_name="emograph-recurring",
        cron_expression="0 0 3 * * *",
        pipeline_id="pid",
        version_id="vid",
        max_concurrency=1,
        no_catchup=True,
        pipeline_root="gs://b/root",
    )


def test_schedule_adds_a_version_to_an_existing_pipeline(spec_file):
    with mock.patch("kfp.Client") as client_cls:
        client = client_cls.return_value
        client.get_pipeline_id.return_value = "pid"
        client.upload_pipeline_version.return_value.pipeline_version_id = "v2"
        client.create_experiment.return_value.experiment_id = "eid"

        schedule(spec_file, "http://kfp:8080", "*/30 * * * * *", job_name="every-30s")

    client.upload_pipeline.assert_not_called()
    (path, version_name), kwargs = client.upload_pipeline_version.call_args
    assert path == spec_file and kwargs == {"pipeline_id": "pid"}
    assert re.fullmatch(r"emograph-\d{8}-\d{6}", version_name)
    kwargs = client.create_recurring_run.call_args.kwargs
    assert kwargs["version_id"] == "v2"
    assert kwargs["job_name"] == "every-30s"
    assert kwargs["cron_expression"] == "*/30 * * * * *"


def test_cli_schedule(spec_file, capsys):
    with mock.patch("kfp.Client") as client_cls:
        client_cls.return_value.get_pipeline_id.return_value = "pid"
        client_cls.return_value.create_recurring_run.return_value.recurring_run_id = "rid"
        argv = ["schedule", "--host", "http://kfp:8080", "--cron", "0 3 * * *"]
        assert cli.main([*argv, "--spec", spec_file]) == 0
    assert "recurring run rid created" in capsys.readouterr().out


def test_schedule_refuses_the_vertex_json(tmp_path):
    with pytest.raises(ValueError, match="takes the .yaml spec"):
        schedule(str(tmp_path / "job.json"), "http://kfp:8080", "0 3 * * *")


@pytest.mark.parametrize("cron", ["0 3 * *", "0 0 3 * * * *"])
def test_kfp_cron_needs_5_or_6_fields(cron):
    with pytest.raises(ValueError, match="cron needs 5 fields"):
        kfp_cron(cron)


def test_incremental_graph_compiles_with_its_resolver(tmp_path):
    """KFP v2 compiles only TFX's own resolver strategies; LatestArtifactStrategy is one."""
    config = RunConfig.demo(str(tmp_path / "run"))
    config = config.replace(graph=dataclasses.replace(config.graph, incremental=True))
    spec = yaml.safe_load(
        Path(compile_pipeline(config, IMAGE, str(tmp_path / "e.yaml"))).read_text()
    )
    tasks = spec["root"]["dag"]["tasks"]
    assert "previous_graph_resolver" in tasks
    assert "previous" in tasks["GraphBuilder"]["inputs"]["artifacts"]
