"""The Beam jobs (ingest, embedder, graph, packer) on the submission paths Flink, Spark and
Dataflow use: Beam's portable runner against its own local job service (LOOPBACK workers), and
the multi-process DirectRunner. Pickling, coder and portability faults show up here, not on a
cluster. Each job's output is compared with the in-process DirectRunner's or with what it must be.
"""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from emograph.components import features as F
from emograph.components.audio.synthetic import write_corpus
from emograph.components.config import (
    EMOTIONS,
    AudioConfig,
    CorpusSpec,
    GraphConfig,
    SplitConfig,
    SynthConfig,
)
from emograph.components.embedder.embed import EMBED_SIGNATURE, EmbedExamples, parse_embedding
from emograph.components.example_gen.ingest import run_ingest
from emograph.components.graph import similarity
from emograph.components.graph.beam_graph import BuildSimilarityGraph, write_tsv
from emograph.components.neighbours.beam_pack import PackNeighbours

pytestmark = pytest.mark.slow

RUNNERS = {
    "portable": [
        "--runner=PortableRunner",
        "--job_endpoint=embed",  # apache_beam's local job service, in this process
        "--environment_type=LOOPBACK",
    ],
    "multi_process": [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


@pytest.fixture(params=sorted(RUNNERS))
def beam_args(request) -> list[str]:
    return RUNNERS[request.param]


def _records(pattern: str) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    assert files, pattern
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def test_ingest(beam_args, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus("target", corpus, SynthConfig(speakers=4, utterances_per_emotion=1))
    (corpus / "wav" / "broken.wav").write_bytes(b"")
    manifest = (corpus / "manifest.csv").read_text()
    (corpus / "manifest.csv").write_text(manifest + "wav/broken.wav,sad,tgt_spk00\n")
    audio = AudioConfig(window_seconds=1.0, hop_seconds=1.0, max_windows_per_clip=2)
    split = SplitConfig(eval_fraction=0.25, test_fraction=0.25)
    report = run_ingest(
        CorpusSpec("synthetic", str(corpus)),
        EMOTIONS,
        audio,
        split,
        str(tmp_path / "out"),
        beam_args,
    )
    assert report["found"] == 4 * 6 + 1 == report["ingested"] + report["rejected"]
    assert report["rejected_by_reason"] == {"empty": 1}
    written = sum(len(_records(f"{tmp_path}/out/examples/Split-{s}/*")) for s in report["windows"])
    assert written == sum(report["windows"].values()) > 0


def test_embedder(beam_args, tmp_path):
    frames, bands = 5, 4
    module = tf.Module()
    spec = tf.TensorSpec([None, frames * bands], tf.float32, name=F.LOGMEL)
    module.embed = tf.function(lambda logmel: {F.EMBEDDING: logmel[:, :3]}, [spec])
    tf.saved_model.save(
        module, str(tmp_path / "teacher"), signatures={EMBED_SIGNATURE: module.embed}
    )

    def example(features: dict) -> bytes:
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    def data(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def text(value: str) -> tf.train.Feature:
        return data(value.encode())

    ids = [f"c{i}:0" for i in range(6)]
    transformed = [
        example(
            {
                F.LOGMEL: tf.train.Feature(float_list=tf.train.FloatList(value=[i / 10] * 20)),
                F.ID: text(window),
                F.LABEL: text("happy"),
                F.SPEAKER: text("s0"),
            }
        )
        for i, window in enumerate(ids)
    ]
    pcm = (3000 * np.sin(np.arange(16000) / 10)).astype("<i2").tobytes()
    raw = [example({F.AUDIO: data(pcm), F.ID: text(window)}) for window in ids]
    out = str(tmp_path / "embeddings")
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        _ = (
            (p | "T" >> beam.Create(transformed), p | "R" >> beam.Create(raw))
            | EmbedExamples(str(tmp_path / "teacher"), bands, 16000)
            | beam.io.WriteToTFRecord(out, file_name_suffix=".gz")
        )
    records = [parse_embedding(r) for r in _records(f"{out}*.gz")]
    assert sorted(r[F.ID] for r in records) == ids
    for r in records:
        i = ids.index(r[F.ID]) / 10
        np.testing.assert_allclose(r["vectors"]["teacher"], [i, i, i], atol=1e-6)


def _graph(ids, vectors, cfg: GraphConfig, out: Path, beam_args) -> dict:
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        edges = p | beam.Create(list(zip(ids, vectors, strict=True))) | BuildSimilarityGraph(cfg)
        write_tsv(edges, str(out), num_shards=1)
    return {(s, t): w for s, t, w in similarity.read_tsv(f"{out}.tsv")}


def test_graph(beam_args, tmp_path):
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((60, 8)) + 0.5).astype(np.float32)
    ids = [f"n{i:03d}" for i in range(60)]
    cfg = GraphConfig(similarity_threshold=0.2, max_neighbours=3)
    reference = _graph(ids, vectors, cfg, tmp_path / "direct", [])
    got = _graph(ids, vectors, cfg, tmp_path / "other", beam_args)
    assert got.keys() == reference.keys() and len(got) > 60
    assert max(abs(got[k] - reference[k]) for k in got) <= 1e-6


def test_packer(beam_args, tmp_path):
    def example(node: str) -> tf.train.Example:
        ex = tf.train.Example()
        ex.features.feature[F.ID].bytes_list.value.append(node.encode())
        ex.features.feature[F.LOGMEL].float_list.value.extend([float(node[1:])])
        return ex

    examples = [example(f"n{i}") for i in range(5)]
    edges = [("n0", "n1", 0.9), ("n0", "n2", 0.5), ("n3", "n4", 0.7), ("n0", "n9", 1.0)]
    out = str(tmp_path / "packed")
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        _ = (
            (p | "Ex" >> beam.Create(examples), p | "Edges" >> beam.Create(edges))
            | PackNeighbours(max_neighbours=2)
            | beam.Map(lambda ex: ex.SerializeToString())
            | beam.io.WriteToTFRecord(out, file_name_suffix=".gz")
        )
    packed = {}
    for record in _records(f"{out}*.gz"):
        ex = tf.train.Example.FromString(record)
        packed[ex.features.feature[F.ID].bytes_list.value[0].decode()] = ex
    assert sorted(packed) == [f"n{i}" for i in range(5)]
    neighbours = {
        node: json.dumps(
            [
                ex.features.feature[f"{F.NBR_PREFIX}{k}_{F.ID}"].bytes_list.value[0].decode()
                for k in range(int(ex.features.feature[F.NUM_NBRS].int64_list.value[0]))
            ]
        )
        for node, ex in packed.items()
    }
    assert neighbours == {
        "n0": '["n1", "n2"]',  # the edge to an unknown id is dropped
        "n1": "[]",
        "n2": "[]",
        "n3": '["n4"]',
        "n4": "[]",
    }
