"""Scoring TFLite models on raw windows as a device runs them: speaker statistics in the
adaptive, online and strict modes, and parity with the SavedModel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import FrontendConfig
from emograph.components.edge import adaptation
from emograph.components.edge import metadata as edge_metadata
from emograph.components.evaluation import metrics
from emograph.components.tflite_pusher.convert import PCM_SIGNATURE, model_inputs


@dataclass(frozen=True)
class Windows:
    """Raw windows of one split, in file order."""

    pcm: np.ndarray  # float32 [n, samples] in [-1, 1]
    labels: np.ndarray  # int64 [n], index into the run's classes (F.UNLABELLED_ID: none)
    speakers: np.ndarray  # str [n]
    clips: np.ndarray  # str [n], the clip each window was cut from


def read_windows(pattern: str, classes: Sequence[str], limit: int | None = None) -> Windows:
    """Raw examples -> their PCM, labels, speakers and clips, in file order."""
    spec = {
        F.AUDIO: tf.io.FixedLenFeature([], tf.string),
        F.LABEL: tf.io.FixedLenFeature([], tf.string),
        F.SPEAKER: tf.io.FixedLenFeature([], tf.string),
        F.CLIP: tf.io.FixedLenFeature([], tf.string),
    }
    files = sorted(tf.io.gfile.glob(pattern))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").map(
        lambda x: tf.io.parse_single_example(x, spec)
    )
    if limit:
        ds = ds.take(limit)
    pcm, labels, speakers, clips = [], [], [], []
    for ex in ds.as_numpy_iterator():
        pcm.append(np.frombuffer(ex[F.AUDIO], "<i2").astype(np.float32) / 32768.0)
        labels.append(F.label_id(ex[F.LABEL].decode(), classes))
        speakers.append(ex[F.SPEAKER].decode())
        clips.append(ex[F.CLIP].decode())
    return Windows(
        np.stack(pcm), np.asarray(labels, np.int64), np.asarray(speakers), np.asarray(clips)
    )


def per_speaker_statistics(moments: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """[n, 2, width]: every window gets its speaker's statistics over all of their windows,
    the normalisation Transform applied in training (and a device converges to)."""
    stats = np.empty(moments.shape, np.float32)
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        stats[mine] = adaptation.statistics_from_moments(moments[mine])
    return stats


def tflite_outputs(
    model: bytes, pcm: np.ndarray, stats: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Runs a converted model window by window with LiteRT (what devices run).

    Returns (first output [n, ...], `logmel_moments` [n, 2, bands] or None): a model without
    `speaker_stats` input has one output; one with it is run through its signature by name.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    if stats is None:
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        outputs = []
        for window in pcm:
            interpreter.set_tensor(inp["index"], window[np.newaxis].astype(np.float32))
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(out["index"])[0].copy())
        return np.stack(outputs), None
    runner = interpreter.get_signature_runner(PCM_SIGNATURE)
    probs, moments = [], []
    for inputs in model_inputs(pcm, stats):
        result = runner(**inputs)
        probs.append(result[edge_metadata.PROBABILITIES][0].copy())
        moments.append(result[edge_metadata.MOMENTS_OUTPUT].copy())
    return np.stack(probs), np.stack(moments)


ARRIVAL_SEED = 0


def arrival_order(clips: np.ndarray, seed: int = ARRIVAL_SEED) -> np.ndarray:
    """Indices of windows in the order a device hears them: clips in a seeded random order,
    each clip's windows in file order. File order is no such order: corpora name files by
    emotion (RAVDESS, EMOVO), so running statistics in file order would learn a speaker from
    one emotion and be tested on the next."""
    clips = np.asarray(clips)
    unique, first = np.unique(clips, return_index=True)
    shuffled = np.random.default_rng(seed).permutation(unique[np.argsort(first)])
    rank = {clip: i for i, clip in enumerate(shuffled)}
    return np.argsort([rank[clip] for clip in clips], kind="stable").astype(np.int64)


def online_probabilities(
    model: bytes, test: Windows, fallback: np.ndarray, warmup_windows: int
) -> np.ndarray:
    """What a device gets: each speaker's windows in `arrival_order`, normalised with the
    statistics of the windows heard before (the fallback during the warm-up), as `Predictor`
    does. Rows are in file order, like the other modes'."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model, num_threads=1).get_signature_runner(PCM_SIGNATURE)
    states: dict[str, adaptation.SpeakerAdaptation] = {}
    rows: list[np.ndarray | None] = [None] * len(test.pcm)
    for i in arrival_order(test.clips):
        speaker = test.speakers[i]
        state = states.setdefault(speaker, adaptation.SpeakerAdaptation(fallback, warmup_windows))
        result = runner(
            **{
                edge_metadata.PCM_INPUT: test.pcm[i][np.newaxis].astype(np.float32),
                edge_metadata.STATS_INPUT: state.statistics(),
            }
        )
        state.update(result[edge_metadata.MOMENTS_OUTPUT])
        rows[i] = result[edge_metadata.PROBABILITIES][0].copy()
    return np.stack(rows)


def frontend_max_abs_error(pcm: np.ndarray, front: FrontendConfig, sample_rate: int) -> float:
    """Max |log-mel| difference between the float TFLite frontend and the TF one, over `pcm`.

    The TFLite kernels (XNNPACK matmuls, SEGMENT_SUM, LOG) are not TF's, so the frontend the
    device runs is checked against the one the model was trained on, with the same config.
    """

    @tf.function(input_signature=[tf.TensorSpec([1, pcm.shape[-1]], tf.float32, name="pcm")])
    def log_mel(pcm):
        return frontend.log_mel(pcm, front, sample_rate)

    concrete = log_mel.get_concrete_function()
    model = tf.lite.TFLiteConverter.from_concrete_functions([concrete], log_mel).convert()
    reference = np.stack([concrete(tf.constant(w[np.newaxis]))[0].numpy() for w in pcm])
    return float(np.max(np.abs(tflite_outputs(model, pcm)[0] - reference)))


def saved_model_outputs(
    saved_model_dir: str, pcm: np.ndarray, stats: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The same windows through the SavedModel's `pcm` signature (the float reference):
    (probabilities [n, classes], `logmel_moments` [n, 2, bands] or None)."""
    serve = tf.saved_model.load(saved_model_dir).signatures[PCM_SIGNATURE]
    probs, moments = [], []
    for inputs in model_inputs(pcm, stats):
        result = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        probs.append(result[edge_metadata.PROBABILITIES].numpy()[0])
        if stats is not None:
            moments.append(result[edge_metadata.MOMENTS_OUTPUT].numpy())
    return np.stack(probs), (np.stack(moments) if stats is not None else None)


@dataclass(frozen=True)
class Normalisation:
    """How a model's inputs are normalised when it is scored and deployed.

    For a speaker-normalised model: `fallback` [2, bands] pooled over the representative (train)
    windows, and each split's per-window statistics of its own speaker.
    """

    mode: str
    fallback: np.ndarray | None = None
    representative_stats: np.ndarray | None = None
    test_stats: np.ndarray | None = None


def statistics_width(saved_model_dir: str) -> int:
    """n of the `pcm` signature's `speaker_stats` [2, n] (mel bands, or the functionals student's
    8 x bands); 0 for a globally normalised model, which takes none."""
    inputs = (
        tf.saved_model.load(saved_model_dir).signatures[PCM_SIGNATURE].structured_input_signature
    )
    stats = inputs[1].get(edge_metadata.STATS_INPUT)
    return 0 if stats is None else int(stats.shape[-1])


def normalisation_for(
    saved_model_dir: str, front: FrontendConfig, representative: Windows, test: Windows
) -> Normalisation:
    """Statistics a speaker-normalised model needs, from its own frontend (`logmel_moments`
    do not depend on the statistics fed, so any will do to read them)."""
    if front.normalisation == "global":
        return Normalisation(front.normalisation)
    width = statistics_width(saved_model_dir)
    unit = np.stack([np.zeros(width), np.ones(width)]).astype(np.float32)

    def moments(windows: Windows) -> np.ndarray:
        stats = np.broadcast_to(unit, (len(windows.pcm), *unit.shape))
        return saved_model_outputs(saved_model_dir, windows.pcm, stats)[1]

    representative_moments = moments(representative)
    return Normalisation(
        front.normalisation,
        adaptation.statistics_from_moments(representative_moments),
        per_speaker_statistics(representative_moments, representative.speakers),
        per_speaker_statistics(moments(test), test.speakers),
    )


def score_tflite(
    model: bytes,
    test: Windows,
    norm: Normalisation,
    classes: tuple[str, ...],
    warmup_windows: int,
) -> dict[str, dict]:
    """Metrics of a converted model per normalisation mode.

    "adaptive": each test speaker's statistics over all their windows (as in training and the
    Evaluator); "online": a device's running statistics with warm-up; "strict": the fallback
    statistics only, nothing learnt from the speaker. A global model has only "strict".
    Each entry also keeps its `probabilities` and its clip-level UAR, `clip_uar`.
    """
    if norm.mode == "global":
        probs = {"strict": tflite_outputs(model, test.pcm)[0]}
    else:
        fallback = np.broadcast_to(norm.fallback, norm.test_stats.shape)
        probs = {
            "adaptive": tflite_outputs(model, test.pcm, norm.test_stats)[0],
            "online": online_probabilities(model, test, norm.fallback, warmup_windows),
            "strict": tflite_outputs(model, test.pcm, fallback)[0],
        }
    return {
        mode: {
            **metrics.summary(test.labels, p.argmax(-1), classes),
            "clip_uar": metrics.clip_summary(p, test.labels, test.clips, classes)["uar"],
            "probabilities": p,
        }
        for mode, p in probs.items()
    }


def primary_mode(norm: Normalisation) -> str:
    """The mode a model is judged in: the one it was trained for."""
    return "strict" if norm.mode == "global" else "adaptive"
