"""TFLitePusher: converts the blessed student to int8 TFLite and pushes a versioned directory."""

import json
import logging
import time
from pathlib import Path

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing, PushedModel
from tfx.utils import path_utils

from components.edge import metadata as edge_metadata
from components.tflite_pusher import export
from pipeline.config import AudioConfig, ExportConfig, section_from_json

log = logging.getLogger(__name__)

PUSHED_VARIANT = "int8"


class PushRefused(RuntimeError):
    """The int8 model disagrees with the float model beyond the configured limit."""


def export_and_push(
    model_dir: str,
    raw_examples_uri: str,
    push_root: str,
    cfg: ExportConfig,
    audio: AudioConfig,
    classes: tuple[str, ...],
    lineage: dict,
) -> Path:
    """Converts, checks parity, and pushes `<push_root>/<model_name>/<version>/`."""
    representative, _ = export.read_windows(
        f"{raw_examples_uri}/Split-train/*.gz", classes, cfg.representative_examples
    )
    test_pcm, test_labels = export.read_windows(f"{raw_examples_uri}/Split-test/*.gz", classes)
    report = export.export_variants(model_dir, representative, test_pcm, test_labels, classes)
    models = {q: report[q].pop("model") for q in export.QUANTIZATIONS}
    agreement = report[PUSHED_VARIANT]["top1_agreement_with_float"]
    if agreement < cfg.min_int8_agreement:
        raise PushRefused(
            f"int8 model agrees with the float model on {agreement:.1%} of test windows, "
            f"below the configured minimum {cfg.min_int8_agreement:.1%}: not pushed"
        )
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    extra = {"test": report, "lineage": lineage, "window_seconds": audio.window_seconds}

    def write_contents(directory: Path) -> None:
        meta = edge_metadata.write_metadata(
            directory,
            sample_rate=audio.sample_rate,
            window_samples=audio.window_samples,
            hop_samples=audio.hop_samples,
            classes=classes,
            quantization=PUSHED_VARIANT,
            extra=extra,
        )
        card = export.model_card(
            cfg.model_name, version, json.loads(meta.to_json()), report, classes
        )
        (directory / "MODEL_CARD.md").write_text(card)

    return export.push(
        Path(push_root) / cfg.model_name, version, models[PUSHED_VARIANT], write_contents
    )


@component
def TFLitePusher(  # noqa: N802
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    examples: InputArtifact[Examples],
    pushed_model: OutputArtifact[PushedModel],
    push_root: Parameter[str],
    export_config: Parameter[str],
    audio: Parameter[str],
    classes: Parameter[str],
) -> None:
    """Pushes only a blessed model; `examples` are the raw target windows (PCM) for
    calibration (train split) and the float/int8 test comparison (test split)."""
    if not model_blessing.get_int_custom_property("blessed"):
        log.warning("model %s is not blessed: nothing pushed", model.uri)
        pushed_model.set_int_custom_property("pushed", 0)
        return
    raw_uri = str(Path(artifact_utils.get_split_uri([examples], "train")).parent)
    destination = export_and_push(
        path_utils.serving_model_path(model.uri),
        raw_uri,
        push_root,
        section_from_json(ExportConfig, export_config),
        section_from_json(AudioConfig, audio),
        tuple(json.loads(classes)),
        {"model": model.uri, "examples": examples.uri},
    )
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", str(destination))
    log.info("pushed %s", destination)
