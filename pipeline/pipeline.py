"""create_pipeline(config): the emograph TFX pipeline, in order, with nothing global.

source corpus -> ingest -> validate -> Transform -> teacher Trainer
   (or, with teacher.model_path: the user's teacher, checked, staged and Importer-ed)
target corpus -> ingest -> validate -> Transform -> Embedder(teacher) -> GraphBuilder
              -> NeighbourPacker -> student Trainer (NSL) + speech-only Trainer (multiplier 0)
              -> Evaluator (NSL student vs speech-only, UAR) -> TFLitePusher (int8)
experiments add, per seed: fine-tuned teacher -> distilled student
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from tfx import v1 as tfx

from emograph.components.artifacts import SimilarityGraph
from emograph.components.config import CorpusSpec, SplitConfig, section_to_json
from emograph.components.embedder.component import Embedder
from emograph.components.embedder.expert import expert_sources
from emograph.components.evaluation.config import eval_config
from emograph.components.example_gen.component import AudioExampleGen
from emograph.components.example_gen.spans import resolve_spans
from emograph.components.graph.component import GraphBuilder
from emograph.components.models.training import input_shape
from emograph.components.neighbours.component import NeighbourPacker
from emograph.components.teacher.imported import stage_teacher
from emograph.components.tflite_pusher.component import TFLitePusher
from emograph.pipeline.config import (
    DISTILLED_STUDENT,
    FINETUNED_TEACHER,
    NSL_STUDENT,
    SELF_TRAINED,
    SPEECH_ONLY,
    VARIANTS,
    RunConfig,
    check_variants,
)
from emograph.schemas import schema_path

PREPROCESSING_FN = "emograph.components.transform.preprocessing.preprocessing_fn"
TEACHER_RUN_FN = "emograph.components.teacher.trainer.run_fn"
STUDENT_RUN_FN = "emograph.components.student.trainer.run_fn"


def _ingest_and_validate(
    name: str,
    config: RunConfig,
    corpus: CorpusSpec,
    split: SplitConfig,
    schema,
    extra_corpora: tuple[CorpusSpec, ...] = (),
    unlabelled: tuple[CorpusSpec, ...] = (),
) -> tuple[list, object]:
    """AudioExampleGen + statistics + validation + Transform of one corpus (and `extra_corpora`
    and `unlabelled` audio, ingested with it as one dataset); empty ones are left out of the
    component's parameters."""
    extra = {"extra_corpora": _specs_json(extra_corpora)} if extra_corpora else {}
    if unlabelled:
        extra["unlabelled_corpora"] = _specs_json(unlabelled)
    pooled_spans = {spec.path: names for spec in unlabelled if (names := resolve_spans(spec))}
    if pooled_spans:  # a new span is a new cache key, as for a spans target
        extra["unlabelled_spans"] = json.dumps(pooled_spans, sort_keys=True)
    example_gen = AudioExampleGen(
        corpus=section_to_json(corpus),
        classes=json.dumps(list(config.classes)),
        audio=section_to_json(config.audio),
        split=section_to_json(split),
        spans=json.dumps(resolve_spans(corpus)),
        **extra,
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
            analyze=_analysis_splits(config), transform=["train", "eval", "test"]
        ),
        custom_config=_model_config(config),
    ).with_id(f"{name}_transform")
    return [example_gen, statistics, validator, transform], (example_gen, transform)


def _specs_json(specs: tuple[CorpusSpec, ...]) -> str:
    return json.dumps([dataclasses.asdict(spec) for spec in specs], sort_keys=True)


def _analysis_splits(config: RunConfig) -> list[str]:
    """Global statistics come from the train split; per-speaker statistics need every speaker's
    (unlabelled) audio, as a device has its own user's. No analyzer reads a label."""
    if config.frontend.normalisation == "speaker":
        return ["train", "eval", "test"]
    return ["train"]


def _model_config(config: RunConfig, **sections) -> dict:
    """Trainer/Transform custom_config: the sections they read, as JSON strings."""
    return {
        "audio": section_to_json(config.audio),
        "frontend": section_to_json(config.frontend),
        "classes": list(config.classes),
        **{k: section_to_json(v) for k, v in sections.items()},
    }


def _absolute(uri: str) -> str:
    """Local paths made absolute (components run elsewhere); remote URIs kept as they are."""
    return uri if "://" in uri else str(Path(uri).resolve())


def _trainer(name: str, run_fn: str, examples, transform, custom_config: dict, base_model=None):
    return tfx.components.Trainer(
        run_fn=run_fn,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        base_model=base_model,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=custom_config,
    ).with_id(name)


@dataclasses.dataclass
class _Shared:
    """The steps every run has: both corpora prepared, the teacher, the graph, the packing."""

    components: list
    target_gen: object
    target_transform: object
    teacher_model: object  # the teacher's Model channel (trained or imported)
    packer: object


def _teacher(config: RunConfig, schema) -> tuple[list, object]:
    """The teacher's steps and its Model channel: the ingest of the source corpus (with the
    extra sources), its Transform and the teacher Trainer; or, with `teacher.model_path`, one
    Importer of the user's teacher, which is checked and staged as a Model payload here, so a
    wrong model fails before any step runs."""
    if config.teacher.model_path:
        frames, bands = input_shape(config.audio, config.frontend)
        staged = stage_teacher(
            _absolute(config.teacher.model_path),
            _absolute(f"{config.root.rstrip('/')}/imported_teacher"),
            frames,
            bands,
        )
        importer = tfx.dsl.Importer(
            source_uri=staged, artifact_type=tfx.types.standard_artifacts.Model
        ).with_id("teacher_importer")
        return [importer], importer.outputs["result"]
    # Split policies (fixed lists, folds) address the target's speakers; the source (teacher
    # data) always takes the seeded fractional split, so folds share one teacher.
    source_split = SplitConfig(
        eval_fraction=config.split.eval_fraction,
        test_fraction=config.split.test_fraction,
        seed=config.split.seed,
    )
    source_steps, (_, source_transform) = _ingest_and_validate(
        "source", config, config.source, source_split, schema, config.extra_sources
    )
    teacher = _trainer(
        "teacher_trainer",
        TEACHER_RUN_FN,
        source_transform.outputs["transformed_examples"],
        source_transform,
        _model_config(config, teacher=config.teacher),
    )
    return [*source_steps, teacher], teacher.outputs["model"]


def _shared_steps(config: RunConfig) -> _Shared:
    schema = tfx.components.ImportSchemaGen(schema_file=str(schema_path("raw_audio")))
    teacher_steps, teacher_model = _teacher(config, schema.outputs["schema"])
    target_steps, (target_gen, target_transform) = _ingest_and_validate(
        "target",
        config,
        config.target,
        config.split,
        schema.outputs["schema"],
        unlabelled=config.unlabelled,
    )
    embedder = Embedder(
        examples=target_transform.outputs["transformed_examples"],
        model=teacher_model,
        raw_examples=target_gen.outputs["examples"],
        mel_bands=config.frontend.mel_bands,
        sample_rate=config.audio.sample_rate,
        expert_features=",".join(expert_sources(config.graph.source_specs())),
    )
    graph_steps = graph_builder(config, embedder.outputs["embeddings"])
    graph = graph_steps[-1]
    packer = NeighbourPacker(
        examples=target_transform.outputs["transformed_examples"],
        graph=graph.outputs["graph"],
        max_neighbours=config.student.num_neighbours,
    )
    return _Shared(
        [schema, *teacher_steps, *target_steps, embedder, *graph_steps, packer],
        target_gen,
        target_transform,
        teacher_model,
        packer,
    )


def graph_builder(config: RunConfig, embeddings) -> list:
    """The GraphBuilder, after (with `graph.incremental`) a resolver of this pipeline's latest
    graph: its input `previous`, empty on a first run (the resolver's execution is then FAILED:
    LatestArtifactStrategy returns None, not an empty list, and the run goes on). A channel of
    the type alone, not of the GraphBuilder's output, or the graph would be its own upstream."""
    if not config.graph.incremental:
        return [GraphBuilder(embeddings=embeddings, config=section_to_json(config.graph))]
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        previous=tfx.dsl.Channel(type=SimilarityGraph),
    ).with_id("previous_graph_resolver")
    graph = GraphBuilder(
        embeddings=embeddings,
        config=section_to_json(config.graph),
        previous=resolver.outputs["previous"],
    )
    return [resolver, graph]


def _variant_trainer(
    variant: str, name: str, config: RunConfig, shared: _Shared, seed: int, distil_from=None
):
    """One model of a comparison: the NSL student, the speech-only student (same trainer,
    multiplier 0), the fine-tuned teacher (classic transfer), the distilled student (the
    speech-only student also fitted to the probabilities of `distil_from`, a teacher Model
    channel; the target-adapted, fine-tuned teacher, as the source teacher may have no head for
    the target's classes) or the self-trained student (speech-only, refitted with its own
    confident labels of the unlabelled train clips)."""
    transformed = shared.target_transform.outputs["transformed_examples"]
    if variant == NSL_STUDENT:
        student = dataclasses.replace(config.student, seed=seed)
        return _trainer(
            name,
            STUDENT_RUN_FN,
            shared.packer.outputs["packed_examples"],
            shared.target_transform,
            _model_config(config, student=student),
        )
    if variant in (SPEECH_ONLY, DISTILLED_STUDENT, SELF_TRAINED):
        if variant == DISTILLED_STUDENT and distil_from is None:
            raise ValueError(f"{DISTILLED_STUDENT} needs a teacher to distil from")
        student = dataclasses.replace(
            config.student,
            seed=seed,
            graph_multiplier=0.0,
            graph_multipliers=(),
            self_training=variant == SELF_TRAINED,
        )
        return _trainer(
            name,
            STUDENT_RUN_FN,
            transformed,
            shared.target_transform,
            _model_config(config, student=student),
            base_model=distil_from if variant == DISTILLED_STUDENT else None,
        )
    if variant == FINETUNED_TEACHER:
        teacher = dataclasses.replace(config.teacher, seed=seed)
        return _trainer(
            name,
            TEACHER_RUN_FN,
            transformed,
            shared.target_transform,
            _model_config(config, teacher=teacher),
            base_model=shared.teacher_model,
        )
    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


def _pipeline(config: RunConfig, components: list, metadata_connection_config) -> tfx.dsl.Pipeline:
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam.pipeline_args(),
    )


def experiment_trainer_id(variant: str, seed: int) -> str:
    return f"{variant}_seed{seed}"


def create_experiment_pipeline(
    config: RunConfig,
    seeds: int,
    metadata_connection_config=None,
    variants: Sequence[str] = VARIANTS,
) -> tfx.dsl.Pipeline:
    """The shared steps plus every variant x seed trainer (no Evaluator/Pusher): one fold of
    `emograph experiment`. Teacher, embeddings and graph are computed once and reused."""
    shared = _shared_steps(config)
    trainers = []
    for seed in range(seeds):
        by_variant: dict = {}
        for variant in check_variants(variants):
            teacher = by_variant.get(FINETUNED_TEACHER)
            by_variant[variant] = _variant_trainer(
                variant,
                experiment_trainer_id(variant, seed),
                config,
                shared,
                seed,
                distil_from=teacher.outputs["model"] if teacher else None,
            )
        trainers += by_variant.values()
    return _pipeline(config, [*shared.components, *trainers], metadata_connection_config)


def create_pipeline(config: RunConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The whole run as a TFX pipeline (caching on: finished steps are reused on rerun).

    `metadata_connection_config` is the local runner's SQLite store; Kubeflow brings its own.
    """
    shared = _shared_steps(config)
    seed = config.student.seed
    student = _variant_trainer(NSL_STUDENT, "student_trainer", config, shared, seed)
    speech_only = _variant_trainer(SPEECH_ONLY, "speech_only_trainer", config, shared, seed)
    target_transform, target_gen = shared.target_transform, shared.target_gen
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
        push_root=_absolute(config.push_root),
        export_config=section_to_json(config.export),
        audio=section_to_json(config.audio),
        frontend=section_to_json(config.frontend),
        classes=json.dumps(list(config.classes)),
    )
    return _pipeline(
        config,
        [*shared.components, student, speech_only, evaluator, pusher],
        metadata_connection_config,
    )
