"""Runs a pushed emograph-edge model with LiteRT: what a device does, TensorFlow-free.

Every check a device cannot afford to get wrong happens once, at load, and refuses with a
`ModelError`: the model's hash, labels and input/output shapes must match its metadata.json.

A speaker-normalised model (metadata `normalisation: "speaker"`) is run with the statistics of
its user's audio, accumulated window by window (`SpeakerAdaptation`: a warm-up on the fallback
statistics, `reset_adaptation()` for a new user); `adapt=False` keeps the fallback for good
(strict mode: nothing is learnt from the user).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from emograph.components.edge import audio
from emograph.components.edge.adaptation import SpeakerAdaptation
from emograph.components.edge.metadata import (
    LABELS_FILE,
    LATEST_FILE,
    METADATA_FILE,
    MOMENTS_OUTPUT,
    PCM_INPUT,
    PROBABILITIES,
    STATS_INPUT,
    ModelError,
    ModelMetadata,
)


@dataclass(frozen=True)
class Prediction:
    """One clip: the label of the window-averaged probabilities."""

    label: str
    probabilities: dict[str, float]
    windows: int


@dataclass(frozen=True)
class WindowPrediction:
    """One window of a stream, with where it lies in the audio."""

    start_s: float
    end_s: float
    label: str
    probabilities: dict[str, float]


def resolve(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(metadata file, model file if given) for a model dir, a push dir or a bare .tflite."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".tflite":
            raise ModelError(f"{path}: not a .tflite file, a model dir or a push dir")
        metadata = path.parent / METADATA_FILE
        if not metadata.is_file():
            raise ModelError(f"{path}: no {METADATA_FILE} next to it; a model needs its metadata")
        return metadata, path
    if not path.is_dir():
        raise ModelError(f"{path}: no such model file or directory")
    if not (path / METADATA_FILE).is_file():
        if not (path / LATEST_FILE).is_file():
            pushed = sorted(p for p in path.iterdir() if (p / LATEST_FILE).is_file())
            if len(pushed) != 1:
                raise ModelError(
                    f"{path}: neither a model dir ({METADATA_FILE}) nor a push dir ({LATEST_FILE})"
                    + (f"; it holds several models: {[p.name for p in pushed]}" if pushed else "")
                )
            path = pushed[0]
        version = (path / LATEST_FILE).read_text().strip()
        if not (path / version / METADATA_FILE).is_file():
            raise ModelError(f"{path / LATEST_FILE}: names {version!r}, which has no model")
        path = path / version
    return path / METADATA_FILE, None


def _quantization(detail: dict, name: Path, what: str) -> tuple[float, int]:
    """(scale, zero point) of an integer tensor; int16 PCM without params is plain s16."""
    scale, zero_point = detail["quantization"]
    if scale:
        return scale, zero_point
    if detail["dtype"] == np.int16 and what == "input":
        return 1 / 32768, 0
    raise ModelError(f"{name}: {what} is {np.dtype(detail['dtype'])} without quantization params")


# A TFLite model is a flatbuffer whose bytes 4-8 hold this file identifier.
TFLITE_IDENTIFIER = b"TFL3"


def _interpreter(content: bytes, model_path: Path) -> Interpreter:
    """A LiteRT interpreter with its tensors allocated, or a ModelError naming the file.

    A model file cut short (a copy or download interrupted, its metadata then written from the
    cut file, so the sha256 matches) is refused in one line rather than a LiteRT traceback: the
    identifier is checked first, then LiteRT's flatbuffer verifier and allocation.
    """
    if content[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{model_path}: not a TFLite model ({len(content)} bytes without the flatbuffer "
            f"identifier {TFLITE_IDENTIFIER.decode()}); push the model again"
        )
    try:
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(
            f"{model_path}: LiteRT cannot load it ({reason}); its {len(content)} bytes are "
            "truncated or corrupt: push the model again"
        ) from e
    return interpreter


class Predictor:
    """Loads and checks a pushed model once; then predicts windows, clips, files and streams."""

    def __init__(self, path: str | os.PathLike, adapt: bool = True) -> None:
        metadata_path, model_path = resolve(path)
        try:
            self.metadata = ModelMetadata.from_json(metadata_path.read_text())
        except ModelError as e:
            raise ModelError(f"{metadata_path}: {e}") from e
        model_path = model_path or metadata_path.parent / self.metadata.model_file
        self.model_path = model_path
        self.classes = self.metadata.classes
        self.sample_rate = self.metadata.sample_rate
        self.window_samples = self.metadata.window_samples

        if not model_path.is_file():
            raise ModelError(f"{model_path}: missing (named by {metadata_path})")
        content = model_path.read_bytes()  # hash exactly the bytes that will run
        digest = hashlib.sha256(content).hexdigest()
        if digest != self.metadata.sha256:
            raise ModelError(
                f"{model_path}: sha256 {digest} does not match {metadata_path} "
                f"({self.metadata.sha256}); the model or its metadata was changed"
            )
        labels_path = metadata_path.parent / LABELS_FILE
        labels = tuple(labels_path.read_text().splitlines()) if labels_path.is_file() else None
        if labels != self.classes:
            raise ModelError(
                f"{labels_path}: labels {list(labels) if labels else 'missing'} do not match "
                f"the classes in {metadata_path}: {list(self.classes)}"
            )

        self._interpreter = _interpreter(content, model_path)
        self.adaptation: SpeakerAdaptation | None = None
        self._adapt = adapt
        if self.metadata.normalisation == "speaker":
            self._bind_adaptive(model_path, metadata_path)
        else:
            if len(self._interpreter.get_input_details()) != 1:
                raise ModelError(
                    f"{model_path}: has several inputs (a speaker-normalised model?) but "
                    f"{metadata_path} says normalisation 'global', which takes PCM only"
                )
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
        shape = tuple(self._input["shape"])
        if shape != (1, self.window_samples):
            seconds = self.window_samples / self.sample_rate
            raise ModelError(
                f"{model_path}: takes input {list(shape)} but {metadata_path} says "
                f"window_samples={self.window_samples} ({seconds:g} s at {self.sample_rate} Hz);"
                " the metadata does not describe this model"
            )
        if int(np.prod(self._output["shape"])) != len(self.classes):
            raise ModelError(
                f"{model_path}: outputs {list(self._output['shape'])} but {metadata_path} "
                f"lists {len(self.classes)} classes"
            )
        self._in_q = None
        if np.issubdtype(self._input["dtype"], np.integer):
            self._in_q = _quantization(self._input, model_path, "input")
        self._out_q = None
        if np.issubdtype(self._output["dtype"], np.integer):
            self._out_q = _quantization(self._output, model_path, "output")

    def _bind_adaptive(self, model_path: Path, metadata_path: Path) -> None:
        """Finds the named inputs and outputs of a speaker-normalised model's signature."""
        signatures = self._interpreter.get_signature_list()
        expected = ({PCM_INPUT, STATS_INPUT}, {PROBABILITIES, MOMENTS_OUTPUT})
        if (
            len(signatures) != 1
            or (
                set(next(iter(signatures.values()))["inputs"]),
                set(next(iter(signatures.values()))["outputs"]),
            )
            != expected
        ):
            raise ModelError(
                f"{model_path}: {metadata_path} says normalisation 'speaker', so the model needs "
                f"one signature with inputs {sorted(expected[0])} and outputs "
                f"{sorted(expected[1])}; it has {signatures}"
            )
        # Tensors are set by index, not through the signature runner, which resizes and
        # re-allocates every tensor on each call (~20 us of a ~1 ms window); a single-signature
        # model's signature is its main subgraph, whose tensors the interpreter addresses.
        runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        main = {d["index"] for d in self._interpreter.get_input_details()}
        if main != {d["index"] for d in inputs.values()}:
            raise ModelError(f"{model_path}: its signature is not the model's main subgraph")
        self._input, self._stats_input = inputs[PCM_INPUT], inputs[STATS_INPUT]
        self._output, self._moments_output = outputs[PROBABILITIES], outputs[MOMENTS_OUTPUT]
        adaptation = self.metadata.adaptation
        self.adaptation = SpeakerAdaptation(
            np.asarray(adaptation["fallback"], np.float32), adaptation["warmup_windows"]
        )
        bands = self._stats_input["shape"]
        if tuple(bands) != self.adaptation.fallback.shape:
            raise ModelError(
                f"{model_path}: takes {STATS_INPUT} {list(bands)} but {metadata_path} has "
                f"fallback statistics of shape {list(self.adaptation.fallback.shape)}"
            )

    def reset_adaptation(self) -> None:
        """A new user: forget the accumulated statistics (no-op for global models)."""
        if self.adaptation is not None:
            self.adaptation.reset()

    def predict_window(self, pcm: np.ndarray) -> np.ndarray:
        """Class probabilities of exactly one window of mono PCM in [-1, 1] at the model rate.

        A speaker-normalised model uses the statistics accumulated so far, then adds this
        window's (when adapting).
        """
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        if len(pcm) != self.window_samples:
            raise ValueError(f"a window is {self.window_samples} samples, got {len(pcm)}")
        x = pcm[None]
        if self._in_q:
            scale, zero_point = self._in_q
            info = np.iinfo(self._input["dtype"])
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
        self._interpreter.set_tensor(
            self._input["index"], x.astype(self._input["dtype"], copy=False)
        )
        if self.adaptation is not None:
            stats = self.adaptation.statistics()
            self._interpreter.set_tensor(self._stats_input["index"], stats)
        self._interpreter.invoke()
        if self.adaptation is not None and self._adapt:
            self.adaptation.update(self._interpreter.get_tensor(self._moments_output["index"]))
        y = self._interpreter.get_tensor(self._output["index"]).reshape(-1)
        if self._out_q:
            scale, zero_point = self._out_q
            return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return y.astype(np.float32, copy=True)

    def predict_clip(self, samples: np.ndarray, hop_samples: int | None = None) -> Prediction:
        """Averages window probabilities over a whole clip (mono, at the model rate)."""
        hop = self._hop(hop_samples)
        windows = audio.clip_windows(np.asarray(samples, np.float32), self.window_samples, hop)
        mean = np.mean([self.predict_window(w) for w in windows], axis=0)
        return Prediction(self._label(mean), self._named(mean), len(windows))

    def predict_file(self, path: str | os.PathLike, hop_samples: int | None = None) -> Prediction:
        """Any audio file soundfile reads: downmixed, resampled, windowed, averaged."""
        return self.predict_clip(audio.load(path, self.sample_rate), hop_samples)

    def stream(
        self, samples: np.ndarray | Iterable[np.ndarray], hop_samples: int | None = None
    ) -> Iterator[WindowPrediction]:
        """One prediction per sliding window of long audio: an array or an iterable of chunks.

        The last window ends where the audio does, so a stream covers what `predict_clip` does.
        """
        chunks = [samples] if isinstance(samples, np.ndarray) else samples
        for start, end, window in audio.sliding_windows(
            chunks, self.window_samples, self._hop(hop_samples)
        ):
            p = self.predict_window(window)
            yield WindowPrediction(
                start / self.sample_rate, end / self.sample_rate, self._label(p), self._named(p)
            )

    def _hop(self, hop_samples: int | None) -> int:
        hop = self.metadata.hop_samples if hop_samples is None else int(hop_samples)
        if hop <= 0:
            raise ValueError(f"hop must be a positive number of samples, got {hop}")
        return hop

    def _label(self, probabilities: np.ndarray) -> str:
        return self.classes[int(np.argmax(probabilities))]

    def _named(self, probabilities: np.ndarray) -> dict[str, float]:
        return {c: float(p) for c, p in zip(self.classes, probabilities, strict=True)}
