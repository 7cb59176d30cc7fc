"""A quiet console for the long commands (`emograph run`, `experiment`, `ingest`).

The console shows one line per finished pipeline step (its name, seconds, a key figure and the
time left: from the second run in a folder on, as the last run's step times predict it; on a
first run, as reference step times (step_seconds.json beside this module, from the synthetic
demo) scaled by how this run's finished steps compare with them, shown as "roughly"),
warnings of emograph's own code and a final summary. Everything the frameworks write (absl,
TensorFlow, Beam and TFX logging, Keras' epoch lines, TensorFlow's C++ messages, Beam worker
processes) goes to a log file instead: file descriptors 1 and 2 themselves are redirected, so
output that bypasses Python logging is caught too. `-v` skips all of this.

Steps are followed through the records TFX's LocalDagRunner and launcher log around each
component launch: TFX 1.16 has no other hook for a local run, and reading its log changes
nothing in how the pipeline runs. Should those messages change, the run still works, without
step lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from absl import logging as absl_logging

from emograph.components.features import UNLABELLED_NAME

# The messages of tfx/orchestration/local/local_dag_runner.py and portable/launcher.py.
PIPELINE_START = "Using deployment config:\n %s"
RUNNING, FINISHED = "Component %s is running.", "Component %s is finished."
CACHED = "A cached execution %d is used."
PUBLISHING = "Publishing output artifacts %s for execution %s"

OWN_PACKAGE = "emograph"  # the root of our loggers' names
# Step times of the synthetic demo and a synthetic experiment, by step name without its seed.
REFERENCE_SECONDS = Path(__file__).with_name("step_seconds.json")
# Our loggers whose INFO lines belong on the console: an experiment's folds, the watcher's spans.
SHOWN_INFO = ("emograph.pipeline.experiment", "emograph.components.example_gen.watch")


class StepLines(logging.Handler):
    """Writes a console line per finished pipeline step, and emograph's own warnings.

    On a terminal, the running step and its latest log message (e.g. a trainer's epoch) stand in
    one status line that the finished step's line replaces.
    """

    def __init__(
        self, console: TextIO, log_path: Path | None, expected: Mapping[str, float] | None = None
    ) -> None:
        super().__init__(logging.INFO)
        self.console, self.log_path = console, log_path
        self.expected = dict(expected or {})  # seconds of each step in the last run here
        self.reference = _read_times(REFERENCE_SECONDS)
        self.seconds: dict[str, float] = {}  # of the steps run (not cached) here
        self._finished_nodes: set[str] = set()  # in the running pipeline
        self._names: list[str] = []  # the steps of each pipeline to come
        self._pipelines = 1  # how many pipelines this command runs (an experiment: one a fold)
        self._started_pipelines = 0
        self.total = self.step = self.finished = self.cached = 0
        self._start = time.monotonic()
        self._node: str | None = None
        self._node_start = 0.0
        self._node_cached = False
        self._outputs: Mapping[str, Sequence[Any]] = {}
        self._status = ""

    def expect(self, names: Sequence[str], pipelines: int = 1) -> None:
        """The steps of each pipeline to come (for "step 5/17" and the time left) and how many
        such pipelines the command runs."""
        self._names, self.total, self._pipelines = list(names), len(names), max(1, pipelines)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == "absl":
                self._follow(record)
            elif record.name.split(".")[0] == OWN_PACKAGE:
                if record.levelno >= logging.WARNING:
                    self.write(f"{record.levelname.lower()}: {record.getMessage()}")
                elif record.name in SHOWN_INFO:
                    self.write(record.getMessage())
                elif self._node:
                    self._show_status(f"{self._prefix()} {self._node}: {record.getMessage()}")
        except Exception:  # a console line must never break the run
            self.handleError(record)

    def _follow(self, record: logging.LogRecord) -> None:
        """Tracks the TFX runner's records of one step's launch."""
        if record.msg == PIPELINE_START:  # an experiment runs one pipeline per fold
            self.step = 0
            self._finished_nodes = set()
            self._started_pipelines += 1
        elif record.msg == RUNNING:
            self.step += 1
            self._node, self._node_start = str(record.args[0]), time.monotonic()
            self._node_cached, self._outputs = False, {}
            self._show_status(f"{self._prefix()} {self._node} ...{self._time_left()}")
        elif record.msg == CACHED:
            self._node_cached = True
        elif record.msg == PUBLISHING:
            self._outputs = record.args[0]
        elif record.msg == FINISHED and self._node:
            self.finished += 1
            self.cached += self._node_cached
            figure = "cached" if self._node_cached else key_figure(self._outputs)
            node, seconds = self._node, time.monotonic() - self._node_start
            if not self._node_cached:  # a cached step's time says nothing of the next run's
                self.seconds[node] = round(seconds, 1)
            self._finished_nodes.add(node)
            self._node = None
            line = f"{self._prefix()} {node:<30} {seconds:6.1f} s  {figure}".rstrip()
            self.write(line + self._time_left())

    def _time_left(self) -> str:
        """ "; about N min left" from the last run's step times here, "; roughly N min left"
        where a step has none and the reference times stand in; "" with neither."""
        names = self._names or list(self.expected)
        if not names:
            return ""
        estimates = {name: self._estimate(name) for name in names}
        if any(value is None for value in estimates.values()):
            return ""
        running = 0.0
        if self._node:
            running = max(0.0, (estimates.get(self._node) or 0.0) - self._elapsed())
        to_come = [t for n, t in estimates.items() if n not in self._finished_nodes | {self._node}]
        later = max(0, self._pipelines - max(1, self._started_pipelines))
        left = running + sum(to_come) + later * sum(estimates.values())
        if not left:
            return ""
        rough = any(name not in self.expected for name in names)
        when = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
        return f"; {'roughly' if rough else 'about'} {when} left"

    def _estimate(self, name: str) -> float | None:
        """Seconds step `name` should take: its time in the last run here, else its reference
        time scaled by this run's pace (None without a reference)."""
        if name in self.expected:
            return self.expected[name]
        if not self.reference:
            return None
        typical = statistics.median(self.reference.values())
        return self.reference.get(_unseeded(name), typical) * self._pace()

    def _pace(self) -> float:
        """This run's step times over the reference's, for the steps run so far without a time
        of the last run here (1 before any): the machine's and the data's scale at once."""
        pairs = [
            (seconds, self.reference.get(_unseeded(name)))
            for name, seconds in self.seconds.items()
            if name not in self.expected
        ]
        pairs = [(s, r) for s, r in pairs if r]
        if not pairs:
            return 1.0
        return min(50.0, max(0.1, sum(s for s, _ in pairs) / sum(r for _, r in pairs)))

    def _elapsed(self) -> float:
        return time.monotonic() - self._node_start

    def _prefix(self) -> str:
        """The running or just finished step, as "step  5/17" (aligned for the total)."""
        if not self.total:
            return f"step {self.step}"
        return f"step {self.step:>{len(str(self.total))}}/{self.total}"

    def write(self, line: str) -> None:
        """One console line (replacing the status line on a terminal)."""
        self._show_status("")
        self.console.write(line + "\n")
        self.console.flush()

    def _show_status(self, text: str) -> None:
        """The running step on a terminal: one line, rewritten in place."""
        if not self.console.isatty() or text == self._status:
            return
        width = shutil.get_terminal_size().columns - 1
        self.console.write("\r" + text[:width].ljust(len(self._status[:width])) + "\r")
        self.console.flush()
        self._status = text

    def failed(self) -> None:
        """Names the step that was running when the run failed (if any) and the log file."""
        if self._node:
            seconds = time.monotonic() - self._node_start
            self.write(
                f"{self._prefix()} {self._node} failed after {seconds:.0f} s; "
                f"full log: {self.log_path}"
            )

    def summary(self) -> str:
        """The last line: steps run, seconds, the log file."""
        seconds = time.monotonic() - self._start
        cached = f" ({self.cached} cached)" if self.cached else ""
        log = f"; full log: {self.log_path}" if self.log_path else ""
        return f"{self.finished} steps{cached} in {seconds:.0f} s{log}"


def _unseeded(step: str) -> str:
    """An experiment's step name without its seed ("nsl_student_seed2" -> "nsl_student")."""
    return re.sub(r"_seed\d+$", "", step)


def key_figure(outputs: Mapping[str, Sequence[Any]]) -> str:
    """A headline of a finished step from its outputs' small summary files, else "".

    Ingest: windows per split; trainers: best validation UAR (and the graph multiplier a
    student chose); GraphBuilder: nodes and edges;
    Evaluator: whether the student was blessed.
    """
    try:
        if "report" in outputs:
            report = _json(outputs["report"], "ingest_report.json")
            windows = ", ".join(f"{n} {report['windows'][n]}" for n in ("train", "eval", "test"))
            unlabelled = report["labels"]["train"].get(UNLABELLED_NAME)
            if unlabelled:
                windows += f" ({unlabelled} of train unlabelled)"
            return f"windows {windows}; {report['rejected']} files rejected"
        if "model_run" in outputs:
            run = _json(outputs["model_run"], "training.json")
            line = f"best validation UAR {run['val_uar']:.3f} (epoch {run['best_epoch']})"
            if len(run.get("val_uar_by_multiplier", {})) > 1:  # the student chose its graph
                line += f", graph multiplier {run['graph_multiplier']:g}"
            if run.get("graph_self_training", {}).get("used"):
                clips = run["graph_self_training"]["smoothed_clips"]
                line += f", {clips} clips labelled by its graph-smoothed predictions"
            elif run.get("label_propagation", {}).get("used"):
                clips = run["label_propagation"]["propagated_clips"]
                line += f", {clips} clips labelled by the graph"
            if "self_training" in run:
                line += f", {run['self_training']['pseudo_labelled_clips']} clips pseudo-labelled"
            return line
        if "graph" in outputs:
            stats = _json(outputs["graph"], "stats.json")
            return f"{stats['nodes']} nodes, {stats['edges']} edges"
        if "blessing" in outputs:
            from emograph.pipeline.report import artifact_has

            blessed = artifact_has(outputs["blessing"][0].uri, "BLESSED")
            return "blessed" if blessed else "not blessed"
    except (OSError, LookupError, TypeError, ValueError):
        pass
    return ""


def _json(artifacts: Sequence[Any], name: str) -> Any:
    from emograph.pipeline.report import artifact_json  # with TFX: the pipeline is running

    return artifact_json(artifacts[0].uri, name)


STEP_SECONDS = "step_seconds.json"  # beside the log: each step's seconds in the last run


def _read_times(path: Path) -> dict[str, float]:
    """{step: seconds} of the last run, or {} (none yet, or unreadable: only an estimate)."""
    try:
        times = json.loads(path.read_text())
        return {str(k): float(v) for k, v in times.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


@contextlib.contextmanager
def quiet(log_path: Path, verbose: bool = False) -> Iterator[StepLines]:
    """Runs the block with every framework message in `log_path` (appended) and step lines on
    the console; yields the StepLines for the caller's `expect` and `summary`.

    With `verbose`, nothing is redirected and the StepLines yielded is not installed. On an
    error the traceback goes to the log, the console names the failed step and the log, and the
    error propagates (the CLI prints its one line once the console is back).
    """
    # TF's SavedModel code resets absl's level to its flag's (WARNING), hiding TFX's step records.
    absl_logging.set_verbosity(absl_logging.DEBUG if verbose else absl_logging.INFO)
    if verbose:
        yield StepLines(sys.stdout, None)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = open(saved[0], "w", buffering=1, errors="replace", closefd=False)  # noqa: SIM115
    times = log_path.parent / STEP_SECONDS
    steps = StepLines(console, log_path, _read_times(times))
    root = logging.getLogger()
    with open(log_path, "a") as log:
        log.write(f"--- emograph {' '.join(sys.argv[1:])} at {time.strftime('%F %T')}\n")
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root.addHandler(steps)
        try:
            yield steps
        except BaseException:
            sys.stderr.flush()
            traceback.print_exc(file=log)
            steps.failed()
            raise
        finally:
            root.removeHandler(steps)
            if steps.seconds:  # the next run here estimates its time left from these
                times.write_text(json.dumps({**steps.expected, **steps.seconds}, indent=1))
            sys.stdout.flush()
            sys.stderr.flush()
            console.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class _Forwarder(logging.handlers.QueueHandler):
    """Sends a child process's log records to its parent, keeping what StepLines reads: the
    TFX runner's message templates and arguments (output artifacts reduced to their uris);
    other records travel formatted."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = logging.makeLogRecord(record.__dict__)
        if record.msg == PUBLISHING:
            outputs, execution = record.args
            record.args = (
                {k: [SimpleNamespace(uri=a.uri) for a in v] for k, v in outputs.items()},
                execution,
            )
        elif record.msg == PIPELINE_START:  # its argument, a proto, is not read
            record.args = None
        elif record.msg not in (RUNNING, CACHED, FINISHED):
            record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
        record.exc_info = record.exc_text = None
        return record


def forward_logs(queue: multiprocessing.Queue) -> None:
    """In a child process: every log record goes to `queue`, none to this process's handlers
    (the parent's `forwarded` hands them to its own: the log file and the step lines)."""
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(_Forwarder(queue))
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)


@contextlib.contextmanager
def forwarded(queue: multiprocessing.Queue) -> Iterator[None]:
    """Hands the records child processes send to `queue` (`forward_logs`) to this process's
    root handlers while the block runs, and every record sent before it ends."""
    root = logging.getLogger()
    listener = logging.handlers.QueueListener(queue, *root.handlers, respect_handler_level=True)
    listener.start()
    try:
        yield
    finally:
        listener.stop()
