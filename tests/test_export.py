"""Export parity: the TFLite frontend against TF, int8 against float on a trained tiny student,
and the Pusher's refusal of reports outside the configured limits."""

from __future__ import annotations

import numpy as np
import pytest

import emograph.components.compat  # noqa: F401
from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.audio import synthetic as S
from emograph.components.config import (
    EMOTIONS,
    AudioConfig,
    ExportConfig,
    FrontendConfig,
    StudentConfig,
)
from emograph.components.models import networks, training
from emograph.components.tflite_pusher import convert, export, flatbuffer, push, score
from emograph.components.tflite_pusher.component import PushRefused, check_limits

SR = 16000
AUDIO = AudioConfig(window_seconds=0.5)
FRONT = FrontendConfig(mel_bands=24, normalisation="global")
SPEAKER_FRONT = FrontendConfig(mel_bands=24, normalisation="speaker")
CLASSES = ("tone", "noise")
SPEAKERS = 4


def _speech_windows(n: int, samples: int, seed: int = 0) -> np.ndarray:
    """Synthetic utterances centred in windows: voiced, noisy, with silences around them."""
    rng = np.random.default_rng(seed)
    speakers = S.make_speakers("target", 4, seed)
    windows = np.zeros((n, samples), np.float32)
    for i in range(n):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        utterance = S.synthesize_utterance(rng, speakers[i % 4], emotion, S.DOMAINS["target"])
        cut = utterance[:samples]
        start = (samples - len(cut)) // 2
        windows[i, start : start + len(cut)] = cut
    return windows


def _tones_and_noise(n: int, seed: int) -> score.Windows:
    """Class 0: a tone of random pitch over a faint noise floor (as any recording has; a pure
    tone's spectral nulls are the frontend's worst case, 7e-4); class 1: white noise.
    Speakers take turns and each has its own level, so per-speaker statistics differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(AUDIO.window_samples) / SR
    labels = np.arange(n) % 2
    speakers = np.array([f"s{(i // 2) % SPEAKERS}" for i in range(n)])
    pcm = np.empty((n, t.size), np.float32)
    for i, label in enumerate(labels):
        level = rng.uniform(0.5, 1.0) * 0.5 ** int(speakers[i][1:])
        if label == 0:
            tone = np.sin(2 * np.pi * rng.uniform(200, 3000) * t + rng.uniform(0, 6))
            pcm[i] = level * (tone + 0.01 * rng.standard_normal(t.size))
        else:
            pcm[i] = level * rng.uniform(-1, 1, t.size)
    clips = np.array([f"c{i // 2}" for i in range(n)])  # two windows a clip
    return score.Windows(pcm, labels, speakers, clips)


def _trained_student(features: np.ndarray, labels: np.ndarray, quantization_aware: bool = True):
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    frames, bands = training.input_shape(AUDIO, FRONT)
    cfg = StudentConfig("dscnn", filters=(8, 16), quantization_aware=quantization_aware)
    model = networks.build_student(cfg, frames, bands, len(CLASSES))
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit({F.LOGMEL: features}, labels, batch_size=16, epochs=15, verbose=0)
    return model


def test_tflite_frontend_matches_tf_on_speech():
    pcm = _speech_windows(6, AudioConfig().window_samples)
    error = score.frontend_max_abs_error(pcm, FrontendConfig(), SR)
    assert error < 1e-3


def _global_export(tmp_path_factory, quantization_aware: bool) -> dict:
    """export_variants of a tiny DS-CNN trained until confident on tones vs noise."""
    import tensorflow as tf

    train, test = _tones_and_noise(96, seed=0), _tones_and_noise(64, seed=1)
    logmel = frontend.log_mel(tf.constant(train.pcm), FRONT, SR).numpy()
    mean, inv_std = logmel.mean(axis=(0, 1)), 1.0 / (logmel.std(axis=(0, 1)) + 1e-6)
    features = ((logmel - mean) * inv_std).reshape(len(logmel), -1)
    model = _trained_student(features, train.labels, quantization_aware)
    saved = str(tmp_path_factory.mktemp("student") / "serving")
    pcm_fn = training.pcm_signature(model, AUDIO, FRONT, np.stack([mean, inv_std]))
    training.save(model, saved, {convert.PCM_SIGNATURE: pcm_fn})
    head = score.Windows(*(a[:32] for a in (train.pcm, train.labels, train.speakers, train.clips)))
    report = export.export_variants(saved, head, test, CLASSES, FRONT, SR, ("stem",))
    report["quantization_aware"] = convert.is_quantization_aware(saved)
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """A quantization-aware student (the default)."""
    return _global_export(tmp_path_factory, quantization_aware=True)


@pytest.fixture(scope="module")
def post_training_report(tmp_path_factory) -> dict:
    """The same student trained without fake quantisation, quantised after training."""
    return _global_export(tmp_path_factory, quantization_aware=False)


@pytest.fixture(scope="module")
def speaker_export(tmp_path_factory) -> tuple[dict, object, score.Windows]:
    """The same student trained on per-speaker z-scored log-mel, exported with adaptation."""
    import tensorflow as tf

    train, test = _tones_and_noise(96, seed=0), _tones_and_noise(64, seed=1)
    logmel = frontend.log_mel(tf.constant(train.pcm), FRONT, SR).numpy()
    features = np.empty_like(logmel)
    for speaker in np.unique(train.speakers):  # what Transform's per-key analyzer computes
        mine = train.speakers == speaker
        frames = logmel[mine].reshape(-1, logmel.shape[-1])
        features[mine] = (logmel[mine] - frames.mean(0)) / frames.std(0)
    model = _trained_student(features.reshape(len(logmel), -1), train.labels)
    saved = str(tmp_path_factory.mktemp("speaker-student") / "serving")
    pcm_fn = training.pcm_signature(model, AUDIO, SPEAKER_FRONT, None)
    training.save(model, saved, {convert.PCM_SIGNATURE: pcm_fn})
    report = export.export_variants(saved, train, test, CLASSES, SPEAKER_FRONT, SR, (), 2)
    return report, model, test


def test_speaker_model_matches_training_normalisation(speaker_export, tmp_path):
    """The SavedModel fed each speaker's statistics gives what the Keras model gives on
    features normalised the way Transform normalises them for training."""
    import tensorflow as tf

    report, model, test = speaker_export
    saved = str(tmp_path / "again")
    training.save(
        model,
        saved,
        {convert.PCM_SIGNATURE: training.pcm_signature(model, AUDIO, SPEAKER_FRONT, None)},
    )
    norm = score.normalisation_for(saved, SPEAKER_FRONT, test, test)
    probs, _ = score.saved_model_outputs(saved, test.pcm, norm.test_stats)
    logmel = frontend.log_mel(tf.constant(test.pcm), FRONT, SR).numpy()
    features = (logmel - norm.test_stats[:, :1]) * norm.test_stats[:, 1:]
    expected = tf.nn.softmax(model({F.LOGMEL: features.reshape(len(logmel), -1)})).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-4)


@pytest.fixture(scope="module")
def functionals_export(tmp_path_factory) -> tuple[dict, object, str, score.Windows]:
    """A functionals student trained on per-speaker z-scored functionals of tones vs noise."""
    import tensorflow as tf
    import tf_keras as keras

    from emograph.components.expert.functionals import speaker_normalise

    train, test = _tones_and_noise(96, seed=0), _tones_and_noise(64, seed=1)
    logmel, voice = frontend.log_mel_and_voice(tf.constant(train.pcm), FRONT, SR)
    features = speaker_normalise(frontend.functionals(logmel, voice).numpy(), train.speakers)
    keras.utils.set_random_seed(0)
    frames, bands = training.input_shape(AUDIO, FRONT)
    cfg = StudentConfig(architecture="functionals")
    model = networks.build_student(cfg, frames, bands, len(CLASSES))
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit({F.FUNCTIONALS: features}, train.labels, batch_size=16, epochs=15, verbose=0)
    saved = str(tmp_path_factory.mktemp("functionals-student") / "serving")
    pcm_fn = training.pcm_signature(model, AUDIO, SPEAKER_FRONT, None)
    training.save(model, saved, {convert.PCM_SIGNATURE: pcm_fn})
    report = export.export_variants(saved, train, test, CLASSES, SPEAKER_FRONT, SR, (), 2)
    return report, model, saved, test


def test_functionals_student_exports_with_its_own_speaker_statistics(functionals_export):
    """Its edge model takes and returns statistics of the functionals (8 x bands), fed each
    speaker's it gives what the Keras model gives on Transform-style inputs, and int8 holds."""
    import tensorflow as tf

    from emograph.components.expert.functionals import speaker_normalise

    report, model, saved, test = functionals_export
    norm = score.normalisation_for(saved, SPEAKER_FRONT, test, test)
    width = frontend.functionals_width(FRONT.mel_bands)
    assert norm.test_stats.shape == (len(test.pcm), 2, width)
    probs, _ = score.saved_model_outputs(saved, test.pcm, norm.test_stats)
    logmel, voice = frontend.log_mel_and_voice(tf.constant(test.pcm), FRONT, SR)
    stats = frontend.functionals(logmel, voice).numpy()
    expected = model({F.FUNCTIONALS: speaker_normalise(stats, test.speakers)})
    np.testing.assert_allclose(probs, tf.nn.softmax(expected).numpy(), atol=1e-3)
    assert report["saved_model"]["uar"] >= 0.95
    assert report["int8"]["top1_agreement_with_float"] >= 0.95


def test_statistics_width_is_what_each_model_takes(functionals_export, speaker_export, tmp_path):
    """The experiment scores the functionals student and log-mel models of one fold with
    statistics of each one's own width."""
    _, model, _ = speaker_export
    saved = str(tmp_path / "logmel")
    pcm_fn = training.pcm_signature(model, AUDIO, SPEAKER_FRONT, None)
    training.save(model, saved, {convert.PCM_SIGNATURE: pcm_fn})
    assert score.statistics_width(saved) == FRONT.mel_bands
    functionals_dir = functionals_export[2]
    assert score.statistics_width(functionals_dir) == frontend.functionals_width(FRONT.mel_bands)


def test_speaker_export_scores_every_mode(speaker_export):
    report, _, _ = speaker_export
    assert report["normalisation"] == "speaker" and report["primary_mode"] == "adaptive"
    assert set(report["int8"]["modes"]) == {"adaptive", "online", "strict"}
    assert report["saved_model"]["uar"] >= 0.95
    assert report["int8"]["top1_agreement_with_float"] >= 0.95
    assert report["int8"]["modes"]["online"]["uar"] >= 0.9  # warm-up of 2 windows per speaker
    fallback = np.asarray(report["adaptation"]["fallback"])
    assert fallback.shape == (2, SPEAKER_FRONT.mel_bands) and np.all(fallback[1] > 0)


def test_arrival_order_shuffles_clips_and_keeps_each_clips_windows_in_order():
    # 20 clips of 3 windows each, in file order sorted by emotion as RAVDESS's names are
    clips = np.repeat([f"spk/{emotion}-{i}" for emotion in "abcd" for i in range(5)], 3)
    order = score.arrival_order(clips)
    assert sorted(order) == list(range(len(clips)))
    heard = clips[order]
    for start in range(0, len(heard), 3):  # a clip's windows arrive together, in order
        assert len(set(heard[start : start + 3])) == 1
        assert list(order[start : start + 3]) == sorted(order[start : start + 3])
    firsts = [c.split("-")[0] for c in heard[::3]]
    assert firsts != sorted(firsts)  # not one emotion after another
    np.testing.assert_array_equal(order, score.arrival_order(clips))  # seeded
    assert not np.array_equal(order, score.arrival_order(clips, seed=1))


def test_int8_model_returns_float_moments(speaker_export):
    """A device sums the moments into variances: they must not be 8-bit."""
    report, _, test = speaker_export
    stats = np.broadcast_to(np.asarray(report["adaptation"]["fallback"], np.float32), (8, 2, 24))
    _, int8 = score.tflite_outputs(report["int8"]["model"], test.pcm[:8], stats)
    _, float32 = score.tflite_outputs(report["float32"]["model"], test.pcm[:8], stats)
    np.testing.assert_allclose(int8, float32, atol=1e-4)


def test_trained_student_is_confident(report):
    assert report["saved_model"]["uar"] >= 0.95


def _dtypes_of(model: bytes, name_part: str) -> set:
    from ai_edge_litert.interpreter import Interpreter

    tensors = Interpreter(model_content=model).get_tensor_details()
    return {np.dtype(t["dtype"]) for t in tensors if name_part in t["name"]}


def test_int8_agrees_with_float_on_trained_student(report):
    """Quantization-aware: the int8 model computes what the SavedModel computes."""
    assert report["quantization_aware"]
    assert report["int8"]["top1_agreement_with_float"] == 1.0
    assert report["int8"]["max_abs_prob_error"] < 0.02
    assert report["float32"]["top1_agreement_with_float"] == 1.0
    assert np.dtype(np.int8) in _dtypes_of(report["int8"]["model"], "")  # really quantized
    frontend_tensors = _dtypes_of(report["int8"]["model"], frontend.FRONTEND_SCOPE + "/")
    assert frontend_tensors == {np.dtype(np.float32)}  # the frontend was not quantized


def _main_graph(model: bytes):
    """(the main subgraph, each operator's builtin code) of a TFLite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    codes = flatbuffer._builtin_codes(graph)
    return graph.subgraphs[0], [codes[op.opcodeIndex] for op in graph.subgraphs[0].operators]


def _quantized_tensors(model: bytes) -> list[str]:
    """Names of the float tensors that the model's QUANTIZE ops turn into int8."""
    from tensorflow.lite.python import schema_py_generated as schema

    subgraph, codes = _main_graph(model)
    inputs = [
        subgraph.tensors[op.inputs[0]]
        for op, code in zip(subgraph.operators, codes, strict=True)
        if code == schema.BuiltinOperator.QUANTIZE
    ]
    return [t.name.decode() for t in inputs if t.type == schema.TensorType.FLOAT32]


def _float16_readers(model: bytes) -> list[str]:
    """Output names of the ops that read a constant expanded from float16."""
    from tensorflow.lite.python import schema_py_generated as schema

    subgraph, _ = _main_graph(model)
    expanded = {
        int(op.outputs[0])
        for op in subgraph.operators
        if subgraph.tensors[op.inputs[0]].type == schema.TensorType.FLOAT16
    }
    return [
        subgraph.tensors[op.outputs[0]].name.decode()
        for op in subgraph.operators
        if expanded & {int(t) for t in op.inputs}
    ]


def test_float16_variant_is_the_float_model_with_half_constants(report):
    """Of a quantization-aware model too (the converter's float16 mode gave its int8 model);
    the frontend keeps float32 constants, as in the int8 model."""
    half, full = report["float16"], report["float32"]
    assert np.dtype(np.int8) not in _dtypes_of(half["model"], "")
    readers = _float16_readers(half["model"])
    assert readers and not any(frontend.FRONTEND_SCOPE in name for name in readers)
    assert any("student/" in name for name in readers)
    assert half["bytes"] < full["bytes"]
    assert half["top1_agreement_with_float"] == 1.0


def test_post_training_int8_agrees_with_float(post_training_report):
    assert not post_training_report["quantization_aware"]
    assert post_training_report["saved_model"]["uar"] >= 0.95
    assert post_training_report["int8"]["top1_agreement_with_float"] >= 0.97
    assert np.dtype(np.int8) in _dtypes_of(post_training_report["int8"]["model"], "")


def test_post_training_int8_keeps_the_audio_float(tmp_path):
    """A post-training int8 model makes two float tensors int8: the normalised log-mel and the
    float stem's output. TF 2.16's quantizer also rounded a 3 s window's PCM to 8 bits on its
    way into the float frontend (`flatbuffer.without_float_round_trips`)."""
    audio, front = AudioConfig(), FrontendConfig(mel_bands=24, normalisation="global")
    frames, bands = training.input_shape(audio, front)
    model = networks.build_student(
        StudentConfig("dscnn", filters=(8, 16), quantization_aware=False),
        frames,
        bands,
        len(CLASSES),
    )
    saved = str(tmp_path / "serving")
    stats = np.stack([np.zeros(bands), np.ones(bands)]).astype(np.float32)
    training.save(
        model, saved, {convert.PCM_SIGNATURE: training.pcm_signature(model, audio, front, stats)}
    )
    pcm = _speech_windows(4, audio.window_samples)
    quantized = _quantized_tensors(convert.convert(saved, "int8", pcm, ("stem",)))
    assert len(quantized) == 2 and "stem" in quantized[1]


def test_export_reports_frontend_error_within_limit(report):
    assert 0 <= report["frontend_max_abs_error"] <= ExportConfig().max_frontend_error
    check_limits(report, ExportConfig())


def test_model_card_states_the_parity_figures(report):
    meta = {
        "quantization": "int8",
        "normalisation": "global",
        "window_samples": AUDIO.window_samples,
        "sample_rate": SR,
        "extra": {"lineage": {"model": "test"}},
    }
    card = push.model_card("tiny", "v1", meta, report, CLASSES)
    assert f"{report['frontend_max_abs_error']:.1e}" in card
    assert "| int8 |" in card


def _report(agreement: float = 1.0, uar_drop: float = 0.0, frontend_error: float = 1e-5) -> dict:
    return {
        "frontend_max_abs_error": frontend_error,
        "int8": {"top1_agreement_with_float": agreement, "uar_drop_from_float": uar_drop},
    }


def test_check_limits_accepts_a_report_within_limits():
    check_limits(_report(agreement=0.97, uar_drop=0.02, frontend_error=1e-3), ExportConfig())


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"agreement": 0.5}, "agrees with the float model on 50.0%"),
        ({"uar_drop": 0.1}, "0.100 below the float model's"),
        ({"frontend_error": 0.01}, "frontend differs from the TF one by 1.00e-02"),
        ({"frontend_error": float("nan")}, "frontend differs"),
    ],
)
def test_check_limits_refuses_each_limit(bad, message):
    with pytest.raises(PushRefused, match="not pushed") as refused:
        check_limits(_report(**bad), ExportConfig())
    assert message in str(refused.value)


def test_check_limits_names_every_failure():
    with pytest.raises(PushRefused) as refused:
        check_limits(_report(agreement=0.1, uar_drop=0.5, frontend_error=1.0), ExportConfig())
    assert str(refused.value).count(";") == 2
