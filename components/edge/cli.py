"""`emograph predict MODEL AUDIO... [--json] [--stream] [--hop SECONDS] [--force]`, TensorFlow-free.

AUDIO is any file soundfile reads, or `-` for raw s16le mono PCM at the model's rate on stdin.
Default output is one line per file; --json gives one JSON object per file; --stream gives one
JSON line per sliding window, printed as soon as the window is complete (live stdin works); the
last window ends with the audio, so a stream covers the whole file as file mode does.

Audio that ingest would reject as training data (silent; shorter than AudioConfig.min_seconds)
is refused in one line naming the file and the reason, unless --force (then a warning line).
Exit codes: 0 every file predicted; 1 a file unreadable, not audio or refused (the others are
still predicted); 2 a bad model or flag.

A speaker-normalised model adapts to the voice it hears: statistics accumulate over all the
audio of one invocation (one user), unless --new-speaker-per-file resets them for every file or
--no-adapt keeps the model's fallback statistics (strict mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator

import numpy as np
import soundfile as sf

from emograph.components.config import AudioConfig
from emograph.components.edge import audio
from emograph.components.edge.metadata import ModelError
from emograph.components.edge.predictor import Prediction, Predictor

STDIN = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model dir, push dir with LATEST, or model.tflite")
    parser.add_argument("audio", nargs="+", help=f"audio files; {STDIN} reads s16le PCM on stdin")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--stream", action="store_true", help="one JSON line per window")
    parser.add_argument(
        "--hop", type=float, metavar="SECONDS", help="step between windows (default: the model's)"
    )
    parser.add_argument(
        "--no-adapt", action="store_true", help="speaker models: never adapt (strict mode)"
    )
    parser.add_argument(
        "--new-speaker-per-file",
        action="store_true",
        help="speaker models: reset the accumulated statistics before each file",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="predict audio that ingest would reject as training data: silent (peak below -80 "
        f"dBFS) or shorter than {AudioConfig.min_seconds:g} s. Without it such a file is refused "
        "in one line on stderr naming it and the reason, the other files are still predicted "
        "and the exit code is 1; with it, a warning line. Live stdin (- with --stream) is not "
        "checked",
    )


def run(args: argparse.Namespace) -> int:
    """Predicts every AUDIO; returns the exit code (module docstring)."""
    try:
        predictor = Predictor(args.model, adapt=not args.no_adapt)
    except (ModelError, OSError) as e:
        print(f"emograph predict: {e}", file=sys.stderr)
        return 2
    hop = None if args.hop is None else round(args.hop * predictor.sample_rate)
    if hop is not None and hop <= 0:
        print("emograph predict: --hop must be positive", file=sys.stderr)
        return 2
    status = 0
    for name in args.audio:
        if args.new_speaker_per_file:
            predictor.reset_adaptation()
        try:
            samples = _audio(predictor, name, hop)
            if not args.stream and not isinstance(samples, np.ndarray):
                samples = np.concatenate([np.zeros(0, np.float32), *samples])
            if isinstance(samples, np.ndarray):
                _check(name, samples, predictor.sample_rate, args.force)
            if args.stream:
                for window in predictor.stream(samples, hop):
                    print(json.dumps({"file": name, **dataclasses.asdict(window)}), flush=True)
            else:
                print(_format(name, predictor.predict_clip(samples, hop), args.json), flush=True)
        except (OSError, ValueError, sf.LibsndfileError) as e:
            message = e if isinstance(e, audio.AudioInputError) else f"{name}: {e}"
            print(f"emograph predict: {message}", file=sys.stderr)
            status = 1
    return status


def _audio(predictor: Predictor, name: str, hop: int | None) -> np.ndarray | Iterator[np.ndarray]:
    """A file as one array; stdin as hop-sized chunks, so each read can complete a window."""
    if name == STDIN:
        return audio.read_pcm16(sys.stdin.buffer, hop or predictor.metadata.hop_samples)
    return audio.load(name, predictor.sample_rate)


def _check(name: str, samples: np.ndarray, sample_rate: int, force: bool) -> None:
    """Refuses (AudioInputError) audio whose label would mean little, or with `force` warns."""
    doubts = _doubts(samples, sample_rate)
    if not doubts:
        return
    if not force:
        raise audio.AudioInputError(
            f"{name}: refused: {' and '.join(doubts)}, so its label would mean little "
            "(--force predicts anyway)"
        )
    print(
        f"emograph predict: {name}: warning: {' and '.join(doubts)}; its label means little",
        file=sys.stderr,
    )


def _doubts(samples: np.ndarray, sample_rate: int) -> list[str]:
    """Why a label of this audio means little: what ingest rejects as training data (silence; a
    clip shorter than its default minimum)."""
    doubts = []
    if np.abs(samples).max(initial=0.0) < audio.SILENCE_PEAK:
        doubts.append("the audio is silent (peak below -80 dBFS)")
    seconds = len(samples) / sample_rate
    if seconds < AudioConfig.min_seconds:
        doubts.append(
            f"{seconds:.2f} s is shorter than the {AudioConfig.min_seconds:g} s ingest keeps "
            "for training"
        )
    return doubts


def _format(name: str, prediction: Prediction, as_json: bool) -> str:
    if as_json:
        return json.dumps({"file": name, **dataclasses.asdict(prediction)})
    p = prediction.probabilities
    scores = " ".join(f"{c} {v:.2f}" for c, v in p.items())
    return f"{name}: {prediction.label} (p={p[prediction.label]:.2f})  {scores}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emograph predict", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
