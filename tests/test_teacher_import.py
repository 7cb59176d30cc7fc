"""A user-supplied teacher: accepted when it meets the `embed` contract, refused clearly when
not, fine-tunable, and imported by the pipeline in place of the teacher's steps."""

import emograph.components.compat  # noqa: F401  (first: sets up TF_USE_LEGACY_KERAS and the NSL stub)

# isort: split
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from emograph.components import features as F
from emograph.components.models import networks
from emograph.components.teacher import imported
from emograph.components.teacher.trainer import load_for_finetuning
from emograph.pipeline import cli
from emograph.pipeline.config import RunConfig

FRAMES, BANDS = 8, 5
WIDTH = FRAMES * BANDS


def _keras_teacher(dim: int = 6) -> keras.Model:
    inputs = keras.Input(shape=(WIDTH,), name="features")
    x = keras.layers.Dense(dim, activation="relu", name=networks.EMBEDDING_LAYER)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def _module_saved_model(path: Path, width: int, with_embed: bool = True) -> str:
    """A SavedModel that is not a Keras model: a tf.Module with one signature."""
    module = tf.Module()
    module.w = tf.Variable(tf.ones([width, 4]))
    spec = tf.TensorSpec([None, width], tf.float32, name=F.LOGMEL)
    module.f = tf.function(lambda logmel: {F.EMBEDDING: tf.matmul(logmel, module.w)}, [spec])
    name = imported.EMBED_SIGNATURE if with_embed else "serving_default"
    tf.saved_model.save(module, str(path), signatures={name: module.f})
    return str(path)


def test_keras_file_is_staged_with_an_embed_signature_of_its_embedding_layer(tmp_path):
    model = _keras_teacher()
    model.save(tmp_path / "teacher.keras")
    staged = imported.stage_teacher(str(tmp_path / "teacher.keras"), str(tmp_path / "s"), 8, 5)
    serving = f"{staged}/{imported.SERVING_DIR}"
    assert imported.check_embed_signature(serving, FRAMES, BANDS) == 6
    x = np.random.default_rng(0).standard_normal((2, WIDTH)).astype(np.float32)
    embed = tf.saved_model.load(serving).signatures[imported.EMBED_SIGNATURE]
    expected = keras.Model(model.inputs, model.get_layer(networks.EMBEDDING_LAYER).output)(x)
    np.testing.assert_allclose(embed(logmel=tf.constant(x))[F.EMBEDDING], expected, atol=1e-5)
    assert imported.stage_teacher(str(tmp_path / "teacher.keras"), str(tmp_path / "s"), 8, 5) == (
        staged
    )


def test_saved_model_with_embed_is_accepted_and_copied(tmp_path):
    path = _module_saved_model(tmp_path / "module", WIDTH)
    staged = imported.stage_teacher(path, str(tmp_path / "s"), FRAMES, BANDS)
    assert imported.check_embed_signature(f"{staged}/{imported.SERVING_DIR}", FRAMES, BANDS) == 4


def test_saved_model_without_embed_is_refused_naming_the_path(tmp_path):
    path = _module_saved_model(tmp_path / "no_embed", WIDTH, with_embed=False)
    with pytest.raises(imported.TeacherModelError, match=r"no_embed: no 'embed' signature"):
        imported.stage_teacher(path, str(tmp_path / "s"), FRAMES, BANDS)


def test_wrong_input_width_is_refused_with_the_expected_shape(tmp_path):
    path = _module_saved_model(tmp_path / "narrow", WIDTH - 1)
    with pytest.raises(
        imported.TeacherModelError, match=r"narrow: .*expected float32 \[batch, 40\]"
    ):
        imported.stage_teacher(path, str(tmp_path / "s"), FRAMES, BANDS)
    model = _keras_teacher()
    model.save(tmp_path / "k.keras")
    with pytest.raises(imported.TeacherModelError, match=r"k.keras: .*\(None, 50\)"):
        imported.stage_teacher(str(tmp_path / "k.keras"), str(tmp_path / "s"), 10, 5)
    with pytest.raises(imported.TeacherModelError, match="does not exist"):
        imported.stage_teacher(str(tmp_path / "missing"), str(tmp_path / "s"), FRAMES, BANDS)


def test_a_signature_only_teacher_is_fine_tuned_under_a_new_head(tmp_path):
    path = _module_saved_model(tmp_path / "module", WIDTH)
    model = load_for_finetuning(path, 3, FRAMES, BANDS, dropout=0.1)
    assert model(tf.zeros([2, WIDTH])).shape == (2, 3)
    assert len(model.trainable_weights) == 2  # the new head only; the signature stays frozen


def test_teacher_flag_replaces_the_source_steps_with_an_importer(tmp_path):
    from emograph.components.models.training import input_shape
    from emograph.pipeline.pipeline import create_pipeline

    config = RunConfig.tiny(str(tmp_path / "run"))
    frames, bands = input_shape(config.audio, config.frontend)
    inputs = keras.Input(shape=(frames * bands,))
    embedding = keras.layers.Dense(4, name=networks.EMBEDDING_LAYER)(inputs)
    keras.Model(inputs, embedding).save(tmp_path / "teacher.keras")
    args = cli.build_parser().parse_args(["run", "--teacher", str(tmp_path / "teacher.keras")])
    teacher = cli._load_config(args).teacher
    assert teacher.model_path == str(tmp_path / "teacher.keras")

    config = config.replace(
        teacher=dataclasses.replace(config.teacher, model_path=teacher.model_path)
    )
    ids = {c.id for c in create_pipeline(config).components}
    assert "teacher_importer" in ids
    assert not ids & {"teacher_trainer", "source_example_gen", "source_transform"}
    assert {"Embedder", "student_trainer", "speech_only_trainer"} <= ids
