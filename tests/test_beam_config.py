"""Beam runner option sets: the exact flags, that Beam parses them, validation, JSON round trip."""

import dataclasses
from unittest import mock

import pytest

from emograph.pipeline.config import BeamConfig, RunConfig

IMAGE = "europe-docker.pkg.dev/p/emograph/emograph:0.1.0"

SETS = {
    "direct": (BeamConfig(), []),
    "direct-multiprocess": (
        BeamConfig(runner="direct-multiprocess", workers=4),
        [
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=4",
            "--sdk_container_image=unused-by-direct-runner",
        ],
    ),
    "dataflow": (
        BeamConfig(
            runner="dataflow",
            workers=3,
            project="my-project",
            region="europe-west4",
            temp_location="gs://bucket/tmp",
            sdk_container_image=IMAGE,
            machine_type="n2-standard-4",
            max_num_workers=20,
        ),
        [
            "--runner=DataflowRunner",
            "--project=my-project",
            "--region=europe-west4",
            "--temp_location=gs://bucket/tmp",
            f"--sdk_container_image={IMAGE}",
            "--num_workers=3",
            "--machine_type=n2-standard-4",
            "--max_num_workers=20",
        ],
    ),
    "flink": (
        BeamConfig(runner="flink", workers=8, flink_master="flink:8081", sdk_container_image=IMAGE),
        [
            "--runner=FlinkRunner",
            "--flink_master=flink:8081",
            "--parallelism=8",
            "--environment_type=DOCKER",
            f"--sdk_container_image={IMAGE}",
        ],
    ),
    "flink-external": (
        BeamConfig(
            runner="flink",
            flink_master="flink:8081",
            environment_type="EXTERNAL",
            environment_config="localhost:50000",
        ),
        [
            "--runner=FlinkRunner",
            "--flink_master=flink:8081",
            "--parallelism=2",
            "--environment_type=EXTERNAL",
            "--environment_config=localhost:50000",
        ],
    ),
    "spark": (
        BeamConfig(
            runner="spark", spark_master_url="spark://spark:7077", sdk_container_image=IMAGE
        ),
        [
            "--runner=SparkRunner",
            "--spark_master_url=spark://spark:7077",
            "--environment_type=DOCKER",
            f"--sdk_container_image={IMAGE}",
        ],
    ),
}


@pytest.mark.parametrize("name", SETS)
def test_each_set_gives_its_exact_flags(name):
    config, expected = SETS[name]
    assert config.pipeline_args() == expected


@pytest.mark.parametrize("name", SETS)
def test_beam_knows_every_flag(name):
    from apache_beam.options.pipeline_options import PipelineOptions

    args = SETS[name][0].pipeline_args()
    options = PipelineOptions(args).get_all_options(retain_unknown_options=True)
    for arg in args:
        key, _, value = arg[2:].partition("=")
        assert str(options[key]) == value, arg


@pytest.mark.parametrize("name", [n for n in SETS if n not in ("direct", "flink-external")])
def test_no_set_makes_tfx_build_an_sdist_of_itself(name):
    """Non-empty args without an image make every TFX Beam executor package tfx (slow)."""
    from tfx.utils import dependency_utils

    args = SETS[name][0].pipeline_args()
    with mock.patch.object(dependency_utils, "build_ephemeral_package") as build:
        assert dependency_utils.make_beam_dependency_flags(list(args)) == args
    build.assert_not_called()


def test_extra_args_come_last():
    config = BeamConfig(
        runner="direct-multiprocess", extra_args=("--direct_runner_bundle_repeat=1",)
    )
    assert config.pipeline_args()[-1] == "--direct_runner_bundle_repeat=1"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"runner": "prism"}, "beam runner must be one of"),
        ({"workers": 0}, "workers must be at least 1"),
        (
            {"runner": "dataflow", "project": "p"},
            "'dataflow' needs region, temp_location, sdk_container_image",
        ),
        (
            {
                "runner": "dataflow",
                "project": "p",
                "region": "r",
                "temp_location": "/tmp",
                "sdk_container_image": IMAGE,
            },
            "temp_location must be a gs:// path",
        ),
        ({"runner": "flink", "sdk_container_image": IMAGE}, "'flink' needs flink_master"),
        ({"runner": "flink", "flink_master": "f:8081"}, "'flink' needs sdk_container_image"),
        (
            {
                "runner": "spark",
                "spark_master_url": "spark://s:7077",
                "environment_type": "PROCESS",
            },
            "'spark' needs environment_config",
        ),
        (
            {"runner": "spark", "spark_master_url": "spark://s:7077", "environment_type": "docker"},
            "environment_type must be one of",
        ),
    ],
)
def test_invalid_sets_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BeamConfig(**kwargs)


def test_run_config_with_beam_round_trips_through_json():
    beam = dataclasses.replace(SETS["dataflow"][0], extra_args=("--a",))
    config = RunConfig.tiny("/tmp/x").replace(beam=beam)
    restored = RunConfig.from_json(config.to_json())
    assert restored == config
    assert restored.beam.extra_args == ("--a",)


def test_invalid_beam_section_in_json_is_refused():
    text = RunConfig.tiny("/tmp/x").to_json().replace('"runner": "direct"', '"runner": "dataflow"')
    with pytest.raises(ValueError, match="'dataflow' needs project"):
        RunConfig.from_json(text)
