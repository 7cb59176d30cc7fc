"""Benchmark of the ingest Beam job (run_ingest) on DirectRunner, 1 and 2 workers.

The corpus is generated once and cached under benchmarks/.cache/ingest: synthetic utterances
joined in pairs (2.4-5.6 s files, one or two windows each), resampled to 8, 16, 22.05, 44.1 and
48 kHz in turn, a third of them stereo and a third FLAC, listed in a CSV manifest, at least an
hour in all. Each run ingests all of it into a fresh temporary folder; wall time covers the whole
job (pipeline start-up and worker start-up included), as `emograph ingest` would spend it.

    .venv/bin/python -m benchmarks.ingest [--hours 1.0] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

import emograph.components.compat  # noqa: F401  (before TensorFlow)
from emograph.components.audio.synthetic import generate_corpus
from emograph.components.config import EMOTIONS, AudioConfig, CorpusSpec, SplitConfig, SynthConfig
from emograph.components.example_gen.ingest import run_ingest

CACHE = Path(__file__).parent / ".cache" / "ingest"
RESULTS = Path(__file__).parent / "results" / "ingest.json"
RATES = (8000, 16000, 22050, 44100, 48000)
VERSION = 1  # bump when the corpus recipe changes, so the cache is rebuilt


def build_corpus(hours: float, out: Path = CACHE) -> tuple[Path, float]:
    """Writes (or reuses) the corpus; returns its manifest and total audio seconds."""
    manifest, settings_path = out / "manifest.csv", out / "settings.json"
    settings = {"hours": hours, "rates": RATES, "version": VERSION}
    if manifest.exists() and settings_path.exists():
        if json.loads(settings_path.read_text()) == json.loads(json.dumps(settings)):
            return manifest, _seconds(manifest)
    shutil.rmtree(out, ignore_errors=True)
    (out / "audio").mkdir(parents=True)
    # 2 utterances of 2 s mean per file: enough speakers for `hours`, generation stops there.
    speakers = int(hours * 3600 / (len(EMOTIONS) * 10 * 2.0)) + 2
    utterances = generate_corpus(
        "source", SynthConfig(speakers=speakers, utterances_per_emotion=10)
    )
    rows, total, previous = [], 0.0, None
    for speaker, emotion, k, audio in utterances:
        if k % 2 == 0:
            previous = audio
            continue
        i = len(rows)
        pcm = np.concatenate([previous, np.zeros(1600, np.float32), audio])
        rate = RATES[i % len(RATES)]
        if rate != 16000:
            pcm = soxr.resample(pcm, 16000, rate)
        if i % 3 == 1:
            pcm = np.stack([pcm, 0.8 * pcm], axis=1)
        name = f"audio/{speaker.id}_{emotion}_{k // 2}.{'flac' if i % 3 == 2 else 'wav'}"
        sf.write(out / name, pcm, rate, subtype="PCM_16")
        seconds = len(pcm) / rate
        rows.append((name, emotion, speaker.id, f"{seconds:.6f}"))
        total += seconds
        if total >= hours * 3600:
            break
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows([("path", "label", "speaker", "seconds"), *rows])
    settings_path.write_text(json.dumps(settings))  # last: a half-written corpus is not reused
    return manifest, total


def _seconds(manifest: Path) -> float:
    with manifest.open(newline="") as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f))


def run(manifest: Path, workers: int) -> tuple[float, float, dict]:
    """Wall seconds and CPU seconds (this process and its workers) of one ingest, its report."""
    args = ["--direct_running_mode=in_memory"]
    if workers > 1:
        args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), _cpu_seconds()
        report = run_ingest(
            CorpusSpec("manifest", str(manifest)),
            EMOTIONS,
            AudioConfig(),
            SplitConfig(),
            tmp,
            args,
        )
        return time.perf_counter() - start, _cpu_seconds() - cpu, report


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the Beam workers)."""
    return sum(os.times()[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()

    start = time.perf_counter()
    manifest, seconds = build_corpus(args.hours)
    print(
        f"corpus: {manifest} ({seconds / 3600:.2f} h, ready in {time.perf_counter() - start:.0f} s)"
    )
    load = os.getloadavg()  # the machine may be shared: read the figures against this
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        wall, cpu, report = run(manifest, workers)
        if report["rejected"]:
            raise AssertionError(f"benchmark corpus had rejections: {report['rejected_by_reason']}")
        rows.append(
            {
                "workers": workers,
                "audio_seconds": seconds,
                "wall_seconds": wall,
                "x_real_time": seconds / wall,
                "x_real_time_per_core": seconds / wall / workers,
                "cpu_seconds": cpu,
                "x_real_time_per_cpu_second": seconds / cpu,
                "files": report["ingested"],
                "windows": sum(report["windows"].values()),
            }
        )
    header = ("workers", "audio s", "wall s", "x real time", "x real time / core", "cpu s")
    print(" | ".join(header))
    for r in rows:
        print(
            f"{r['workers']:>7} | {r['audio_seconds']:7.0f} | {r['wall_seconds']:6.1f} | "
            f"{r['x_real_time']:11.0f} | {r['x_real_time_per_core']:18.0f} | "
            f"{r['cpu_seconds']:5.1f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "runs": rows,
                "corpus": {"hours": seconds / 3600, "rates": RATES, "files": rows[0]["files"]},
                "audio": dataclasses.asdict(AudioConfig()),
                "machine": {"cpus": os.cpu_count(), "load_average_before": load},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
