"""Corpus adapters: labels, speakers and clip ids per naming scheme; every file accounted for."""

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emograph.components.audio import corpora
from emograph.components.audio.corpora import SUPPORTED_CORPORA, list_clips
from emograph.components.audio.decode import load_audio
from emograph.components.config import EMOTIONS, CorpusSpec

RAVDESS = Path(
    os.environ.get(
        "EMOGRAPH_RAVDESS", Path(__file__).resolve().parents[2] / "shared/data/ravdess16k"
    )
)
EMOVO = Path(
    os.environ.get("EMOGRAPH_EMOVO", Path(__file__).resolve().parents[2] / "shared/data/emovo16k")
)


def touch_audio(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, np.full(160, 0.1, np.float32), 16000, format="WAV")


def outcome(spec: CorpusSpec, classes=EMOTIONS) -> dict[str, tuple[str, ...]]:
    """Relative path -> (label, speaker) for clips, ("rejected", reason) for rejections."""
    clips, rejections = list_clips(spec, classes)
    root = Path(spec.path).absolute()
    result = {Path(c.path).relative_to(root).as_posix(): (c.label, c.speaker) for c in clips}
    for r in rejections:
        result[Path(r.path).relative_to(root).as_posix()] = ("rejected", r.reason)
    return result


def test_ravdess(tmp_path):
    touch_audio(
        tmp_path,
        "Actor_01/03-01-05-01-01-01-01.wav",
        "Actor_01/03-01-01-01-02-02-01.flac",
        "Actor_02/03-01-02-02-01-01-02.wav",  # calm: not in the vocabulary
        "Actor_02/03-01-08-02-01-01-02.wav",  # surprised
        "Actor_02/03-02-04-01-01-01-02.wav",  # song
        "Actor_02/03-01-09-01-01-01-02.wav",  # no such emotion
        "Actor_02/notes.wav",
    )
    (tmp_path / "README.txt").write_text("not audio, not listed")
    assert outcome(CorpusSpec("ravdess", str(tmp_path))) == {
        "Actor_01/03-01-05-01-01-01-01.wav": ("angry", "ravdess/Actor_01"),
        "Actor_01/03-01-01-01-02-02-01.flac": ("neutral", "ravdess/Actor_01"),
        "Actor_02/03-01-02-02-01-01-02.wav": ("rejected", "unknown_label"),
        "Actor_02/03-01-08-02-01-01-02.wav": ("rejected", "unknown_label"),
        "Actor_02/03-02-04-01-01-01-02.wav": ("rejected", "not_speech"),
        "Actor_02/03-01-09-01-01-01-02.wav": ("rejected", "unknown_label"),
        "Actor_02/notes.wav": ("rejected", "bad_name"),
    }


def test_crema_d_tess_emo_db_savee(tmp_path):
    touch_audio(tmp_path / "crema", "1001_DFA_ANG_XX.wav", "1091_TIE_FEA_HI.wav", "1001_DFA.wav")
    assert outcome(CorpusSpec("crema-d", str(tmp_path / "crema"))) == {
        "1001_DFA_ANG_XX.wav": ("angry", "crema-d/1001"),
        "1091_TIE_FEA_HI.wav": ("fearful", "crema-d/1091"),
        "1001_DFA.wav": ("rejected", "bad_name"),
    }
    touch_audio(
        tmp_path / "tess",
        "OAF_angry/OAF_back_angry.wav",
        "YAF_fear/YAF_bath_fear.wav",
        "OAF_neutral/OA_bite_neutral.wav",
        "YAF_pleasant_surprised/YAF_bath_ps.wav",
    )
    assert outcome(CorpusSpec("tess", str(tmp_path / "tess"))) == {
        "OAF_angry/OAF_back_angry.wav": ("angry", "tess/OAF"),
        "YAF_fear/YAF_bath_fear.wav": ("fearful", "tess/YAF"),
        "OAF_neutral/OA_bite_neutral.wav": ("neutral", "tess/OAF"),
        "YAF_pleasant_surprised/YAF_bath_ps.wav": ("rejected", "unknown_label"),
    }
    touch_audio(tmp_path / "emodb", "wav/03a01Fa.wav", "wav/16b10Wb.wav", "wav/03a01Lc.wav")
    assert outcome(CorpusSpec("emo-db", str(tmp_path / "emodb"))) == {
        "wav/03a01Fa.wav": ("happy", "emo-db/03"),
        "wav/16b10Wb.wav": ("angry", "emo-db/16"),
        "wav/03a01Lc.wav": ("rejected", "unknown_label"),  # boredom
    }
    touch_audio(
        tmp_path / "savee", "DC_a01.wav", "JE_sa15.wav", "KL/su03.wav", "JK/d02.wav", "x01.wav"
    )
    assert outcome(CorpusSpec("savee", str(tmp_path / "savee"))) == {
        "DC_a01.wav": ("angry", "savee/DC"),
        "JE_sa15.wav": ("sad", "savee/JE"),
        "KL/su03.wav": ("rejected", "unknown_label"),
        "JK/d02.wav": ("disgust", "savee/JK"),
        "x01.wav": ("rejected", "bad_name"),
    }


def test_emovo(tmp_path):
    touch_audio(
        tmp_path,
        "f1/dis-f1-b1.flac",
        "m3/tri-m3-n5.wav",
        "gio-f2-l4.wav",  # no speaker folder: the speaker is in the name
        "m1/sor-m1-d2.wav",  # surprised: not in the vocabulary
        "m1/xyz-m1-d2.wav",  # no such emotion
        "f1/dis-x1-b1.wav",
        "f1/dis-f1.wav",
        "f1/DIS-F1-B1.wav",
    )
    assert outcome(CorpusSpec("emovo", str(tmp_path))) == {
        "f1/dis-f1-b1.flac": ("disgust", "emovo/f1"),
        "m3/tri-m3-n5.wav": ("sad", "emovo/m3"),
        "gio-f2-l4.wav": ("happy", "emovo/f2"),
        "m1/sor-m1-d2.wav": ("rejected", "unknown_label"),
        "m1/xyz-m1-d2.wav": ("rejected", "unknown_label"),
        "f1/dis-x1-b1.wav": ("rejected", "bad_name"),
        "f1/dis-f1.wav": ("rejected", "bad_name"),
        "f1/DIS-F1-B1.wav": ("rejected", "bad_name"),
    }
    # Surprised is a clip when the run's classes list it.
    classes = (*EMOTIONS, "surprised")
    spec = CorpusSpec("emovo", str(tmp_path))
    assert outcome(spec, classes)["m1/sor-m1-d2.wav"] == ("surprised", "emovo/m1")


def test_labels_outside_the_run_classes_are_rejected(tmp_path):
    touch_audio(tmp_path, "1001_DFA_ANG_XX.wav", "1001_DFA_HAP_XX.wav")
    assert outcome(CorpusSpec("crema-d", str(tmp_path)), classes=("angry", "sad")) == {
        "1001_DFA_ANG_XX.wav": ("angry", "crema-d/1001"),
        "1001_DFA_HAP_XX.wav": ("rejected", "unknown_label"),
    }


def test_clip_ids_depend_on_corpus_and_relative_path_only(tmp_path):
    touch_audio(
        tmp_path / "a", "Actor_01/03-01-05-01-01-01-01.wav", "Actor_01/03-01-05-01-01-02-01.wav"
    )
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    ids_a = [c.clip_id for c in list_clips(CorpusSpec("ravdess", str(tmp_path / "a")), EMOTIONS)[0]]
    ids_b = [c.clip_id for c in list_clips(CorpusSpec("ravdess", str(tmp_path / "b")), EMOTIONS)[0]]
    assert ids_a == ids_b and len(set(ids_a)) == 2


def test_manifest(tmp_path):
    root = tmp_path / "corpus"
    touch_audio(root, "s1/a.wav", "s2/ünïcødé 😀.wav", "s2/b.flac")
    touch_audio(tmp_path, "outside.wav")
    (root / "manifest.csv").write_text(
        "path,label,speaker\n"
        "s1/a.wav,Angry,s1\n"
        "s2/ünïcødé 😀.wav,sad,s2\n"
        "s2/b.flac,calm,s2\n"
        "s1/a.wav,angry,s1\n"
        "../outside.wav,sad,s3\n"
        f"{tmp_path / 'outside.wav'},sad,s3\n"
        "s1/gone.wav,sad,s1\n"
        "s2/b.flac,sad,\n",
        encoding="utf-8",
    )
    clips, rejections = list_clips(CorpusSpec("manifest", str(root / "manifest.csv")), EMOTIONS)
    assert [(c.path, c.label, c.speaker, c.corpus) for c in clips] == [
        (str(root / "s1/a.wav"), "angry", "manifest/s1", "manifest"),
        (str(root / "s2/ünïcødé 😀.wav"), "sad", "manifest/s2", "manifest"),
    ]
    assert [(r.path, r.reason) for r in rejections] == [
        (str(root / "s2/b.flac"), "unknown_label"),
        (str(root / "s1/a.wav"), "duplicate"),
        (str(tmp_path / "outside.wav"), "outside_root"),
        (str(tmp_path / "outside.wav"), "outside_root"),
        (str(root / "s1/gone.wav"), "missing"),
        (str(root / "s2/b.flac"), "duplicate"),
    ]
    # "synthetic" is the same reader pointed at the generator's folder.
    synthetic, _ = list_clips(CorpusSpec("synthetic", str(root)), EMOTIONS)
    assert [(c.label, c.speaker) for c in synthetic] == [
        ("angry", "synthetic/s1"),
        ("sad", "synthetic/s2"),
    ]


def test_config_errors_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus kind"):
        list_clips(CorpusSpec("timit", str(tmp_path)), EMOTIONS)
    with pytest.raises(ValueError, match="not found"):
        list_clips(CorpusSpec("ravdess", str(tmp_path / "nope")), EMOTIONS)
    (tmp_path / "manifest.csv").write_text("file,emotion\n")
    with pytest.raises(ValueError, match="lacks columns"):
        list_clips(CorpusSpec("synthetic", str(tmp_path)), EMOTIONS)


def test_mappings_target_the_vocabulary():
    assert set(SUPPORTED_CORPORA) == {
        "audio",
        "synthetic",
        "manifest",
        "ravdess",
        "crema-d",
        "tess",
        "emo-db",
        "savee",
        "emovo",
    }
    for mapping in [
        corpora.RAVDESS_LABELS,
        corpora.CREMA_D_LABELS,
        corpora.TESS_LABELS,
        corpora.EMO_DB_LABELS,
        corpora.SAVEE_LABELS,
        corpora.EMOVO_LABELS,
    ]:
        assert (
            set(EMOTIONS)
            <= set(mapping.values())
            <= set(EMOTIONS) | {"calm", "surprised", "boredom"}
        )


@pytest.mark.ravdess
@pytest.mark.skipif(not RAVDESS.is_dir(), reason=f"RAVDESS not found at {RAVDESS}")
def test_real_ravdess():
    clips, rejections = list_clips(CorpusSpec("ravdess", str(RAVDESS)), EMOTIONS)
    assert len(clips) + len(rejections) == 1440  # 24 actors x 60 speech files
    assert {r.reason for r in rejections} == {"unknown_label"}  # calm and surprised
    assert len({c.speaker for c in clips}) == 24
    assert {c.label for c in clips} == set(EMOTIONS)
    assert len({c.clip_id for c in clips}) == len(clips)
    for clip in clips[:: len(clips) // 4]:
        audio = load_audio(clip.path)
        assert audio.dtype == np.float32 and 2 * 16000 < len(audio) < 6 * 16000


@pytest.mark.skipif(not EMOVO.is_dir(), reason=f"EMOVO not found at {EMOVO}")
def test_real_emovo():
    spec = CorpusSpec("emovo", str(EMOVO))
    clips, rejections = list_clips(spec, (*EMOTIONS, "surprised"))
    assert len(clips) == 588 and rejections == []  # 6 actors x 14 sentences x 7 emotions
    speakers = {f"emovo/{sex}{i}" for sex in "fm" for i in (1, 2, 3)}
    assert {c.speaker for c in clips} == speakers
    labels = [c.label for c in clips]
    assert Counter(labels) == dict.fromkeys((*EMOTIONS, "surprised"), 84)
    assert len({c.clip_id for c in clips}) == len(clips)
    # With the shared vocabulary, surprised is rejected (as RAVDESS' is) and nothing else.
    clips6, rejections6 = list_clips(spec, EMOTIONS)
    assert len(clips6) == 504 and len(rejections6) == 84
    assert {(r.reason, r.detail) for r in rejections6} == {("unknown_label", "surprised")}
    for clip in clips[:: len(clips) // 4]:
        audio = load_audio(clip.path)
        assert audio.dtype == np.float32 and 16000 < len(audio) < 15 * 16000
