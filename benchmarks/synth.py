"""Speed and learnability of the synthetic corpus.

Speed: seconds of audio generated per wall second, per domain, on one core (run with
OMP_NUM_THREADS=1). Learnability: a logistic regression on cheap utterance features, within each
domain (speaker-disjoint folds) and across domains; the generator is tuned so that emotion is
learnable but not trivial within a domain, and transfers only in part to the other one.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synth.py [--seconds 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from emograph.components.audio.descriptors import utterance_features
from emograph.components.audio.synthetic import (
    DOMAINS,
    generate_corpus,
    make_speakers,
    synthesize_utterance,
)
from emograph.components.config import EMOTIONS, SynthConfig

RESULTS = Path(__file__).parent / "results" / "synth.json"


def speed(domain: str, seconds: float, sample_rate: int = 16000) -> dict[str, float]:
    """Generates utterances round-robin over speakers and emotions until `seconds` of audio."""
    speakers = make_speakers(domain, 8, seed=0)
    rng = np.random.default_rng(0)
    audio, i, start = 0.0, 0, time.perf_counter()
    while audio < seconds:
        speaker, emotion = speakers[i % len(speakers)], EMOTIONS[i % len(EMOTIONS)]
        audio += len(synthesize_utterance(rng, speaker, emotion, DOMAINS[domain])) / sample_rate
        i += 1
    wall = time.perf_counter() - start
    return {"audio_seconds": audio, "wall_seconds": wall, "x_real_time": audio / wall}


def features(domain: str, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels and speaker ids of one generated (in-memory) corpus."""
    rows = [
        (utterance_features(audio), emotion, speaker.id)
        for speaker, emotion, _, audio in generate_corpus(domain, cfg)
    ]
    x, y, groups = zip(*rows, strict=True)
    return np.array(x), np.array(y), np.array(groups)


def classifier() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def learnability(cfg: SynthConfig) -> list[dict[str, object]]:
    """Accuracy within each domain (speaker-disjoint 4-fold) and from each domain to the other."""
    data = {domain: features(domain, cfg) for domain in DOMAINS}
    results = []
    for train, (x, y, groups) in data.items():
        folds = GroupKFold(n_splits=4)
        within = cross_val_score(classifier(), x, y, groups=groups, cv=folds).mean()
        results.append({"train": train, "test": train, "accuracy": float(within)})
    for train, test in (("source", "target"), ("target", "source")):
        model = classifier().fit(data[train][0], data[train][1])
        accuracy = model.score(data[test][0], data[test][1])
        results.append({"train": train, "test": test, "accuracy": float(accuracy)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="audio per domain (speed)")
    parser.add_argument("--speakers", type=int, default=12, help="per domain (learnability)")
    parser.add_argument("--utterances", type=int, default=8, help="per speaker and emotion")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (learnability)")
    args = parser.parse_args()

    speeds = {domain: speed(domain, args.seconds) for domain in DOMAINS}
    print(f"{'domain':<8} {'audio s':>8} {'wall s':>8} {'x real time':>12}")
    for domain, s in speeds.items():
        print(
            f"{domain:<8} {s['audio_seconds']:>8.1f} {s['wall_seconds']:>8.2f}"
            f" {s['x_real_time']:>12.1f}"
        )

    cfg = SynthConfig(args.speakers, args.utterances, args.seed)
    learned = learnability(cfg)
    print(f"\nlearnability ({len(EMOTIONS)} classes, chance {1 / len(EMOTIONS):.3f})")
    print(f"{'train':<8} {'test':<8} {'accuracy':>8}")
    for r in learned:
        print(f"{r['train']:<8} {r['test']:<8} {r['accuracy']:>8.3f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {"speed": speeds, "learnability": learned, "config": vars(args)}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
