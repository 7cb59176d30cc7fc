"""What a finished run produced, read back from ML Metadata and the artifacts (any
`tf.io.gfile` path: a run root may be on an object store)."""

from __future__ import annotations

import json
import os
from typing import Any

from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from emograph.components.edge import metadata as edge_metadata
from emograph.components.evaluation.config import BASELINE, CANDIDATE
from emograph.pipeline.config import RunConfig


def latest_uri(config: RunConfig, type_name: str) -> str | None:
    """URI of the newest artifact of a type in the run's SQLite metadata store."""
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    store = metadata_store.MetadataStore(connection)
    artifacts = store.get_artifacts_by_type(type_name)
    if not artifacts:
        return None
    return max(artifacts, key=lambda a: (a.create_time_since_epoch, a.id)).uri


def artifact_json(uri: str, name: str) -> Any:
    """The JSON file `name` of the artifact at `uri` (FileNotFoundError if it has none)."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(f"{uri}/{name}") as f:
            return json.load(f)
    except tf.errors.NotFoundError as e:
        raise FileNotFoundError(f"{uri}/{name}") from e


def artifact_has(uri: str, name: str) -> bool:
    """Whether the artifact at `uri` holds the file `name`."""
    import tensorflow as tf

    return tf.io.gfile.exists(f"{uri}/{name}")


def evaluation_metrics(uri: str) -> dict[str, dict[str, float]]:
    """{model name: {metric: value}} on the overall slice of a TFMA ModelEvaluation."""
    import tensorflow_model_analysis as tfma

    result: dict[str, dict[str, float]] = {}
    for per_slice in tfma.load_metrics(uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for item in per_slice.metric_keys_and_values:
            if item.key.is_diff:
                continue
            value = item.value.double_value.value
            result.setdefault(item.key.model_name, {})[item.key.name] = value
    return result


def summary(config: RunConfig) -> dict:
    """The headline of a run: pushed model, its size, UAR of the NSL student and the baseline."""
    out: dict = {"root": config.root}
    evaluation = latest_uri(config, "ModelEvaluation")
    if evaluation:
        found = evaluation_metrics(evaluation)
        out["nsl_student"] = found.get(CANDIDATE, {})
        out["speech_only"] = found.get(BASELINE, {})
    blessing = latest_uri(config, "ModelBlessing")
    if blessing:
        out["blessed"] = artifact_has(blessing, "BLESSED")
    graph = latest_uri(config, "emograph.SimilarityGraph")
    if graph and artifact_has(graph, "stats.json"):
        stats = artifact_json(graph, "stats.json")
        out["graph"] = {k: v for k, v in stats.items() if not isinstance(v, (dict, list))}
        out["graph"]["stats_png"] = f"{graph}/stats.png"
        cfg = stats["config"]
        out["graph"]["built_from"] = (
            f"{cfg['embedding_source']} (threshold {cfg['similarity_threshold']}, "
            f"top-{cfg['max_neighbours']}"
            + (", chosen on validation speakers)" if "selection" in stats else ")")
        )
    import tensorflow as tf

    model_root = f"{config.push_root}/{config.export.model_name}"
    if artifact_has(model_root, edge_metadata.LATEST_FILE):
        with tf.io.gfile.GFile(f"{model_root}/{edge_metadata.LATEST_FILE}") as f:
            version_dir = f"{model_root}/{f.read().strip()}"
        test = artifact_json(version_dir, edge_metadata.METADATA_FILE)["extra"]["test"]
        out["pushed"] = {
            "directory": version_dir if "://" in version_dir else os.path.abspath(version_dir),
            "bytes": tf.io.gfile.stat(f"{version_dir}/{edge_metadata.MODEL_FILE}").length,
            "int8_uar": test["int8"]["uar"],
            "float_uar": test["float32"]["uar"],
            "int8_agreement": test["int8"]["top1_agreement_with_float"],
            "int8_modes": {m: v["uar"] for m, v in test["int8"].get("modes", {}).items()},
        }
    return out


def format_summary(s: dict) -> str:
    """Human-readable lines for the end of `emograph run`."""
    lines = [f"run root: {s['root']}"]
    for key, title in (("nsl_student", "NSL student"), ("speech_only", "speech-only student")):
        if s.get(key):
            m = s[key]
            lines.append(
                f"{title:>20}: test UAR {m.get('uar', float('nan')):.3f}  "
                f"WA {m.get('wa', float('nan')):.3f}"
            )
    if "blessed" in s:
        lines.append(f"{'blessed':>20}: {s['blessed']}")
    if "graph" in s:
        g = s["graph"]
        lines.append(
            f"{'graph':>20}: "
            + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in g.items()
            )
        )
    if "pushed" in s:
        p = s["pushed"]
        lines.append(f"{'pushed model':>20}: {p['directory']}/model.tflite")
        lines.append(
            f"{'':>20}  {p['bytes'] / 1024:.1f} KiB int8, test UAR {p['int8_uar']:.3f} "
            f"(float {p['float_uar']:.3f}, top-1 agreement {p['int8_agreement']:.1%})"
        )
        if len(p["int8_modes"]) > 1:
            modes = ", ".join(f"{m} {u:.3f}" for m, u in p["int8_modes"].items())
            lines.append(f"{'':>20}  int8 test UAR by normalisation mode: {modes}")
    else:
        lines.append(f"{'pushed model':>20}: none (not blessed, or the run did not finish)")
    return "\n".join(lines)


def outputs_of_last_run(config: RunConfig) -> dict[str, dict[str, str]]:
    """{component id: {output key: uri}} of the newest pipeline run (cached steps included)."""
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    store = metadata_store.MetadataStore(connection)
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        return {}
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    executions = {e.id for e in store.get_executions_by_context(run.id)}
    prefix = f"{config.name}."
    outputs: dict[str, dict[str, str]] = {}
    for node in store.get_contexts_by_type("node"):
        if not node.name.startswith(prefix):
            continue
        node_executions = [
            e.id for e in store.get_executions_by_context(node.id) if e.id in executions
        ]
        events = store.get_events_by_execution_ids(node_executions)
        artifact_ids = {
            ev.artifact_id: ev.path.steps[0].key
            for ev in events
            if ev.type == metadata_store.metadata_store_pb2.Event.OUTPUT
        }
        for artifact in store.get_artifacts_by_id(list(artifact_ids)):
            outputs.setdefault(node.name[len(prefix) :], {})[artifact_ids[artifact.id]] = (
                artifact.uri
            )
    return outputs


def plot_learning_curves(curves: dict[str, dict[str, list[float]]], title: str, png: str) -> None:
    """Model -> labelled share (text, e.g. "0.1") -> clip UARs: mean ± std against the share
    (log axis), one line per model, written to `png` (any tf.io.gfile path)."""
    import matplotlib
    import numpy as np

    from emograph.components.evaluation.figures import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for model, by_share in sorted(curves.items()):
        shares = sorted(by_share, key=float)
        mean = np.array([np.mean(by_share[s]) for s in shares])
        std = np.array([np.std(by_share[s]) for s in shares])
        x = [float(s) for s in shares]
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=model)
    ax.set_xscale("log")
    ax.set_xlabel("labelled share of each train speaker's clips")
    ax.set_ylabel("test clip UAR (mean ± std, folds x seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, png, dpi=120)
