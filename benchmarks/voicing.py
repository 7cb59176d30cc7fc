"""Fits the frontend's voicing rule and measures its pitch against openSMILE's.

openSMILE's eGeMAPS pitch (SHS with Viterbi smoothing, 60 ms frames) is the field's reference
contour; it is too costly for a microcontroller. The frontend's cheap track
(`frontend.pitch_and_voicing_cues`) needs a rule for which frames are voiced: here a logistic
regression from its three cues to openSMILE's voiced/unvoiced decision on the frames of 3 s
windows of a corpus, plus windows of stationary noise (white, low-passed, brown, at several
levels), which are unvoiced by construction. Each frame weighs the same: weighting the noise
up made the rule miss voiced frames (voiced recall 0.73 on RAVDESS) and cost the functionals
student ~2 UAR points on RAVDESS, so a loud stationary noise window mostly reads as voiced
(`noise_voiced_share`); in speech, quieter noise between words does not. The weights
are what `frontend.VOICING_WEIGHTS` / `VOICING_BIAS` hold; the report scores them (and the
pitch, within one semitone on frames openSMILE calls voiced) on a second corpus.

    .venv/bin/python -m benchmarks.voicing --fit ravdess:../shared/data/ravdess16k \
        --check emovo:../shared/data/emovo16k
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np

import emograph.components.compat  # noqa: F401  (before TensorFlow)
from benchmarks.students import corpora_classes
from emograph.components.audio import corpora, decode, windows
from emograph.components.config import AudioConfig, CorpusSpec, FrontendConfig

RESULTS = Path(__file__).parent / "results" / "voicing.json"
RATE = 16000
OPENSMILE_DELAY = 2  # frames: openSMILE's 10 ms pitch frames are centred 2 hops later


@functools.lru_cache(maxsize=1)
def _plan():
    from emograph.components.audio import frontend

    cfg = FrontendConfig()
    return frontend.dft_plan(cfg, frontend.num_bins(cfg, RATE))


def track(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frontend's pitch [frames] and voicing cues [frames, 3] of one window."""
    import tensorflow as tf

    from emograph.components.audio import frontend

    cfg = FrontendConfig()
    power = frontend.power_spectrum(tf.constant(window[np.newaxis], tf.float32), cfg, _plan())
    pitch, cues, _ = frontend.pitch_and_voicing_cues(power, cfg, RATE)
    return pitch.numpy()[0], cues.numpy()[0]


@functools.lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )


def reference(window: np.ndarray) -> np.ndarray:
    """openSMILE's eGeMAPS pitch per 10 ms frame (semitones from 27.5 Hz, 0 = unvoiced)."""
    return _smile().process_signal(window, RATE)["F0semitoneFrom27.5Hz_sma3nz"].to_numpy()


def corpus_frames(spec: CorpusSpec, every: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pitch, cues, openSMILE pitch) over the frames of every `every`-th clip's windows."""
    clips, _ = corpora.list_clips(spec, corpora_classes(spec))
    out: list[list[np.ndarray]] = [[], [], []]
    for clip in clips[::every]:
        for _, window in windows.window_clip(decode.load_audio(clip.path, RATE), AudioConfig()):
            pitch, cues = track(window)
            ref = reference(window)
            pitch, cues = pitch[OPENSMILE_DELAY:], cues[OPENSMILE_DELAY:]
            n = min(len(ref), len(pitch))
            for store, value in zip(out, (pitch[:n], cues[:n], ref[:n]), strict=True):
                store.append(value)
    return tuple(np.concatenate(v) for v in out)


def noise_cues(seed: int = 0) -> np.ndarray:
    """Cues of stationary noise windows (white, low-passed, brown; -46 to -6 dBFS): unvoiced."""
    rng = np.random.default_rng(seed)
    samples = AudioConfig().window_samples
    cues = []
    for level in (0.005, 0.05, 0.5):
        white = rng.standard_normal(samples)
        low = np.convolve(rng.standard_normal(samples), np.ones(8) / 8, "same")
        brown = np.cumsum(rng.standard_normal(samples))
        brown -= np.convolve(brown, np.ones(400) / 400, "same")
        for x in (white, low, brown):
            x = level * x / np.max(np.abs(x))
            cues.append(track(x.astype(np.float32))[1])
    return np.concatenate(cues)


def scores(weights: np.ndarray, bias: float, pitch, cues, ref) -> dict:
    voiced = cues @ weights + bias > 0
    truth = ref > 0
    return {
        "frames": int(len(ref)),
        "voicing_accuracy": float(np.mean(voiced == truth)),
        "voiced_recall": float(np.mean(voiced[truth])),
        "unvoiced_recall": float(np.mean(~voiced[~truth])),
        "pitch_within_1_semitone": float(np.mean(np.abs(pitch[truth] - ref[truth]) < 1)),
        "pitch_octave_errors": float(np.mean(np.abs(np.abs(pitch[truth] - ref[truth]) - 12) < 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=CorpusSpec.parse, required=True, help="KIND:PATH")
    parser.add_argument("--check", type=CorpusSpec.parse, action="append", default=[])
    parser.add_argument("--every", type=int, default=8, help="use every n-th clip")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    from emograph.components.audio import frontend

    pitch, cues, ref = corpus_frames(args.fit, args.every)
    noise = noise_cues()
    x = np.concatenate([cues, noise])
    y = np.concatenate([ref > 0, np.zeros(len(noise), bool)])
    model = LogisticRegression(max_iter=1000, class_weight="balanced").fit(x, y)
    fitted = (model.coef_[0], float(model.intercept_[0]))
    current = (np.array(frontend.VOICING_WEIGHTS), frontend.VOICING_BIAS)
    report = {
        "fit_corpus": f"{args.fit.kind}:{args.fit.path}",
        "fitted": {"weights": np.round(fitted[0], 3).tolist(), "bias": round(fitted[1], 3)},
        "frontend": {"weights": list(frontend.VOICING_WEIGHTS), "bias": frontend.VOICING_BIAS},
        "noise_voiced_share": float(np.mean(noise @ current[0] + current[1] > 0)),
        "scores": {f"{args.fit.kind}:{args.fit.path}": scores(*current, pitch, cues, ref)},
    }
    for spec in args.check:
        report["scores"][f"{spec.kind}:{spec.path}"] = scores(
            *current, *corpus_frames(spec, args.every)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
