"""Label propagation over the graph: which unlabelled clips get which label."""

import numpy as np
import pytest

from emograph.components.features import UNLABELLED_ID
from emograph.components.models.propagation import clip_labels, propagate

U = UNLABELLED_ID


def test_labels_flow_along_paths_and_stop_where_no_path_leads():
    labels = {"a1:0": 0, "a2:0": U, "a3:0": U, "b1:0": 1, "b2:0": U, "c:0": U}
    edges = [("a1:0", "a2:0", 0.9), ("a3:0", "a2:0", 0.8), ("b1:0", "b2:0", 0.7)]
    edges += [("a1:0", "elsewhere:0", 1.0), ("b2:0", "b2:0", 1.0)]  # unknown node, self loop
    scores = propagate(edges, labels, classes=2)
    assert set(scores) == set(labels)
    assert [int(np.argmax(scores[n])) for n in ("a2:0", "a3:0", "b2:0")] == [0, 0, 1]
    assert scores["a2:0"][0] > scores["a3:0"][0] > 0  # farther from the seed, weaker
    assert not scores["c:0"].any()
    clips = {node: node.split(":")[0] for node in labels}
    assert clip_labels(scores, labels, clips) == {"a2": 0, "a3": 0, "b2": 1}


def test_a_clip_takes_the_class_of_its_windows_summed_scores():
    labels = {"x:0": 0, "y:0": 1, "u:0": U, "u:1": U, "u:2": U}
    edges = [("x:0", "u:0", 1.0), ("y:0", "u:1", 1.0), ("y:0", "u:2", 1.0)]
    scores = propagate(edges, labels, classes=2)
    clips = {node: node.split(":")[0] for node in labels}
    assert clip_labels(scores, labels, clips) == {"u": 1}  # two windows near y, one near x
    # A clip with one labelled window keeps its own label: it is not relabelled.
    labels["u:0"] = 0
    assert "u" not in clip_labels(propagate(edges, labels, classes=2), labels, clips)


def test_edges_count_in_both_directions_and_negative_weights_not_at_all():
    labels = {"s:0": 1, "t:0": U, "n:0": U}
    scores = propagate([("t:0", "s:0", 0.5), ("s:0", "n:0", -0.4)], labels, classes=3)
    assert np.argmax(scores["t:0"]) == 1 and not scores["n:0"].any()


def test_alpha_must_leave_room_for_the_seeds():
    with pytest.raises(ValueError, match="alpha"):
        propagate([], {"a:0": 0}, classes=1, alpha=1.0)


def test_priors_seed_the_unlabelled_nodes_and_their_neighbours_smooth_them():
    labels = {"a:0": 0, "u:0": U, "u:1": U, "v:0": U}
    edges = [("a:0", "u:0", 1.0), ("u:0", "u:1", 1.0)]
    priors = {"u:0": np.array([0.2, 0.8]), "u:1": np.array([0.4, 0.6]), "v:0": [0.9, 0.1]}
    scores = propagate(edges, labels, classes=2, priors=priors)
    assert np.argmax(scores["v:0"]) == 0  # no edge: its own prior alone
    # u:1's prior says class 1; its neighbour u:0 sits next to a labelled class-0 window.
    assert scores["u:1"][0] / scores["u:1"].sum() > 0.4
    # A labelled node is never reseeded by a prior.
    again = propagate(edges, labels, classes=2, priors={**priors, "a:0": np.array([0.0, 1.0])})
    assert np.allclose(again["a:0"], scores["a:0"])


def test_a_share_keeps_the_clips_whose_class_is_most_certain():
    labels = {"x:0": U, "x:1": U, "y:0": U, "z:0": U}
    scores = {
        "x:0": np.array([0.9, 0.1]),
        "x:1": np.array([0.1, 0.5]),  # x: 1.0 of 1.6
        "y:0": np.array([0.2, 0.6]),  # y: 0.75
        "z:0": np.array([0.0, 0.0]),  # not reached: never counted
    }
    clips = {node: node.split(":")[0] for node in labels}
    assert clip_labels(scores, labels, clips) == {"x": 0, "y": 1}
    assert clip_labels(scores, labels, clips, share=0.5) == {"y": 1}
    assert clip_labels(scores, labels, clips, share=0.1) == {"y": 1}  # rounded up


def test_self_training_labels_the_clips_whose_mean_probability_is_confident():
    from emograph.components.models.propagation import confident_clips

    probabilities = {"x:0": np.array([0.9, 0.1]), "x:1": np.array([0.7, 0.3])}
    probabilities |= {"y:0": np.array([0.6, 0.4]), "y:1": np.array([0.2, 0.8])}
    clips = {node: node.split(":")[0] for node in probabilities}
    assert confident_clips(probabilities, clips, 0.8) == {"x": 0}  # x: 0.8, y: 0.6 at most
    assert confident_clips(probabilities, clips, 0.5) == {"x": 0, "y": 1}
