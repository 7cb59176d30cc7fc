"""`emograph`: the command line. Heavy imports happen inside each command, so `emograph predict`
runs on a device with only numpy, soundfile, scipy and ai-edge-litert installed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from pipeline.config import EMOTIONS, CorpusSpec, RunConfig, SynthConfig


def _load_config(args: argparse.Namespace) -> RunConfig:
    if args.config:
        config = RunConfig.from_json(Path(args.config).read_text())
    else:
        config = RunConfig.demo(args.root or "runs/demo")
    if args.root and args.config:
        config = config.replace(root=args.root)
    if getattr(args, "source", None):  # repeated: the first is `source`, the others extra
        source, *extra = (CorpusSpec.parse(text) for text in args.source)
        config = config.replace(source=source, extra_sources=tuple(extra))
    if getattr(args, "target", None):
        config = config.replace(target=CorpusSpec.parse(args.target))
    if getattr(args, "teacher", None):
        teacher = dataclasses.replace(config.teacher, model_path=args.teacher)
        config = config.replace(teacher=teacher)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline import local_runner, report

    config = _load_config(args)
    local_runner.run(config)
    print("\n" + report.format_summary(report.summary(config)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline import report

    summary = report.summary(_load_config(args))
    print(json.dumps(summary, indent=2) if args.json else report.format_summary(summary))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from components.audio.synthetic import write_corpus

    cfg = SynthConfig(args.speakers, args.utterances, args.seed)
    manifest = write_corpus(args.corpus, args.out, cfg, EMOTIONS)
    print(f"wrote {manifest}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from components.example_gen.ingest import run_ingest

    config = _load_config(args)
    if args.watch:
        return _watch(args, config)
    summary = run_ingest(
        CorpusSpec.parse(args.corpus),
        config.classes,
        config.audio,
        config.split,
        args.out,
        config.beam.pipeline_args(),
    )
    print(
        f"found {summary['found']} = ingested {summary['ingested']} + rejected "
        f"{summary['rejected']} {summary['rejected_by_reason']}"
    )
    print(f"windows per split: {summary['windows']}; report: {args.out}/report/ingest_report.json")
    return 0


def _watch(args: argparse.Namespace, config: RunConfig) -> int:
    from components.example_gen.watch import watch

    spans = watch(
        CorpusSpec.parse(args.corpus),
        config.classes,
        config.audio,
        config.split,
        args.out,
        interval=args.interval,
        duration=args.duration,
        max_spans=args.max_spans,
        settle_seconds=args.settle,
        beam_args=config.beam.pipeline_args(),
    )
    for s in spans:
        print(
            f"span-{s['span']}: found {s['found']} = ingested {s['ingested']} + rejected "
            f"{s['rejected']} {s['rejected_by_reason']}; windows {s['windows']}"
        )
    print(f"{len(spans)} new span(s) in {args.out}; train on them with --target spans:{args.out}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from pipeline.kubeflow_runner import compile_pipeline

    out = compile_pipeline(_load_config(args), args.image, args.out)
    print(f"wrote {out} (image {args.image})")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from pipeline.kubeflow_runner import schedule

    run_id = schedule(
        args.spec, args.host, args.cron, args.experiment, args.job_name, args.pipeline_root
    )
    print(f"recurring run {run_id} created on {args.host} ({args.cron})")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from pipeline import experiment

    config = _load_config(args)
    results = experiment.run_experiment(config, args.folds, args.seeds, args.out)
    print((Path(args.out) / "report.md").read_text())
    print(f"results: {args.out}/results.json ({results['seconds']:.0f} s)")
    return 0


def cmd_corpora(args: argparse.Namespace) -> int:
    from components.audio.corpora import SUPPORTED_CORPORA

    for name, description in SUPPORTED_CORPORA.items():
        print(f"{name:<10} {description}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from components.edge import cli as edge_cli

    return edge_cli.run(args)


def add_teacher_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--teacher",
        metavar="PATH",
        help="use this teacher instead of training one on the source corpus: a SavedModel with "
        "an `embed` signature (logmel [batch, frames*bands] -> embedding) or a Keras model "
        "(README: Students, baselines and experiments)",
    )


def add_source_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        action="append",
        metavar="KIND:PATH",
        help="source corpus (teacher data); repeat it to train the teacher on several corpora: "
        "the first is `source`, the others `extra_sources` (one corpus per kind); given, they "
        "replace both of the config file's",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emograph", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="RunConfig JSON (default: the demo configuration)")
        p.add_argument("--root", help="run directory (default runs/demo)")
        return p

    run = with_config(sub.add_parser("run", help="run the whole TFX pipeline locally"))
    run.add_argument(
        "--demo", action="store_true", help="the synthetic source and target corpora (the default)"
    )
    add_source_argument(run)
    run.add_argument("--target", help="target corpus KIND:PATH (student data)")
    add_teacher_argument(run)
    run.set_defaults(func=cmd_run)

    rep = with_config(sub.add_parser("report", help="summarise a finished run"))
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)

    synth = sub.add_parser("synth", help="write a synthetic emotional speech corpus")
    synth.add_argument("--corpus", choices=("source", "target"), required=True)
    synth.add_argument("--out", required=True)
    synth.add_argument("--speakers", type=int, default=SynthConfig.speakers)
    synth.add_argument(
        "--utterances",
        type=int,
        default=SynthConfig.utterances_per_emotion,
        help="utterances per speaker and emotion",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)

    ingest = with_config(sub.add_parser("ingest", help="run the ingest Beam job on its own"))
    ingest.add_argument("--corpus", required=True, help="KIND:PATH, see `emograph corpora`")
    ingest.add_argument("--out", required=True)
    watching = ingest.add_argument_group("watch: new files in --corpus become --out/span-N")
    watching.add_argument(
        "--watch", action="store_true", help="keep polling the corpus, one span per interval"
    )
    watching.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    watching.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    watching.add_argument(
        "--max-spans", type=int, default=0, help="stop after this many new spans (0: no limit)"
    )
    watching.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="take a file only once it is this many seconds unmodified (half-written files wait)",
    )
    ingest.set_defaults(func=cmd_ingest)

    exp = with_config(
        sub.add_parser("experiment", help="cross-validate the NSL student against baselines")
    )
    add_source_argument(exp)
    exp.add_argument("--target", help="target corpus KIND:PATH (folds are over its speakers)")
    add_teacher_argument(exp)
    exp.add_argument(
        "--folds",
        type=int,
        help="speaker-independent folds (1 = the config's own split; default: the count of the "
        "config's split.fold_speakers if set, which another value contradicts, else 3)",
    )
    exp.add_argument("--seeds", type=int, default=3, help="training seeds per fold")
    exp.add_argument("--out", required=True, help="experiment directory")
    exp.set_defaults(func=cmd_experiment)

    sub.add_parser("corpora", help="list supported corpora").set_defaults(func=cmd_corpora)

    comp = with_config(sub.add_parser("compile", help="compile the pipeline for an orchestrator"))
    # dest: `args.target` is the target corpus for _load_config.
    comp.add_argument("--target", dest="orchestrator", choices=("kubeflow",), default="kubeflow")
    comp.add_argument("--image", required=True, help="the emograph image every step runs in")
    comp.add_argument("--out", required=True, help=".yaml: KFP PipelineSpec; .json: Vertex job")
    comp.set_defaults(func=cmd_compile)

    sched = sub.add_parser("schedule", help="upload a compiled spec to KFP and run it on a cron")
    sched.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    sched.add_argument("--cron", required=True, help='e.g. "0 3 * * *" (KFP adds seconds first)')
    sched.add_argument("--spec", required=True, help="the .yaml written by `emograph compile`")
    sched.add_argument("--experiment", default="emograph")
    sched.add_argument("--job-name", help="default: <pipeline name>-recurring")
    sched.add_argument(
        "--pipeline-root", help="where KFP writes artifacts (default: the cluster's, e.g. MinIO)"
    )
    sched.set_defaults(func=cmd_schedule)

    from components.edge.cli import add_arguments

    predict = sub.add_parser("predict", help="classify audio with a pushed model (LiteRT)")
    add_arguments(predict)
    predict.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
