"""Edge cost of pushed models: bytes, per-window latency on 1 thread, streaming real-time factor.

    python benchmarks/edge.py MODEL_DIR...   # model dirs, push dirs or .tflite files

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
from pathlib import Path

import numpy as np

from components.edge import Predictor

RESULTS = Path(__file__).resolve().parent / "results" / "edge.json"
WARMUP = 20
STREAM_SECONDS = 60.0
VARIANTS = ("float32", "float16", "int8")


def benchmark(path: str | Path, runs: int) -> dict:
    predictor = Predictor(path)
    meta = predictor.metadata
    rng = np.random.default_rng(0)
    window = rng.uniform(-0.3, 0.3, meta.window_samples).astype(np.float32)
    for _ in range(WARMUP):
        predictor.predict_window(window)
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict_window(window)
        latencies.append(time.perf_counter() - start)

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
        "latency_ms_median": 1e3 * float(np.median(latencies)),
        "latency_ms_p90": 1e3 * float(np.percentile(latencies, 90)),
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
        "| model | pushed | window | fp32 B | fp16 B | int8 B | median ms | p90 ms | RTF |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        sizes = {**r["variant_bytes"], r["quantization"]: r["model_bytes"]}
        cells = [f"{sizes[q]:,}" if q in sizes else "-" for q in VARIANTS]
        lines.append(
            f"| {_label(r['model'])} | {r['quantization']} | {r['window_s']:g} s | "
            + " | ".join(cells)
            + f" | {r['latency_ms_median']:.3f} | {r['latency_ms_p90']:.3f} | "
            f"{r['real_time_factor']:.5f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model dirs, push dirs or .tflite files")
    parser.add_argument("--runs", type=int, default=300, help="timed windows per model")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            rows = [benchmark(m, args.runs) for m in args.models]
        else:
            from components.edge.testing import build_tiny_model

            print("No MODEL_DIR given: benchmarking the tiny TEST model built with TensorFlow")
            print("(framing + energy + dense); its numbers say nothing about a trained model.\n")
            rows = []
            for variant in ("float32", "int8"):
                build_tiny_model(Path(tmp) / variant, variant)
                rows.append(
                    {**benchmark(Path(tmp) / variant, args.runs), "model": f"tiny-test/{variant}"}
                )

    print(table(rows))
    print(
        f"\nlatency: one window incl. frontend, 1 thread, {args.runs} runs; "
        "RTF: streaming time / audio time at the default hop"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
