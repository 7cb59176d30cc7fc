"""The real TFX pipeline, end to end, on a tiny synthetic corpus (LocalDagRunner, DirectRunner)."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio import frontend
from emograph.pipeline import local_runner, report
from emograph.pipeline.config import RunConfig

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> RunConfig:
    config = RunConfig.tiny(str(tmp_path_factory.mktemp("run")))
    local_runner.run(config)
    return config


def _records(pattern: str) -> list[tf.train.Example]:
    files = sorted(tf.io.gfile.glob(pattern))
    assert files, f"nothing matches {pattern}"
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(x) for x in ds.as_numpy_iterator()]


def _uri(config: RunConfig, type_name: str) -> str:
    uri = report.latest_uri(config, type_name)
    assert uri, f"no {type_name} artifact"
    return uri


def test_ingested_examples_have_the_schema_features(finished_run):
    root = Path(finished_run.pipeline_root)
    for name in ("source_example_gen", "target_example_gen"):
        (examples_dir,) = (root / name / "examples").iterdir()
        speakers = {}
        for split in ("train", "eval", "test"):
            examples = _records(f"{examples_dir}/Split-{split}/*.gz")
            first = examples[0].features.feature
            assert set(first) == {F.AUDIO, F.LABEL, F.SPEAKER, F.CLIP, F.ID, F.CORPUS, F.START}
            assert len(first[F.AUDIO].bytes_list.value[0]) == 2 * finished_run.audio.window_samples
            speakers[split] = {e.features.feature[F.SPEAKER].bytes_list.value[0] for e in examples}
        assert not speakers["train"] & speakers["eval"]
        assert not speakers["train"] & speakers["test"]
        assert not speakers["eval"] & speakers["test"]


def test_ingest_report_accounts_for_every_file(finished_run):
    (report_dir,) = (Path(finished_run.pipeline_root) / "target_example_gen" / "report").iterdir()
    summary = json.loads((report_dir / "ingest_report.json").read_text())
    manifest_rows = (
        len((Path(finished_run.target.path) / "manifest.csv").read_text().splitlines()) - 1
    )
    assert summary["found"] == manifest_rows == summary["ingested"] + summary["rejected"]


def test_graph_edges_reference_real_train_ids(finished_run):
    graph_dir = Path(_uri(finished_run, "emograph.SimilarityGraph"))
    edges = [
        line.split("\t")
        for p in graph_dir.glob("graph*.tsv")
        for line in p.read_text().splitlines()
    ]
    assert edges, "empty graph"
    (transformed,) = (
        Path(finished_run.pipeline_root) / "target_transform" / "transformed_examples"
    ).iterdir()
    train_ids = {
        e.features.feature[F.ID].bytes_list.value[0].decode()
        for e in _records(f"{transformed}/Split-train/*.gz")
    }
    stats = json.loads((graph_dir / "stats.json").read_text())
    built = stats["config"]  # "auto": the threshold and source chosen on validation speakers
    assert finished_run.graph.embedding_source == "auto"
    assert built["embedding_source"] == stats["selection"]["chosen"]["source"]
    assert built["similarity_threshold"] in finished_run.graph.candidate_thresholds
    for source, target, weight in edges:
        assert source in train_ids and target in train_ids and source != target
        # weights are written with 6 decimals, so allow their rounding
        assert built["similarity_threshold"] - 1e-6 <= float(weight) <= 1.0 + 1e-6
    assert stats["nodes"] == len(train_ids)


def test_packed_examples_carry_neighbours(finished_run):
    (packed,) = (Path(finished_run.pipeline_root) / "NeighbourPacker" / "packed_examples").iterdir()
    examples = _records(f"{packed}/Split-train/*.gz")
    with_neighbours = [
        e for e in examples if e.features.feature[F.NUM_NBRS].int64_list.value[0] > 0
    ]
    assert with_neighbours
    feats = with_neighbours[0].features.feature
    assert "NL_nbr_0_logmel" in feats and "NL_nbr_0_weight" in feats
    assert len(feats["NL_nbr_0_logmel"].float_list.value) == len(feats[F.LOGMEL].float_list.value)


def test_transformed_functionals_are_z_scored_per_speaker(finished_run):
    (packed,) = (Path(finished_run.pipeline_root) / "NeighbourPacker" / "packed_examples").iterdir()
    by_speaker: dict[bytes, list] = {}
    for split in ("train", "eval", "test"):
        for e in _records(f"{packed}/Split-{split}/*.gz"):
            feats = e.features.feature
            speaker = feats[F.SPEAKER].bytes_list.value[0]
            by_speaker.setdefault(speaker, []).append(feats[F.FUNCTIONALS].float_list.value)
    assert len(by_speaker) >= 3
    for rows in by_speaker.values():
        rows = np.asarray(rows)
        assert rows.shape[1] == frontend.functionals_width(finished_run.frontend.mel_bands)
        np.testing.assert_allclose(rows.mean(axis=0), 0.0, atol=1e-3)
        assert np.median(rows.std(axis=0)) == pytest.approx(1.0, abs=1e-2)


def test_pushed_int8_model_runs_in_litert_above_chance(finished_run):
    from ai_edge_litert.interpreter import Interpreter

    from emograph.components.edge import Predictor

    summary = report.summary(finished_run)
    pushed = Path(summary["pushed"]["directory"])
    assert {p.name for p in pushed.iterdir()} >= {
        "model.tflite",
        "labels.txt",
        "metadata.json",
        "MODEL_CARD.md",
    }
    interpreter = Interpreter(model_path=str(pushed / "model.tflite"))
    (signature,) = interpreter.get_signature_list().values()
    assert set(signature["inputs"]) == {"pcm", "speaker_stats"}  # the default: per speaker
    inputs = interpreter.get_signature_runner().get_input_details()
    assert inputs["pcm"]["dtype"] == np.float32
    assert list(inputs["pcm"]["shape"]) == [1, finished_run.audio.window_samples]
    width = frontend.functionals_width(finished_run.frontend.mel_bands)  # the default student's
    assert list(inputs["speaker_stats"]["shape"]) == [2, width]
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())
    predictor = Predictor(pushed)  # checks the metadata's adaptation against the model
    pcm = np.random.default_rng(0).uniform(-0.1, 0.1, finished_run.audio.window_samples)
    for _ in range(predictor.adaptation.warmup_windows + 1):
        predictor.predict_window(pcm)
    assert predictor.adaptation.warmed_up
    chance = 1 / len(finished_run.classes)
    assert summary["pushed"]["int8_uar"] > chance
    assert summary["nsl_student"]["uar"] > chance
    assert summary["speech_only"]["uar"] > chance
