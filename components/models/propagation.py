"""Label propagation over the similarity graph: labels for the unlabelled clips of few-labels runs.

Zhou et al. (2004), "Learning with local and global consistency": with W the symmetrised edge
weights, S = D^-1/2 W D^-1/2 and Y the one-hot labels of the labelled nodes (zero rows for the
others), F <- alpha S F + (1 - alpha) Y converges to (1 - alpha)(I - alpha S)^-1 Y. A clip takes
the class with the largest sum of its windows' F, so every window of a clip gets one label, as
clips are labelled. Nodes no path joins to a labelled one get no label.

With `priors` (a model's class probabilities for the unlabelled nodes) the unlabelled rows of Y
are those probabilities: propagation then smooths the model's predictions over the graph
instead of spreading the few labels alone (the "smooth" step of Huang et al. 2021, "Combining
label propagation and simple models out-performs graph neural networks").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import sparse

from emograph.components.features import UNLABELLED_ID


def propagate(
    edges: Iterable[tuple[str, str, float]],
    labels: Mapping[str, int],
    classes: int,
    alpha: float = 0.9,
    iterations: int = 50,
    priors: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Node -> its propagated class scores (length `classes`), for every node in `labels`
    (node -> class index, or UNLABELLED_ID). Edges are undirected; negative weights and edges
    to nodes outside `labels` are ignored. `priors` (node -> class probabilities) seed the
    unlabelled nodes they name."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    nodes = list(labels)
    index = {node: i for i, node in enumerate(nodes)}
    rows, cols, weights = [], [], []
    for source, target, weight in edges:
        if source in index and target in index and source != target and weight > 0:
            rows.append(index[source])
            cols.append(index[target])
            weights.append(weight)
    n = len(nodes)
    w = sparse.coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()
    w = w.maximum(w.T)  # undirected: the heavier of the two directions
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros(n), where=degree > 0)
    s = sparse.diags(scale) @ w @ sparse.diags(scale)
    seeds = np.zeros((n, classes))
    known = np.array([labels[node] != UNLABELLED_ID for node in nodes], bool)
    seeds[np.flatnonzero(known), [labels[node] for node in np.array(nodes)[known]]] = 1.0
    for node, prior in (priors or {}).items():
        if node in index and not known[index[node]]:
            seeds[index[node]] = prior
    scores = seeds.copy()
    for _ in range(iterations):
        scores = alpha * (s @ scores) + (1 - alpha) * seeds
    return {node: scores[i] for i, node in enumerate(nodes)}


def confident_clips(
    probabilities: Mapping[str, np.ndarray], clip_of: Mapping[str, str], confidence: float
) -> dict[str, int]:
    """Clip -> the top class of its windows' mean `probabilities` (node -> a model's class
    probabilities), for the clips where that class's mean probability reaches `confidence`:
    classic self-training's pseudo-labels, without the graph."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for node, p in probabilities.items():
        clip = clip_of[node]
        sums[clip] = sums.get(clip, 0.0) + p
        counts[clip] = counts.get(clip, 0) + 1
    means = {clip: total / counts[clip] for clip, total in sums.items()}
    return {clip: int(m.argmax()) for clip, m in means.items() if m.max() >= confidence}


def clip_labels(
    scores: Mapping[str, np.ndarray],
    labels: Mapping[str, int],
    clip_of: Mapping[str, str],
    share: float = 1.0,
) -> dict[str, int]:
    """Clip -> class (the largest of its windows' summed scores) for each clip none of whose
    windows is labelled but some of whose windows were reached by propagation (`scores` of
    `propagate`, `clip_of` node -> clip); with `share` < 1 only that share of them (rounded
    up) whose class holds the largest part of their scores."""
    totals: dict[str, np.ndarray] = {}
    labelled: set[str] = set()
    for node, score in scores.items():
        clip = clip_of[node]
        if labels[node] != UNLABELLED_ID:
            labelled.add(clip)
        totals[clip] = totals.get(clip, 0.0) + score
    reached = {
        clip: total for clip, total in totals.items() if clip not in labelled and np.max(total) > 0
    }
    certainty = {clip: np.max(total) / np.sum(total) for clip, total in reached.items()}
    count = math.ceil(share * len(reached))
    kept = sorted(reached, key=certainty.__getitem__, reverse=True)[:count]
    return {clip: int(np.argmax(reached[clip])) for clip in kept}
