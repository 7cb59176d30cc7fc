"""create_pipeline(config): the emograph TFX pipeline, in order, with nothing global.

source corpus -> ingest -> validate -> Transform -> teacher Trainer
target corpus -> ingest -> validate -> Transform -> Embedder(teacher) -> GraphBuilder
              -> NeighbourPacker -> student Trainer (NSL) + speech-only Trainer (multiplier 0)
              -> Evaluator (NSL student vs speech-only, UAR) -> TFLitePusher (int8)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tfx import v1 as tfx

from components.embedder.component import Embedder
from components.evaluation.config import eval_config
from components.example_gen.component import AudioExampleGen
from components.graph.component import GraphBuilder
from components.neighbours.component import NeighbourPacker
from components.tflite_pusher.component import TFLitePusher
from pipeline.config import RunConfig, section_to_json

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "raw_audio" / "schema.pbtxt"
PREPROCESSING_FN = "components.transform.preprocessing.preprocessing_fn"
TEACHER_RUN_FN = "components.teacher.trainer.run_fn"
STUDENT_RUN_FN = "components.student.trainer.run_fn"


def _ingest_and_validate(name: str, config: RunConfig, corpus, schema) -> tuple[list, object]:
    """AudioExampleGen + statistics + validation + Transform of one corpus."""
    example_gen = AudioExampleGen(
        corpus=section_to_json(corpus),
        classes=json.dumps(list(config.classes)),
        audio=section_to_json(config.audio),
        split=section_to_json(config.split),
    ).with_id(f"{name}_example_gen")
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        f"{name}_statistics_gen"
    )
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema
    ).with_id(f"{name}_example_validator")
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema,
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(
            analyze=["train"], transform=["train", "eval", "test"]
        ),
        custom_config=_model_config(config),
    ).with_id(f"{name}_transform")
    return [example_gen, statistics, validator, transform], (example_gen, transform)


def _model_config(config: RunConfig, **sections) -> dict:
    """Trainer/Transform custom_config: the sections they read, as JSON strings."""
    return {
        "audio": section_to_json(config.audio),
        "frontend": section_to_json(config.frontend),
        "classes": list(config.classes),
        **{k: section_to_json(v) for k, v in sections.items()},
    }


def _trainer(name: str, run_fn: str, examples, transform, custom_config: dict):
    return tfx.components.Trainer(
        run_fn=run_fn,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    ).with_id(name)


def create_pipeline(config: RunConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The whole run as a TFX pipeline (caching on: finished steps are reused on rerun).

    `metadata_connection_config` is the local runner's SQLite store; Kubeflow brings its own.
    """
    schema = tfx.components.ImportSchemaGen(schema_file=str(SCHEMA_FILE))
    source_steps, (_, source_transform) = _ingest_and_validate(
        "source", config, config.source, schema.outputs["schema"]
    )
    target_steps, (target_gen, target_transform) = _ingest_and_validate(
        "target", config, config.target, schema.outputs["schema"]
    )
    teacher = _trainer(
        "teacher_trainer",
        TEACHER_RUN_FN,
        source_transform.outputs["transformed_examples"],
        source_transform,
        _model_config(config, teacher=config.teacher),
    )
    embedder = Embedder(
        examples=target_transform.outputs["transformed_examples"], model=teacher.outputs["model"]
    )
    graph = GraphBuilder(
        embeddings=embedder.outputs["embeddings"], config=section_to_json(config.graph)
    )
    packer = NeighbourPacker(
        examples=target_transform.outputs["transformed_examples"],
        graph=graph.outputs["graph"],
        max_neighbours=config.student.num_neighbours,
    )
    student = _trainer(
        "student_trainer",
        STUDENT_RUN_FN,
        packer.outputs["packed_examples"],
        target_transform,
        _model_config(config, student=config.student),
    )
    speech_only = _trainer(
        "speech_only_trainer",
        STUDENT_RUN_FN,
        target_transform.outputs["transformed_examples"],
        target_transform,
        _model_config(config, student=dataclasses.replace(config.student, graph_multiplier=0.0)),
    )
    evaluator = tfx.components.Evaluator(
        examples=target_transform.outputs["transformed_examples"],
        model=student.outputs["model"],
        baseline_model=speech_only.outputs["model"],
        example_splits=["test"],
        eval_config=eval_config(config.classes, config.evaluation.uar_margin),
    )
    pusher = TFLitePusher(
        model=student.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=target_gen.outputs["examples"],
        push_root=str(Path(config.push_root).resolve()),
        export_config=section_to_json(config.export),
        audio=section_to_json(config.audio),
        classes=json.dumps(list(config.classes)),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=[
            schema,
            *source_steps,
            *target_steps,
            teacher,
            embedder,
            graph,
            packer,
            student,
            speech_only,
            evaluator,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )
