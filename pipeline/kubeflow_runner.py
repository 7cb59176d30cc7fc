"""Kubeflow Pipelines: compile the pipeline to a KFP v2 spec, and schedule it with the kfp SDK.

TFX 1.16 only compiles for KFP v2 (KubeflowV2DagRunner); submitting and scheduling go through the
kfp SDK. Every step runs in one image (deployment/Dockerfile) where the project is installed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml
from tfx import v1 as tfx

from emograph.pipeline.config import RunConfig
from emograph.pipeline.pipeline import create_pipeline
from emograph.schemas import schema_path

# Where deployment/Dockerfile installs the emograph package (the python:3.10-slim system
# Python's site-packages). Compiling bakes file paths into the spec, so schema files (package
# data of emograph.schemas) are rewritten to the same files under this directory.
IMAGE_PACKAGE_DIR = "/usr/local/lib/python3.10/site-packages/emograph"
_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


def compile_pipeline(
    config: RunConfig, image: str, output_file: str, package_dir: str = IMAGE_PACKAGE_DIR
) -> str:
    """Writes the pipeline for `image`: `.yaml` is a KFP PipelineSpec, `.json` a Vertex PipelineJob.

    Compiling writes wheels of user modules under `config.pipeline_root` (none today: the
    components are installed in the image), so that root must be writable from here.
    """
    if not _PIPELINE_NAME.fullmatch(config.name):
        raise ValueError(
            f"Kubeflow pipeline names must match [a-z0-9][a-z0-9-]{{0,127}}, got {config.name!r}"
        )
    if not output_file.endswith((".yaml", ".yml", ".json")):
        raise ValueError(f"output must be .yaml (KFP) or .json (Vertex), got {output_file!r}")
    pipeline = create_pipeline(config)
    for component in pipeline.components:
        if isinstance(component, tfx.components.ImportSchemaGen):
            local = Path(component.exec_properties["schema_file"])
            relative = local.relative_to(schema_path("raw_audio").parents[1]).as_posix()
            component.exec_properties["schema_file"] = f"{package_dir}/schemas/{relative}"
    out = Path(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(out.parent),
        output_filename=out.name,
    )
    runner.run(pipeline)
    return str(out)


def kfp_cron(expression: str) -> str:
    """KFP's scheduler takes a seconds field first: a 5-field crontab runs at second 0."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(f"cron needs 5 fields (or 6 with seconds first), got {expression!r}")


def schedule(
    spec_file: str,
    host: str,
    cron: str,
    experiment: str = "emograph",
    job_name: str | None = None,
    pipeline_root: str | None = None,
) -> str:
    """Uploads the spec (a new version if the pipeline exists) and creates a recurring run.

    A `.yaml` spec carries no pipeline root: runs write artifacts under `pipeline_root`, or the
    cluster's default (MinIO in a standalone KFP). Returns the recurring run's id. No catch-up and
    one run at a time: a late or slow run must not pile up copies of a training pipeline.
    """
    import kfp

    if not spec_file.endswith((".yaml", ".yml")):
        raise ValueError(f"KFP takes the .yaml spec (the .json form is for Vertex): {spec_file}")
    with open(spec_file) as f:
        name = yaml.safe_load(f)["pipelineInfo"]["name"]
    client = kfp.Client(host=host)
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(spec_file, pipeline_name=name).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, page_size=1)
        version_id = versions.pipeline_versions[0].pipeline_version_id
    else:
        version = client.upload_pipeline_version(
            spec_file, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", pipeline_id=pipeline_id
        )
        version_id = version.pipeline_version_id
    experiment_id = client.create_experiment(experiment).experiment_id
    run = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=job_name or f"{name}-recurring",
        cron_expression=kfp_cron(cron),
        pipeline_id=pipeline_id,
        version_id=version_id,
        max_concurrency=1,
        no_catchup=True,
        pipeline_root=pipeline_root,
    )
    return run.recurring_run_id
