"""A user's mistakes: each is one clear line and a documented exit code, never a traceback or a
silent loss (issue 17). Small inputs only; nothing here trains or runs the pipeline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emograph.components.audio.corpora import list_clips
from emograph.components.config import EMOTIONS, ConfigError, CorpusSpec
from emograph.pipeline import cli, console
from emograph.pipeline.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def tone(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.uniform(-1, 1, int(seconds * RATE))).astype(np.float32)


def write_config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """`emograph ARGS` in this process -> (exit code, stderr)."""
    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err


# --- config files: checked on load, one line naming file, field, value and expectation ---


@pytest.mark.parametrize(
    "data, message",
    [
        ({"audio": {"window_seconds": "3"}}, 'audio.window_seconds: expected a number, got "3"'),
        ({"teacher": {"epochs": "twelve"}}, 'teacher.epochs: expected an integer, got "twelve"'),
        ({"split": {"folds": "three"}}, 'split.folds: expected an integer, got "three"'),
        ({"teacher": {"epochs": True}}, "teacher.epochs: expected an integer, got true"),
        ({"graph": {"speaker_centre": 1}}, "graph.speaker_centre: expected true or false, got 1"),
        ({"teacher": {"filters": 32}}, "teacher.filters: expected a list, each item an integer"),
        ({"teacher": {"filters": [32, "64"]}}, 'teacher.filters[1]: expected an integer, got "64"'),
        ({"audio": 3}, "audio: expected an object of AudioConfig settings, got 3"),
        ({"audio": {"window": 3}}, "audio.window: unknown AudioConfig setting"),
        ({"colour": "red"}, "colour: unknown RunConfig setting"),
        ({"target": {"kind": "ravdess"}}, "target.path: missing"),
        ({"split": {"folds": 1}}, "split: folds must be 0 (off) or >= 2, got 1"),
        ([1, 2], "expected an object of RunConfig settings, got [1, 2]"),
        ('{"audio": {', "not valid JSON: Expecting property name"),
        ('{"audio": {"min_seconds": NaN}}', "audio.min_seconds: expected a finite number"),
    ],
)
def test_config_mistakes_name_file_field_value_and_expectation(tmp_path, data, message):
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError) as raised:
        RunConfig.from_file(path)
    assert str(raised.value).startswith(f"{path}: {message}")
    assert "\n" not in str(raised.value)


def test_an_int_is_a_float_but_a_bool_is_neither(tmp_path):
    config = RunConfig.from_file(write_config(tmp_path, {"audio": {"window_seconds": 2}}))
    assert config.audio.window_seconds == 2.0 and isinstance(config.audio.window_seconds, float)
    with pytest.raises(ConfigError, match="expected a number, got false"):
        RunConfig.from_file(write_config(tmp_path, {"audio": {"window_seconds": False}}))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.from_file(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "data", [{"audio": {"window_seconds": "3"}}, '{"audio": ', {"teacher": {"epochz": 1}}]
)
def test_cli_refuses_a_bad_config_with_exit_2_in_one_line(tmp_path, capsys, data):
    path = write_config(tmp_path, data)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\n")
    args = ("ingest", "--config", path, "--corpus", f"manifest:{manifest}", "--out", tmp_path / "o")
    status, err = run_cli(capsys, *args)
    assert status == 2
    assert err.startswith(f"emograph ingest: {path}: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_config_is_checked_before_tensorflow_is_imported(tmp_path):
    path = write_config(tmp_path, {"teacher": {"epochs": "twelve"}})
    code = (
        "import sys; from emograph.pipeline import cli; "
        f"status = cli.main(['run', '--config', {str(path)!r}]); "
        "heavy = [m for m in ('tensorflow', 'apache_beam', 'tfx') if m in sys.modules]; "
        "assert status == 2 and not heavy, (status, heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "teacher.epochs" in done.stderr and "Traceback" not in done.stderr


# --- command line: one line on stderr, exit 2 for usage mistakes, tracebacks only with -v ---


@pytest.mark.parametrize(
    "args, message",
    [
        (("ingest", "--corpus", "nope:/x", "--out", "o"), "unknown corpus kind 'nope'"),
        (("ingest", "--corpus", "manifest", "--out", "o"), "KIND:PATH"),
        (("ingest", "--corpus", "manifest:/no/such.csv", "--out", "o"), "names a CSV file"),
        (("report", "--root", "/no/such/run"), "no run at /no/such/run"),
        (("ingest", "--corpus", "ravdess:/no/such", "--out", "o"), "no such ravdess corpus"),
        (("ingest", "--config", "/no/such.json", "--corpus", "x:y", "--out", "o"), "no such"),
        (("run", "--target", "crema-d:/no/such"), "target: no such crema-d corpus folder"),
        (("run", "--source", "tess:/no/such"), "source: no such tess corpus folder"),
        (("run", "--target", "timit:/x"), "target: unknown corpus kind 'timit'"),
        (("run", "--teacher", "/no/such/teacher"), "teacher.model_path: no such file"),
        (("experiment", "--seeds", "0", "--out", "x"), "--seeds: must be at least 1"),
        (("synth", "--corpus", "source", "--out", "s", "--speakers", "x"), "expected an integer"),
        (("ingest", "--corpus", "x:y", "--out", "o", "--interval", "-1"), "must be at least"),
        (("teach",), "invalid choice: 'teach'"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(capsys, args, message):
    try:
        status, err = run_cli(capsys, *args)
    except SystemExit as e:  # argparse's own errors
        status, err = e.code, capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_ingest_refuses_an_out_folder_holding_an_earlier_ingest(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\n")
    (tmp_path / "out" / "report").mkdir(parents=True)
    args = ("ingest", "--corpus", f"manifest:{manifest}", "--out", tmp_path / "out")
    status, err = run_cli(capsys, *args)
    assert (status, err) == (
        2,
        f"emograph ingest: --out: {tmp_path / 'out'} already holds ingest output; "
        "choose a new folder\n",
    )


def test_a_failure_is_one_line_and_exit_1_and_v_shows_the_traceback(capsys, monkeypatch):
    def broken(args: object) -> int:
        raise RuntimeError("the disk is full\nand more detail")

    monkeypatch.setattr(cli, "cmd_corpora", broken)
    status, err = run_cli(capsys, "corpora")
    assert status == 1
    assert err == "emograph corpora: RuntimeError: the disk is full (-v shows the traceback)\n"
    for verbose in (("-v", "corpora"), ("corpora", "--verbose")):
        with pytest.raises(RuntimeError, match="the disk is full"):
            cli.main(list(verbose))


# --- manifests: a bad row is a rejection with its line number, never an abort ---


def write_wavs(root: Path, *names: str) -> None:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, tone(seed=i), RATE)


def manifest_outcome(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(clips as (name, speaker), rejections as (name, reason, detail)), names relative."""
    clips, rejections = list_clips(CorpusSpec("manifest", str(path)), EMOTIONS)

    def name(listed: str) -> str:
        return os.path.relpath(listed, path.parent)

    return (
        [(name(c.path), c.speaker) for c in clips],
        [(name(r.path), r.reason, r.detail) for r in rejections],
    )


def test_hostile_manifest_rows_are_rejected_with_line_numbers(tmp_path):
    write_wavs(tmp_path, "a.wav", "b.wav", "c.wav", "d,e.wav", "f.wav", "g.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,speaker\n"  # 1
        "a.wav,happy,s1\n"  # 2
        "b.wav,sad\n"  # 3: a column missing
        "a;b;c\n"  # 4: another separator
        "c.wav,sad,s2,extra\n"  # 5: a column too many
        '"d,e.wav",angry,s3\n'  # 6: quoting, read by the csv rules
        "\n"  # 7: blank, skipped
        ",sad,s1\n"  # 8: empty path
        'f.wav,"sad"x,s1\n'  # 9: text after a closing quote
        "g.wav,happy,s2\n",  # 10
        encoding="utf-8",
    )
    clips, rejections = manifest_outcome(manifest)
    assert clips == [("a.wav", "manifest/s1"), ("d,e.wav", "manifest/s3"), ("g.wav", "manifest/s2")]
    assert [(name, reason) for name, reason, _ in rejections] == [
        ("m.csv:3", "malformed_row"),
        ("m.csv:4", "malformed_row"),
        ("m.csv:5", "malformed_row"),
        ("m.csv:8", "malformed_row"),
        ("m.csv:9", "malformed_row"),
    ]
    details = [detail for *_, detail in rejections]
    assert details[0].startswith("line 3: 2 fields where the header has 3")
    assert details[3] == "line 8: empty path column"
    assert details[4].startswith("line 9: ")


def test_an_unclosed_quote_is_one_rejection_naming_the_lines_it_swallowed(tmp_path):
    write_wavs(tmp_path, "a.wav", "b.wav", "c.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,label,speaker\n"a.wav,happy,s1\nb.wav,sad,s1\nc.wav,sad,s2\n')
    clips, rejections = manifest_outcome(manifest)
    assert clips == []
    assert [(name, reason) for name, reason, _ in rejections] == [("m.csv:2", "malformed_row")]
    assert rejections[0][2].startswith("lines 2-4: ")


def test_manifest_with_a_utf8_bom_is_read(tmp_path):
    write_wavs(tmp_path, "a.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label,speaker\na.wav,happy,s1\n".encode("utf-8-sig"))
    assert manifest_outcome(manifest) == ([("a.wav", "manifest/s1")], [])


def test_malformed_rows_are_counted_in_the_ingest_report(tmp_path):
    from emograph.components.config import AudioConfig, SplitConfig
    from emograph.components.example_gen.ingest import run_ingest

    speakers = [f"s{i}" for i in range(3)]
    write_wavs(tmp_path / "c", *(f"{s}_{e}.wav" for s in speakers for e in range(2)))
    rows = [f"{s}_{e}.wav,{EMOTIONS[e]},{s}" for s in speakers for e in range(2)]
    manifest = tmp_path / "c" / "m.csv"
    manifest.write_text("path,label,speaker\n" + "\n".join(rows) + "\nx.wav,sad\na;b;c\n")
    audio = AudioConfig(window_seconds=1.0, hop_seconds=1.0)
    spec = CorpusSpec("manifest", str(manifest))
    report = run_ingest(spec, EMOTIONS, audio, SplitConfig(), str(tmp_path / "out"))
    assert (report["found"], report["ingested"], report["rejected"]) == (8, 6, 2)
    assert report["rejected_by_reason"] == {"malformed_row": 2}
    assert [r["path"] for r in report["rejections"]] == [f"{manifest}:8", f"{manifest}:9"]


# --- symlinks are resolved before the outside-root check ---


def test_a_symlink_out_of_the_corpus_root_is_rejected(tmp_path):
    root = tmp_path / "corpus"
    write_wavs(root, "s1/a.wav")
    write_wavs(tmp_path, "private/secret.wav")
    (root / "s1" / "b.wav").symlink_to(tmp_path / "private" / "secret.wav")
    (root / "s1" / "c.wav").symlink_to(root / "s1" / "a.wav")  # inside: allowed
    manifest = root / "m.csv"
    manifest.write_text("path,label,speaker\ns1/a.wav,sad,s1\ns1/b.wav,sad,s1\ns1/c.wav,sad,s1\n")
    clips, rejections = manifest_outcome(manifest)
    assert clips == [("s1/a.wav", "manifest/s1"), ("s1/c.wav", "manifest/s1")]
    assert [(name, reason) for name, reason, _ in rejections] == [("s1/b.wav", "outside_root")]

    ravdess = tmp_path / "ravdess" / "Actor_01"
    write_wavs(ravdess, "03-01-05-01-01-01-01.wav")
    (ravdess / "03-01-04-01-01-01-01.wav").symlink_to(tmp_path / "private" / "secret.wav")
    clips, rejections = list_clips(CorpusSpec("ravdess", str(ravdess.parent)), EMOTIONS)
    assert [Path(c.path).name for c in clips] == ["03-01-05-01-01-01-01.wav"]
    assert [(Path(r.path).name, r.reason) for r in rejections] == [
        ("03-01-04-01-01-01-01.wav", "outside_root")
    ]


# --- ingest: what a kept file lost is noted; duplicates name their conflict, the same copy wins ---


def test_ingest_notes_truncated_and_clipped_files_and_names_duplicate_conflicts(tmp_path, capsys):
    corpus = tmp_path / "c"
    speakers = [f"s{i}" for i in range(3)]
    write_wavs(corpus, *(f"{s}_{e}.wav" for s in speakers for e in range(2)))
    rows = [f"{s}_{e}.wav,{EMOTIONS[e]},{s}" for s in speakers for e in range(2)]
    for name, seconds in (("cut.wav", 1.0), ("stub.wav", 0.2)):  # 2 s WAVs cut mid-data
        sf.write(corpus / name, tone(2.0, seed=7), RATE)
        (corpus / name).write_bytes((corpus / name).read_bytes()[: 44 + int(2 * seconds * RATE)])
    loud = tone(1.2, seed=8) * 5  # peak 1.5
    sf.write(corpus / "loud.wav", loud, RATE, subtype="FLOAT")
    (corpus / "copy.wav").write_bytes((corpus / "s0_0.wav").read_bytes())
    rows += ["cut.wav,sad,s0", "stub.wav,sad,s2", "loud.wav,angry,s1", "copy.wav,sad,s1"]
    (corpus / "m.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
    config = write_config(tmp_path, {"audio": {"window_seconds": 1.0, "hop_seconds": 1.0}})
    out = tmp_path / "out"
    args = ("ingest", "--config", config, "--corpus", f"manifest:{corpus / 'm.csv'}", "--out", out)
    assert cli.main([str(a) for a in args]) == 0
    assert "notes on ingested files (what decoding lost): {'clipped': 1, 'truncated': 1}" in (
        capsys.readouterr().out
    )

    report = json.loads((out / "report" / "ingest_report.json").read_text())
    assert report["notes_by_kind"] == {"clipped": 1, "truncated": 1}
    assert report["by_corpus"]["manifest"]["notes_by_kind"] == {"clipped": 1, "truncated": 1}
    beyond = f"{np.mean(np.abs(loud) > 1):.2%} of samples beyond +-1 (peak 1.50) clipped to +-1"
    assert report["notes"] == [
        {
            "path": str(corpus / "cut.wav"),
            "corpus": "manifest",
            "kind": "truncated",
            "detail": "1.00 s read of the 2.00 s its header promises (the file was cut short)",
        },
        {
            "path": str(corpus / "loud.wav"),
            "corpus": "manifest",
            "kind": "clipped",
            "detail": beyond,
        },
    ]
    rejections = {Path(r["path"]).name: (r["reason"], r["detail"]) for r in report["rejections"]}
    assert rejections["stub.wav"] == (
        "too_short",
        "0.20 s < 0.5 s; truncated: 0.20 s read of the 2.00 s its header promises "
        "(the file was cut short)",
    )
    (lost,) = {"copy.wav", "s0_0.wav"} & set(rejections)
    kept = ({"copy.wav", "s0_0.wav"} - {lost}).pop()
    reason, detail = rejections[lost]
    assert reason == "duplicate" and detail.startswith(f"same audio as {corpus / kept}; ")
    assert "conflicting label: " in detail and "conflicting speaker: " in detail


def test_which_duplicate_is_kept_depends_on_the_copies_not_on_paths_or_order():
    """Three copies of one audio in two corpora: every listing order, and the corpora mounted
    under swapped folder names, keep the same copy; each rejection names the kept copy and the
    label or speaker it contradicts."""
    from itertools import permutations

    from emograph.components.audio.corpora import Clip, clip_id
    from emograph.components.example_gen.ingest import _keep_one

    def copies(manifest_root: str, ravdess_root: str) -> list[Clip]:
        listed = [
            (manifest_root, "manifest", "s1/a.wav", "happy", "s1"),
            (manifest_root, "manifest", "s2/b.wav", "sad", "s2"),
            (ravdess_root, "ravdess", "Actor_01/03-01-03-01-01-01-01.wav", "happy", "Actor_01"),
        ]
        return [
            Clip(f"{root}/{name}", label, f"{corpus}/{speaker}", corpus, clip_id(corpus, name))
            for root, corpus, name, label, speaker in listed
        ]

    winners = set()
    for roots in (("/data/a", "/data/b"), ("/data/b", "/data/a")):
        for order in permutations(copies(*roots)):
            (_, (kept, *_)), *rejected = _keep_one(("sha1", [(c, [], []) for c in order]), {})
            winners.add(kept.clip_id)
            for tagged in rejected:
                clip = next(c for c in order if c.path == tagged.value.path)
                detail = tagged.value.detail
                assert tagged.value.reason == "duplicate"
                assert detail.startswith(f"same audio as {kept.path}; ")
                assert (
                    f"conflicting speaker: {clip.speaker!r} here, {kept.speaker!r} kept" in detail
                )
                assert ("conflicting label: " in detail) == (clip.label != kept.label)
    assert len(winners) == 1


# --- command line help: for the user, and says what KIND:PATH names ---


def test_help_describes_the_tool_and_its_commands_for_a_user(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert text.split("\n\n")[1].startswith("Trains small speech-emotion classifiers")
    assert "Heavy imports" not in text and "LOG_DIR" not in text  # the developer docstring
    for command in ("run", "report", "synth", "ingest", "experiment", "corpora", "predict"):
        assert f"\n    {command} " in text  # each command with its one-line help
    flat = " ".join(text.split())
    assert "for manifest:PATH the CSV file itself" in flat and "exit codes: 0 success" in flat

    with pytest.raises(SystemExit):
        cli.main(["ingest", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert "manifest:PATH, where it names the CSV file itself" in flat
    assert "--out DIR a new folder: examples/" in flat


# --- predict: refuses what is not audio, says when a label means little ---


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from emograph.components.edge.testing import build_tiny_model

    root = tmp_path_factory.mktemp("edge-model") / "model"
    build_tiny_model(root, "float32", RATE, 24000, 16000)
    return root


def test_predict_refuses_nan_and_inf_audio(model, tmp_path, capsys):
    for bad in (np.nan, np.inf):
        samples = tone(2.0)
        samples[100] = bad
        sf.write(tmp_path / "bad.wav", samples, RATE, subtype="FLOAT")
        status, err = run_cli(capsys, "predict", model, tmp_path / "bad.wav")
        assert status == 1 and err.count("\n") == 1
        assert err.startswith(f"emograph predict: {tmp_path / 'bad.wav'}: holds NaN or Inf")


def test_predict_names_a_missing_file_and_a_directory(model, tmp_path, capsys):
    status, err = run_cli(capsys, "predict", model, tmp_path / "gone.wav")
    assert (status, err) == (1, f"emograph predict: no such file: {tmp_path / 'gone.wav'}\n")
    status, err = run_cli(capsys, "predict", model, tmp_path)
    assert (status, err) == (1, f"emograph predict: {tmp_path} is a directory, not an audio file\n")


@pytest.mark.parametrize(
    "samples, reason",
    [
        (np.zeros(2 * RATE, np.float32), "the audio is silent (peak below -80 dBFS)"),
        (tone(0.3), "0.30 s is shorter than the 0.5 s ingest keeps for training"),
        (
            np.zeros(RATE // 10, np.float32),
            "the audio is silent (peak below -80 dBFS) and 0.10 s is shorter than the 0.5 s "
            "ingest keeps for training",
        ),
    ],
)
def test_predict_refuses_silence_and_short_clips_unless_forced(
    model, tmp_path, capsys, samples, reason
):
    doubt, good = tmp_path / "doubt.wav", tmp_path / "good.wav"
    sf.write(doubt, samples, RATE)
    sf.write(good, tone(2.0), RATE)
    status = cli.main(["predict", str(model), str(doubt), str(good)])
    out, err = capsys.readouterr()
    assert status == 1 and out.startswith(f"{good}: ") and out.count("\n") == 1
    assert err == (
        f"emograph predict: {doubt}: refused: {reason}, so its label would mean little "
        "(--force predicts anyway)\n"
    )
    status = cli.main(["predict", str(model), str(doubt), "--force"])
    out, err = capsys.readouterr()
    assert status == 0 and out.startswith(f"{doubt}: ")
    assert err == f"emograph predict: {doubt}: warning: {reason}; its label means little\n"


def test_predict_force_documents_the_default_and_its_exit_code(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--force predict audio that ingest would reject as training data: silent" in text
    assert "shorter than 0.5 s. Without it such a file is refused" in text
    assert "the exit code is 1" in text


def test_predict_stream_covers_the_whole_file_as_file_mode_does(model, tmp_path, capsys):
    """61.4 s: the windows every hop end at 60.5 s; one more, flush with the end, covers the
    tail, as file mode's windows do (the same windows, so the same mean)."""
    path = tmp_path / "long.wav"
    sf.write(path, tone(61.4), RATE)
    assert cli.main(["predict", str(model), str(path), "--stream"]) == 0
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (windows[-2]["end_s"], windows[-1]["start_s"], windows[-1]["end_s"]) == (
        60.5,
        59.9,
        61.4,
    )
    assert cli.main(["predict", str(model), str(path), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["windows"] == len(windows) == 61
    for name, p in whole["probabilities"].items():
        assert p == pytest.approx(np.mean([w["probabilities"][name] for w in windows]), abs=1e-6)


def test_predict_refuses_a_truncated_model_in_one_line(model, tmp_path, capsys):
    import shutil

    from emograph.components.edge.testing import truncate_model

    cut = Path(shutil.copytree(model, tmp_path / "cut"))
    truncate_model(cut, (cut / "model.tflite").stat().st_size // 2)
    sf.write(tmp_path / "a.wav", tone(2.0), RATE)
    status, err = run_cli(capsys, "predict", cut, tmp_path / "a.wav")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"emograph predict: {cut / 'model.tflite'}: LiteRT cannot load it (")
    assert err.endswith("truncated or corrupt: push the model again\n")


def test_predict_silence_threshold_is_ingests():
    from emograph.components.audio import decode
    from emograph.components.edge import audio

    assert audio.SILENCE_PEAK == decode.SILENCE_PEAK


# --- speaker splits: a corpus the split cannot use is refused in one line, exit 2 ---


def test_a_two_speaker_corpus_is_refused_with_what_to_do_instead(tmp_path, capsys):
    write_wavs(tmp_path / "tess", "OAF_angry/OAF_back_angry.wav", "YAF_sad/YAF_bath_sad.wav")
    args = ("ingest", "--corpus", f"tess:{tmp_path / 'tess'}", "--out", tmp_path / "out")
    status, err = run_cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"emograph ingest: tess:{tmp_path / 'tess'}: a speaker-independent" in err
    assert "needs >= 3 speakers, got 2: ['tess/OAF', 'tess/YAF']" in err
    assert "repeat --source for the teacher's data, or list the files of both in one" in err


def test_a_split_whose_files_were_all_rejected_is_refused(tmp_path, capsys):
    """Speakers are split before decoding: s3's only files are unreadable, so test ends empty."""
    corpus = tmp_path / "c"
    write_wavs(corpus, "s1_0.wav", "s1_1.wav", "s2_0.wav")
    (corpus / "s3_0.wav").write_bytes(b"RIFF, but not audio")
    rows = ["s1_0.wav,happy,s1", "s1_1.wav,sad,s1", "s2_0.wav,sad,s2", "s3_0.wav,sad,s3"]
    (corpus / "m.csv").write_text("path,label,speaker\n" + "\n".join(rows) + "\n")
    split = {"eval_speakers": ["manifest/s2"], "test_speakers": ["manifest/s3"]}
    config = write_config(tmp_path, {"split": split, "audio": {"window_seconds": 1.0}})
    out = tmp_path / "out"
    args = ("ingest", "--config", config, "--corpus", f"manifest:{corpus / 'm.csv'}", "--out", out)
    status, err = run_cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert (
        f"emograph ingest: manifest:{corpus / 'm.csv'}: no windows in split test "
        "(speakers manifest/s3): every file of those speakers was rejected ({'unreadable': 1}"
    ) in err
    assert json.loads((out / "report" / "ingest_report.json").read_text())["rejected"] == 1
    assert (out / "logs" / "ingest.log").read_text()  # the Beam job's logs, not the console


# --- quiet console: one line per pipeline step, the frameworks' logs in a file ---

QUIET_SCRIPT = """
import logging, os, sys
from pathlib import Path
from absl import logging as absl_logging
from emograph.pipeline import console

logging.basicConfig(level=logging.INFO)
log = Path(sys.argv[1])
with console.quiet(log) as steps:
    steps.expect(["source_example_gen", "teacher_trainer"])
    logging.getLogger("tensorflow").info("tf python noise")
    logging.getLogger("apache_beam").warning("beam noise")
    os.write(2, b"c++ noise\\n")
    print("keras epoch noise")
    absl_logging.info(console.RUNNING, "source_example_gen")
    saved = absl_logging.get_verbosity()  # as TF's SavedModel code does
    absl_logging.set_verbosity(absl_logging.FATAL)
    absl_logging.set_verbosity(saved)
    absl_logging.info("absl noise")
    absl_logging.info(console.FINISHED, "source_example_gen")
    logging.getLogger("emograph.components.tflite_pusher").warning("not blessed")
print(steps.summary())
try:
    with console.quiet(log):
        absl_logging.info(console.RUNNING, "teacher_trainer")
        raise RuntimeError("out of memory")
except RuntimeError:
    pass
"""


def _run_script(script: str, log: Path) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter (its own console and file descriptors), `log` its arg."""
    argv = [sys.executable, "-c", script, str(log)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True)


def test_quiet_console_shows_steps_and_sends_framework_logs_to_the_file(tmp_path):
    log = tmp_path / "logs" / "run.log"
    done = _run_script(QUIET_SCRIPT, log)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("step 1/2 source_example_gen") and " s  " not in lines[0]
    assert lines[0].endswith(" left") and "; roughly " in lines[0]  # first run: reference times
    assert lines[1:] == [
        "warning: not blessed",
        f"1 steps in 0 s; full log: {log}",
        f"step 1 teacher_trainer failed after 0 s; full log: {log}",
    ]
    assert done.stderr == ""
    text = log.read_text()
    for noise in ("tf python noise", "beam noise", "c++ noise", "keras epoch noise", "absl noise"):
        assert noise in text
    assert "RuntimeError: out of memory" in text  # the traceback


TIME_LEFT_SCRIPT = """
import json, logging, sys
from pathlib import Path
from absl import logging as absl_logging
from emograph.pipeline import console

logging.basicConfig(level=logging.INFO)
console.REFERENCE_SECONDS = Path(sys.argv[1]).with_name("reference.json")
with console.quiet(Path(sys.argv[1])) as steps:
    names = ["source_example_gen", "source_transform", "teacher_trainer_seed0"]
    steps.expect(names, pipelines=2)
    for node in ("source_example_gen", "source_transform"):
        absl_logging.info(console.RUNNING, node)
        if node == "source_transform":
            absl_logging.info(console.CACHED, 7)
        absl_logging.info(console.FINISHED, node)
"""


def test_step_lines_say_the_time_left_of_every_pipeline_to_come(tmp_path):
    """A first run scales reference step times by its own pace; later runs use the last run's
    times; an experiment's later folds count; a cached step's time is not kept."""
    log = tmp_path / "logs" / "run.log"
    log.parent.mkdir()
    (log.parent / "reference.json").write_text(
        json.dumps({"source_example_gen": 1.0, "source_transform": 3.0, "teacher_trainer": 60.0})
    )

    def run() -> list[str]:
        return _run_script(TIME_LEFT_SCRIPT, log).stdout.splitlines()

    # The first step took ~0 s of its reference 1 s: the pace is the floor, 0.1, so this pipeline
    # has 0.3 + 6 s to come and the second fold 0.1 + 0.3 + 6 s.
    first = run()
    assert first[0].endswith("; roughly 13 s left"), first
    times = log.parent / console.STEP_SECONDS
    assert set(json.loads(times.read_text())) == {"source_example_gen"}  # transform was cached
    times.write_text(
        json.dumps(
            {"source_example_gen": 1.0, "source_transform": 300.0, "teacher_trainer_seed0": 60.0}
        )
    )
    second = run()
    assert second[0].endswith("; about 12 min left")  # 300 + 60 in this fold, 361 in the next
    assert second[1].endswith("; about 7 min left")  # the trainer, and the next fold
    kept = json.loads(times.read_text())
    assert kept["teacher_trainer_seed0"] == 60.0 and kept["source_transform"] == 300.0


def test_the_packaged_reference_times_name_every_step_of_the_pipelines():
    from emograph.pipeline.config import VARIANTS, RunConfig
    from emograph.pipeline.pipeline import create_experiment_pipeline, create_pipeline

    reference = json.loads(console.REFERENCE_SECONDS.read_text())
    config = RunConfig.tiny("runs/unused")
    steps = {c.id for c in create_pipeline(config).components}
    steps |= {c.id for c in create_experiment_pipeline(config, 1, variants=VARIANTS).components}
    assert {re.sub(r"_seed\d+$", "", step) for step in steps} <= set(reference)


def test_a_student_step_line_names_the_multiplier_it_chose(tmp_path):
    from types import SimpleNamespace

    from emograph.pipeline.console import key_figure

    summary = {"val_uar": 0.5, "best_epoch": 3, "graph_multiplier": 0.1}
    (tmp_path / "training.json").write_text(json.dumps(summary))
    run = {"model_run": [SimpleNamespace(uri=str(tmp_path))]}
    assert key_figure(run) == "best validation UAR 0.500 (epoch 3)"
    summary["val_uar_by_multiplier"] = {"0.0": 0.4, "0.1": 0.5}
    (tmp_path / "training.json").write_text(json.dumps(summary))
    assert key_figure(run) == "best validation UAR 0.500 (epoch 3), graph multiplier 0.1"
    summary["self_training"] = {"pseudo_labelled_clips": 7}
    (tmp_path / "training.json").write_text(json.dumps(summary))
    assert key_figure(run).endswith("graph multiplier 0.1, 7 clips pseudo-labelled")


def test_a_student_step_line_says_which_graph_labels_it_kept(tmp_path):
    from types import SimpleNamespace

    from emograph.pipeline.console import key_figure

    propagation = {"propagated_clips": 9, "val_uar_by_multiplier": {"0.0": 0.4}, "used": True}
    summary = {"val_uar": 0.5, "best_epoch": 3, "graph_multiplier": 0.0}
    summary |= {"label_propagation": propagation}
    summary |= {"graph_self_training": {"smoothed_clips": 4, "val_uar": 0.3, "used": False}}
    (tmp_path / "training.json").write_text(json.dumps(summary))
    run = {"model_run": [SimpleNamespace(uri=str(tmp_path))]}
    assert key_figure(run).endswith("(epoch 3), 9 clips labelled by the graph")
    propagation["used"] = False
    summary["graph_self_training"] = {"smoothed_clips": 4, "val_uar": 0.6, "used": True}
    (tmp_path / "training.json").write_text(json.dumps(summary))
    assert key_figure(run).endswith("(epoch 3), 4 clips labelled by its graph-smoothed predictions")
    summary["graph_self_training"]["used"] = False
    (tmp_path / "training.json").write_text(json.dumps(summary))
    assert key_figure(run) == "best validation UAR 0.500 (epoch 3)"


def test_an_ingest_step_line_counts_unlabelled_windows(tmp_path):
    from types import SimpleNamespace

    from emograph.components.features import UNLABELLED_NAME
    from emograph.pipeline.console import key_figure

    report = {
        "windows": {"train": 10, "eval": 4, "test": 5},
        "labels": {"train": {"sad": 3, UNLABELLED_NAME: 7}, "eval": {}, "test": {}},
        "rejected": 1,
    }
    (tmp_path / "ingest_report.json").write_text(json.dumps(report))
    line = key_figure({"report": [SimpleNamespace(uri=str(tmp_path))]})
    assert line == "windows train 10, eval 4, test 5 (7 of train unlabelled); 1 files rejected"


def test_a_child_process_log_record_crosses_to_the_parent_as_step_lines_read_it():
    import logging
    import pickle
    import queue as queues
    import threading
    from types import SimpleNamespace

    from emograph.pipeline import console

    class Artifact:  # like a TFX artifact: more than a uri, and not picklable
        def __init__(self, uri):
            self.uri, self.lock = uri, threading.Lock()

    sent = queues.Queue()
    forwarder = console._Forwarder(sent)
    outputs = {"model_run": [Artifact("/runs/model_run/7")]}
    for msg, args in (
        (console.PUBLISHING, (outputs, 7)),
        (console.RUNNING, ("nsl_student_seed0",)),
        ("loss %s", (threading.Lock(),)),
    ):
        forwarder.emit(logging.LogRecord("absl", logging.INFO, "f.py", 1, msg, args, None))
    publishing, running, other = (pickle.loads(pickle.dumps(sent.get())) for _ in range(3))
    assert publishing.msg == console.PUBLISHING
    assert publishing.args[0] == {"model_run": [SimpleNamespace(uri="/runs/model_run/7")]}
    assert running.args == ("nsl_student_seed0",)
    assert other.getMessage().startswith("loss <unlocked _thread.lock")
