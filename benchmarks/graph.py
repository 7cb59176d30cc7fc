"""Benchmark of BuildSimilarityGraph (DirectRunner) against exact search and nsl.tools.build_graph.

Synthetic clustered embeddings (mean cluster size 50, Gaussian noise around random centres) are
generated inside the pipeline, shard by shard, and again in the driver for the recall check.
Each size runs in its own subprocess so peak RSS (ru_maxrss) belongs to that run alone.

    .venv/bin/python -m benchmarks.graph --sizes 10k,100k [--nsl] [--workers 2]

`--component` times the whole GraphBuilder step (`build_graph`: node records, the source
selection on validation speakers, the Beam graph job, statistics and plot) over `--labelled`
labelled windows plus SIZE unlabelled ones, as a few-labels run with a large unlabelled pool
gives it; results in benchmarks/results/graph-component.json.

    .venv/bin/python -m benchmarks.graph --component --sizes 100k --labelled 5k --rounds 18 \
        --rounds_per_shuffle 6
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import emograph.components.compat  # noqa: F401  (before TensorFlow and NSL)
from emograph.components.config import AUTO, GraphConfig
from emograph.components.graph import similarity

RESULTS = Path(__file__).parent / "results" / "graph.json"
COMPONENT_RESULTS = RESULTS.with_name("graph-component.json")
# The embedding sources a pipeline's Embedder writes (dimensions of the default models), each
# a noisier view of the same clusters, so the selection has something to choose.
SOURCES = {"teacher": (256, 0.4), "logmel": (120, 0.8), "statistics": (16, 1.2)}
WINDOWS_PER_SPEAKER = 200
CLASSES = 7
SHARD = 50_000
CLUSTER_SIZE = 50


@functools.lru_cache(maxsize=2)
def _centres(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((max(n // CLUSTER_SIZE, 1), dim))


def shard_rows(shard: int, n: int, dim: int, noise: float, seed: int) -> np.ndarray:
    """Rows [shard * SHARD, ...) of the dataset; the same in the driver and in Beam workers."""
    centres = _centres(n, dim, seed)
    rng = np.random.default_rng([seed, shard])
    size = min(SHARD, n - shard * SHARD)
    labels = rng.integers(0, len(centres), size)
    return (centres[labels] + noise * rng.standard_normal((size, dim))).astype(np.float32)


def dataset(n: int, dim: int, noise: float, seed: int) -> np.ndarray:
    return np.concatenate([shard_rows(s, n, dim, noise, seed) for s in range(-(-n // SHARD))])


def node_id(i: int) -> str:
    return f"node-{i:07d}"


def id_rows(shard: int, n: int, dim: int, noise: float, seed: int):
    block = shard_rows(shard, n, dim, noise, seed)
    return ((node_id(shard * SHARD + i), row) for i, row in enumerate(block))


def run_beam(n: int, cfg: GraphConfig, args: argparse.Namespace, out: str) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from benchmarks import graph  # by module name, not __main__, so workers can import it
    from emograph.components.graph.beam_graph import BuildSimilarityGraph, write_tsv

    rows = functools.partial(graph.id_rows, n=n, dim=args.dim, noise=args.noise, seed=args.seed)

    opts = ["--direct_running_mode=in_memory"]
    if args.workers > 1:
        opts = ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(opts)) as p:
        edges = (
            p
            | beam.Create(range(-(-n // SHARD)))
            | beam.Reshuffle()
            | beam.FlatMap(rows)
            | BuildSimilarityGraph(cfg)
        )
        write_tsv(edges, out)
    return time.perf_counter() - start


def recall(n: int, cfg: GraphConfig, args: argparse.Namespace, edges: list) -> dict:
    """Top-k recall against brute force over all nodes, for sampled query nodes."""
    x = dataset(n, args.dim, args.noise, args.seed)
    x = similarity.normalise(x, x.astype(np.float64).mean(axis=0) if cfg.centre else None)
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(n, min(n, args.queries), replace=False))
    got: dict[str, set[str]] = {}
    for s, t, _ in edges:
        got.setdefault(s, set()).add(t)
    hits = total = 0
    top_weights = []
    for start in range(0, len(queries), 512):
        q = queries[start : start + 512]
        sims = x[q] @ x.T
        sims[np.arange(len(q)), q] = -np.inf
        for row, qi in zip(sims, q.tolist(), strict=True):
            # The k best (ties to the lower index), without sorting the whole row.
            part = np.argpartition(-row, min(cfg.max_neighbours, n - 1))[: cfg.max_neighbours]
            best = part[np.lexsort((part, -row[part]))]
            best = best[row[best] >= cfg.similarity_threshold]
            top_weights += row[best].tolist()
            truth = {node_id(j) for j in best.tolist()}
            hits += len(truth & got.get(node_id(qi), set()))
            total += len(truth)
    return {
        "recall": hits / max(total, 1),
        "queries": len(queries),
        "exact_topk_mean_cosine": float(np.mean(top_weights)) if top_weights else None,
    }


def run_nsl(n: int, cfg: GraphConfig, args: argparse.Namespace, tmp: str) -> dict:
    """nsl.tools.build_graph with the same threshold and LSH settings (no top-k, no centring)."""
    import neural_structured_learning as nsl
    import tensorflow as tf

    x = dataset(n, args.dim, args.noise, args.seed)
    path = f"{tmp}/emb.tfrecord"
    with tf.io.TFRecordWriter(path) as w:
        for i, row in enumerate(x):
            ex = tf.train.Example()
            ex.features.feature["id"].bytes_list.value.append(node_id(i).encode())
            ex.features.feature["embedding"].float_list.value.extend(row.tolist())
            w.write(ex.SerializeToString())
    rounds = min(cfg.lsh_rounds, args.nsl_max_rounds) if cfg.lsh_splits else 1
    start = time.perf_counter()
    nsl.tools.build_graph_from_config(
        [path],
        f"{tmp}/nsl.tsv",
        nsl.configs.GraphBuilderConfig(
            similarity_threshold=cfg.similarity_threshold,
            lsh_splits=cfg.lsh_splits,
            lsh_rounds=rounds,
            random_seed=cfg.seed,
        ),
    )
    seconds = time.perf_counter() - start
    full_rounds = cfg.lsh_rounds if cfg.lsh_splits else 1
    return {
        "nsl_seconds": seconds * full_rounds / rounds,
        "nsl_extrapolated_from_rounds": rounds if rounds < full_rounds else None,
        "nsl_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def config_for(n: int, args: argparse.Namespace) -> GraphConfig:
    splits = args.splits if args.splits >= 0 else max(0, math.ceil(math.log2(n / 1000)))
    return GraphConfig(
        similarity_threshold=args.threshold,
        max_neighbours=args.k,
        lsh_splits=splits,
        lsh_rounds=args.rounds,
        lsh_rounds_per_shuffle=args.rounds_per_shuffle,
        max_bucket_size=args.max_bucket_size,
        centre=True,
        seed=args.seed,
    )


def write_embeddings(uri: str, labelled: int, unlabelled: int, args: argparse.Namespace) -> None:
    """Embedding examples as the Embedder writes them: train holds `labelled` windows with a
    label (their cluster's class) and `unlabelled` with the empty label, one pseudo-speaker per
    WINDOWS_PER_SPEAKER windows; eval two labelled speakers for the selection. Each cluster
    of windows is one class, so label homophily shows whether the graph found them."""
    import tensorflow as tf

    from emograph.components import features as F
    from emograph.components.embedder.embed import embedding_example

    n = labelled + unlabelled
    eval_n = 2 * WINDOWS_PER_SPEAKER
    rng = np.random.default_rng(args.seed)
    clusters = rng.integers(0, max((n + eval_n) // CLUSTER_SIZE, CLASSES), n + eval_n)
    views = {}
    for name, (dim, noise) in SOURCES.items():  # one clustering, seen through each source
        centres = rng.standard_normal((clusters.max() + 1, dim)).astype(np.float32)
        views[name] = centres[clusters] + noise * rng.standard_normal(
            (n + eval_n, dim), dtype=np.float32
        )
    order = {"train": range(n), "eval": range(n, n + eval_n)}
    for split, rows in order.items():
        path = f"{uri}/Split-{split}/embeddings-00000-of-00001.gz"
        tf.io.gfile.makedirs(f"{uri}/Split-{split}")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in rows:
                label = "" if split == "train" and i >= labelled else f"c{clusters[i] % CLASSES}"
                carried = {
                    F.LABEL: label.encode(),
                    F.SPEAKER: f"{split}/s{i // WINDOWS_PER_SPEAKER}".encode(),
                }
                vectors = {name: view[i] for name, view in views.items()}
                writer.write(embedding_example(node_id(i).encode(), vectors, carried))


def one_component(unlabelled: int, args: argparse.Namespace) -> dict:
    """The GraphBuilder step over `args.labelled` labelled and `unlabelled` unlabelled windows."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from emograph.components.graph.component import build_graph

    n = args.labelled + unlabelled
    cfg = dataclasses.replace(config_for(n, args), embedding_source=AUTO, candidates=tuple(SOURCES))
    with tempfile.TemporaryDirectory() as tmp:
        write_embeddings(f"{tmp}/embeddings", args.labelled, unlabelled, args)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        stats = build_graph(
            f"{tmp}/embeddings",
            f"{tmp}/graph",
            cfg,
            options=PipelineOptions(["--direct_running_mode=in_memory"]),
        )
        seconds = time.perf_counter() - start
    return {
        "labelled": args.labelled,
        "unlabelled": unlabelled,
        "nodes": stats["nodes"],
        "lsh_splits": cfg.lsh_splits,
        "lsh_rounds": cfg.lsh_rounds,
        "lsh_rounds_per_shuffle": cfg.lsh_rounds_per_shuffle,
        "chosen": stats["selection"]["chosen"],
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_build_mb": before,
        "edges": stats["edges"],
        "isolated_nodes": stats["isolated_nodes"],
        "label_homophily": stats["label_homophily"],
        "label_chance": stats["label_chance"],
    }


def one(n: int, args: argparse.Namespace) -> dict:
    cfg = config_for(n, args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.nsl_only:
            return run_nsl(n, cfg, args, tmp)
        seconds = run_beam(n, cfg, args, f"{tmp}/graph")
        usage = [resource.getrusage(w).ru_maxrss / 1024 for w in (0, -1)]  # SELF, CHILDREN
        edges = similarity.read_tsv(f"{tmp}/graph-*.tsv")
    return {
        "nodes": n,
        "dim": args.dim,
        "lsh_splits": cfg.lsh_splits,
        "lsh_rounds": cfg.lsh_rounds,
        "lsh_rounds_per_shuffle": cfg.lsh_rounds_per_shuffle,
        "max_neighbours": cfg.max_neighbours,
        "threshold": cfg.similarity_threshold,
        "workers": args.workers,
        "seconds": seconds,
        "peak_rss_mb": max(usage),
        "edges": len(edges),
        **recall(n, cfg, args, edges),
    }


def _subprocess(n: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.graph", "--one", str(n), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def parse_size(text: str) -> int:
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10k,100k")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--noise", type=float, default=0.4, help="within-cluster cosine ~1/(1+noise²)")
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--splits", type=int, default=-1, help="-1: ceil(log2(N / 1000))")
    ap.add_argument("--rounds", type=int, default=18)
    ap.add_argument("--rounds_per_shuffle", type=int, default=1)
    ap.add_argument("--max_bucket_size", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=1, help=">1: multi_processing DirectRunner")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nsl", action="store_true", help="also time nsl.tools.build_graph (≤100k)")
    ap.add_argument(
        "--nsl_max_rounds",
        type=int,
        default=1000,
        help="time NSL on this many rounds and scale linearly",
    )
    ap.add_argument("--component", action="store_true", help="time the whole GraphBuilder step")
    ap.add_argument("--labelled", type=parse_size, default=5000, help="with --component")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--nsl_only", action="store_true", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.one:
        print(json.dumps((one_component if args.component else one)(args.one, args)))
        return
    extra = sys.argv[1:]  # the child ignores --sizes once --one is set
    rows = []
    for n in map(parse_size, args.sizes.split(",")):
        row = _subprocess(n, extra)
        if args.component:
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        if args.nsl and n <= 100_000:
            row |= _subprocess(n, [*extra, "--nsl_only"])
            row["speedup_vs_nsl"] = row["nsl_seconds"] / row["seconds"]
        rows.append(row)
        print(_table([row], header=len(rows) == 1), flush=True)
    results = COMPONENT_RESULTS if args.component else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"argv": sys.argv[1:], "runs": rows}, indent=2))


def _table(rows: list[dict], header: bool) -> str:
    cols = [
        "nodes",
        "lsh_splits",
        "lsh_rounds",
        "lsh_rounds_per_shuffle",
        "seconds",
        "peak_rss_mb",
        "edges",
        "recall",
    ]
    cols += ["nsl_seconds", "speedup_vs_nsl"]
    lines = [" | ".join(f"{c:>14}" for c in cols)] if header else []
    for r in rows:
        cells = [r.get(c) for c in cols]
        lines.append(
            " | ".join(f"{c:>14.3f}" if isinstance(c, float) else f"{c!s:>14}" for c in cells)
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
