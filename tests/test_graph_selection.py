"""Homophily-driven graph selection on hand-made embeddings with known structure."""

import numpy as np
import pytest

from emograph.components.config import GraphConfig
from emograph.components.graph import selection

LABELS = ("angry", "sad", "happy")


def _nodes(n_speakers: int = 4, per_label: int = 4, seed: int = 0) -> selection.Nodes:
    """`emotion` clusters by label, `voice` by speaker, `noise` by nothing."""
    rng = np.random.default_rng(seed)
    label_centres, speaker_centres = rng.normal(size=(3, 8)), rng.normal(size=(n_speakers, 8))
    ids, labels, speakers, emotion, voice, noise = [], [], [], [], [], []
    for s in range(n_speakers):
        for li, label in enumerate(LABELS):
            for j in range(per_label):
                ids.append(f"s{s}-{label}-{j}")
                labels.append(label)
                speakers.append(f"s{s}")
                emotion.append(label_centres[li] + 0.1 * rng.normal(size=8))
                voice.append(speaker_centres[s] * 3 + 0.1 * rng.normal(size=8))
                noise.append(rng.normal(size=8))
    vectors = {"emotion": np.array(emotion), "voice": np.array(voice), "noise": np.array(noise)}
    return selection.Nodes(ids, vectors, np.array(labels), np.array(speakers))


def _config(**changes) -> GraphConfig:
    base = dict(
        candidates=("noise", "voice", "emotion", "voice+emotion"),
        candidate_thresholds=(0.0, 0.5),
        candidate_neighbours=(3,),
        speaker_centre=False,
    )
    return GraphConfig(**{**base, **changes})


def test_selection_picks_the_embedding_that_joins_emotions():
    result = selection.select(_nodes(), _nodes(seed=1), _config())
    assert result["chosen"]["source"] == "emotion"
    rows = {(r["source"], r["threshold"]): r for r in result["candidates"]}
    assert rows[("emotion", 0.0)]["validation"]["label_homophily"] > 0.9
    assert rows[("voice", 0.0)]["validation"]["speaker_homophily"] > 0.9
    assert (
        rows[("voice", 0.0)]["validation"]["score"] < rows[("emotion", 0.0)]["validation"]["score"]
    )
    assert "train" in rows[("emotion", 0.0)]  # measured on the train sample too
    assert len(result["candidates"]) == 4 * 2 * 1


def test_speaker_penalty_decides_between_label_and_speaker_agreement():
    """A combination that is homophilous in both: kept without penalty, beaten with one."""
    nodes = _nodes()
    cfg = dict(candidates=("voice+emotion:3", "emotion"), candidate_thresholds=(0.0,))
    free = selection.select(nodes, None, _config(speaker_penalty=0.0, **cfg))
    penalised = selection.select(nodes, None, _config(speaker_penalty=5.0, **cfg))
    rows = {r["source"]: r["validation"] for r in free["candidates"]}
    assert rows["voice+emotion:3"]["speaker_homophily"] > rows["emotion"]["speaker_homophily"]
    assert penalised["chosen"]["source"] == "emotion"


def test_speaker_centring_removes_the_voice():
    nodes = _nodes()
    raw = selection.measure(nodes, "voice+emotion", 0.0, 3, _config(speaker_centre=False))
    centred = selection.measure(nodes, "voice+emotion", 0.0, 3, _config(speaker_centre=True))
    assert raw["speaker_homophily"] == 1.0
    assert centred["speaker_homophily"] < 0.5 and centred["label_homophily"] > 0.9


def test_forbidding_same_speaker_edges_keeps_other_speakers_neighbours():
    nodes = _nodes(per_label=2)  # 6 clips a speaker: a node's 3 x 3 nearest reach other voices
    edges = selection.candidate_graph(nodes, "voice", 0.0, 3, _config(same_speaker_weight=0.0))
    speaker = dict(zip(nodes.ids, nodes.speakers, strict=True))
    assert edges and all(speaker[s] != speaker[t] for s, t, _ in edges)
    assert {s for s, _, _ in edges} == set(nodes.ids)  # nobody is left without neighbours


def test_a_threshold_nothing_passes_scores_lowest():
    row = selection.measure(_nodes(), "noise", 0.999, 3, _config())
    assert row["edges"] == 0 and row["score"] == float("-inf")


def test_empty_validation_and_unknown_sources_are_refused():
    nodes = _nodes()
    empty = selection.Nodes([], {}, np.array([]), np.array([]))
    with pytest.raises(ValueError, match="eval split is empty"):
        selection.select(empty, None, _config())
    with pytest.raises(ValueError, match=r"no \['teacher'\] embeddings"):
        selection.select(nodes, None, _config(candidates=("teacher",)))


def test_best_per_source_keeps_one_row_each():
    result = selection.select(_nodes(), None, _config())
    best = selection.best_per_source(result)
    assert [r["source"] for r in best] == ["noise", "voice", "emotion", "voice+emotion"]


def test_sample_of_records_is_seeded_and_bounded():
    records = [
        {"id": f"n{i}", "vectors": {"x": np.full(2, i, np.float32)}, "label": "a", "speaker": "s"}
        for i in range(50)
    ]
    a = selection.Nodes.from_records(records, 10, seed=3)
    b = selection.Nodes.from_records(records, 10, seed=3)
    assert a.ids == b.ids and len(a.ids) == 10 and a.vectors["x"].shape == (10, 2)
