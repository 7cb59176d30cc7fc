"""Graph statistics: is the teacher's graph useful (label homophily) or a speaker graph?

Degrees and homophily are over the undirected graph (a pair counts once, whichever directions
are present), since a top-k graph is directed but NSL regularises along either direction.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from emograph.components.features import UNLABELLED


def graph_statistics(
    edges: Iterable[tuple[str, str, float]],
    node_ids: Iterable[str],
    labels: Mapping[str, str] | None = None,
    speakers: Mapping[str, str] | None = None,
) -> dict:
    """Size, degrees, weights and homophily (with its chance rate) of a graph; JSON-ready.
    Label homophily counts labelled nodes only (an empty label is an unlabelled clip)."""
    nodes = set(node_ids)
    if labels is not None:
        labels = {node: label for node, label in labels.items() if label != UNLABELLED}
    pairs: dict[tuple[str, str], float] = {}
    for s, t, w in edges:
        if s != t:
            key = (s, t) if s < t else (t, s)
            pairs[key] = max(w, pairs.get(key, -np.inf))
    degree = Counter({n: 0 for n in nodes})
    for s, t in pairs:
        degree[s] += 1
        degree[t] += 1
    degrees = list(degree.values())
    counts, bin_edges = np.histogram(list(pairs.values()), bins=20)
    stats = {
        "nodes": len(degree),
        "edges": len(pairs),
        "isolated_nodes": sum(d == 0 for d in degrees),
        "mean_degree": statistics.fmean(degrees) if degrees else 0.0,
        "median_degree": statistics.median(degrees) if degrees else 0.0,
        "degree_histogram": {str(d): c for d, c in sorted(Counter(degrees).items())},
        "weight_histogram": {"bin_edges": bin_edges.tolist(), "counts": counts.tolist()},
    }
    for name, attr in (("label", labels), ("speaker", speakers)):
        if attr is not None:
            stats[f"{name}_homophily"], stats[f"{name}_chance"] = _homophily(pairs, degree, attr)
    return stats


def _homophily(
    pairs: Iterable[tuple[str, str]], nodes: Iterable[str], attr: Mapping[str, str]
) -> tuple[float | None, float | None]:
    """Share of edges joining equal values, and that share if edges were drawn at random."""
    known = [(attr[s] == attr[t]) for s, t in pairs if s in attr and t in attr]
    values = Counter(attr[n] for n in nodes if n in attr)
    total = sum(values.values())
    chance = sum((c / total) ** 2 for c in values.values()) if total else None
    return (sum(known) / len(known) if known else None), chance


def plot_graph_statistics(stats: dict, png_path: str) -> None:
    """Degree and weight histograms, and homophily against chance, in one PNG.

    `png_path` is any `tf.io.gfile` path: GraphBuilder writes into its artifact, an object-store
    path (gs://) on a cluster.
    """
    import matplotlib

    from emograph.components.evaluation.figures import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (deg, wts, hom) = plt.subplots(1, 3, figsize=(14, 4))
    hist = stats["degree_histogram"]
    deg.bar([int(d) for d in hist], list(hist.values()))
    deg.set(title=f"degree (mean {stats['mean_degree']:.1f})", xlabel="degree", ylabel="nodes")
    bins = stats["weight_histogram"]["bin_edges"]
    wts.stairs(stats["weight_histogram"]["counts"], bins, fill=True)
    wts.set(title=f"edge weight ({stats['edges']} edges)", xlabel="cosine", ylabel="edges")
    names = [n for n in ("label", "speaker") if stats.get(f"{n}_homophily") is not None]
    x = np.arange(len(names))
    hom.bar(x - 0.2, [stats[f"{n}_homophily"] for n in names], 0.4, label="graph")
    hom.bar(x + 0.2, [stats[f"{n}_chance"] for n in names], 0.4, label="chance")
    hom.set(title="homophily", xticks=x, xticklabels=names, ylim=(0, 1))
    hom.legend()
    fig.tight_layout()
    save_figure(fig, png_path, dpi=100)
