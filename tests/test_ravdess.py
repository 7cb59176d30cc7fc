"""RAVDESS through the pipeline's ingest (skipped unless the corpus is on this machine).

Three of the 24 actors, copied into a temporary tree in RAVDESS' own layout, keep it quick (copies,
not symlinks: ingest rejects links that point outside the corpus root).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from emograph.components.config import EMOTIONS, AudioConfig, CorpusSpec, SplitConfig
from emograph.components.example_gen.ingest import run_ingest
from emograph.components.example_gen.records import SPLITS

RAVDESS = Path(
    os.environ.get(
        "EMOGRAPH_RAVDESS", Path(__file__).resolve().parents[2] / "shared/data/ravdess16k"
    )
)
ACTORS = ("Actor_01", "Actor_02", "Actor_03")

pytestmark = [
    pytest.mark.ravdess,
    pytest.mark.skipif(not RAVDESS.is_dir(), reason=f"RAVDESS not found at {RAVDESS}"),
]


def test_ravdess_subset_is_ingested_and_split_by_actor(tmp_path):
    corpus = tmp_path / "ravdess"
    for actor in ACTORS:
        (corpus / actor).mkdir(parents=True)
        for source in (RAVDESS / actor).iterdir():
            shutil.copyfile(source, corpus / actor / source.name)
    split = SplitConfig(eval_speakers=("ravdess/Actor_02",), test_speakers=("ravdess/Actor_03",))
    report = run_ingest(
        CorpusSpec("ravdess", str(corpus)), EMOTIONS, AudioConfig(), split, str(tmp_path / "out")
    )

    assert report["found"] == 60 * len(ACTORS) == report["ingested"] + report["rejected"]
    # calm (02) and surprised (08) are not in the shared vocabulary: 2 x 8 files per actor.
    assert report["rejected_by_reason"] == {"unknown_label": 16 * len(ACTORS)}
    assert {Path(r["path"]).name.split("-")[2] for r in report["rejections"]} == {"02", "08"}
    assert report["speakers"] == {"train": 1, "eval": 1, "test": 1}
    splits = json.loads((tmp_path / "out/report/splits.json").read_text())
    assert splits == {
        "ravdess/Actor_01": "train",
        "ravdess/Actor_02": "eval",
        "ravdess/Actor_03": "test",
    }
    assert all(report["clips"][name] == 44 for name in SPLITS)  # 60 - 16 per actor
    assert set(report["labels"]["train"]) == set(EMOTIONS)
