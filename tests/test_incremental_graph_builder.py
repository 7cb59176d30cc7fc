"""GraphBuilder in TFX, run twice: the second run extends the first run's graph (resolved from
ML Metadata) and its graph equals a full rebuild of the same embeddings."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from emograph.components import features as F
from emograph.components.artifacts import Embeddings
from emograph.components.config import GraphConfig
from emograph.components.embedder.embed import embedding_example
from emograph.components.graph.component import GRAPH_PREFIX, GRAPH_SPLIT, read_edges
from emograph.pipeline.config import RunConfig
from emograph.pipeline.pipeline import _pipeline, graph_builder

pytestmark = pytest.mark.slow

GRAPH = GraphConfig(
    embedding_source="statistics+teacher:0.5",
    similarity_threshold=0.1,
    max_neighbours=3,
    centre=False,
    incremental=True,
)


def windows(speaker: str, n: int, seed: int) -> list[tuple[str, dict, str]]:
    rng = np.random.default_rng(seed)
    voice = rng.standard_normal(6)
    return [
        (
            f"{speaker}:{i}",
            {
                "statistics": (voice + rng.standard_normal(6)).astype(np.float32),
                "teacher": rng.standard_normal(4).astype(np.float32),
            },
            speaker,
        )
        for i in range(n)
    ]


def write_embeddings(path: Path, rows) -> str:
    split = path / f"Split-{GRAPH_SPLIT}"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "part.gz"), options="GZIP") as writer:
        for node_id, vectors, speaker in rows:
            carried = {F.LABEL: b"happy", F.SPEAKER: speaker.encode()}
            writer.write(embedding_example(node_id.encode(), vectors, carried))
    return str(path)


def build(root: Path, embeddings: str, graph: GraphConfig) -> dict:
    """One run of importer -> (resolver ->) GraphBuilder; the graph's stats and edges."""
    config = RunConfig.tiny(str(root)).replace(graph=graph)
    importer = tfx.dsl.Importer(source_uri=embeddings, artifact_type=Embeddings).with_id(
        "embeddings_importer"
    )
    steps = graph_builder(config, importer.outputs["result"])
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
    tfx.orchestration.LocalDagRunner().run(_pipeline(config, [importer, *steps], metadata))
    uri = max(
        Path(config.pipeline_root, "GraphBuilder", "graph").iterdir(), key=lambda p: int(p.name)
    )
    stats = json.loads((uri / "stats.json").read_text())
    edges = {(s, t): w for s, t, w in read_edges(str(uri), GRAPH_PREFIX)}
    return {"stats": stats, "edges": edges}


# 0.5: the reweighted path, where the next run merges on the wider cosine lists.
@pytest.mark.parametrize("same_speaker_weight", [1.0, 0.5])
def test_the_second_run_is_incremental_and_equals_a_full_rebuild(tmp_path, same_speaker_weight):
    graph = dataclasses.replace(GRAPH, same_speaker_weight=same_speaker_weight)
    speakers = {f"s{i}": windows(f"s{i}", 12, i) for i in range(5)}
    first = [row for rows in speakers.values() for row in rows]
    # Next span: s0 loses two windows (its statistics move: all its nodes change), s9 is new.
    second = [row for row in first if row[0] not in ("s0:0", "s0:1")] + windows("s9", 12, 9)
    e1 = write_embeddings(tmp_path / "e1", first)
    e2 = write_embeddings(tmp_path / "e2", second)

    run1 = build(tmp_path / "run", e1, graph)["stats"]["build"]
    assert run1["mode"] == "full" and run1["reason"] == "no previous graph"
    run2 = build(tmp_path / "run", e2, graph)
    record = run2["stats"]["build"]
    assert record["mode"] == "incremental", record
    assert (record["new_nodes"], record["removed_nodes"], record["changed_nodes"]) == (12, 2, 10)
    assert record["reused_nodes"] + record["refreshed_nodes"] == 48

    full = build(tmp_path / "reference", e2, dataclasses.replace(graph, incremental=False))
    assert full["stats"]["build"]["mode"] == "full"
    assert run2["edges"].keys() == full["edges"].keys()
    assert max(abs(run2["edges"][e] - w) for e, w in full["edges"].items()) <= 1e-6
    assert run2["stats"]["edges"] == full["stats"]["edges"]
