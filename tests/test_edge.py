"""The edge predictor against real tiny .tflite models built with TensorFlow in a fixture."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emograph.components.edge import (
    ModelError,
    ModelMetadata,
    Predictor,
    cli,
    write_latest,
    write_metadata,
)
from emograph.components.edge.adaptation import SpeakerAdaptation, statistics_from_moments
from emograph.components.edge.testing import CLASSES, VARIANTS, build_tiny_model, truncate_model

REPO = Path(__file__).resolve().parents[1]
RATE, WINDOW, HOP = 16000, 24000, 16000  # 1.5 s windows, 1 s hop


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """One model dir per variant (float32, full int8, int8 I/O, int16 input)."""
    root = tmp_path_factory.mktemp("edge-models")
    for variant in VARIANTS:
        build_tiny_model(root / variant, variant, RATE, WINDOW, HOP)
    return {variant: root / variant for variant in VARIANTS}


@pytest.fixture(scope="session")
def reference():
    """The TF function the models were converted from, as numpy -> numpy."""
    from emograph.components.edge.testing import tiny_function

    fn = tiny_function(WINDOW)
    return lambda pcm: fn(pcm[None].astype(np.float32)).numpy()[0]


@pytest.fixture
def model_copy(models, tmp_path) -> Path:
    return Path(shutil.copytree(models["float32"], tmp_path / "model"))


def speech_like(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A tone with a slow, uneven envelope: band-limited and not constant energy per frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.05 + 0.4 * np.abs(np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
    return (envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def windows(n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [speech_like(WINDOW / RATE, seed=i) * rng.uniform(0.1, 1) for i in range(n)]


def test_float_model_matches_tf(models, reference):
    predictor = Predictor(models["float32"])
    for pcm in windows():
        np.testing.assert_allclose(predictor.predict_window(pcm), reference(pcm), atol=1e-5)


@pytest.mark.parametrize("variant,atol", [("int8", 0.05), ("int8-io", 0.05), ("int16-input", 1e-4)])
def test_quantized_models_close_to_tf(models, reference, variant, atol):
    predictor = Predictor(models[variant])
    for pcm in windows():
        probabilities = predictor.predict_window(pcm)
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities, reference(pcm), atol=atol)


def test_metadata_round_trip_and_validation(models):
    text = (models["float32"] / "metadata.json").read_text()
    metadata = ModelMetadata.from_json(text)
    assert metadata.classes == CLASSES and metadata.window_samples == WINDOW
    assert ModelMetadata.from_json(metadata.to_json()) == metadata
    data = json.loads(text)
    with pytest.raises(ModelError, match="format"):
        ModelMetadata.from_json(json.dumps({**data, "format": "emograph-edge/2"}))
    with pytest.raises(ModelError, match="unknown fields"):
        ModelMetadata.from_json(json.dumps({**data, "colour": "red"}))
    with pytest.raises(ModelError, match="quantization"):
        ModelMetadata.from_json(json.dumps({**data, "quantization": "int4"}))


def test_resolves_push_dir_model_dir_and_bare_tflite(models, tmp_path):
    model_root = tmp_path / "pushed" / "emograph-student"
    shutil.copytree(models["float32"], model_root / "1700000000")
    write_latest(model_root, "1700000000")
    for path in (tmp_path / "pushed", model_root, model_root / "1700000000" / "model.tflite"):
        assert Predictor(path).model_path == model_root / "1700000000" / "model.tflite"
    bare = tmp_path / "bare" / "model.tflite"
    bare.parent.mkdir()
    shutil.copy(models["float32"] / "model.tflite", bare)
    with pytest.raises(ModelError, match="no metadata.json next to it"):
        Predictor(bare)


def test_sha256_mismatch_refused(model_copy):
    with open(model_copy / "model.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match=r"model\.tflite: sha256 .* does not match"):
        Predictor(model_copy)


@pytest.mark.parametrize(
    "kept, reason",
    [
        (lambda n: 0, "not a TFLite model"),
        (lambda n: 6, "not a TFLite model"),
        (lambda n: n // 2, "LiteRT cannot load it"),
        (lambda n: n - 1, "LiteRT cannot load it"),
    ],
    ids=["empty", "6 bytes", "half", "all but the last byte"],
)
def test_truncated_model_with_matching_sha256_refused(model_copy, kept, reason):
    """A model cut short before its metadata was written: the hash matches, LiteRT would fail."""
    model = model_copy / "model.tflite"
    truncate_model(model_copy, kept(model.stat().st_size))
    with pytest.raises(ModelError) as raised:
        Predictor(model_copy)
    message = str(raised.value)
    assert message.startswith(f"{model}: {reason}") and message.endswith("push the model again")
    assert "\n" not in message


def test_labels_mismatch_refused(model_copy):
    (model_copy / "labels.txt").write_text("\n".join(reversed(CLASSES)) + "\n")
    with pytest.raises(ModelError, match=r"labels\.txt: labels .* do not match"):
        Predictor(model_copy)


def test_metadata_for_another_sample_rate_refused(model_copy):
    write_metadata(
        model_copy,
        sample_rate=8000,
        window_samples=12000,  # the same 1.5 s, at 8 kHz: not what this model takes
        hop_samples=8000,
        classes=CLASSES,
        quantization="float32",
    )
    with pytest.raises(ModelError, match=r"takes input \[1, 24000\].*8000 Hz"):
        Predictor(model_copy)


def test_stereo_44k_file_is_downmixed_and_resampled(models, tmp_path):
    predictor = Predictor(models["float32"])
    clip = speech_like(3.0, rate=44100)
    side = 0.1 * np.random.default_rng(2).standard_normal(len(clip)).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([clip + side, clip - side], axis=1), 44100)
    prediction = predictor.predict_file(tmp_path / "stereo.wav")
    expected = predictor.predict_clip(speech_like(3.0, rate=RATE))
    assert prediction.windows == expected.windows == 3  # at 0 s, 1 s and flush with the end
    assert prediction.label == expected.label
    for name in CLASSES:
        assert prediction.probabilities[name] == pytest.approx(
            expected.probabilities[name], abs=2e-3
        )


def test_short_clip_is_centred_in_one_window(models, reference, tmp_path):
    clip = speech_like(0.5)
    sf.write(tmp_path / "short.flac", clip, RATE)
    prediction = Predictor(models["float32"]).predict_file(tmp_path / "short.flac")
    padded = np.zeros(WINDOW, np.float32)
    padded[(WINDOW - len(clip)) // 2 :][: len(clip)] = clip
    assert prediction.windows == 1
    np.testing.assert_allclose(
        [prediction.probabilities[c] for c in CLASSES], reference(padded), atol=1e-4
    )


def test_stream_windows_and_timestamps(models):
    predictor = Predictor(models["float32"])
    audio = speech_like(10.0)
    whole = list(predictor.stream(audio, hop_samples=RATE))
    # every hop, then one window flush with the end, as predict_clip cuts the same audio
    assert [(w.start_s, w.end_s) for w in whole] == [(s, s + 1.5) for s in range(9)] + [(8.5, 10.0)]
    chunks = np.split(audio, [1000, 1001, 40000, 90000])  # uneven, as from a microphone
    assert list(predictor.stream(iter(chunks), hop_samples=RATE)) == whole
    short = list(predictor.stream(audio[:8000]))
    assert [(w.start_s, w.end_s) for w in short] == [(0.0, 0.5)]


def test_cli_streams_stdin(models):
    pcm = (speech_like(10.0) * 32767).astype("<i2").tobytes()
    command = [
        sys.executable,
        "-m",
        "emograph.components.edge.cli",
        str(models["int8"]),
        "-",
        "--stream",
    ]
    result = subprocess.run(
        [*command, "--hop", "1"], input=pcm, capture_output=True, cwd=REPO, check=True
    )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["start_s"] for line in lines] == [*range(9), 8.5]  # the last ends at 10 s
    assert all(line["file"] == "-" and set(line["probabilities"]) == set(CLASSES) for line in lines)


def test_cli_files_text_and_json(models, tmp_path, capsys, monkeypatch):
    sf.write(tmp_path / "a.wav", speech_like(2.0), RATE)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)

    assert cli.run(parser.parse_args([str(models["float32"]), str(tmp_path / "a.wav")])) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'a.wav'}: ") and "(p=" in line and "neutral " in line

    pcm = (speech_like(2.0) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    args = [str(models["float32"]), str(tmp_path / "a.wav"), "-", "--json"]
    assert cli.run(parser.parse_args(args)) == 0
    from_file, from_stdin = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert from_file["windows"] == from_stdin["windows"] == 2
    assert from_file["label"] == from_stdin["label"]

    assert cli.run(parser.parse_args([str(tmp_path), str(tmp_path / "a.wav")])) == 2
    assert "neither a model dir" in capsys.readouterr().err


def test_edge_imports_without_tensorflow():
    code = (
        "import sys, components.edge, components.edge.cli, components.edge.testing; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.fixture(scope="session")
def adaptive_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edge-adaptive")
    build_tiny_model(root / "adaptive", "adaptive", RATE, WINDOW, HOP)
    return root / "adaptive"


def test_adaptation_warm_up_and_reset():
    fallback = np.stack([np.zeros(3), np.ones(3)])
    state = SpeakerAdaptation(fallback, warmup_windows=2)
    state.update(np.array([[1.0, 2.0, 3.0], [2.0, 5.0, 10.0]]))
    np.testing.assert_array_equal(state.statistics(), fallback)  # still warming up
    state.update(np.array([[3.0, 2.0, 3.0], [10.0, 5.0, 10.0]]))
    stats = state.statistics()
    np.testing.assert_allclose(stats[0], [2.0, 2.0, 3.0])
    # variance = E[x^2] - mean^2 = (6 - 4, 5 - 4, 10 - 9); a zero variance divides by 1
    np.testing.assert_allclose(stats[1], [1 / np.sqrt(2), 1.0, 1.0])
    state.reset()
    assert state.windows == 0 and not state.warmed_up
    np.testing.assert_array_equal(state.statistics(), fallback)


def test_running_statistics_equal_offline_normalisation():
    """Windows' moments accumulated online give the mean and std over all their frames."""
    frames = np.random.default_rng(0).normal(3, 2, (7, 50, 5))  # windows, frames, bands
    moments = np.stack([frames.mean(1), (frames**2).mean(1)], axis=1)
    state = SpeakerAdaptation(np.stack([np.zeros(5), np.ones(5)]), warmup_windows=1)
    for m in moments:
        state.update(m)
    offline = frames.reshape(-1, 5)
    np.testing.assert_allclose(state.statistics()[0], offline.mean(0), rtol=1e-5)
    np.testing.assert_allclose(state.statistics()[1], 1 / offline.std(0), rtol=1e-4)
    np.testing.assert_allclose(statistics_from_moments(moments), state.statistics(), rtol=1e-6)


def test_adaptive_predictor_matches_offline_normalisation(adaptive_model):
    from emograph.components.edge.testing import tiny_adaptive_function, tiny_features

    audio = np.stack(windows(5))
    predictor = Predictor(adaptive_model)
    assert predictor.metadata.normalisation == "speaker"
    fn = tiny_adaptive_function(WINDOW)
    features = tiny_features(audio, WINDOW)
    for i, window in enumerate(audio):
        got = predictor.predict_window(window)
        if i < predictor.adaptation.warmup_windows:
            stats = predictor.adaptation.fallback
        else:  # the statistics of every window heard before this one
            heard = features[:i].reshape(-1, features.shape[-1])
            stats = np.stack([heard.mean(0), 1 / heard.std(0)]).astype(np.float32)
        expected = fn(window[None].astype(np.float32), stats)["probabilities"].numpy()[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert predictor.adaptation.windows == len(audio)
    predictor.reset_adaptation()
    assert predictor.adaptation.windows == 0


def test_strict_predictor_never_adapts(adaptive_model):
    predictor = Predictor(adaptive_model, adapt=False)
    first = predictor.predict_window(windows(1)[0])
    for window in windows(4):
        predictor.predict_window(window)
    assert predictor.adaptation.windows == 0
    np.testing.assert_allclose(predictor.predict_window(windows(1)[0]), first)


def test_speaker_metadata_without_adaptation_refused(adaptive_model, tmp_path):
    model = Path(shutil.copytree(adaptive_model, tmp_path / "model"))
    meta = json.loads((model / "metadata.json").read_text())
    meta["adaptation"] = {}
    (model / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="warmup_windows"):
        Predictor(model)


def test_global_metadata_on_adaptive_model_refused(adaptive_model, tmp_path):
    model = Path(shutil.copytree(adaptive_model, tmp_path / "model"))
    meta = json.loads((model / "metadata.json").read_text())
    meta["normalisation"], meta["adaptation"] = "global", {}
    (model / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="several inputs"):
        Predictor(model)


def test_cli_resets_per_file(adaptive_model, tmp_path, capsys):
    paths = []
    for i in range(2):
        path = tmp_path / f"user{i}.wav"
        sf.write(path, speech_like(4.0, seed=i), RATE)
        paths.append(str(path))
    assert cli.main([str(adaptive_model), *paths, "--json"]) == 0
    carried = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cli.main([str(adaptive_model), *paths, "--json", "--new-speaker-per-file"]) == 0
    reset = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert carried[0] == reset[0]  # the first file starts fresh either way
    assert carried[1]["probabilities"] != reset[1]["probabilities"]
