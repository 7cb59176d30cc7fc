"""Speaker-independent splits: a speaker's clips all land in one split, so eval and test
measure generalisation to unseen voices rather than memorised ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pipeline.config import SplitConfig


def assign_speakers(speakers: Iterable[str], cfg: SplitConfig) -> dict[str, str]:
    """Speaker -> "train", "eval" or "test" by the policy of `cfg` (see SplitConfig).

    The same seed and speakers give the same split, whatever their order. Raises ValueError when
    the policy leaves a split without speakers or names speakers the corpus lacks.
    """
    order = _shuffled(speakers, cfg.seed)
    if len(order) < 3:
        raise ValueError(
            f"a speaker-independent train/eval/test split needs >= 3 speakers, "
            f"got {len(order)}: {order}"
        )
    if cfg.train_speakers or cfg.eval_speakers or cfg.test_speakers:
        splits = _fixed(order, cfg)
    elif cfg.folds:
        splits = _fold(order, cfg)
    else:
        splits = _fractions(order, cfg)
    empty = sorted({"train", "eval", "test"} - set(splits.values()))
    if empty:
        raise ValueError(f"the split policy leaves {empty} without speakers")
    return splits


def _fractions(order: list[str], cfg: SplitConfig) -> dict[str, str]:
    """eval and test get round(fraction * n) speakers (at least 1 each, train at least 1)."""
    n = len(order)
    n_test = min(max(1, round(cfg.test_fraction * n)), n - 2)
    n_eval = min(max(1, round(cfg.eval_fraction * n)), n - 1 - n_test)
    splits = ["test"] * n_test + ["eval"] * n_eval + ["train"] * (n - n_test - n_eval)
    return dict(zip(order, splits, strict=True))


def _fixed(order: list[str], cfg: SplitConfig) -> dict[str, str]:
    """The listed speakers where listed, every other speaker in train."""
    known = set(order)
    unknown = sorted(
        s for s in (*cfg.train_speakers, *cfg.eval_speakers, *cfg.test_speakers) if s not in known
    )
    if unknown:
        raise ValueError(
            f"split lists name speakers not in the corpus: {unknown} (the corpus has "
            f"{len(known)} speakers, e.g. {sorted(known)[:3]})"
        )
    splits = dict.fromkeys(order, "train")
    splits.update(dict.fromkeys(cfg.eval_speakers, "eval"))
    splits.update(dict.fromkeys(cfg.test_speakers, "test"))
    return splits


def _fold(order: list[str], cfg: SplitConfig) -> dict[str, str]:
    """Test is fold `cfg.fold`; eval a seeded share of the rest (at least 1, train at least 1)."""
    test = set(speaker_folds(order, cfg.folds, cfg.seed)[cfg.fold])
    rest = [s for s in order if s not in test]  # still in seeded order
    n_eval = min(max(1, round(cfg.eval_fraction * len(rest))), len(rest) - 1)
    splits = dict.fromkeys(order, "train")
    splits.update(dict.fromkeys(test, "test"))
    splits.update(dict.fromkeys(rest[:n_eval], "eval"))
    return splits


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
