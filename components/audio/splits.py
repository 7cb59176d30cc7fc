"""Speaker-independent splits: a speaker's clips all land in one split, so eval and test
measure generalisation to unseen voices rather than memorised ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pipeline.config import SplitConfig


def assign_speakers(speakers: Iterable[str], cfg: SplitConfig) -> dict[str, str]:
    """Speaker -> "train", "eval" or "test"; the same seed and speakers give the same split.

    eval and test get round(fraction * n) speakers (at least 1 each, leaving train at least 1);
    train gets the rest.
    """
    order = _shuffled(speakers, cfg.seed)
    n = len(order)
    if n < 3:
        raise ValueError(
            f"a speaker-independent train/eval/test split needs >= 3 speakers, got {n}: {order}"
        )
    n_test = min(max(1, round(cfg.test_fraction * n)), n - 2)
    n_eval = min(max(1, round(cfg.eval_fraction * n)), n - 1 - n_test)
    splits = ["test"] * n_test + ["eval"] * n_eval + ["train"] * (n - n_test - n_eval)
    return dict(zip(order, splits, strict=True))


def speaker_folds(speakers: Iterable[str], k: int, seed: int) -> list[list[str]]:
    """`k` disjoint speaker folds of near-equal size (each sorted), for cross-validation."""
    order = _shuffled(speakers, seed)
    if not 2 <= k <= len(order):
        raise ValueError(f"need 2 <= k <= number of speakers ({len(order)}), got k={k}")
    return [sorted(order[i::k]) for i in range(k)]


def _shuffled(speakers: Iterable[str], seed: int) -> list[str]:
    """Unique speakers in a seeded hash order: stable across Python versions and machines, and a
    speaker keeps its place relative to the others when speakers are added or removed."""
    return sorted(set(speakers), key=lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
