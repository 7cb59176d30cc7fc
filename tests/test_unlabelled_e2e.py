"""Few labels end to end: `emograph experiment --labelled-fractions` with an unlabelled folder on
tiny synthetic corpora; no unlabelled clip's label reaches a packed training example."""

import json
import re
from pathlib import Path

import pytest
import tensorflow as tf

from emograph.components import features as F
from emograph.components.audio.frontend import functionals_width
from emograph.components.audio.synthetic import write_corpus
from emograph.components.config import SynthConfig
from emograph.components.models import training
from emograph.pipeline import cli
from emograph.pipeline.config import NSL_STUDENT, SELF_TRAINED, SPEECH_ONLY, RunConfig

pytestmark = pytest.mark.e2e

VARIANTS = (NSL_STUDENT, SPEECH_ONLY, SELF_TRAINED)


def _records(pattern: str) -> list[tf.train.Example]:
    files = tf.io.gfile.glob(pattern)
    assert files, pattern
    data = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(r) for r in data.as_numpy_iterator()]


def _text(example: tf.train.Example, name: str) -> str:
    return example.features.feature[name].bytes_list.value[0].decode()


def test_learning_curve_with_unlabelled_audio(tmp_path):
    config = RunConfig.tiny(str(tmp_path / "data_root"))
    config_file = tmp_path / "tiny.json"
    config_file.write_text(config.to_json())
    pool = tmp_path / "pool"  # other voices than the target's: no duplicate audio
    write_corpus("target", pool, SynthConfig(speakers=2, utterances_per_emotion=1, seed=7))
    out = tmp_path / "experiment"
    args = ["experiment", "--config", str(config_file), "--folds", "1", "--seeds", "1"]
    args += ["--variants", ",".join(VARIANTS), "--labelled-fractions", "0.5"]
    args += ["--unlabelled", f"audio:{pool / 'wav'}", "--out", str(out)]
    assert cli.main(args) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["labelled_fractions"] == [0.5]
    for model in VARIANTS:
        uars = results["curves"][model]["0.5"]
        assert len(uars) == 1 and 0 <= uars[0] <= 1, model
    assert "egemaps_lr_spk" in results["curves"]
    assert set(results["nsl_minus"]["0.5"]) >= {SPEECH_ONLY, SELF_TRAINED}
    assert (out / "curves.png").stat().st_size > 0
    assert "| self_trained |" in (out / "report.md").read_text()
    share = json.loads((out / "labels-0.5" / "results.json").read_text())
    assert share["labelled_fraction"] == 0.5
    assert share["unlabelled"] == [f"audio:{pool / 'wav'}"]

    # The ingest report: which train clips lost their label, and the pool's clips in train.
    reports = list(Path(out).glob("pipeline/target_example_gen/report/*/ingest_report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["by_corpus"]["audio"]["ingested"] == 2 * 6
    ingested = [
        json.loads(line)
        for shard in reports[0].parent.glob("ingested-*.jsonl")
        for line in shard.read_text().splitlines()
    ]
    unlabelled = {r["clip_id"] for r in ingested if r["label"] == F.UNLABELLED}
    labelled = {r["clip_id"]: r["label"] for r in ingested if r["label"] != F.UNLABELLED}
    assert {r["split"] for r in ingested if r["clip_id"] in unlabelled} == {"train"}
    target_train = [r for r in ingested if r["corpus"] == "synthetic" and r["split"] == "train"]
    share_kept = sum(r["label"] != F.UNLABELLED for r in target_train) / len(target_train)
    assert 0.4 <= share_kept <= 0.6

    # Packed examples: an unlabelled seed keeps label_id -1, a labelled one its own label, and
    # the trainers' reader yields exactly the labelled windows.
    packed = list(Path(out).glob("pipeline/NeighbourPacker/packed_examples/*/Split-train"))
    assert len(packed) == 1
    examples = _records(f"{packed[0]}/*")
    classes = config.classes
    neighbours_from_unlabelled = 0
    for ex in examples:
        clip = _text(ex, F.ID).rsplit(":", 1)[0]
        label_id = ex.features.feature[F.LABEL_ID].int64_list.value[0]
        if clip in unlabelled:
            assert label_id == F.UNLABELLED_ID and _text(ex, F.LABEL) == ""
        else:
            assert label_id == classes.index(labelled[clip])
        for key in ex.features.feature:
            if re.fullmatch(rf"{F.NBR_PREFIX}\d+_{F.ID}", key):
                neighbour = _text(ex, key).rsplit(":", 1)[0]
                neighbours_from_unlabelled += neighbour in unlabelled
    assert neighbours_from_unlabelled > 0  # the graph joins labelled clips to unlabelled ones
    spec = training.feature_spec(F.FUNCTIONALS, functionals_width(config.frontend.mel_bands))
    read = training.make_dataset([f"{packed[0]}/*"], spec, 64, shuffle=False)
    labels = [int(y) for _, batch in read for y in batch.numpy()]
    expected = [
        classes.index(labelled[_text(ex, F.ID).rsplit(":", 1)[0]])
        for ex in examples
        if _text(ex, F.ID).rsplit(":", 1)[0] in labelled
    ]
    assert sorted(labels) == sorted(expected) and F.UNLABELLED_ID not in labels

    summaries = list(Path(out).glob(f"pipeline/{SELF_TRAINED}_seed0/model_run/*/training.json"))
    assert len(summaries) == 1
    assert "pseudo_labelled_clips" in json.loads(summaries[0].read_text())["self_training"]

    # The NSL student also fitted on the labels the graph propagates to unlabelled clips, and
    # the validation speakers chose between those fits and the fits on the labels alone.
    summaries = list(Path(out).glob(f"pipeline/{NSL_STUDENT}_seed0/model_run/*/training.json"))
    assert len(summaries) == 1
    propagated = json.loads(summaries[0].read_text())["label_propagation"]
    assert 0 < propagated["propagated_clips"] <= len(unlabelled)
    assert set(propagated["val_uar_by_multiplier"]) == {
        str(m) for m in sorted({config.student.graph_multiplier, *config.student.graph_multipliers})
    }
    # Then one round of self-training through the graph: the chosen student's predictions,
    # smoothed over the same graph, label some unlabelled clips for a refit.
    smoothing = json.loads(summaries[0].read_text())["graph_self_training"]
    assert 0 <= smoothing["smoothed_clips"] <= len(unlabelled)
    assert ("val_uar" in smoothing) == (smoothing["smoothed_clips"] > 0)
