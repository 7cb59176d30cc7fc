"""Speaker-independent splits: a speaker's clips all land in one split, so eval and test
measure generalisation to unseen voices rather than memorised ones."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping

from emograph.components.config import SplitConfig

MIN_SPEAKERS = 3


class SplitError(ValueError):
    """A corpus the speaker split cannot use as given (too few speakers, a split left empty):
    the user's data or split settings must change, so the CLI reports it as a usage mistake."""


def assign_speakers(speakers: Iterable[str], cfg: SplitConfig) -> dict[str, str]:
    """Speaker -> "train", "eval" or "test" by the policy of `cfg` (see SplitConfig).

    The same seed and speakers give the same split, whatever their order. Raises ValueError when
    the policy leaves a split without speakers or names speakers the corpus lacks (SplitError
    for too few speakers, which no split setting can fix).
    """
    order = _shuffled(speakers, cfg.seed)
    if len(order) < MIN_SPEAKERS:
        raise SplitError(
            f"a speaker-independent train/eval/test split needs >= {MIN_SPEAKERS} speakers, "
            f"got {len(order)}: {sorted(order)}; ingest it together with another corpus: repeat "
            "--source for the teacher's data, or list the files of both in one manifest CSV "
            "(path,label,speaker)"
        )
    if cfg.train_speakers or cfg.eval_speakers or cfg.test_speakers:
        splits = _fixed(order, cfg)
    elif cfg.n_folds:
        splits = _fold(order, cfg)
    else:
        splits = _fractions(order, cfg)
    empty = sorted({"train", "eval", "test"} - set(splits.values()))
    if empty:
        raise ValueError(f"the split policy leaves {empty} without speakers")
    return splits


def _fractions(order: list[str], cfg: SplitConfig) -> dict[str, str]:
    """eval and test get round(fraction * n) speakers: test at least 1, eval at least 2 (so
    selection on validation sees speaker effects) unless that would empty train."""
    n = len(order)
    n_test = min(max(1, round(cfg.test_fraction * n)), n - 2)
    n_eval = min(max(2, round(cfg.eval_fraction * n)), n - 1 - n_test)
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
    """Test is fold `cfg.fold` (of `cfg.fold_speakers` if given, else of the seeded folds); eval
    a seeded share of the rest, at least 2 speakers (so selection on validation sees speaker
    effects) unless that would empty train."""
    if cfg.fold_speakers:
        known = set(order)
        unknown = sorted(s for fold in cfg.fold_speakers for s in fold if s not in known)
        if unknown:
            raise ValueError(
                f"fold_speakers name speakers not in the corpus: {unknown} (the corpus has "
                f"{len(known)} speakers, e.g. {sorted(known)[:3]})"
            )
        test = set(cfg.fold_speakers[cfg.fold])
    else:
        test = set(speaker_folds(order, cfg.folds, cfg.seed)[cfg.fold])
    rest = [s for s in order if s not in test]  # still in seeded order
    n_eval = min(max(2, round(cfg.eval_fraction * len(rest))), len(rest) - 1)
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


def extend_splits(
    known: Mapping[str, str], speakers: Iterable[str], cfg: SplitConfig
) -> dict[str, str]:
    """`known` plus a split for every new speaker, for a corpus that grows (watched ingest).

    Known speakers never move, so a speaker stays in one split across spans. With fixed lists a
    new speaker takes its listed split (train if unlisted; a listed speaker may arrive later).
    Otherwise new speakers, in seeded hash order, each join the split furthest below its
    fraction of the speakers seen so far, so the fractions hold as the corpus grows and the
    first speakers fill train, then test, then eval. Folds need the whole speaker set up front.
    """
    if cfg.n_folds:
        raise ValueError("folds need every speaker up front; a watched corpus grows: use lists")
    listed = {
        **dict.fromkeys(cfg.train_speakers, "train"),
        **dict.fromkeys(cfg.eval_speakers, "eval"),
        **dict.fromkeys(cfg.test_speakers, "test"),
    }
    fractions = {
        "train": 1 - cfg.eval_fraction - cfg.test_fraction,
        "test": cfg.test_fraction,
        "eval": cfg.eval_fraction,
    }
    splits = dict(known)
    counts = Counter(splits.values())
    for speaker in _shuffled(set(speakers) - set(splits), cfg.seed):
        if listed:
            name = listed.get(speaker, "train")
        else:
            n = len(splits) + 1
            name = max(fractions, key=lambda split: fractions[split] * n - counts[split])
        splits[speaker] = name
        counts[name] += 1
    return splits
