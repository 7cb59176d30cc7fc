"""Corpus adapters: one file listing per corpus, labels mapped onto the shared vocabulary.

Each adapter turns a corpus' own naming scheme into `Clip`s (label, corpus-qualified speaker,
stable id) and `Rejection`s for files it cannot use, so every file found is accounted for. The
mapping dicts below send each corpus' emotion codes to `EMOTIONS`; codes whose emotion is not in
that vocabulary keep their own name (calm, surprised, boredom) and are therefore rejected as
"unknown_label" unless the run's classes list them. Calm is deliberately not merged into neutral:
RAVDESS acts it as a distinct, low-arousal positive state.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emograph.components.config import UNLABELLED_KIND, CorpusSpec
from emograph.components.features import UNLABELLED

SUPPORTED_CORPORA: dict[str, str] = {
    "synthetic": "emograph's generated corpus: a folder holding manifest.csv",
    "manifest": "any corpus described by a CSV with columns path,label,speaker",
    "ravdess": "RAVDESS speech, Actor_XX/03-01-EMOTION-INTENSITY-STATEMENT-REP-ACTOR.wav",
    "crema-d": "CREMA-D, 1001_DFA_ANG_XX.wav (speaker_sentence_emotion_level)",
    "tess": "TESS, OAF_back_angry.wav / YAF_... (two speakers: combine it with another corpus)",
    "emo-db": "Berlin EMO-DB, 03a01Fa.wav (speaker, text, emotion letter, version)",
    "savee": "SAVEE, DC_a01.wav or DC/a01.wav (speaker, emotion prefix, number)",
    "emovo": "EMOVO (Italian), f1/dis-f1-b1.wav (emotion, speaker f1-f3/m1-m3, sentence)",
    "audio": "unlabelled audio: a folder (one pseudo-speaker per sub-folder) or a CSV with "
    "path,speaker",
}

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"})

# RAVDESS emotion field (third of seven).
RAVDESS_LABELS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
# CREMA-D emotion field (third of four).
CREMA_D_LABELS = {
    "NEU": "neutral",
    "HAP": "happy",
    "SAD": "sad",
    "ANG": "angry",
    "FEA": "fearful",
    "DIS": "disgust",
}
# TESS: the last word of the file name ("ps" is pleasant surprise).
TESS_LABELS = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fear": "fearful",
    "disgust": "disgust",
    "ps": "surprised",
}
# EMO-DB: the German initial letter at position 6 (Wut, Langeweile, Ekel, Angst, Freude, Trauer).
EMO_DB_LABELS = {
    "N": "neutral",
    "F": "happy",
    "T": "sad",
    "W": "angry",
    "A": "fearful",
    "E": "disgust",
    "L": "boredom",
}
# SAVEE: the letters before the sentence number.
SAVEE_LABELS = {
    "n": "neutral",
    "h": "happy",
    "sa": "sad",
    "a": "angry",
    "f": "fearful",
    "d": "disgust",
    "su": "surprised",
}
# EMOVO: the Italian name's first three letters (disgusto, gioia, neutro, paura, rabbia,
# sorpresa, tristezza).
EMOVO_LABELS = {
    "dis": "disgust",
    "gio": "happy",
    "neu": "neutral",
    "pau": "fearful",
    "rab": "angry",
    "sor": "surprised",
    "tri": "sad",
}


@dataclass(frozen=True)
class Clip:
    """One usable source file."""

    path: str  # absolute
    label: str  # from the run's classes, or UNLABELLED
    speaker: str  # corpus-qualified, e.g. "ravdess/Actor_01"
    corpus: str
    clip_id: str  # stable: hash of corpus + path relative to the corpus root


@dataclass(frozen=True)
class Rejection:
    """One file left out, with a machine-readable reason and a human-readable detail.

    `corpus` (the kind, as on `Clip`) attributes it when several corpora are ingested together.
    """

    path: str
    reason: str
    detail: str = ""
    corpus: str = ""


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def list_clips(
    spec: CorpusSpec, classes: Sequence[str] | None
) -> tuple[list[Clip], list[Rejection]]:
    """Lists a corpus: the clips with a label in `classes` (None: any label, for audio whose
    labels will be dropped), and every other file as a rejection."""
    if spec.kind not in SUPPORTED_CORPORA:
        raise ValueError(
            f"unknown corpus kind {spec.kind!r}; supported: {sorted(SUPPORTED_CORPORA)}"
        )
    path = Path(os.path.normpath(Path(spec.path).absolute()))
    if spec.kind == "synthetic":
        return _list_manifest(path / "manifest.csv", spec.kind, classes)
    if spec.kind == "manifest":
        return _list_manifest(path, spec.kind, classes)
    if spec.kind == UNLABELLED_KIND and path.is_file():
        return _list_manifest(path, spec.kind, classes, UNLABELLED_COLUMNS)
    if not path.is_dir():
        raise ValueError(f"{spec.kind} corpus folder not found: {path}")
    parse = _pseudo_speaker(path) if spec.kind == UNLABELLED_KIND else _PARSERS[spec.kind]
    return _list_named(path, spec.kind, parse, classes)


def _pseudo_speaker(root: Path) -> Callable[[Path], tuple[str, str]]:
    """An unlabelled folder's files, one pseudo-speaker per first-level sub-folder (files at the
    top: one speaker named after the folder). Per-speaker normalisation then treats a sub-folder
    as one voice, so one folder per speaker (or per recording session) is the layout to use."""

    def parse(path: Path) -> tuple[str, str]:
        parts = path.relative_to(root).parts
        return UNLABELLED, parts[0] if len(parts) > 1 else root.name

    return parse


def strip_labels(clips: Sequence[Clip]) -> list[Clip]:
    """The same clips as unlabelled audio."""
    return [dataclasses.replace(clip, label=UNLABELLED) for clip in clips]


def clip_id(corpus: str, relative_path: str) -> str:
    """Stable across machines and mount points: only the corpus and the path inside it count."""
    return hashlib.sha1(f"{corpus}/{relative_path}".encode()).hexdigest()[:16]


class _Listing:
    """Accumulates clips and rejections of one corpus root."""

    def __init__(self, root: Path, corpus: str, classes: Sequence[str] | None) -> None:
        self.root, self.corpus = root, corpus
        self.classes = None if classes is None else set(classes)
        self.real_root = root.resolve()
        self.clips: list[Clip] = []
        self.rejections: list[Rejection] = []

    def outside(self, path: Path) -> bool:
        """Whether `path` lies outside the root once symlinks and ".." are resolved: a link in
        the corpus must not bring in files from elsewhere."""
        return not path.resolve().is_relative_to(self.real_root)

    def add(self, path: Path, label: str, speaker: str) -> None:
        known = self.classes is None or label in self.classes
        if not known and not (label == UNLABELLED and self.corpus == UNLABELLED_KIND):
            self.reject(path, "unknown_label", label)
            return
        relative = path.relative_to(self.root).as_posix()
        self.clips.append(
            Clip(
                str(path),
                label,
                f"{self.corpus}/{speaker}",
                self.corpus,
                clip_id(self.corpus, relative),
            )
        )

    def reject(self, path: Path | str, reason: str, detail: str = "") -> None:
        self.rejections.append(Rejection(str(path), reason, detail, self.corpus))


MANIFEST_COLUMNS = ("path", "label", "speaker")
UNLABELLED_COLUMNS = ("path", "speaker")  # an "audio" CSV: a label column, if any, is ignored


def _list_manifest(
    csv_path: Path,
    corpus: str,
    classes: Sequence[str] | None,
    needed: tuple[str, ...] = MANIFEST_COLUMNS,
) -> tuple[list[Clip], list[Rejection]]:
    """Rows of path,label,speaker (`needed`); paths are relative to the CSV's folder and stay
    inside it.

    The csv module's rules apply (quoting, an optional UTF-8 BOM); a row it cannot read, with the
    wrong number of fields or an empty path is rejected as "malformed_row" with its line
    number, named `<csv>:<line>`, so one bad row never stops the listing.
    """
    if not csv_path.is_file():
        raise ValueError(f"{corpus} manifest not found: {csv_path}")
    root = csv_path.parent
    listing = _Listing(root, corpus, classes)
    seen: set[Path] = set()
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, strict=True)
        header = [name.strip() for name in next(rows, [])]
        missing = sorted(set(needed) - set(header))
        if missing:
            raise ValueError(f"{csv_path} lacks columns {missing} (needs {','.join(needed)})")
        columns = [header.index(name) for name in needed]
        while True:
            first = rows.line_num + 1
            try:
                fields = next(rows)
            except StopIteration:
                break
            except csv.Error as e:
                problem = f"{e} (a field that opens a quote must close it)"
            else:
                if not fields:  # a blank line
                    continue
                problem = _malformed(fields, columns, len(header), rows.line_num - first)
                if not problem:
                    path, *label, speaker = (fields[i] for i in columns)
                    _add_manifest_row(listing, seen, path, *(label or [UNLABELLED]), speaker)
                    continue
            lines = f"line {first}" if rows.line_num == first else f"lines {first}-{rows.line_num}"
            listing.reject(f"{csv_path}:{first}", "malformed_row", f"{lines}: {problem}")
    return listing.clips, listing.rejections


def _malformed(fields: list[str], columns: list[int], width: int, extra_lines: int) -> str:
    """Why a manifest row cannot be read as its header's `width` columns ("" if it can)."""
    if len(fields) != width:
        return f"{len(fields)} fields where the header has {width} (is ',' the separator?)"
    if extra_lines:
        return "a quoted field spans several lines (an unclosed quote?)"
    if not fields[columns[0]].strip():
        return "empty path column"
    return ""


def _add_manifest_row(
    listing: _Listing, seen: set[Path], name: str, label: str, speaker: str
) -> None:
    """One well-formed manifest row: a clip, or a rejection saying why not."""
    root = listing.root
    path = Path(os.path.normpath(root / name))  # ".." cannot hide, nor can a symlink (outside)
    if listing.outside(path):
        listing.reject(
            path, "outside_root", f"{name!r} resolves to {path.resolve()}, outside {root}"
        )
    elif path in seen:
        listing.reject(path, "duplicate", "listed twice in the manifest")
    elif not path.is_file():
        listing.reject(path, "missing", "no such file")
    elif not speaker.strip():
        listing.reject(path, "no_speaker", "empty speaker column")
    else:
        listing.add(path, label.strip().lower(), speaker.strip())
    seen.add(path)


def _list_named(
    root: Path,
    corpus: str,
    parse: Callable[[Path], tuple[str, str]],
    classes: Sequence[str] | None,
) -> tuple[list[Clip], list[Rejection]]:
    """Every audio file under `root`, labelled from its name by `parse` -> (label, speaker)."""
    listing = _Listing(root, corpus, classes)
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        if listing.outside(path):
            listing.reject(path, "outside_root", f"a link to {path.resolve()}, outside {root}")
            continue
        try:
            listing.add(path, *parse(path))
        except _Reject as r:
            listing.reject(path, r.reason, r.detail)
    return listing.clips, listing.rejections


def _match(pattern: str, path: Path, name: str | None = None) -> re.Match[str]:
    match = re.fullmatch(pattern, name or path.stem)
    if match is None:
        raise _Reject("bad_name", f"{path.name} does not follow the corpus naming scheme")
    return match


def _label(mapping: dict[str, str], code: str) -> str:
    if code not in mapping:
        raise _Reject("unknown_label", f"emotion code {code!r}")
    return mapping[code]


def _parse_ravdess(path: Path) -> tuple[str, str]:
    """03-01-05-01-02-01-12: modality, channel, emotion, intensity, statement, repetition, actor."""
    modality, channel, emotion, *_, actor = _match(r"(\d\d)-" * 6 + r"(\d\d)", path).groups()
    if (modality, channel) != ("03", "01"):
        raise _Reject(
            "not_speech", f"modality {modality}, vocal channel {channel} (speech is 03-01)"
        )
    return _label(RAVDESS_LABELS, emotion), f"Actor_{actor}"


def _parse_crema_d(path: Path) -> tuple[str, str]:
    """1001_DFA_ANG_XX: speaker, sentence, emotion, intensity."""
    speaker, emotion = _match(r"(\d{4})_[A-Z]{3}_([A-Z]{3})_[A-Z]{2}", path).groups()
    return _label(CREMA_D_LABELS, emotion), speaker


def _parse_tess(path: Path) -> tuple[str, str]:
    """OAF_back_angry: speaker (older/younger actress), word, emotion; some files drop the F."""
    speaker, emotion = _match(r"(?i)(OA|YA)F?_[a-z]+_([a-z]+)", path).groups()
    return _label(TESS_LABELS, emotion.lower()), f"{speaker.upper()}F"


def _parse_emo_db(path: Path) -> tuple[str, str]:
    """03a01Fa: speaker, text, emotion letter, version."""
    speaker, emotion = _match(r"(\d\d)[ab]\d\d([A-Z])[a-z]", path).groups()
    return _label(EMO_DB_LABELS, emotion), speaker


def _parse_savee(path: Path) -> tuple[str, str]:
    """DC_a01 (flat release) or DC/a01 (per-speaker folders): speaker, emotion, sentence."""
    flat = re.fullmatch(r"([A-Z]{2})_(.+)", path.stem)
    speaker, name = flat.groups() if flat else (path.parent.name, path.stem)
    (emotion,) = _match(r"(sa|su|[adfhn])\d\d", path, name).groups()
    if not re.fullmatch(r"[A-Z]{2}", speaker):
        raise _Reject("bad_name", f"no speaker initials in {path.name} or its folder")
    return _label(SAVEE_LABELS, emotion), speaker


def _parse_emovo(path: Path) -> tuple[str, str]:
    """dis-f1-b1: emotion, speaker (f1-f3, m1-m3), sentence; per-speaker folders are optional."""
    emotion, speaker = _match(r"([a-z]{3})-([fm]\d)-[bdln]\d", path).groups()
    return _label(EMOVO_LABELS, emotion), speaker


_PARSERS: dict[str, Callable[[Path], tuple[str, str]]] = {
    "ravdess": _parse_ravdess,
    "crema-d": _parse_crema_d,
    "tess": _parse_tess,
    "emo-db": _parse_emo_db,
    "savee": _parse_savee,
    "emovo": _parse_emovo,
}
