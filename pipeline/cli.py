"""`emograph`: the command line. Heavy imports happen inside each command, after its config and
flags are checked (a mistake costs no TensorFlow import), so `emograph predict` runs on a device
with only numpy, soundfile, scipy and ai-edge-litert installed.

Exit codes: 0 success; 1 the work failed (a run, an ingest, an audio file predict cannot read or
refuses: silent or too short, without --force); 2 a usage or config mistake (bad flag, config or
corpus spec, missing path, existing output, a corpus the speaker split cannot use); 130
interrupted. Errors are one line on stderr; -v shows the traceback and debug logs. `run`,
`experiment` and `ingest` print a line per finished step and put the frameworks' logs in a file
(LOG_DIR under the run root or the output folder); -v shows those on the console instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

from emograph.components.audio.corpora import SUPPORTED_CORPORA
from emograph.components.audio.splits import SplitError
from emograph.components.config import (
    EMOTIONS,
    SPANS_KIND,
    UNLABELLED_KIND,
    ConfigError,
    CorpusSpec,
    SynthConfig,
    check_corpora,
    check_labelled,
)
from emograph.pipeline.config import VARIANTS, RunConfig, check_variants

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
LOG_DIR = "logs"
# `emograph --help`: what the tool does, for its user (the module docstring is for developers).
DESCRIPTION = """\
Trains small speech-emotion classifiers and runs them on devices. A teacher network learns
from labelled emotional speech (source corpora); its similarity graph of the target corpus
trains tiny int8 students (neural structured learning) that `predict` runs with LiteRT.
Try `emograph run` (the whole pipeline on generated speech), then
`emograph predict runs/demo/pushed/emograph-student some.wav`.
"""
EPILOG = """\
A corpus is KIND:PATH (`emograph corpora` lists the kinds): PATH is the corpus folder, or for
manifest:PATH the CSV file itself (columns path,label,speaker). `emograph COMMAND --help` shows
a command's options.

exit codes: 0 success; 1 the work failed (or predict could not read or refused an audio file);
2 a usage or config mistake (bad flag, config or corpus, missing path, existing output, a corpus
the speaker split cannot use); 130 interrupted. Errors are one line; -v adds the traceback.
"""


class UsageError(Exception):
    """A mistake in the command line (flag, path, corpus spec): one line and EXIT_USAGE."""


def _load_config(args: argparse.Namespace) -> RunConfig:
    """The config file (or the demo) with the flags applied; ConfigError/UsageError if wrong."""
    if args.config:
        config = RunConfig.from_file(args.config)
    else:
        config = RunConfig.demo(args.root or "runs/demo")
    if args.root and args.config:
        config = config.replace(root=args.root)
    if getattr(args, "source", None):  # repeated: the first is `source`, the others extra
        source, *extra = (_parse_corpus(text, "--source") for text in args.source)
        try:
            config = config.replace(source=source, extra_sources=tuple(extra))
        except ValueError as e:
            raise UsageError(f"--source: {e}") from e
    if getattr(args, "target", None):
        config = config.replace(target=_parse_corpus(args.target, "--target"))
    if getattr(args, "unlabelled", None) and args.command != "ingest":  # ingest: cmd_ingest
        try:
            config = config.replace(unlabelled=_unlabelled(args))
        except ValueError as e:
            raise UsageError(f"--unlabelled: {e}") from e
    if getattr(args, "labelled_fraction", None):
        split = dataclasses.replace(config.split, labelled_fraction=args.labelled_fraction)
        config = config.replace(split=split)
    if getattr(args, "teacher", None):
        teacher = dataclasses.replace(config.teacher, model_path=args.teacher)
        config = config.replace(teacher=teacher)
    return config


def _unlabelled(args: argparse.Namespace) -> tuple[CorpusSpec, ...]:
    """The --unlabelled corpora, each checked (`_check_corpus`)."""
    specs = tuple(_parse_corpus(text, "--unlabelled") for text in args.unlabelled or ())
    for spec in specs:
        _check_corpus(spec, "--unlabelled")
        if spec.kind == "synthetic":
            raise UsageError(
                f"--unlabelled: a {spec.kind} corpus cannot be unlabelled audio; for generated "
                "voices: emograph synth --corpus target --seed N --out DIR, then audio:DIR/wav"
            )
    return specs


def _parse_corpus(text: str, flag: str) -> CorpusSpec:
    """A KIND:PATH flag value (`_check_corpus` checks what it names)."""
    try:
        return CorpusSpec.parse(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from e


def _check_corpus(spec: CorpusSpec, where: str) -> None:
    """Refuses an unknown kind or a local path that does not exist (a synthetic corpus is
    generated by the run, so its folder may not exist yet); `where` names the flag or field."""
    kinds = sorted({*SUPPORTED_CORPORA, SPANS_KIND})
    if spec.kind not in kinds:
        raise UsageError(f"{where}: unknown corpus kind {spec.kind!r}; known: {', '.join(kinds)}")
    path = Path(spec.path)
    if spec.kind == "synthetic" or "://" in spec.path:
        return
    if spec.kind == "manifest" and not path.is_file():
        raise UsageError(f"{where}: manifest:PATH names a CSV file (path,label,speaker): {path}")
    if spec.kind == "audio" and not path.exists():
        raise UsageError(f"{where}: audio:PATH names a folder or a CSV (path,speaker): {path}")
    if spec.kind not in ("manifest", "audio") and not path.is_dir():
        raise UsageError(f"{where}: no such {spec.kind} corpus folder: {path}")


def _check_inputs(config: RunConfig) -> None:
    """What a local run reads (corpora, an imported teacher) must exist before its first step."""
    named = [("target", config.target)]
    named += [(f"unlabelled[{i}]", spec) for i, spec in enumerate(config.unlabelled)]
    teacher = config.teacher.model_path
    if teacher:  # replaces the source corpora
        if "://" not in teacher and not Path(teacher).exists():
            raise UsageError(f"teacher.model_path: no such file or directory: {teacher}")
    else:
        named += [("source", config.source)]
        named += [(f"extra_sources[{i}]", spec) for i, spec in enumerate(config.extra_sources)]
    for where, spec in named:
        _check_corpus(spec, where)


@contextlib.contextmanager
def _quiet(args: argparse.Namespace, folder: str, name: str) -> Iterator:
    """pipeline.console.quiet with the log at folder/LOG_DIR/name (imported here: `predict` runs
    without absl); a remote folder keeps the console as it is."""
    from emograph.pipeline import console

    verbose = args.verbose or "://" in folder
    with console.quiet(Path(folder) / LOG_DIR / name, verbose) as steps:
        yield steps


def cmd_run(args: argparse.Namespace) -> int:
    config = _load_config(args)
    _check_inputs(config)
    with _quiet(args, config.root, "run.log") as steps:
        from emograph.pipeline import local_runner, report

        local_runner.run(config, steps.expect)
        summary = report.format_summary(report.summary(config))
    print(steps.summary())
    print(summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = _load_config(args)
    metadata = config.metadata_path
    if "://" not in metadata and not Path(metadata).is_file():  # reading would create it
        raise UsageError(f"no run at {config.root} (it has no {Path(metadata).name})")
    from emograph.pipeline import report

    summary = report.summary(config)
    print(json.dumps(summary, indent=2) if args.json else report.format_summary(summary))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from emograph.components.audio.synthetic import write_corpus

    cfg = SynthConfig(args.speakers, args.utterances, args.seed)
    manifest = write_corpus(args.corpus, args.out, cfg, EMOTIONS)
    print(f"wrote {manifest}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    config = _load_config(args)
    corpus = _parse_corpus(args.corpus, "--corpus")
    _check_corpus(corpus, "--corpus")
    unlabelled = _unlabelled(args)
    if args.watch:  # of a labelled corpus, or of unlabelled audio (spans for --unlabelled)
        if unlabelled or args.labelled_fraction:
            raise UsageError(
                "--watch writes spans of --corpus alone: leave out --unlabelled and "
                "--labelled-fraction (give them to the run that reads the spans)"
            )
        return _watch(args, config, corpus)
    try:
        check_corpora((corpus,), unlabelled)
        check_labelled((corpus,))
    except ValueError as e:
        raise UsageError(f"--corpus: {e}") from e
    out = Path(args.out)
    if (out / "examples").exists() or (out / "report").exists():
        raise UsageError(f"--out: {out} already holds ingest output; choose a new folder")
    with _quiet(args, args.out, "ingest.log"):
        from emograph.components.example_gen.ingest import run_ingest

        summary = run_ingest(
            corpus,
            config.classes,
            config.audio,
            config.split,
            args.out,
            config.beam.pipeline_args(),
            unlabelled,
        )
    print(
        f"found {summary['found']} = ingested {summary['ingested']} + rejected "
        f"{summary['rejected']} {summary['rejected_by_reason']}"
    )
    if summary["notes"]:
        print(f"notes on ingested files (what decoding lost): {summary['notes_by_kind']}")
    print(f"windows per split: {summary['windows']}; report: {args.out}/report/ingest_report.json")
    return 0


def _watch(args: argparse.Namespace, config: RunConfig, corpus: CorpusSpec) -> int:
    with _quiet(args, args.out, "watch.log"):
        from emograph.components.example_gen.watch import watch

        spans = watch(
            corpus,
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
    flag = "--unlabelled" if corpus.kind == UNLABELLED_KIND else "--target"
    print(f"{len(spans)} new span(s) in {args.out}; train on them with {flag} spans:{args.out}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    config = _load_config(args)
    from emograph.pipeline.kubeflow_runner import compile_pipeline

    out = compile_pipeline(config, args.image, args.out)
    print(f"wrote {out} (image {args.image})")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from emograph.pipeline.kubeflow_runner import schedule

    run_id = schedule(
        args.spec, args.host, args.cron, args.experiment, args.job_name, args.pipeline_root
    )
    print(f"recurring run {run_id} created on {args.host} ({args.cron})")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    config = _load_config(args)
    _check_inputs(config)
    with _quiet(args, args.out, "experiment.log") as steps:
        from emograph.pipeline import experiment
        from emograph.pipeline.pipeline import create_experiment_pipeline

        folds = experiment.fold_count(config, args.folds)
        fold = experiment.fold_config(config, args.out, folds, 0)
        pipeline = create_experiment_pipeline(fold, args.seeds, variants=args.variants)
        shares = len(args.labelled_fractions or (None,))
        steps.expect([c.id for c in pipeline.components], pipelines=folds * shares)
        results = experiment.run_experiment(
            config, args.folds, args.seeds, args.out, args.variants, args.labelled_fractions
        )
    print(steps.summary())
    print((Path(args.out) / "report.md").read_text())
    print(f"results: {args.out}/results.json ({results['seconds']:.0f} s)")
    return 0


def cmd_corpora(args: argparse.Namespace) -> int:
    from emograph.components.audio.corpora import SUPPORTED_CORPORA

    for name, description in SUPPORTED_CORPORA.items():
        print(f"{name:<10} {description}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from emograph.components.edge import cli as edge_cli

    return edge_cli.run(args)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), still exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _variants(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated experiment variants (pipeline.config.check_variants)."""
    try:
        return check_variants([v.strip() for v in text.split(",") if v.strip()])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fractions_one(text: str) -> float:
    """An argparse type: a share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _fractions(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated shares in (0, 1], sorted, each once."""
    values = sorted({_fractions_one(part) for part in text.split(",") if part.strip()})
    if not values:
        raise argparse.ArgumentTypeError(f"expected shares such as 0.1,0.5,1, got {text!r}")
    return tuple(values)


def _at_least(minimum: float, kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is at least `minimum`."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= minimum:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


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
    parser = _Parser(
        prog="emograph",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks of errors"
    )
    sub = parser.add_subparsers(dest="command", required=True, title="commands")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="RunConfig JSON (default: the demo configuration)")
        p.add_argument("--root", help="run directory (default runs/demo)")
        return p

    run = with_config(
        sub.add_parser(
            "run",
            help="ingest, train, evaluate and push a student model on this machine (with no "
            "corpus: a demo on generated speech)",
        )
    )
    run.add_argument(
        "--demo", action="store_true", help="the synthetic source and target corpora (the default)"
    )
    add_source_argument(run)
    run.add_argument(
        "--target", metavar="KIND:PATH", help="target corpus (student data), as ingest --corpus"
    )
    add_teacher_argument(run)
    run.set_defaults(func=cmd_run)

    rep = with_config(
        sub.add_parser("report", help="summarise a finished run: data, scores, pushed model")
    )
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)

    synth = sub.add_parser("synth", help="write a corpus of generated emotional speech")
    synth.add_argument("--corpus", choices=("source", "target"), required=True)
    synth.add_argument("--out", required=True)
    synth.add_argument("--speakers", type=_at_least(1, int), default=SynthConfig.speakers)
    synth.add_argument(
        "--utterances",
        type=_at_least(1, int),
        default=SynthConfig.utterances_per_emotion,
        help="utterances per speaker and emotion",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)

    def with_labels(p: argparse.ArgumentParser, fractions: bool = False) -> None:
        """--unlabelled and the share of labelled train clips (a list for experiments)."""
        p.add_argument(
            "--unlabelled",
            action="append",
            metavar="KIND:PATH",
            help="more target-domain audio without labels, joined to the train split (repeat "
            "for several corpora; audio:PATH reads a plain folder, one pseudo-speaker per "
            "sub-folder, or a CSV with path,speaker; spans:DIR reads the spans `ingest --watch "
            "--corpus audio:PATH` wrote); replaces the config file's",
        )
        if fractions:
            p.add_argument(
                "--labelled-fractions",
                type=_fractions,
                default=None,
                help="comma-separated shares of each train speaker's clips that keep their "
                "label (e.g. 0.05,0.1,0.25,0.5,1): the experiment runs every fold at each "
                "and plots learning curves (default: the config's split.labelled_fraction)",
            )
            return
        p.add_argument(
            "--labelled-fraction",
            type=_fractions_one,
            default=None,
            help="share of each train speaker's clips that keep their label, the others "
            "ingested as unlabelled audio (default: the config's split.labelled_fraction, 1)",
        )

    with_labels(run)

    ingest = with_config(
        sub.add_parser(
            "ingest",
            help="check a corpus and turn it into training windows, with a report naming every "
            "file rejected or noted",
        )
    )
    ingest.add_argument(
        "--corpus",
        required=True,
        metavar="KIND:PATH",
        help="the corpus, KIND from `emograph corpora`; PATH is the corpus folder, except for "
        "manifest:PATH, where it names the CSV file itself (columns path,label,speaker)",
    )
    ingest.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="a new folder: examples/ (tf.Examples per split), report/ (ingest_report.json: "
        "every file ingested, rejected or noted) and logs/ are written there",
    )
    watching = ingest.add_argument_group("watch: new files in --corpus become --out/span-N")
    watching.add_argument(
        "--watch",
        action="store_true",
        help="keep polling the corpus, one span per interval (audio:PATH: spans of unlabelled "
        "train audio, for --unlabelled spans:OUT)",
    )
    watching.add_argument(
        "--interval", type=_at_least(0.1, float), default=10.0, help="seconds between polls"
    )
    watching.add_argument(
        "--duration",
        type=_at_least(0, float),
        default=0.0,
        help="stop after this many seconds (0: never)",
    )
    watching.add_argument(
        "--max-spans",
        type=_at_least(0, int),
        default=0,
        help="stop after this many new spans (0: no limit)",
    )
    watching.add_argument(
        "--settle",
        type=_at_least(0, float),
        default=2.0,
        help="take a file only once it is this many seconds unmodified (half-written files wait)",
    )
    with_labels(ingest)
    ingest.set_defaults(func=cmd_ingest)

    exp = with_config(
        sub.add_parser(
            "experiment", help="cross-validate the student against baselines over speaker folds"
        )
    )
    add_source_argument(exp)
    exp.add_argument(
        "--target",
        metavar="KIND:PATH",
        help="target corpus (folds are over its speakers), as ingest --corpus",
    )
    add_teacher_argument(exp)
    exp.add_argument(
        "--folds",
        type=_at_least(1, int),
        help="speaker-independent folds (1 = the config's own split; default: the count of the "
        "config's split.fold_speakers if set, which another value contradicts, else 3)",
    )
    exp.add_argument("--seeds", type=_at_least(1, int), default=3, help="training seeds per fold")
    exp.add_argument(
        "--variants",
        type=_variants,
        default=",".join(VARIANTS),
        help=f"models to train and compare, comma-separated (default all: {','.join(VARIANTS)}); "
        "the openSMILE baselines are always scored",
    )
    with_labels(exp, fractions=True)
    exp.add_argument("--out", required=True, help="experiment directory")
    exp.set_defaults(func=cmd_experiment)

    sub.add_parser("corpora", help="list the corpus kinds emograph reads").set_defaults(
        func=cmd_corpora
    )

    comp = with_config(
        sub.add_parser("compile", help="compile the pipeline for Kubeflow or Vertex AI")
    )
    # dest: `args.target` is the target corpus for _load_config.
    comp.add_argument("--target", dest="orchestrator", choices=("kubeflow",), default="kubeflow")
    comp.add_argument("--image", required=True, help="the emograph image every step runs in")
    comp.add_argument("--out", required=True, help=".yaml: KFP PipelineSpec; .json: Vertex job")
    comp.set_defaults(func=cmd_compile)

    sched = sub.add_parser(
        "schedule", help="upload a compiled pipeline to Kubeflow and run it on a cron schedule"
    )
    sched.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    sched.add_argument("--cron", required=True, help='e.g. "0 3 * * *" (KFP adds seconds first)')
    sched.add_argument("--spec", required=True, help="the .yaml written by `emograph compile`")
    sched.add_argument("--experiment", default="emograph")
    sched.add_argument("--job-name", help="default: <pipeline name>-recurring")
    sched.add_argument(
        "--pipeline-root", help="where KFP writes artifacts (default: the cluster's, e.g. MinIO)"
    )
    sched.set_defaults(func=cmd_schedule)

    from emograph.components.edge.cli import add_arguments

    predict = sub.add_parser(
        "predict", help="label the emotion in audio files or live audio with a pushed model"
    )
    add_arguments(predict)
    predict.set_defaults(func=cmd_predict)
    for command in sub.choices.values():  # -v after the command too; SUPPRESS keeps a -v before it
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="as emograph -v"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command; a failure is one line on stderr and an exit code (module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.func(args)
    except Exception as e:
        if args.verbose:
            raise
        if isinstance(e, UsageError | ConfigError | SplitError):
            message, status = str(e), EXIT_USAGE
        else:  # the work failed: the first line of what went wrong; -v has the rest
            lines = str(e).strip().splitlines() or [""]
            message = f"{type(e).__name__}: {lines[0]} (-v shows the traceback)"
            status = EXIT_FAILED
        print(f"emograph {args.command}: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"emograph {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
