"""Edge cost of pushed models: bytes, per-window latency on 1 thread, streaming real-time factor.

    python benchmarks/edge.py MODEL_DIR...   # model dirs, push dirs or .tflite files
    python benchmarks/edge.py MODEL_DIR --split             # + frontend / classifier latency
    python benchmarks/edge.py --profile-frontend            # where the frontend's time goes

`--split` and `--profile-frontend` need TensorFlow: they convert the log-mel frontend alone (the
push metadata's `extra.frontend`, else FrontendConfig's defaults) and time it like the model;
the classifier's share is the model's median minus the frontend's, which holds only for a model
exported with this checkout's frontend code (an older push's frontend may differ: the stage
table's RFFT2D row is what the `tf.signal.stft` frontend cost). Models are timed in turns
(`ROUNDS` rounds of `--runs` windows each, median of the rounds' medians), so load that comes
and goes on a shared machine hits every row alike.

With no MODEL_DIR it builds the tiny test model (needs TensorFlow) and says so, since its
numbers say nothing about a trained model. Sizes of the variants that were not pushed
(fp32/fp16/int8) come from the push metadata (`extra.test`) when it has them. Prints a table;
writes benchmarks/results/edge.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emograph.components.edge import Predictor

RESULTS = Path(__file__).resolve().parent / "results" / "edge.json"
WARMUP = 20
ROUNDS = 5
STREAM_SECONDS = 60.0
VARIANTS = ("float32", "float16", "int8")


def time_in_turns(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, dict]:
    """{name: median and p90 ms} of each call, timed `runs` times per round over ROUNDS rounds."""
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            medians[name].append(float(np.median(times)))
            samples[name].extend(times)
    return {
        name: {
            "median_ms": 1e3 * float(np.median(medians[name])),
            "p90_ms": 1e3 * float(np.percentile(samples[name], 90)),
            "round_medians_ms": [round(1e3 * m, 3) for m in medians[name]],
        }
        for name in calls
    }


def _invoker(model: bytes, samples: int) -> Callable[[], object]:
    """One interpreter on 1 thread with a fixed noise window set: call it to run one window."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    window = np.random.default_rng(0).uniform(-0.3, 0.3, (1, samples)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], window)
    return interpreter.invoke


def frontend_models(front_json: dict | None, sample_rate: int, samples: int) -> dict[str, bytes]:
    """Cumulative TFLite stages of the frontend, and the `tf.signal.stft` power it replaced."""
    import tensorflow as tf

    from emograph.components.audio import frontend
    from emograph.components.config import FrontendConfig, from_dict

    cfg = from_dict(FrontendConfig, front_json) if front_json else FrontendConfig()
    bins = frontend.num_bins(cfg, sample_rate)
    plan, segments = frontend.dft_plan(cfg, bins), frontend.mel_segments(cfg, sample_rate, bins)

    def power(pcm):
        return frontend.power_spectrum(pcm, cfg, plan)

    def mel(pcm):
        return frontend.mel_power(power(pcm), segments, bins)

    def log_mel(pcm):
        return frontend.log_mel(pcm, cfg, sample_rate)

    def stft_power(pcm):
        stft = tf.signal.stft(
            pcm, cfg.frame_length, cfg.frame_step, cfg.fft_length, tf.signal.hann_window
        )
        return tf.square(tf.abs(stft))

    stages = {
        "power: four-step DFT (BATCH_MATMUL, FULLY_CONNECTED)": power,
        "+ mel: 2 SEGMENT_SUM": mel,
        "+ log = frontend.log_mel": log_mel,
        "reference: tf.signal.stft power (RFFT2D)": stft_power,
    }
    spec = tf.TensorSpec([1, samples], tf.float32)
    models = {}
    for name, fn in stages.items():
        concrete = tf.function(fn, input_signature=[spec]).get_concrete_function()
        models[name] = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn).convert()
    return models


def benchmark(path: str | Path, runs: int, split: bool = False) -> dict:
    predictor = Predictor(path)
    meta = predictor.metadata
    rng = np.random.default_rng(0)
    window = rng.uniform(-0.3, 0.3, meta.window_samples).astype(np.float32)
    calls = {"model": lambda: predictor.predict_window(window)}
    if split:
        front = meta.extra.get("frontend")
        models = frontend_models(front, meta.sample_rate, meta.window_samples)
        calls["frontend"] = _invoker(models["+ log = frontend.log_mel"], meta.window_samples)
    timed = time_in_turns(calls, runs)
    split_ms = {}
    if split:
        split_ms = {
            "frontend_config": "push metadata" if front else "FrontendConfig defaults",
            "frontend_ms_median": timed["frontend"]["median_ms"],
            "classifier_ms_median": timed["model"]["median_ms"] - timed["frontend"]["median_ms"],
        }

    audio = rng.uniform(-0.3, 0.3, int(STREAM_SECONDS * meta.sample_rate)).astype(np.float32)
    start = time.perf_counter()
    streamed = sum(1 for _ in predictor.stream(audio))
    elapsed = time.perf_counter() - start
    return {
        "model": str(predictor.model_path),
        "quantization": meta.quantization,
        "model_bytes": predictor.model_path.stat().st_size,
        "variant_bytes": {
            q: meta.extra["test"][q]["bytes"] for q in VARIANTS if q in meta.extra.get("test", {})
        },
        "window_s": meta.window_samples / meta.sample_rate,
        "hop_s": meta.hop_samples / meta.sample_rate,
        "threads": 1,
        "runs": runs,
        "latency_ms_median": timed["model"]["median_ms"],
        "latency_ms_p90": timed["model"]["p90_ms"],
        "latency_round_medians_ms": timed["model"]["round_medians_ms"],
        **split_ms,
        "stream_seconds": STREAM_SECONDS,
        "stream_windows": streamed,
        "real_time_factor": elapsed / STREAM_SECONDS,
    }


def _label(model: str) -> str:
    """`<model_name>/<version>` of a pushed model file; other names as they are."""
    return str(Path(*Path(model).parts[-3:-1])) if model.endswith(".tflite") else model


def table(rows: list[dict]) -> str:
    """Markdown, so it pastes into the README as it is."""
    lines = [
        "| model | pushed | window | fp32 B | fp16 B | int8 B | median ms | p90 ms "
        "| frontend ms | classifier ms | RTF |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        sizes = {**r["variant_bytes"], r["quantization"]: r["model_bytes"]}
        cells = [f"{sizes[q]:,}" if q in sizes else "-" for q in VARIANTS]
        split = [
            f"{r[k]:.3f}" if k in r else "-" for k in ("frontend_ms_median", "classifier_ms_median")
        ]
        lines.append(
            f"| {_label(r['model'])} | {r['quantization']} | {r['window_s']:g} s | "
            + " | ".join(cells)
            + f" | {r['latency_ms_median']:.3f} | {r['latency_ms_p90']:.3f} | "
            + " | ".join(split)
            + f" | {r['real_time_factor']:.5f} |"
        )
    return "\n".join(lines)


def profile_table(profile: dict[str, dict], sizes: dict[str, int]) -> str:
    """Markdown: each cumulative frontend stage's latency and bytes."""
    lines = ["| frontend stage (cumulative) | median ms | p90 ms | bytes |", "|---|--:|--:|--:|"]
    for name, t in profile.items():
        lines.append(f"| {name} | {t['median_ms']:.3f} | {t['p90_ms']:.3f} | {sizes[name]:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model dirs, push dirs or .tflite files")
    parser.add_argument("--runs", type=int, default=300, help="timed windows per model per round")
    parser.add_argument("--split", action="store_true", help="frontend / classifier latency")
    parser.add_argument(
        "--profile-frontend", action="store_true", help="latency of each frontend stage (3 s)"
    )
    args = parser.parse_args()
    results: dict = {}

    if args.profile_frontend:
        models = frontend_models(None, 16000, 48000)
        profile = time_in_turns({n: _invoker(m, 48000) for n, m in models.items()}, args.runs)
        print(profile_table(profile, {n: len(m) for n, m in models.items()}) + "\n")
        results["frontend_profile"] = profile
    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            rows = [benchmark(m, args.runs, args.split) for m in args.models]
        elif args.profile_frontend:
            rows = []
        else:
            from emograph.components.edge.testing import build_tiny_model

            print("No MODEL_DIR given: benchmarking the tiny TEST model built with TensorFlow")
            print("(framing + energy + dense); its numbers say nothing about a trained model.\n")
            rows = []
            for variant in ("float32", "int8"):
                build_tiny_model(Path(tmp) / variant, variant)
                rows.append(
                    {**benchmark(Path(tmp) / variant, args.runs), "model": f"tiny-test/{variant}"}
                )

    if rows:
        print(table(rows))
        print(
            f"\nlatency: one window incl. frontend, 1 thread, {ROUNDS} rounds x {args.runs} "
            "runs, median of round medians; RTF: streaming time / audio time at the default hop"
        )
    results["models"] = rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
