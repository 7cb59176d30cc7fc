"""`emograph experiment`: speaker-independent cross-validation of the method against its baselines.

Each fold is one run of the experiment pipeline (pipeline.create_experiment_pipeline): the same
TFX components and trainer functions as `emograph run`, with every variant x seed trainer added
and no Evaluator/Pusher. Source-side steps (ingest, Transform, teacher) do not depend on the
target fold, so TFX's cache computes them once; embeddings and graph are computed once per fold.
Every model is then scored on the fold's test speakers, as float SavedModel and as int8 TFLite.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tfx import v1 as tfx

from emograph.components.evaluation import evaluate
from emograph.components.expert import baselines
from emograph.components.tflite_pusher import convert, score
from emograph.pipeline import console, report
from emograph.pipeline.config import NSL_STUDENT, VARIANTS, RunConfig, check_variants
from emograph.pipeline.local_runner import prepare_synthetic
from emograph.pipeline.pipeline import create_experiment_pipeline, experiment_trainer_id

log = logging.getLogger(__name__)

# Clip UAR (a clip's window probabilities averaged) is the headline; the rest are per window.
SUMMARY_KEYS = (
    "clip_uar",
    "int8_clip_uar",
    "uar",
    "wa",
    "macro_f1",
    "int8_uar",
    "int8_online_uar",
    "int8_strict_uar",
)
DEFAULT_FOLDS = 3


def fold_count(base: RunConfig, folds: int | None) -> int:
    """The number of folds to run: with `split.fold_speakers`, their count (a different `folds`
    is refused: the folds are the listed ones); else `folds`, by default DEFAULT_FOLDS."""
    listed = len(base.split.fold_speakers)
    if listed and folds not in (None, listed):
        raise ValueError(f"split.fold_speakers lists {listed} folds, but {folds} folds were asked")
    return listed or (DEFAULT_FOLDS if folds is None else folds)


def fold_config(base: RunConfig, out: str, folds: int, fold: int) -> RunConfig:
    """The run config of one fold; folds == 1 keeps the base config's own split."""
    split = base.split if folds == 1 else dataclasses.replace(base.split, folds=folds, fold=fold)
    return base.replace(root=out, name=f"{base.name}-experiment", split=split)


@dataclasses.dataclass(frozen=True)
class TestData:
    """A fold's raw windows, shared by every model scored, and their normalisation statistics
    by the width of a model's speaker statistics (log-mel bands for most models, the
    functionals student's own width for it)."""

    test_pattern: str
    representative: score.Windows
    test: score.Windows
    norms: dict = dataclasses.field(default_factory=dict)

    def normalisation(self, model_dir: str, config: RunConfig) -> score.Normalisation:
        width = score.statistics_width(model_dir)
        if width not in self.norms:
            self.norms[width] = score.normalisation_for(
                model_dir, config.frontend, self.representative, self.test
            )
        return self.norms[width]


def test_data(test_pattern: str, raw_uri: str, config: RunConfig) -> TestData:
    representative = score.read_windows(
        f"{raw_uri}/Split-train/*.gz", config.classes, config.export.representative_examples
    )
    test = score.read_windows(f"{raw_uri}/Split-test/*.gz", config.classes)
    return TestData(test_pattern, representative, test)


def score_model(model_dir: str, data: TestData, config: RunConfig) -> dict:
    """Float metrics from the SavedModel (on Transform's features: adaptive in speaker mode);
    bytes of the float and int8 TFLite models and int8 UAR in every normalisation mode."""
    result = evaluate.evaluate(model_dir, data.test_pattern, config.classes)
    norm = data.normalisation(model_dir, config)
    float_model = convert.convert(
        model_dir, "float32", data.representative.pcm, (), norm.representative_stats
    )
    int8_model = convert.convert(
        model_dir,
        "int8",
        data.representative.pcm,
        config.export.float_layers,
        norm.representative_stats,
    )
    scores = score.score_tflite(
        int8_model, data.test, norm, config.classes, config.export.warmup_windows
    )
    strict = scores["strict"]["uar"]
    return {
        **result,
        "float_bytes": len(float_model),
        "int8_bytes": len(int8_model),
        "int8_uar": scores[score.primary_mode(norm)]["uar"],
        "int8_clip_uar": scores[score.primary_mode(norm)]["clip_uar"],
        "int8_online_uar": scores.get("online", scores["strict"])["uar"],
        "int8_strict_uar": strict,
    }


def run_fold(
    config: RunConfig, seeds: int, functionals_cache: dict, variants: Sequence[str] = VARIANTS
) -> dict:
    """Runs one fold's pipeline and scores every variant x seed on its test speakers, and the
    openSMILE + linear baselines on the same clips (`functionals_cache` carries each clip's
    functionals from fold to fold)."""
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    variants = check_variants(variants)
    pipeline = create_experiment_pipeline(config, seeds, metadata, variants)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    outputs = report.outputs_of_last_run(config)
    test_pattern = f"{outputs['target_transform']['transformed_examples']}/Split-test/*"
    raw_uri = outputs["target_example_gen"]["examples"]
    graph_stats = report.artifact_json(outputs["GraphBuilder"]["graph"], "stats.json")

    def model_dir(variant: str, seed: int) -> str:
        return f"{outputs[experiment_trainer_id(variant, seed)]['model']}/Format-Serving"

    data = test_data(test_pattern, raw_uri, config)
    rows = []
    for seed in range(seeds):
        for variant in variants:
            scores = score_model(model_dir(variant, seed), data, config)
            rows.append({"variant": variant, "seed": seed, **scores})
            log.info(
                "fold %d seed %d %-18s test clip UAR %.3f (int8 %.3f), window UAR %.3f "
                "(int8 %.3f, online %.3f, strict %.3f)",
                config.split.fold,
                seed,
                variant,
                scores["clip_uar"],
                scores["int8_clip_uar"],
                scores["uar"],
                scores["int8_uar"],
                scores["int8_online_uar"],
                scores["int8_strict_uar"],
            )
    clips = {
        split: baselines.read_clips(
            f"{raw_uri}/Split-{split}/*.gz", config.classes, config.audio.sample_rate
        )
        for split in ("train", "eval", "test")
    }
    expert = baselines.score_baselines(
        clips, config.classes, config.audio.sample_rate, cache=functionals_cache
    )
    for name, scores in expert.items():
        log.info("fold %d %-18s test clip UAR %.3f", config.split.fold, name, scores["clip_uar"])
    teacher_run = outputs.get("teacher_trainer", {}).get("model_run")  # absent if imported
    teacher = report.artifact_json(teacher_run, "training.json") if teacher_run else {}
    return {
        "fold": config.split.fold,
        "graph": graph_stats,
        "teacher_validation_homophily": teacher.get("validation_homophily"),
        "rows": rows,
        "baselines": expert,
        "test_speakers": sorted({s for r in rows for s in r["uar_by_speaker"]}),
    }


def run_fold_in_fresh_process(
    config: RunConfig, seeds: int, functionals_cache: dict, variants: Sequence[str]
) -> dict:
    """`run_fold` in a new process, its log records handed to this one's handlers: the
    trainers TensorFlow runs in-process keep memory after they finish (an experiment grew by
    ~2 GB a fold in one process), and a process per fold returns it all."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with (
        console.forwarded(queue),
        context.Pool(1, initializer=console.forward_logs, initargs=(queue,)) as pool,
    ):
        detail, cache = pool.apply(_run_fold, (config, seeds, functionals_cache, variants))
    functionals_cache.update(cache)
    return detail


def _run_fold(
    config: RunConfig, seeds: int, functionals_cache: dict, variants: Sequence[str]
) -> tuple[dict, dict]:
    """`run_fold`'s result and the functionals cache it filled (a child process's copy)."""
    return run_fold(config, seeds, functionals_cache, variants), functionals_cache


def aggregate(folds: list[dict], classes: tuple[str, ...]) -> dict:
    """Mean and std over folds x seeds, per variant; summed confusion matrices."""
    table = {}
    for variant in VARIANTS:
        rows = [r for f in folds for r in f["rows"] if r["variant"] == variant]
        if not rows:
            continue
        entry = {
            k: {
                "mean": float(np.mean([r[k] for r in rows])),
                "std": float(np.std([r[k] for r in rows])),
            }
            for k in SUMMARY_KEYS
        }
        entry["recall"] = {c: float(np.nanmean([r["recall"][c] for r in rows])) for c in classes}
        entry["float_bytes"] = int(np.mean([r["float_bytes"] for r in rows]))
        entry["int8_bytes"] = int(np.mean([r["int8_bytes"] for r in rows]))
        entry["confusion"] = np.sum([r["confusion"] for r in rows], axis=0).tolist()
        entry["runs"] = len(rows)
        table[variant] = entry
    expert = {}
    for name in folds[0]["baselines"]:
        scores = [f["baselines"][name]["clip_uar"] for f in folds]
        expert[name] = {
            "clip_uar": {"mean": float(np.mean(scores)), "std": float(np.std(scores))},
            "recall": {
                c: float(np.nanmean([f["baselines"][name]["recall"][c] for f in folds]))
                for c in classes
            },
            "runs": len(scores),
        }
    return {"variants": table, "baselines": expert, "nsl_minus": nsl_differences(folds)}


def nsl_differences(folds: list[dict]) -> dict[str, dict]:
    """The NSL student's int8 clip UAR minus every other model's, paired: a trained model of
    the same fold and seed (int8 clip UAR), a baseline of the same fold (float, clip UAR).
    Mean and std over the pairs."""
    nsl = {
        (f["fold"], r["seed"]): r["int8_clip_uar"]
        for f in folds
        for r in f["rows"]
        if r["variant"] == NSL_STUDENT
    }
    pairs: dict[str, list[float]] = {}
    for f in folds:
        for r in f["rows"]:
            if r["variant"] != NSL_STUDENT and (f["fold"], r["seed"]) in nsl:
                gain = nsl[(f["fold"], r["seed"])] - r["int8_clip_uar"]
                pairs.setdefault(r["variant"], []).append(gain)
        for name, scores in f["baselines"].items():
            mine = [v for (fold, _), v in nsl.items() if fold == f["fold"]]
            pairs.setdefault(name, []).extend(v - scores["clip_uar"] for v in mine)
    return {
        name: {"mean": float(np.mean(gains)), "std": float(np.std(gains)), "pairs": len(gains)}
        for name, gains in pairs.items()
    }


_MODES_NOTE = {
    "speaker": (
        "UAR, WA, macro-F1 and int8 UAR normalise each test speaker with the statistics of all "
        "their unlabelled audio (adaptive); *int8 online* runs each speaker's clips in a seeded "
        "random order (file order sorts by emotion) with running statistics after a warm-up, "
        "as the edge predictor does; *int8 strict* "
        "uses only the fallback statistics pooled over train speakers (nothing learnt from "
        "the test speaker)."
    ),
    "global": "One global normalisation from the train split: every mode is the same (strict).",
}


def _mean_std(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def write_report(results: dict, out: Path, classes: tuple[str, ...]) -> None:
    """report.md with the table, confusion-matrix PNGs and graph statistics per fold."""
    lines = [
        "# emograph experiment",
        "",
        f"source `{results['source']}` -> target `{results['target']}`, "
        f"{results['folds']} speaker-independent fold(s) x {results['seeds']} seed(s); "
        "test speakers never seen in training or checkpoint choice.",
        "",
        *_labels_note(results),
        f"Normalisation: {results['config']['frontend']['normalisation']}. "
        + _MODES_NOTE[results["config"]["frontend"]["normalisation"]],
        "",
        "| model | clip UAR | int8 clip UAR | window UAR | WA | macro-F1 | int8 UAR | int8 online "
        "| int8 strict | float bytes | int8 bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, e in results["summary"]["variants"].items():
        cells = " | ".join(_mean_std(e[k]) for k in SUMMARY_KEYS)
        lines.append(f"| {variant} | {cells} | {e['float_bytes']:,} | {e['int8_bytes']:,} |")
        png = out / f"confusion_{variant}.png"
        evaluate.plot_confusion(
            np.array(e["confusion"]), classes, f"{variant} (all folds and seeds)", str(png)
        )
    for name, e in results["summary"]["baselines"].items():
        lines.append(
            f"| {name} (openSMILE + linear, float) | {_mean_std(e['clip_uar'])} |" + " - |" * 9
        )
    lines += [
        "",
        "## NSL student minus each model (int8 clip UAR; paired by fold and seed, a baseline "
        "by fold)",
        "",
        "| model | difference | pairs |",
        "|---|---|---|",
    ]
    for name, d in results["summary"]["nsl_minus"].items():
        lines.append(f"| {name} | {d['mean']:+.3f} ± {d['std']:.3f} | {d['pairs']} |")
    lines += [
        "",
        "## Per-class recall (mean)",
        "",
        "| model | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    recalls = {**results["summary"]["variants"], **results["summary"]["baselines"]}
    for variant, e in recalls.items():
        lines.append(
            f"| {variant} | " + " | ".join(f"{e['recall'][c]:.2f}" for c in classes) + " |"
        )
    lines += [
        "",
        "## Graph per fold (target train split)",
        "",
        "| fold | nodes | edges | label homophily | chance | speaker homophily | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in results["folds_detail"]:
        g = f["graph"]
        lines.append(
            f"| {f['fold']} | {g['nodes']} | {g['edges']} | {g['label_homophily']:.3f} | "
            f"{g['label_chance']:.3f} | {g['speaker_homophily']:.3f} | "
            f"{g['speaker_chance']:.3f} |"
        )
    lines += _selection_tables(results["folds_detail"])
    lines += ["", "## Confusion matrices", ""]
    lines += [f"![{v}](confusion_{v}.png)" for v in results["summary"]["variants"]]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _labels_note(results: dict) -> list[str]:
    """What was unlabelled: a share of the train clips, extra corpora (nothing: no line)."""
    parts = []
    fraction = results.get("labelled_fraction", 1.0)
    if fraction < 1:
        parts.append(
            f"{fraction:.0%} of each train speaker's clips keep their label, the others are "
            "unlabelled audio (graph, statistics and self-training only)"
        )
    if results.get("unlabelled"):
        parts.append("unlabelled audio added to train: " + ", ".join(results["unlabelled"]))
    return ["; ".join(parts) + ".", ""] if parts else []


def _selection_tables(folds: list[dict]) -> list[str]:
    """Per fold: each candidate embedding's best setting on the validation speakers (and the
    same graph's homophily on the train sample), and which one the graph was built from."""
    lines = []
    for f in folds:
        selection = f["graph"].get("selection")
        if not selection:
            continue
        chosen = selection["chosen"]
        lines += [
            "",
            f"### Fold {f['fold']}: graph candidates (best setting of each, validation speakers)",
            "",
            f"Chosen: `{chosen['source']}`, threshold {chosen['threshold']}, top-"
            f"{chosen['neighbours']}.",
        ]
        own = f.get("teacher_validation_homophily")
        if own:
            lines.append(
                f"The teacher's embedding on its own (source) validation speakers, 5-NN: label "
                f"homophily {_num(own['label_homophily'])} (chance {_num(own['label_chance'])}), "
                f"speaker homophily {_num(own['speaker_homophily'])} "
                f"(chance {_num(own['speaker_chance'])}); on the target, row `teacher` below."
            )
        lines += [
            "",
            "This fold's test speakers (mean over seeds): " + _fold_scores(f["rows"]) + ".",
        ]
        lines += [
            "",
            "| source | threshold | top-k | label homophily | speaker homophily | coverage | "
            "score | train label homophily | train speaker homophily |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in selection["best_per_source"]:
            v, t = row["validation"], row.get("train", {})
            lines.append(
                f"| {row['source']} | {row['threshold']} | {row['neighbours']} | "
                f"{_num(v['label_homophily'])} (chance {_num(v['label_chance'])}) | "
                f"{_num(v['speaker_homophily'])} (chance {_num(v['speaker_chance'])}) | "
                f"{v['coverage']:.2f} | {v['score']:.3f} | {_num(t.get('label_homophily'))} | "
                f"{_num(t.get('speaker_homophily'))} |"
            )
    return lines


def _fold_scores(rows: list[dict]) -> str:
    """Each variant's UAR on one fold: adaptive (float), int8 online and int8 strict."""
    parts = []
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            uar, online, strict = (
                np.mean([r[k] for r in mine]) for k in ("uar", "int8_online_uar", "int8_strict_uar")
            )
            parts.append(f"{variant} {uar:.3f} (int8 online {online:.3f}, strict {strict:.3f})")
    return "; ".join(parts)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run_experiment(
    base: RunConfig,
    folds: int | None,
    seeds: int,
    out: str,
    variants: Sequence[str] = VARIANTS,
    labelled_fractions: Sequence[float] | None = None,
) -> dict:
    """Runs every fold (`fold_count` of them) with the models `variants`, writes
    out/results.json and out/report.md, returns the results. With `labelled_fractions`, the
    whole experiment once per share of labelled train clips, each in out/labels-<share>/,
    and learning curves over them in out/ (results.json, report.md, curves.png)."""
    if labelled_fractions is None:
        return _run_folds(base, folds, seeds, out, variants, {})
    cache: dict = {}  # openSMILE functionals: the same clips at every share
    by_fraction = {}
    for fraction in labelled_fractions:
        config = base.replace(split=dataclasses.replace(base.split, labelled_fraction=fraction))
        log.info("experiment: %.0f%% of the train clips labelled", 100 * fraction)
        by_fraction[fraction] = _run_folds(
            config, folds, seeds, out, variants, cache, f"{out}/labels-{fraction:g}"
        )
    results = learning_curves(by_fraction)
    Path(out, "results.json").write_text(json.dumps(results, indent=2))
    report.plot_learning_curves(
        results["curves"],
        f"{results['target']}: int8 clip UAR by labelled share",
        f"{out}/curves.png",
    )
    write_curves_report(results, Path(out))
    return results


def learning_curves(by_fraction: dict[float, dict]) -> dict:
    """The experiments at each labelled share -> model -> share -> clip UAR of every fold x
    seed (int8 for trained models, float for the openSMILE baselines), and the NSL student's
    paired differences at each share."""
    first = next(iter(by_fraction.values()))
    curves: dict[str, dict[str, list[float]]] = {}
    for fraction, results in by_fraction.items():
        for f in results["folds_detail"]:
            for r in f["rows"]:
                curves.setdefault(r["variant"], {}).setdefault(f"{fraction:g}", []).append(
                    r["int8_clip_uar"]
                )
            for name, scores in f["baselines"].items():
                curves.setdefault(name, {}).setdefault(f"{fraction:g}", []).append(
                    scores["clip_uar"]
                )
    return {
        **{k: first[k] for k in ("source", "target", "folds", "seeds")},
        "labelled_fractions": list(by_fraction),
        "curves": curves,
        "nsl_minus": {f"{f:g}": r["summary"]["nsl_minus"] for f, r in by_fraction.items()},
        "seconds": round(sum(r["seconds"] for r in by_fraction.values()), 1),
    }


def write_curves_report(results: dict, out: Path) -> None:
    """report.md of a learning-curve experiment: mean ± std per model and share, the NSL
    student's paired gains, the plot, and links to each share's own report."""
    shares = [f"{f:g}" for f in results["labelled_fractions"]]
    lines = [
        "# emograph experiment: learning curves",
        "",
        f"target `{results['target']}`, {results['folds']} speaker-independent fold(s) x "
        f"{results['seeds']} seed(s) at each share of labelled train clips (the others stay "
        "in the train split as unlabelled audio); test clip UAR, int8 for trained models, "
        "float for the openSMILE baselines (fitted on the same labelled clips).",
        "",
        "| model | " + " | ".join(f"{s} labelled" for s in shares) + " |",
        "|---|" + "---|" * len(shares),
    ]
    for model, by_share in results["curves"].items():
        cells = [
            f"{np.mean(by_share[s]):.3f} ± {np.std(by_share[s]):.3f}" if s in by_share else "-"
            for s in shares
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "NSL student minus each model (paired by fold and seed; a baseline by fold):",
        "",
        "| model | " + " | ".join(shares) + " |",
        "|---|" + "---|" * len(shares),
    ]
    models = sorted({m for by in results["nsl_minus"].values() for m in by})
    for model in models:
        cells = []
        for s in shares:
            d = results["nsl_minus"][s].get(model)
            cells.append(f"{d['mean']:+.3f} ± {d['std']:.3f}" if d else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "![learning curves](curves.png)", ""]
    lines += [f"- [{s} labelled](labels-{s}/report.md)" for s in shares]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _run_folds(
    base: RunConfig,
    folds: int | None,
    seeds: int,
    out: str,
    variants: Sequence[str],
    functionals_cache: dict,
    report_dir: str | None = None,
) -> dict:
    """Every fold of one experiment, run under `out`; results.json and report.md written to
    `report_dir` (default `out`)."""
    folds = fold_count(base, folds)
    out_dir = Path(report_dir or out)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_synthetic(base)
    start, details = time.time(), []
    for fold in range(folds):
        config = fold_config(base, out, folds, fold)
        details.append(run_fold_in_fresh_process(config, seeds, functionals_cache, variants))
        elapsed = time.time() - start
        log.info(
            "experiment: fold %d/%d done, %.0f s elapsed, about %.0f s left",
            fold + 1,
            folds,
            elapsed,
            elapsed / (fold + 1) * (folds - fold - 1),
        )
    results = {
        "source": " + ".join(f"{c.kind}:{c.path}" for c in (base.source, *base.extra_sources)),
        "target": f"{base.target.kind}:{base.target.path}",
        "unlabelled": [f"{c.kind}:{c.path}" for c in base.unlabelled],
        "labelled_fraction": base.split.labelled_fraction,
        "folds": folds,
        "seeds": seeds,
        "config": json.loads(base.to_json()),
        "summary": aggregate(details, base.classes),
        "folds_detail": details,
        "seconds": round(time.time() - start, 1),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, out_dir, base.classes)
    return results
