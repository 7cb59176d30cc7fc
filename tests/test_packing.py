"""Neighbour packing: the per-example merge and the Beam join."""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import apache_beam as beam
import pytest
import tensorflow as tf

from emograph.components.neighbours.beam_pack import PackNeighbours
from emograph.components.neighbours.packing import example_id, pack_example, select_neighbours


def make_example(node_id: str, label: str = "sad", x: float = 0.0) -> tf.train.Example:
    ex = tf.train.Example()
    ex.features.feature["id"].bytes_list.value.append(node_id.encode())
    ex.features.feature["label"].bytes_list.value.append(label.encode())
    ex.features.feature["logmel"].float_list.value.extend([x, x + 1])
    return ex


def run_pack(examples, edges, tmp_path, **kwargs) -> dict[str, tf.train.Example]:
    path = str(tmp_path / "packed.tfrecord")
    with beam.Pipeline() as p:
        packed = (p | "Ex" >> beam.Create(examples), p | "Edges" >> beam.Create(edges)) | (
            PackNeighbours(**kwargs)
        )
        _ = (
            packed
            | beam.Map(lambda ex: ex.SerializeToString())
            | beam.io.WriteToTFRecord(path, shard_name_template="")
        )
    records = tf.data.TFRecordDataset(path).as_numpy_iterator()
    out = [tf.train.Example.FromString(r) for r in records]
    return {example_id(ex): ex for ex in out}


def test_example_id_needs_the_bytes_feature():
    assert example_id(make_example("x")) == "x"
    with pytest.raises(ValueError, match="'clip'"):
        example_id(make_example("x"), "clip")


def test_select_neighbours_orders_by_weight_then_larger_id():
    cands = [(0.5, "a", b""), (0.9, "b", b""), (0.5, "c", b""), (0.7, "d", b"")]
    assert [c[1] for c in select_neighbours(cands, 3)] == ["b", "d", "c"]
    assert [c[1] for c in select_neighbours(cands, 0)] == ["b", "d", "c", "a"]


def test_pack_example_copies_every_neighbour_feature_with_its_prefix():
    seed = make_example("s")
    packed = pack_example(
        seed, [(0.9, make_example("n1", "happy", 2.0)), (0.5, make_example("n2"))]
    )
    f = packed.features.feature
    assert f["NL_num_nbrs"].int64_list.value == [2]
    assert f["NL_nbr_0_weight"].float_list.value == pytest.approx([0.9])
    assert f["NL_nbr_0_id"].bytes_list.value == [b"n1"]
    assert f["NL_nbr_0_label"].bytes_list.value == [b"happy"]
    assert f["NL_nbr_0_logmel"].float_list.value == [2.0, 3.0]
    assert f["NL_nbr_1_id"].bytes_list.value == [b"n2"]
    assert "NL_num_nbrs" not in seed.features.feature  # the seed itself is untouched


def test_beam_packs_top_neighbours_and_keeps_lonely_examples(tmp_path):
    examples = [make_example(i, x=n) for n, i in enumerate("abcd")]
    edges = [("a", "b", 0.9), ("a", "c", 0.95), ("a", "d", 0.6), ("b", "a", 0.9), ("a", "zz", 1.0)]
    packed = run_pack(examples, edges, tmp_path, max_neighbours=2)
    assert set(packed) == set("abcd")
    a = packed["a"].features.feature
    assert a["NL_num_nbrs"].int64_list.value == [2]  # "zz" has no example: dropped, not counted
    assert [a[f"NL_nbr_{i}_id"].bytes_list.value[0] for i in range(2)] == [b"c", b"b"]
    assert a["NL_nbr_0_logmel"].float_list.value == [2.0, 3.0]
    assert packed["b"].features.feature["NL_num_nbrs"].int64_list.value == [1]
    assert packed["d"].features.feature["NL_num_nbrs"].int64_list.value == [0]
    assert packed["d"] == pack_example(examples[3], [])


def test_beam_undirected_edges_add_the_reverse_with_the_max_weight(tmp_path):
    examples = [make_example(i) for i in "abc"]
    edges = [("a", "b", 0.7), ("b", "a", 0.8), ("c", "a", 0.9)]
    packed = run_pack(examples, edges, tmp_path, max_neighbours=0, add_undirected_edges=True)
    a = packed["a"].features.feature
    assert [a[f"NL_nbr_{i}_id"].bytes_list.value[0] for i in range(2)] == [b"c", b"b"]
    assert a["NL_nbr_1_weight"].float_list.value == pytest.approx([0.8])
    assert packed["c"].features.feature["NL_num_nbrs"].int64_list.value == [1]


def test_beam_duplicate_example_ids_fail_naming_the_id(tmp_path):
    examples = [make_example("a"), make_example("a"), make_example("b")]
    with pytest.raises(Exception, match="duplicate example id 'a'"):
        run_pack(examples, [("b", "a", 0.9)], tmp_path, max_neighbours=1)
