"""TFLitePusher: converts the blessed student to int8 TFLite and pushes a versioned directory."""

import dataclasses
import json
import logging

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing, PushedModel
from tfx.utils import path_utils

from emograph.components.config import AudioConfig, ExportConfig, FrontendConfig, section_from_json
from emograph.components.edge import metadata as edge_metadata
from emograph.components.tflite_pusher import convert, export, push, score

log = logging.getLogger(__name__)

PUSHED_VARIANT = "int8"


class PushRefused(RuntimeError):
    """The exported model is not the evaluated one within the configured limits."""


def check_limits(report: dict, cfg: ExportConfig) -> None:
    """Raises PushRefused naming every parity figure of `report` outside `cfg`'s limits."""
    int8 = report[PUSHED_VARIANT]
    failures = []  # comparisons are negated so that a NaN figure fails too
    if not int8["top1_agreement_with_float"] >= cfg.min_int8_agreement:
        failures.append(
            f"int8 top-1 agrees with the float model on {int8['top1_agreement_with_float']:.1%} "
            f"of test windows (minimum {cfg.min_int8_agreement:.1%})"
        )
    if not int8["uar_drop_from_float"] <= cfg.max_int8_uar_drop:
        failures.append(
            f"int8 test UAR is {int8['uar_drop_from_float']:.3f} below the float model's "
            f"(maximum {cfg.max_int8_uar_drop:.3f})"
        )
    if not report["frontend_max_abs_error"] <= cfg.max_frontend_error:
        failures.append(
            f"the TFLite frontend differs from the TF one by {report['frontend_max_abs_error']:.2e}"
            f" log-mel (maximum {cfg.max_frontend_error:.0e})"
        )
    if failures:
        raise PushRefused("not pushed: " + "; ".join(failures))


def export_and_push(
    model_dir: str,
    raw_examples_uri: str,
    push_root: str,
    cfg: ExportConfig,
    audio: AudioConfig,
    front: FrontendConfig,
    classes: tuple[str, ...],
    lineage: dict,
) -> str:
    """Converts, checks parity against `cfg`'s limits, pushes `<push_root>/<model_name>/<version>`
    and returns that directory.

    `audio` and `front` must be the configuration the model was trained with; `raw_examples_uri`
    and `push_root` are `tf.io.gfile` paths (gs:// on a cluster).
    """
    representative = score.read_windows(
        f"{raw_examples_uri}/Split-train/*.gz", classes, cfg.representative_examples
    )
    test = score.read_windows(f"{raw_examples_uri}/Split-test/*.gz", classes)
    report = export.export_variants(
        model_dir,
        representative,
        test,
        classes,
        front,
        audio.sample_rate,
        cfg.float_layers,
        cfg.warmup_windows,
    )
    models = {q: report[q].pop("model") for q in convert.QUANTIZATIONS}
    check_limits(report, cfg)
    model_root = f"{push_root.rstrip('/')}/{cfg.model_name}"
    version = push.new_version(model_root)
    extra = {
        "test": report,
        "lineage": lineage,
        "window_seconds": audio.window_seconds,
        "frontend": dataclasses.asdict(front),  # benchmarks/edge.py --split rebuilds it
    }

    def write_contents(directory: str) -> None:
        meta = edge_metadata.write_metadata(
            directory,
            sample_rate=audio.sample_rate,
            window_samples=audio.window_samples,
            hop_samples=audio.hop_samples,
            classes=classes,
            quantization=PUSHED_VARIANT,
            normalisation=front.normalisation,
            adaptation=report.get("adaptation"),
            extra=extra,
        )
        card = push.model_card(cfg.model_name, version, json.loads(meta.to_json()), report, classes)
        with tf.io.gfile.GFile(f"{directory}/MODEL_CARD.md", "w") as f:
            f.write(card)

    return push.push(model_root, version, models[PUSHED_VARIANT], write_contents)


@component
def TFLitePusher(  # noqa: N802
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    examples: InputArtifact[Examples],
    pushed_model: OutputArtifact[PushedModel],
    push_root: Parameter[str],
    export_config: Parameter[str],
    audio: Parameter[str],
    frontend: Parameter[str],
    classes: Parameter[str],
) -> None:
    """Pushes only a blessed model; `examples` are the raw target windows (PCM) for
    calibration (train split) and the float/int8 test comparison (test split).

    `audio`, `frontend` and `export_config` are the run's config sections as JSON: the frontend
    parity check rebuilds the exact frontend the model was trained with.
    """
    if not model_blessing.get_int_custom_property("blessed"):
        log.warning("model %s is not blessed: nothing pushed", model.uri)
        pushed_model.set_int_custom_property("pushed", 0)
        return
    # A string split, not pathlib: Path("gs://b/x") is "gs:/b/x".
    raw_uri = artifact_utils.get_split_uri([examples], "train").rsplit("/", 1)[0]
    destination = export_and_push(
        path_utils.serving_model_path(model.uri),
        raw_uri,
        push_root,
        section_from_json(ExportConfig, export_config),
        section_from_json(AudioConfig, audio),
        section_from_json(FrontendConfig, frontend),
        tuple(json.loads(classes)),
        {"model": model.uri, "examples": examples.uri},
    )
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", destination)
    log.info("pushed %s", destination)
