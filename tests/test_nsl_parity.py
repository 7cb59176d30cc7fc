"""Parity with NSL's own tools: nsl.tools.build_graph_from_config and nsl.tools.pack_nbrs.

Both hold everything in memory and read one uncompressed TFRecord file, so they serve as the
reference on small inputs. nsl.tools has no top-k and no centring: graph parity runs without both.
"""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import apache_beam as beam
import neural_structured_learning as nsl
import numpy as np
import pytest
import tensorflow as tf

from emograph.components.config import GraphConfig
from emograph.components.graph import similarity
from emograph.components.graph.beam_graph import BuildSimilarityGraph, write_tsv
from emograph.components.neighbours.beam_pack import PackNeighbours
from emograph.components.neighbours.packing import example_id

THRESHOLD = 0.6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """200 clustered embeddings in examples with an id, a label and two more features."""
    tmp = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((12, 24))
    labels = rng.integers(0, len(centres), 200)
    emb = (centres[labels] + 0.6 * rng.standard_normal((200, 24))).astype(np.float32)
    ids = [f"clip{i:03d}:0" for i in range(200)]
    examples = []
    for i, node in enumerate(ids):
        ex = tf.train.Example()
        f = ex.features.feature
        f["id"].bytes_list.value.append(node.encode())
        f["embedding"].float_list.value.extend(emb[i].tolist())
        f["label"].bytes_list.value.append(f"class{labels[i] % 6}".encode())
        f["label_id"].int64_list.value.append(int(labels[i] % 6))
        examples.append(ex)
    path = str(tmp / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for ex in examples:
            w.write(ex.SerializeToString())
    return {"ids": ids, "emb": emb, "examples": examples, "path": path, "tmp": tmp}


def nsl_graph(corpus, name: str, **config) -> list[similarity.Edge]:
    out = str(corpus["tmp"] / f"{name}.tsv")
    cfg = nsl.configs.GraphBuilderConfig(similarity_threshold=THRESHOLD, **config)
    nsl.tools.build_graph_from_config([corpus["path"]], out, cfg)
    return similarity.read_tsv(out)


def beam_graph(corpus, name: str, cfg: GraphConfig) -> str:
    prefix = str(corpus["tmp"] / name)
    with beam.Pipeline() as p:
        rows = p | beam.Create(list(zip(corpus["ids"], corpus["emb"], strict=True)))
        write_tsv(rows | BuildSimilarityGraph(cfg), prefix, num_shards=1)
    return f"{prefix}.tsv"


def as_dict(edges) -> dict[tuple[str, str], float]:
    return {(s, t): w for s, t, w in edges}


def test_exact_graph_equals_nsl_build_graph(corpus):
    want = as_dict(nsl_graph(corpus, "nsl_exact", lsh_splits=0))
    cfg = GraphConfig(similarity_threshold=THRESHOLD, max_neighbours=0, centre=False)
    got = as_dict(similarity.read_tsv(beam_graph(corpus, "exact", cfg)))
    assert len(want) > 500
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in got) <= 1e-5


def test_lsh_graph_reproduces_nsl_hyperplanes(corpus):
    """Same seed, splits and rounds: NSL's planes are redrawn exactly, so the edges are equal."""
    want = as_dict(nsl_graph(corpus, "nsl_lsh", lsh_splits=3, lsh_rounds=3, random_seed=11))
    exact = as_dict(nsl_graph(corpus, "nsl_exact2", lsh_splits=0))
    cfg = GraphConfig(
        similarity_threshold=THRESHOLD,
        max_neighbours=0,
        centre=False,
        lsh_splits=3,
        lsh_rounds=3,
        max_bucket_size=30,
        seed=11,
    )
    got = as_dict(similarity.read_tsv(beam_graph(corpus, "lsh", cfg)))
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in got) <= 1e-5
    assert got.keys() < exact.keys() and len(got) / len(exact) > 0.8


@pytest.mark.parametrize("undirected", [False, True])
@pytest.mark.parametrize("max_nbrs", [3, None])
def test_packed_examples_equal_nsl_pack_nbrs(corpus, undirected, max_nbrs):
    # A directed top-2 graph (plus an edge to an id without an example) makes undirected matter.
    cfg = GraphConfig(similarity_threshold=THRESHOLD, max_neighbours=2, centre=True)
    graph = beam_graph(corpus, f"top2_{undirected}_{max_nbrs}", cfg)
    with open(graph, "a") as f:
        f.write(f"{corpus['ids'][0]}\tghost\t0.999000\n")
    out = str(corpus["tmp"] / f"nsl_packed_{undirected}_{max_nbrs}.tfrecord")
    nsl.tools.pack_nbrs(corpus["path"], "", graph, out, undirected, max_nbrs)
    want = {example_id(ex): ex for ex in map(tf.train.Example.FromString, _records(out))}

    ours = str(corpus["tmp"] / f"packed_{undirected}_{max_nbrs}.tfrecord")
    with beam.Pipeline() as p:
        examples = p | "Examples" >> beam.Create(corpus["examples"])
        edges = p | "Edges" >> beam.Create(similarity.read_tsv(graph))
        _ = (
            (examples, edges)
            | PackNeighbours(max_nbrs or 0, add_undirected_edges=undirected)
            | beam.Map(lambda ex: ex.SerializeToString())
            | beam.io.WriteToTFRecord(ours, shard_name_template="")
        )
    got = {example_id(ex): ex for ex in map(tf.train.Example.FromString, _records(ours))}

    assert got.keys() == want.keys()
    for node, ex in want.items():
        theirs, mine = ex.features.feature, got[node].features.feature
        assert sorted(mine) == sorted(theirs), node
        for name in theirs:
            assert mine[name] == theirs[name], (node, name)
    num_nbrs = [ex.features.feature["NL_num_nbrs"].int64_list.value[0] for ex in want.values()]
    assert max(num_nbrs) > 2 if undirected else max(num_nbrs) == 2


def _records(path: str) -> list[bytes]:
    return list(tf.data.TFRecordDataset(path).as_numpy_iterator())
