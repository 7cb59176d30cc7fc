"""The one typed run configuration: every knob of a run lives here or in the sections it holds.

`RunConfig` gathers the sections the components read (`components/config.py`), the Beam runner
and the run's corpora; `RunConfig.demo()` / `RunConfig.tiny()` build the two presets used by
`make demo` and the tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emograph.components.config import (
    EMOTIONS,
    AudioConfig,
    ConfigError,
    CorpusSpec,
    EvaluationConfig,
    ExportConfig,
    FrontendConfig,
    GraphConfig,
    SplitConfig,
    StudentConfig,
    SynthConfig,
    TeacherConfig,
    check_corpora,
    check_labelled,
    from_dict,
)

BEAM_RUNNERS: tuple[str, ...] = ("direct", "direct-multiprocess", "dataflow", "flink", "spark")
PORTABLE_ENVIRONMENTS: tuple[str, ...] = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")


# With non-empty Beam args that declare no dependencies (--extra_package, --setup_file,
# --requirements_file, --sdk_container_image), TFX builds an sdist of the whole tfx package before
# every Beam executor (tfx/utils/dependency_utils.py; ~4 s each here). Multi-process DirectRunner
# workers are this interpreter (`python -m apache_beam.runners.worker.sdk_worker_main`) and ignore
# the image, so naming one declares the dependencies as present and skips the sdist.
_LOCAL_WORKERS_IMAGE = "unused-by-direct-runner"


@dataclass(frozen=True)
class BeamConfig:
    """Which Beam runner every Beam-using component (ingest, Transform, embed, graph, pack) uses.

    Attributes:
      runner: "direct" (in-process), "direct-multiprocess" (local worker processes), "dataflow",
        "flink" or "spark" (the last two through Beam's portable job servers).
      workers: local worker processes, Dataflow's initial workers, or Flink's parallelism.
      project, region, temp_location, machine_type, max_num_workers: Dataflow settings.
      sdk_container_image: the emograph image; Dataflow and portable DOCKER workers run it, so
        they have the project's code and the pinned stack.
      flink_master: host:port of the Flink JobManager's REST endpoint.
      spark_master_url: spark://host:port of the Spark master.
      environment_type, environment_config: where portable (Flink/Spark) workers run the SDK
        harness: DOCKER (the image), PROCESS (a command on each worker), EXTERNAL (a worker
        pool at host:port) or LOOPBACK (this process; only for a local job server).
      extra_args: appended verbatim, for any flag not modelled here.
    """

    runner: str = "direct"
    workers: int = 2
    project: str = ""
    region: str = ""
    temp_location: str = ""
    sdk_container_image: str = ""
    machine_type: str = ""
    max_num_workers: int = 0
    flink_master: str = ""
    spark_master_url: str = ""
    environment_type: str = "DOCKER"
    environment_config: str = ""
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.runner not in BEAM_RUNNERS:
            raise ValueError(f"beam runner must be one of {BEAM_RUNNERS}, got {self.runner!r}")
        if self.workers < 1:
            raise ValueError(f"beam workers must be at least 1, got {self.workers}")
        required = {
            "dataflow": ("project", "region", "temp_location", "sdk_container_image"),
            "flink": ("flink_master",),
            "spark": ("spark_master_url",),
        }.get(self.runner, ())
        if self.runner in ("flink", "spark"):
            if self.environment_type not in PORTABLE_ENVIRONMENTS:
                raise ValueError(
                    f"beam environment_type must be one of {PORTABLE_ENVIRONMENTS}, "
                    f"got {self.environment_type!r}"
                )
            required += {
                "DOCKER": ("sdk_container_image",),
                "PROCESS": ("environment_config",),
                "EXTERNAL": ("environment_config",),
            }.get(self.environment_type, ())
        missing = [name for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"beam runner {self.runner!r} needs {', '.join(missing)}")
        if self.runner == "dataflow" and not self.temp_location.startswith("gs://"):
            raise ValueError(f"dataflow temp_location must be a gs:// path: {self.temp_location!r}")

    def pipeline_args(self) -> list[str]:
        """The Beam flags of this runner, as TFX's `beam_pipeline_args` and `PipelineOptions`."""
        if self.runner == "direct":
            args: list[str] = []
        elif self.runner == "direct-multiprocess":
            args = [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={self.workers}",
                f"--sdk_container_image={self.sdk_container_image or _LOCAL_WORKERS_IMAGE}",
            ]
        elif self.runner == "dataflow":
            args = [
                "--runner=DataflowRunner",
                f"--project={self.project}",
                f"--region={self.region}",
                f"--temp_location={self.temp_location}",
                f"--sdk_container_image={self.sdk_container_image}",
                f"--num_workers={self.workers}",
            ]
            if self.machine_type:
                args.append(f"--machine_type={self.machine_type}")
            if self.max_num_workers:
                args.append(f"--max_num_workers={self.max_num_workers}")
        elif self.runner == "flink":
            args = [
                "--runner=FlinkRunner",
                f"--flink_master={self.flink_master}",
                f"--parallelism={self.workers}",
            ]
        else:
            args = ["--runner=SparkRunner", f"--spark_master_url={self.spark_master_url}"]
        if self.runner in ("flink", "spark"):
            args.append(f"--environment_type={self.environment_type}")
            if self.environment_config:
                args.append(f"--environment_config={self.environment_config}")
            if self.sdk_container_image:
                args.append(f"--sdk_container_image={self.sdk_container_image}")
        return args + list(self.extra_args)


@dataclass(frozen=True)
class RunConfig:
    """Everything one pipeline run needs.

    Attributes:
      source: the teacher's corpus (not used with `teacher.model_path`).
      extra_sources: more corpora the teacher trains on, beside `source`: all of them are
        ingested by one ExampleGen (one dedupe, so audio found in two corpora is ingested once;
        one seeded split over the union of their speakers). One corpus per kind, no spans
        (`check_corpora`); a synthetic one is generated like a synthetic `source`.
      target: the student's corpus (the split policies of `split` address its speakers).
      unlabelled: more audio of the target's domain without labels (any corpus kind; "audio"
        for a plain folder, "spans" for the spans `emograph ingest --watch` wrote), ingested
        with the target into its train split: it joins the
        similarity graph and per-speaker statistics, never a supervised loss.
    """

    name: str = "emograph"
    root: str = "runs/demo"
    source: CorpusSpec = CorpusSpec("synthetic", "runs/demo/data/source")
    extra_sources: tuple[CorpusSpec, ...] = ()
    target: CorpusSpec = CorpusSpec("synthetic", "runs/demo/data/target")
    unlabelled: tuple[CorpusSpec, ...] = ()
    classes: tuple[str, ...] = EMOTIONS
    synth: SynthConfig = SynthConfig()
    audio: AudioConfig = AudioConfig()
    split: SplitConfig = SplitConfig()
    frontend: FrontendConfig = FrontendConfig()
    teacher: TeacherConfig = TeacherConfig()
    graph: GraphConfig = GraphConfig()
    student: StudentConfig = StudentConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    export: ExportConfig = ExportConfig()
    beam: BeamConfig = BeamConfig()

    def __post_init__(self) -> None:
        check_corpora((self.source, *self.extra_sources))
        check_corpora((self.target,), self.unlabelled)
        check_labelled((self.source, *self.extra_sources, self.target))
        synthetic = [c.path for c in self.unlabelled if c.kind == "synthetic"]
        if synthetic:
            raise ValueError(
                f"unlabelled synthetic:{synthetic[0]}: write a corpus with other voices "
                "(emograph synth --corpus target --seed N --out DIR) and give it as audio:DIR/wav"
            )
        if self.student.architecture == "functionals" and self.frontend.normalisation != "speaker":
            raise ValueError(
                'the functionals student needs frontend.normalisation "speaker" (its inputs are '
                "z-scored per speaker; an edge model with global functionals statistics baked in "
                f"is not built), got {self.frontend.normalisation!r}"
            )

    @property
    def pipeline_root(self) -> str:
        return self._under_root("pipeline")

    @property
    def metadata_path(self) -> str:
        return self._under_root("metadata.sqlite")

    @property
    def push_root(self) -> str:
        return self._under_root("pushed")

    def _under_root(self, name: str) -> str:
        """String join, not pathlib: `gs://bucket/x` must keep its double slash."""
        return f"{self.root.rstrip('/')}/{name}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Parses and checks a whole config; any mistake is one `ConfigError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
        return from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunConfig:
        """`from_json` of a file, every error prefixed with the file's name."""
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: no such config file") from e
        except IsADirectoryError as e:
            raise ConfigError(f"{path}: is a directory, not a config file") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text, so not a JSON config") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from e
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def demo(cls, root: str = "runs/demo") -> RunConfig:
        """The `make demo` run: the synthetic source and target corpora at default size."""
        return cls(
            root=root,
            source=CorpusSpec("synthetic", f"{root}/data/source"),
            target=CorpusSpec("synthetic", f"{root}/data/target"),
        )

    @classmethod
    def tiny(cls, root: str) -> RunConfig:
        """A run small enough for an end-to-end test on 2 cores."""
        return cls(
            name="emograph-tiny",
            root=root,
            source=CorpusSpec("synthetic", f"{root}/data/source"),
            target=CorpusSpec("synthetic", f"{root}/data/target"),
            synth=SynthConfig(speakers=8, utterances_per_emotion=4),
            audio=AudioConfig(window_seconds=1.5, hop_seconds=1.5),
            teacher=TeacherConfig(
                filters=(16, 32, 64), embedding_dim=64, epochs=6, finetune_epochs=6
            ),
            student=StudentConfig(filters=(16, 24, 32), epochs=8),
            # Tiny data gives noisy students: bless anything above chance so the push is tested.
            evaluation=EvaluationConfig(uar_margin=1.0),
            export=ExportConfig(
                representative_examples=32, min_int8_agreement=0.5, max_int8_uar_drop=1.0
            ),
        )


# The models an experiment compares.
NSL_STUDENT, SPEECH_ONLY, FINETUNED_TEACHER = "nsl_student", "speech_only", "finetuned_teacher"
DISTILLED_STUDENT, SELF_TRAINED = "distilled_student", "self_trained"
# In dependency order: the distilled student learns from the same seed's fine-tuned teacher.
# The self-trained student pseudo-labels the unlabelled train clips (with none, it is the
# speech-only student).
VARIANTS = (NSL_STUDENT, SPEECH_ONLY, FINETUNED_TEACHER, DISTILLED_STUDENT, SELF_TRAINED)


def check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """The experiment's models in VARIANTS order; the NSL student (what the others are compared
    with) is always one, and the distilled student needs the fine-tuned teacher."""
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; valid: {list(VARIANTS)}")
    if NSL_STUDENT not in variants:
        raise ValueError(f"the variants must include {NSL_STUDENT!r}, the model compared")
    if DISTILLED_STUDENT in variants and FINETUNED_TEACHER not in variants:
        raise ValueError(f"{DISTILLED_STUDENT!r} is distilled from {FINETUNED_TEACHER!r}: add it")
    return tuple(v for v in VARIANTS if v in variants)
