"""Edge export: the student's `pcm` signature -> TFLite (float32, float16, int8), checked, pushed.

Full-int8 with the frontend inside needs care: quantizing the power spectrum to 8 bits destroys
the quiet bands (its dynamic range is ~1e12), so the frontend stays float32 and everything after
the normalised log-mel runs in int8. Input and output stay float32 PCM / probabilities.

A quantization-aware student (the default, `StudentConfig.quantization_aware`) carries its own
int8 ranges as fake-quant ops; the converter quantises exactly those and leaves the frontend
float, so no calibration is needed and the int8 model computes what was evaluated. Any other
model is quantised after training: calibrated on representative windows, with ops under the
`frontend` name scope kept float32 by TFLite's selective quantization (QuantizationDebugger's
denylist; `without_float_round_trips` then removes the 8-bit rounding it still leaves on the
PCM). The float16 variant is the float32 model with the classifier's constants stored float16.

Parity is measured twice: the float TFLite frontend against the TF one it was converted from
(`frontend_max_abs_error`, log-mel units), and every variant against the SavedModel (top-1
agreement, UAR), so a device runs what was evaluated.

A speaker-normalised model is fed each window's speaker statistics (`Normalisation`): for
calibration the representative windows' own speakers', for scoring the test speakers' (the
"adaptive" mode the model is judged in), besides the "online" (a device's running statistics)
and "strict" (fallback only) modes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.components.config import FrontendConfig
from emograph.components.edge import adaptation
from emograph.components.edge import metadata as edge_metadata
from emograph.components.evaluation import metrics

log = logging.getLogger(__name__)

PCM_SIGNATURE = "pcm"
QUANTIZATIONS = ("float32", "float16", "int8")


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


def _converter(saved_model_dir: str) -> tf.lite.TFLiteConverter:
    return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[PCM_SIGNATURE])


def is_quantization_aware(saved_model_dir: str) -> bool:
    """Whether the `pcm` signature holds fake-quant ops (a quantization-aware student)."""
    graph = tf.saved_model.load(saved_model_dir).signatures[PCM_SIGNATURE].graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return any(n.op.startswith("FakeQuantWithMinMaxVars") for n in nodes)


def _float_tensors(float_model: bytes, scopes: Sequence[str]) -> list[str]:
    """Tensors to keep float32: those named under `scopes`, and the `logmel_moments` output,
    which a device sums into variances (E[x^2] - E[x]^2 of log-mel ~ -10: 8-bit moments would
    cancel to noise), whatever name the converter gave its last op."""
    interpreter = tf.lite.Interpreter(model_content=float_model)
    outputs = interpreter.get_signature_runner(PCM_SIGNATURE).get_output_details()
    moments = outputs.get(edge_metadata.MOMENTS_OUTPUT, {}).get("name")
    return [
        t["name"]
        for t in interpreter.get_tensor_details()
        if any(scope in t["name"] for scope in scopes) or t["name"] == moments
    ]


def _model_inputs(pcm: np.ndarray, stats: np.ndarray | None) -> Iterator[dict[str, np.ndarray]]:
    """One input dict per window, as the `pcm` signature takes it."""
    for i, window in enumerate(pcm):
        inputs = {edge_metadata.PCM_INPUT: window[np.newaxis].astype(np.float32)}
        if stats is not None:
            inputs[edge_metadata.STATS_INPUT] = stats[i].astype(np.float32)
        yield inputs


def convert(
    saved_model_dir: str,
    quantization: str,
    representative: np.ndarray,
    float_layers: Sequence[str] = (),
    representative_stats: np.ndarray | None = None,
) -> bytes:
    """TFLite bytes of the `pcm` signature; `representative` windows calibrate int8
    (with their speakers' statistics, `representative_stats`, for a speaker-normalised model).

    In the int8 variant of a post-training-quantised model the frontend and the layers named in
    `float_layers` stay float32: the first conv sees the log-mel directly and is the most
    sensitive to 8-bit activations (on a demo student, keeping only the 216-weight stem float
    raised int8/float agreement 0.83 -> 0.90 for +0 KB). A quantization-aware model ignores
    `representative` and `float_layers`: it is int8 where it was trained to be.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = _converter(saved_model_dir)
    if quantization == "float32":
        return converter.convert()
    if quantization == "int8" and is_quantization_aware(saved_model_dir):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # the model's own ranges
        return converter.convert()
    if quantization == "float16":
        return with_float16_constants(converter.convert())

    def dataset() -> Iterator[dict[str, np.ndarray]]:
        return _model_inputs(representative, representative_stats)

    keep_float = _float_tensors(
        _converter(saved_model_dir).convert(), (frontend.FRONTEND_SCOPE, *float_layers)
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,  # the float frontend (DFT matmuls, SEGMENT_SUM, LOG)
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float),
    )
    return without_float_round_trips(debugger.get_nondebug_quantized_model())


def _builtin_codes(graph) -> list[int]:
    """The builtin operator of each operator code of a flatbuffer `ModelT` (codes above 127
    are only in `builtinCode`, older models only fill `deprecatedBuiltinCode`)."""
    return [max(c.builtinCode, c.deprecatedBuiltinCode) for c in graph.operatorCodes]


FLOAT16_MIN_ELEMENTS = 64  # smaller constants (scalars such as the log offset) stay float32


def with_float16_constants(model: bytes, float32_scope: str = frontend.FRONTEND_SCOPE) -> bytes:
    """`model` with its float32 constants stored as float16, each expanded by a DEQUANTIZE op
    (the layout of the converter's float16 mode; runtimes expand them once, at load).

    Constants read by ops named under `float32_scope` stay float32: float16 DFT matrices moved
    the log-mel by up to 2.5e-3, beyond `ExportConfig.max_frontend_error`, and flipped 2% of a
    demo student's test windows. Not the converter's float16 mode: on a quantization-aware
    model its fake-quant ops make that mode emit the int8 model.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    codes = _builtin_codes(graph)
    if dequantize not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = dequantize
        code.version = 3  # float16 input
        graph.operatorCodes.append(code)
        codes.append(dequantize)
    opcode = codes.index(dequantize)
    halved, kept = set(), set()  # buffers of the constants now float16 / still float32
    for subgraph in graph.subgraphs:
        names = [(t.name or b"").decode() for t in subgraph.tensors]
        exact = {
            int(t)
            for op in subgraph.operators
            if any(float32_scope in names[o] for o in op.outputs)
            for t in op.inputs
        }
        expansions = []
        for index, tensor in enumerate(list(subgraph.tensors)):
            data = graph.buffers[tensor.buffer].data
            if tensor.type != schema.TensorType.FLOAT32 or data is None or not len(data):
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32)
            if index in exact or values.size < FLOAT16_MIN_ELEMENTS:
                kept.add(tensor.buffer)
                continue
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.astype(np.float16).tobytes(), np.uint8)
            graph.buffers.append(buffer)
            half = schema.TensorT()
            half.shape, half.type = tensor.shape, schema.TensorType.FLOAT16
            half.buffer, half.name = len(graph.buffers) - 1, (tensor.name or b"") + b"/float16"
            subgraph.tensors.append(half)
            halved.add(tensor.buffer)
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = opcode, [len(subgraph.tensors) - 1], [index]
            expansions.append(op)
        subgraph.operators = expansions + list(subgraph.operators)
    for index in halved - kept:  # computed at load now, no longer stored
        graph.buffers[index] = schema.BufferT()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def without_float_round_trips(model: bytes) -> bytes:
    """`model` without chains QUANTIZE (float -> int8), [QUANTIZE]..., DEQUANTIZE (-> float).

    Such a chain between two float ops only rounds a tensor to 8 bits. TF 2.16's quantizer
    leaves one on the frontend's first tensor (the PCM cut into hops) although every op around
    it is denylisted: the audio reached the float frontend as 8-bit samples, and a fine-tuned
    teacher's int8 model scored 0.19 UAR instead of its float 0.62. Consumers of the chain's
    end read its float start instead; the chain's ops go.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    codes = _builtin_codes(graph)
    quantize, dequantize = schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE
    for index, subgraph in enumerate(graph.subgraphs):
        producer = {int(t): op for op in subgraph.operators for t in op.outputs}
        start_of: dict[int, int] = {}  # a chain's float end -> its float start
        chains = set()
        for op in subgraph.operators:
            if codes[op.opcodeIndex] != dequantize:
                continue
            chain, source = [op], int(op.inputs[0])
            while source in producer and codes[producer[source].opcodeIndex] == quantize:
                chain.append(producer[source])
                source = int(producer[source].inputs[0])
            if len(chain) > 1 and subgraph.tensors[source].type == schema.TensorType.FLOAT32:
                start_of[int(op.outputs[0])] = source
                chains.update(id(o) for o in chain)
        for op in subgraph.operators:
            op.inputs = [start_of.get(int(t), int(t)) for t in op.inputs]
        subgraph.outputs = [start_of.get(int(t), int(t)) for t in subgraph.outputs]
        for signature in graph.signatureDefs or []:
            if signature.subgraphIndex == index:
                for tensor in signature.outputs:
                    tensor.tensorIndex = start_of.get(tensor.tensorIndex, tensor.tensorIndex)
        live, kept = {int(t) for t in subgraph.outputs}, []
        for op in reversed(subgraph.operators):  # drop the chains' ops nobody reads any more
            if id(op) in chains and not any(int(t) in live for t in op.outputs):
                continue
            kept.append(op)
            live.update(int(t) for t in op.inputs)
        subgraph.operators = kept[::-1]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


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
    for inputs in _model_inputs(pcm, stats):
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
    for inputs in _model_inputs(pcm, stats):
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


def export_variants(
    saved_model_dir: str,
    representative: Windows,
    test: Windows,
    classes: tuple[str, ...],
    front: FrontendConfig,
    sample_rate: int,
    float_layers: Sequence[str] = (),
    warmup_windows: int = 8,
) -> dict:
    """Converts every variant and scores each on the test windows against the SavedModel.

    `front` and `sample_rate` must be the model's: they rebuild its frontend for the parity
    check and say how it normalises.
    """
    norm = normalisation_for(saved_model_dir, front, representative, test)
    primary = primary_mode(norm)
    reference = saved_model_outputs(saved_model_dir, test.pcm, norm.test_stats)[0]
    reference_top1 = reference.argmax(-1)
    report: dict = {
        "normalisation": front.normalisation,
        "primary_mode": primary,
        "saved_model": metrics.summary(test.labels, reference_top1, classes),
        "frontend_max_abs_error": frontend_max_abs_error(test.pcm, front, sample_rate),
    }
    if norm.fallback is not None:
        report["adaptation"] = {
            "warmup_windows": warmup_windows,
            "fallback": norm.fallback.tolist(),
        }
    log.info("TFLite frontend: max |log-mel error| %.2e", report["frontend_max_abs_error"])
    for quantization in QUANTIZATIONS:
        start = time.time()
        model = convert(
            saved_model_dir,
            quantization,
            representative.pcm,
            float_layers,
            norm.representative_stats,
        )
        scores = score_tflite(model, test, norm, classes, warmup_windows)
        probs = scores[primary].pop("probabilities")
        report[quantization] = {
            **scores[primary],
            "modes": {
                mode: {k: v for k, v in s.items() if k != "probabilities"}
                for mode, s in scores.items()
            },
            "bytes": len(model),
            "uar_drop_from_float": report["saved_model"]["uar"] - scores[primary]["uar"],
            "top1_agreement_with_float": float(np.mean(probs.argmax(-1) == reference_top1)),
            "max_abs_prob_error": float(np.max(np.abs(probs - reference))),
            "convert_seconds": round(time.time() - start, 1),
            "model": model,
        }
        log.info(
            "%s: %d bytes, UAR %.3f (%s), agreement %.3f",
            quantization,
            len(model),
            report[quantization]["uar"],
            primary,
            report[quantization]["top1_agreement_with_float"],
        )
    return report


VERSION_FORMAT = "%Y%m%dT%H%M%S"  # UTC, to the second: "20261124T113344"


def new_version(model_root: str | os.PathLike, now: time.struct_time | None = None) -> str:
    """A version name not yet under `model_root`: the UTC second of `now` (default: the
    current time), with "-1", "-2", ... appended when that second already has a push, so a
    second push (or a retry) within one second gets its own version instead of failing."""
    root = os.fspath(model_root)
    base = time.strftime(VERSION_FORMAT, now or time.gmtime())
    version, n = base, 0
    while tf.io.gfile.exists(f"{root}/{version}"):
        n += 1
        version = f"{base}-{n}"
    return version


def _fsync_tree(root: str) -> None:
    """Flushes a local staging directory's files to disk before the rename publishes them."""
    for path in Path(root).rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _discard(path: str) -> None:
    """Removes a partial version, best effort: the error that stopped the push is the one to see."""
    with contextlib.suppress(tf.errors.OpError):
        tf.io.gfile.rmtree(path)


def push(
    model_root: str | os.PathLike,
    version: str,
    model: bytes,
    write_contents: Callable[[str], None],
) -> str:
    """Writes the version directory `<model_root>/<version>`, then moves LATEST to it.

    `model_root` is any `tf.io.gfile` path; `write_contents` gets the directory to write into
    (through `tf.io.gfile`). On a local filesystem everything is written into `.tmp-<version>`,
    fsynced and renamed into place: a crash leaves either no version or a complete one. Object
    stores (gs://) cannot rename a directory atomically, so there the files are written in
    place, each object atomically. Either way LATEST moves last and still names the previous
    version if the push fails; a push that raises removes what it wrote.
    """
    model_root = os.fspath(model_root)
    final = f"{model_root}/{version}"
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"{final} already exists; versions are immutable")
    local = "://" not in model_root
    staging = f"{model_root}/.tmp-{version}" if local else final
    if local:
        _discard(staging)  # left by a crashed push of this version
    tf.io.gfile.makedirs(staging)
    try:
        with tf.io.gfile.GFile(f"{staging}/{edge_metadata.MODEL_FILE}", "wb") as f:
            f.write(model)
        write_contents(staging)
        if local:
            _fsync_tree(staging)
            tf.io.gfile.rename(staging, final)
    except BaseException:
        _discard(staging)
        raise
    edge_metadata.write_latest(model_root, version)
    return final


def model_card(name: str, version: str, meta: dict, report: dict, classes: Sequence[str]) -> str:
    """MODEL_CARD.md: what the model is, what it expects, how well it does, where it came from."""
    rows = "\n".join(
        f"| {q} | {report[q]['bytes']:,} | {report[q]['uar']:.3f} | {report[q]['wa']:.3f} | "
        f"{report[q]['top1_agreement_with_float']:.3f} |"
        for q in QUANTIZATIONS
    )
    recalls = ", ".join(f"{c} {r:.2f}" for c, r in report[meta["quantization"]]["recall"].items())
    pushed = report[meta["quantization"]]
    modes = ", ".join(f"{mode} {s['uar']:.3f}" for mode, s in pushed["modes"].items())
    if meta["normalisation"] == "speaker":
        normalisation = (
            "- Normalisation: per speaker. The model also takes `speaker_stats` [2, n] "
            "(mean; inverse std of its user's log-mel bands, or of its functionals for the "
            "functionals student) and returns `logmel_moments`; "
            "the predictor accumulates them, using `adaptation.fallback` for the first "
            f"{meta['adaptation']['warmup_windows']} windows (see metadata.json)."
        )
    else:
        normalisation = "- Normalisation: global statistics of the train split, inside the model."
    return f"""# {name} {version}

Speech emotion recognition for edge devices, trained by emograph (teacher similarity graph +
NSL graph-regularised student). Pushed variant: **{meta["quantization"]}**.

- Input: float32 [1, {meta["window_samples"]}] mono PCM in [-1, 1] at {meta["sample_rate"]} Hz
  ({meta["window_samples"] / meta["sample_rate"]:.2f} s); the log-mel frontend is inside.
- Output: probabilities over {len(classes)} classes: {", ".join(classes)}.
{normalisation}
- Run it: `emograph predict <this directory> audio.wav` (LiteRT, no TensorFlow needed).

## Test split (speakers never seen in training or model selection)

| variant | bytes | UAR | WA | top-1 agreement with float |
|---|---|---|---|---|
{rows}

Per-class recall ({meta["quantization"]}): {recalls}.
Test UAR of the pushed variant by normalisation mode (adaptive: each speaker's statistics over
all their audio; online: a device's running statistics with warm-up; strict: fallback only):
{modes}.

TFLite frontend vs the training frontend: max |error| {report["frontend_max_abs_error"]:.1e}
(natural-log mel power).

## Lineage

{chr(10).join(f"- {k}: {v}" for k, v in meta["extra"]["lineage"].items())}

Limitations: trained on acted speech of few speakers; emotion categories are culture- and
corpus-dependent; not for decisions about people.
"""
