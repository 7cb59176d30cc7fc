"""Per-example neighbour packing, feature for feature as `nsl.tools.pack_nbrs` does it.

pack_nbrs copies *every* feature of a neighbour (its id and label included) under
`NL_nbr_{i}_`, adds `NL_nbr_{i}_weight` (float32) and `NL_num_nbrs` (int64), orders neighbours
by (weight, id) descending and pads nothing: a seed without neighbours gets `NL_num_nbrs = 0`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import tensorflow as tf

from emograph.components.features import NBR_PREFIX, NBR_WEIGHT_SUFFIX, NUM_NBRS


def example_id(example: tf.train.Example, id_feature: str = "id") -> str:
    """The example's id: the first value of its bytes feature `id_feature`, decoded."""
    values = example.features.feature[id_feature].bytes_list.value
    if not values:
        raise ValueError(f"example has no bytes feature {id_feature!r}")
    return values[0].decode("utf-8")


def select_neighbours(
    candidates: Iterable[tuple[float, str, bytes]], max_neighbours: int
) -> list[tuple[float, str, bytes]]:
    """The heaviest (weight, id, serialized example) triples, ties to the larger id; 0 = all."""

    def rank(c: tuple[float, str, bytes]) -> tuple[float, str]:
        return c[0], c[1]

    if max_neighbours:
        return heapq.nlargest(max_neighbours, candidates, key=rank)
    return sorted(candidates, key=rank, reverse=True)


def pack_example(
    seed: tf.train.Example, neighbours: Sequence[tuple[float, tf.train.Example]]
) -> tf.train.Example:
    """A copy of `seed` with the given (weight, example) neighbours merged in, in that order."""
    merged = tf.train.Example()
    merged.CopyFrom(seed)
    features = merged.features.feature
    features[NUM_NBRS].int64_list.value.append(len(neighbours))
    for i, (weight, nbr) in enumerate(neighbours):
        prefix = f"{NBR_PREFIX}{i}_"
        features[f"{NBR_PREFIX}{i}{NBR_WEIGHT_SUFFIX}"].float_list.value.append(weight)
        for name, value in nbr.features.feature.items():
            features[prefix + name].CopyFrom(value)
    return merged
