"""Homophily-driven choice of the graph: which embedding, threshold and top-k join clips of the
same emotion rather than of the same speaker.

Every candidate (source spec x threshold x top-k) is built as an exact graph over the
validation speakers' examples, whose labels may be used (they choose checkpoints too); test
speakers never take part. A candidate's score is

    coverage x (label homophily - label chance - penalty x max(0, speaker homophily - chance))

where coverage is the share of nodes with at least one neighbour: emotion agreement beyond
chance, discounted for voice agreement beyond chance, and for leaving nodes without a graph
signal. The same candidates are also measured on a sample of the train split (the graph's own
nodes), reported beside, so a reader can see whether the validation choice carries over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emograph.components.config import GraphConfig
from emograph.components.graph import prepare
from emograph.components.graph.similarity import exact_edges, normalise, top_k_edges
from emograph.components.graph.stats import graph_statistics


@dataclass(frozen=True)
class Nodes:
    """Some examples' candidate embeddings with their labels and speakers."""

    ids: list[str]
    vectors: dict[str, np.ndarray]  # source -> [n, d]
    labels: np.ndarray
    speakers: np.ndarray

    @classmethod
    def from_records(cls, records: Sequence[dict], limit: int, seed: int) -> Nodes:
        """From parsed embedding examples, a seeded sample of at most `limit` of them."""
        if len(records) > limit:
            keep = np.random.default_rng(seed).choice(len(records), limit, replace=False)
            records = [records[i] for i in sorted(keep)]
        names = records[0]["vectors"] if records else {}
        return cls(
            [r["id"] for r in records],
            {name: np.stack([r["vectors"][name] for r in records]) for name in names},
            np.asarray([r["label"] for r in records]),
            np.asarray([r["speaker"] for r in records]),
        )


def candidate_graph(nodes: Nodes, source: str, threshold: float, k: int, cfg: GraphConfig):
    """The edges the train graph would have with this choice, built exactly over `nodes`."""
    x = prepare.prepare(
        nodes.vectors, nodes.speakers, source, cfg.speaker_centre, cfg.speaker_whiten
    )
    x = normalise(x, x.mean(axis=0) if cfg.centre else None)
    if cfg.same_speaker_weight == 1:
        return exact_edges(nodes.ids, x, threshold, k)
    edges = exact_edges(nodes.ids, x, threshold, prepare.OVERFETCH * k)
    speakers = dict(zip(nodes.ids, nodes.speakers, strict=True))
    return top_k_edges(prepare.reweight_same_speaker(edges, speakers, cfg.same_speaker_weight), k)


def measure(nodes: Nodes, source: str, threshold: float, k: int, cfg: GraphConfig) -> dict:
    """Homophily, chance rates, coverage and score of one candidate on `nodes`."""
    edges = candidate_graph(nodes, source, threshold, k, cfg)
    stats = graph_statistics(
        edges,
        nodes.ids,
        labels=dict(zip(nodes.ids, nodes.labels, strict=True)),
        speakers=dict(zip(nodes.ids, nodes.speakers, strict=True)),
    )
    coverage = 1 - stats["isolated_nodes"] / max(stats["nodes"], 1)
    label_h, speaker_h = stats["label_homophily"], stats["speaker_homophily"]
    if label_h is None:  # no edges at all
        score = float("-inf")
    else:
        excess_speaker = max(0.0, (speaker_h or 0.0) - stats["speaker_chance"])
        score = coverage * (label_h - stats["label_chance"] - cfg.speaker_penalty * excess_speaker)
    return {
        "label_homophily": label_h,
        "label_chance": stats["label_chance"],
        "speaker_homophily": speaker_h,
        "speaker_chance": stats["speaker_chance"],
        "coverage": coverage,
        "edges": stats["edges"],
        "score": score,
    }


def select(validation: Nodes, train: Nodes | None, cfg: GraphConfig) -> dict:
    """Measures every candidate; returns {"chosen": {...}, "candidates": [rows]} (JSON-ready).

    Ties go to the earlier candidate in the config's order (simpler sources come first).
    """
    if not validation.ids:
        raise ValueError("graph selection needs validation examples; the eval split is empty")
    for spec in cfg.candidates:
        prepare.check_sources(spec, validation.vectors)
    rows = []
    for source in cfg.candidates:
        for threshold in cfg.candidate_thresholds:
            for k in cfg.candidate_neighbours:
                row = {"source": source, "threshold": threshold, "neighbours": k}
                row["validation"] = measure(validation, source, threshold, k, cfg)
                if train is not None and train.ids:
                    row["train"] = measure(train, source, threshold, k, cfg)
                rows.append(row)
    best = max(range(len(rows)), key=lambda i: (rows[i]["validation"]["score"], -i))
    chosen = {key: rows[best][key] for key in ("source", "threshold", "neighbours")}
    return {"chosen": chosen, "candidates": rows}


def best_per_source(selection: Mapping) -> list[dict]:
    """The best-scoring setting of each source: the side-by-side table of the reports."""
    best: dict[str, dict] = {}
    for row in selection["candidates"]:
        current = best.get(row["source"])
        if current is None or row["validation"]["score"] > current["validation"]["score"]:
            best[row["source"]] = row
    return list(best.values())
